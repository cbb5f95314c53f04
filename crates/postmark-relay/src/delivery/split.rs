//! A message whose recipients fared differently (the API path sends one copy per recipient when
//! `To` names none of them): the delivered ones are logged, the refused ones become a dead letter
//! of their own, and the message stays queued for the rest.

use super::{Outcome, RecipientOutcome};
use super::{Worker, log, notify};
use crate::envelope::Envelope;
use crate::metrics::{Dead, Deferral};
use crate::spool::{DeadReason, StoredMessage};

impl Worker {
    pub(super) fn apply_split(&mut self, msg: &StoredMessage, r: RecipientOutcome) {
        let id = &msg.id;
        if r.retry.is_empty() && r.failed.is_empty() {
            return self.apply(msg, Outcome::Delivered { reference: r.reference });
        }
        if r.retry.is_empty() && r.delivered.is_empty() {
            return self.kill(msg, &r.failed_reason, Dead::Permanent);
        }
        if r.failed.is_empty() && r.delivered.is_empty() {
            return self.defer(msg, &r.retry_reason, Deferral::Transient);
        }
        if !r.delivered.is_empty() {
            self.metrics.delivered(self.backend.path());
            log::delivered(msg, self.backend.path().label(), &r.reference, &r.delivered, true);
            self.record_delivered(msg, &r.delivered, &r.reference);
        }
        if !r.failed.is_empty() {
            let envelope = Envelope { mail_from: msg.header.envelope.mail_from.clone(), rcpt_to: r.failed.clone() };
            let reason = DeadReason {
                reason: r.failed_reason.clone(),
                dead_ms: self.clock.now_ms(),
                attempts: self.schedule.get(id).map_or(0, |e| e.attempts) + 1,
                recipients: r.failed.clone(),
            };
            match self.spool.kill_copy(msg, envelope, &reason) {
                Ok(dead_id) => {
                    self.metrics.dead_lettered(Dead::Recipients);
                    log::dead(
                        msg,
                        self.backend.path().label(),
                        Some(&dead_id),
                        &r.failed,
                        &r.failed_reason,
                        reason.attempts,
                    );
                    let death = notify::Death {
                        id: &dead_id,
                        reason: &r.failed_reason,
                        attempts: reason.attempts,
                        recipients: &r.failed,
                    };
                    self.notify(msg, death);
                }
                Err(e) => tracing::error!(queue_id = %id, error = %e, "cannot write dead letter"),
            }
        }
        if r.retry.is_empty() {
            if let Err(e) = self.spool.remove(id) {
                tracing::error!(queue_id = %id, error = %e, "cannot remove finished message from the spool");
            }
            self.schedule.remove(id);
            return;
        }
        let envelope = Envelope { mail_from: msg.header.envelope.mail_from.clone(), rcpt_to: r.retry.clone() };
        if let Err(e) = self.spool.replace_envelope(msg, envelope.clone()) {
            // Keep the old envelope: the delivered recipients may get a second copy.
            tracing::error!(queue_id = %id, error = %e, "cannot narrow the envelope to the recipients left; they may receive a duplicate");
            return self.defer(msg, &r.retry_reason, Deferral::Recipients);
        }
        let mut narrowed = msg.clone();
        narrowed.header.envelope = envelope;
        self.defer(&narrowed, &r.retry_reason, Deferral::Recipients);
    }
}

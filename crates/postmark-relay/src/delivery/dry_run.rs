//! Dry-run: write what would be sent under `<spool>/dry-run/` instead of sending it.
//!
//! API-shaped output is `<id>.json`, the exact Postmark request body for `/email` (with the message
//! and its envelope beside it, as for SMTP, for the preview UI). SMTP-shaped
//! output is `<id>.eml`, the exact bytes that would go after `DATA`, plus `<id>.envelope.json`
//! with the `MAIL FROM` and `RCPT TO` that would be used.

use std::sync::Arc;

use super::Outcome;
use crate::convert::ConvertOptions;
use crate::envelope::Via;
use crate::metrics::{Metrics, Path};
use crate::spool::{Spool, StoredMessage};

/// The dry-run backend.
#[derive(Debug)]
pub struct DryRun {
    spool: Arc<Spool>,
    via: Via,
    convert: ConvertOptions,
}

impl DryRun {
    /// Writes under `spool`'s `dry-run/` folder, shaped for `via`.
    pub fn new(spool: Arc<Spool>, via: Via, convert: ConvertOptions) -> Self {
        Self { spool, via, convert }
    }

    pub(super) async fn deliver(&mut self, messages: &[StoredMessage], metrics: &Metrics) -> Vec<Outcome> {
        messages
            .iter()
            .map(|m| {
                let started = std::time::Instant::now();
                let outcome = self.write(m);
                metrics.upstream_latency(Path::DryRun, started.elapsed());
                outcome
            })
            .collect()
    }

    fn write(&self, msg: &StoredMessage) -> Outcome {
        let id = &msg.id;
        let written = match self.via {
            // One request as an object; a message sent as one copy per recipient as an array.
            Via::Api => match super::api::requests_for(msg, &self.convert) {
                Ok(requests) => {
                    let json = match requests.as_slice() {
                        [request] => serde_json::to_vec_pretty(request),
                        several => serde_json::to_vec_pretty(several),
                    }
                    .unwrap_or_default();
                    // The message and its envelope too, for the preview UI (src/ui): its source,
                    // headers and verdict.
                    self.write_message(msg).and_then(|_| self.spool.write_dry_run(&format!("{id}.json"), &json))
                }
                Err(e) => return Outcome::Permanent(format!("cannot convert the message for Postmark's API: {e}")),
            },
            Via::Smtp => self.write_message(msg),
        };
        match written {
            Ok(path) => Outcome::Delivered { reference: format!("dry-run {}", path.display()) },
            Err(e) => Outcome::Transient(format!("cannot write dry-run output: {e}")),
        }
    }

    /// `<id>.envelope.json` and `<id>.eml`: the envelope and the exact message bytes.
    fn write_message(&self, msg: &StoredMessage) -> std::io::Result<std::path::PathBuf> {
        let id = &msg.id;
        let envelope = serde_json::to_vec_pretty(&msg.header.envelope).unwrap_or_default();
        self.spool
            .write_dry_run(&format!("{id}.envelope.json"), &envelope)
            .and_then(|_| self.spool.write_dry_run(&format!("{id}.eml"), &msg.raw))
    }
}

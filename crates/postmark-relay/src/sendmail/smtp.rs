//! `sendmail -bs`: an SMTP session on standard input and output, run by the relay's own session
//! code ([`crate::session::pipe`]) with the same checks as on the listener. Each accepted
//! message is written to the maildrop, synced, before its `250`, exactly as `sendmail` without
//! `-bs` writes it before exiting 0.

use std::sync::Arc;

use super::{Context, Failure, Settings, drop_durably, fail};
use crate::policy::exit;
use crate::session::pipe::{self, PipeChecks};
use crate::session::{Reply, SessionConfig};
use crate::spool::Header;

pub(super) fn run(settings: &Settings, cx: &mut Context<'_>) -> Result<Vec<String>, Failure> {
    let cfg = Arc::new(SessionConfig {
        hostname: settings.hostname.clone(),
        max_message_size: settings.max_message_size,
        max_recipients: settings.max_recipients,
        ..SessionConfig::default()
    });
    let checks =
        PipeChecks { policy: Arc::new(settings.policy.clone()), via: settings.via, convert: &settings.convert };
    let mut ids = Vec::new();
    let mut store = |envelope, raw: Vec<u8>| {
        let header = Header::new(envelope, &raw);
        match drop_durably(&settings.spool, &[(header, raw)]) {
            Ok(mut id) => {
                let id = id.pop().unwrap_or_default();
                ids.push(id.clone());
                Ok(id)
            }
            Err(failure) if failure.exit == exit::TEMPFAIL && failure.message.contains("try again") => {
                Err(Reply::new(452, "4.3.1", format!("Insufficient system storage: {}", failure.message)))
            }
            Err(failure) => Err(Reply::new(451, "4.3.0", format!("Local error: {}", failure.message))),
        }
    };
    pipe::run(cx.stdin, cx.stdout, cfg, &checks, &mut store)
        .map_err(|e| fail(exit::IOERR, format!("SMTP session on standard input and output: {e}")))?;
    Ok(ids)
}

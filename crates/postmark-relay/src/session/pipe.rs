//! One SMTP session over a pair of blocking byte streams: `sendmail -bs` (what Symfony Mailer's
//! and Laravel's default sendmail transport run), SMTP on standard input and output.
//!
//! The same state machine (`Protocol`) and the same end-of-`DATA` checks (`data::check`)
//! as a session on the listener; only what happens to an accepted message differs: the caller's
//! `store` makes it durable (the spool's maildrop), and `250` is written only once it returned.
//! The client is the local user who ran the command, as for `sendmail` without `-bs`: no AUTH
//! (none is offered), no TLS, no network rules.

use std::io::{Read, Write};
use std::sync::Arc;

use super::reply::Reply;
use super::{Event, Protocol, SessionConfig, data};
use crate::convert::ConvertOptions;
use crate::envelope::{Envelope, Via};
use crate::policy::Policy;

/// How the accepted messages are checked (as [`super::Acceptor`] checks them).
#[derive(Debug)]
pub struct PipeChecks<'a> {
    /// The policy (aliases, sender policy).
    pub policy: Arc<Policy>,
    /// The delivery path whose rules apply.
    pub via: Via,
    /// The conversion settings of that path.
    pub convert: &'a ConvertOptions,
}

/// Runs the session to its end (`QUIT`, too many errors, or the end of `input`). `store` makes
/// one message durable and returns its queue id, or the reply that refuses it.
pub fn run(
    input: &mut dyn Read,
    output: &mut dyn Write,
    cfg: Arc<SessionConfig>,
    checks: &PipeChecks<'_>,
    store: &mut dyn FnMut(Envelope, Vec<u8>) -> Result<String, Reply>,
) -> std::io::Result<()> {
    let mut proto = Protocol::with_metrics(cfg, Arc::default(), Arc::default());
    proto.policy = Arc::clone(&checks.policy);
    let mut out = Vec::with_capacity(1024);
    proto.greeting().write_to(&mut out);
    let mut buf = vec![0u8; super::READ_BUFFER];
    loop {
        output.write_all(&out)?;
        output.flush()?;
        out.clear();
        let n = match input.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let mut bytes = buf[..n].iter();
        loop {
            match proto.feed(&mut bytes, &mut out) {
                Event::NeedInput => break,
                Event::Message(envelope, raw) => {
                    // Checked as the listener checks it; stored as it arrived (the relay applies
                    // the policy's rewriting once, when it imports the message).
                    let reply = match data::check(
                        raw.clone(),
                        &envelope,
                        None,
                        checks.via,
                        checks.convert,
                        &checks.policy,
                        false,
                    ) {
                        Ok(_) => match store(envelope, raw) {
                            Ok(id) => Reply::new(250, "2.0.0", format!("Ok: queued as {id}")),
                            Err(reply) => reply,
                        },
                        Err((reply, _)) => reply,
                    };
                    reply.write_to(&mut out);
                }
                Event::Close => {
                    output.write_all(&out)?;
                    return output.flush();
                }
                // Neither is offered here (no users, no certificate), so the state machine refuses
                // both itself; should it ever ask, AUTH fails and TLS ends the session.
                Event::Auth(_) => {
                    if let Some(Event::Close) = proto.auth_finished(None, &mut out) {
                        output.write_all(&out)?;
                        return output.flush();
                    }
                }
                Event::StartTls => return Err(std::io::Error::other("STARTTLS without a TLS configuration")),
            }
        }
    }
}

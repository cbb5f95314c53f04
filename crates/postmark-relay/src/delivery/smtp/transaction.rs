//! One transaction on an established upstream connection: MAIL, RCPT for each recipient, DATA,
//! the message, and each reply turned into per-recipient outcomes.
//!
//! When the upstream advertised PIPELINING (RFC 2920), MAIL, every RCPT and DATA go out in one
//! write and their replies are read together: a message costs two round trips (the command group,
//! then the content and its final reply) instead of three plus one per recipient. DATA is the last
//! command of its group, and the content waits for the `354`, as the RFC requires.

use mail_send::smtp::message::Parameters;
use tokio::io::AsyncWriteExt;

use super::super::policy::{Class, classify_smtp};
use super::super::{Outcome, RecipientOutcome};
use super::{COMMAND_TIMEOUT, Connection, Failure, data_bytes};
use crate::spool::StoredMessage;

fn reply_text(r: &smtp_proto::Response<String>) -> String {
    let [a, b, c] = r.esc;
    if a == 0 { format!("{} {}", r.code, r.message) } else { format!("{} {a}.{b}.{c} {}", r.code, r.message) }
}

/// One transaction on an established connection, to `rcpt_to`, pipelined when the upstream allows it.
pub(super) async fn send_to(
    conn: &mut Connection,
    msg: &StoredMessage,
    rcpt_to: &[String],
) -> Result<Outcome, Failure> {
    let envelope = &msg.header.envelope;
    let broken = |e: mail_send::Error, before_data: bool| Failure::Broken { reason: e.to_string(), before_data };

    let mut params = Parameters::new();
    if msg.raw.iter().any(|b| !b.is_ascii()) && conn.eight_bit_mime {
        params.add(("BODY", "8BITMIME"));
    }
    let needs_utf8 = !envelope.mail_from.is_ascii() || rcpt_to.iter().any(|r| !r.is_ascii());
    if needs_utf8 {
        if !conn.smtputf8 {
            return Ok(Outcome::Permanent(
                "the upstream server does not support SMTPUTF8, needed for a non-ASCII address".into(),
            ));
        }
        params.add("SMTPUTF8");
    }
    if conn.pipelining {
        return send_pipelined(conn, msg, rcpt_to, &params).await;
    }

    match conn.client.mail_from(&envelope.mail_from, &params).await {
        Ok(()) => {}
        Err(mail_send::Error::UnexpectedReply(r)) => {
            let _ = conn.client.rset().await;
            return Ok(mail_refused(&r));
        }
        Err(e) => return Err(broken(e, true)),
    }

    let mut result = RecipientOutcome::default();
    let mut accepted = Vec::new();
    for rcpt in rcpt_to {
        match conn.client.rcpt_to(rcpt, &Parameters::new()).await {
            Ok(()) => accepted.push(rcpt.clone()),
            Err(mail_send::Error::UnexpectedReply(r)) => rcpt_refused(&mut result, rcpt, &r),
            Err(e) => return Err(broken(e, true)),
        }
    }
    if accepted.is_empty() {
        let _ = conn.client.rset().await;
        return Ok(Outcome::PerRecipient(result));
    }

    match conn.client.data(data_bytes(&msg.raw)).await {
        Ok(reply) => {
            result.delivered = accepted;
            result.reference = reply_text(&reply);
        }
        Err(mail_send::Error::UnexpectedReply(r)) => {
            let _ = conn.client.rset().await;
            data_refused(&mut result, accepted, &r);
        }
        // The data may have been taken: retrying risks a duplicate, not retrying risks a loss.
        Err(e) => return Err(broken(e, false)),
    }
    Ok(match (&result.retry.is_empty(), &result.failed.is_empty()) {
        (true, true) => Outcome::Delivered { reference: result.reference },
        _ => Outcome::PerRecipient(result),
    })
}

/// How MAIL FROM refused is answered.
fn mail_refused(r: &smtp_proto::Response<String>) -> Outcome {
    let reason = format!("upstream refused MAIL FROM: {}", reply_text(r));
    match classify_smtp(r.code) {
        Class::Transient => Outcome::Transient(reason),
        Class::Operator => Outcome::Operator(reason),
        _ => Outcome::Permanent(reason),
    }
}

/// Records a refused RCPT TO (4xx: retry, 5xx: failed) in `result`.
fn rcpt_refused(result: &mut RecipientOutcome, rcpt: &str, r: &smtp_proto::Response<String>) {
    let reason = format!("upstream refused RCPT TO: {}", reply_text(r));
    if (400..500).contains(&r.code) {
        result.retry.push(rcpt.to_owned());
        result.retry_reason = reason;
    } else {
        result.failed.push(rcpt.to_owned());
        result.failed_reason = reason;
    }
}

/// Records the refusal of the message itself (at DATA or after it) for every accepted recipient.
fn data_refused(result: &mut RecipientOutcome, accepted: Vec<String>, r: &smtp_proto::Response<String>) {
    let reason = format!("upstream refused the message: {}", reply_text(r));
    if (400..500).contains(&r.code) {
        result.retry.extend(accepted);
        result.retry_reason = reason;
    } else {
        result.failed.extend(accepted);
        result.failed_reason = reason;
    }
}

/// MAIL, RCPT and DATA in one group (RFC 2920), then the content once DATA got its `354`.
async fn send_pipelined(
    conn: &mut Connection,
    msg: &StoredMessage,
    rcpt_to: &[String],
    params: &Parameters<'_>,
) -> Result<Outcome, Failure> {
    let envelope = &msg.header.envelope;
    let broken = |e: mail_send::Error, before_data: bool| Failure::Broken { reason: e.to_string(), before_data };
    let mut group = Vec::with_capacity(rcpt_to.len() + 2);
    group.push(format!("MAIL FROM:<{}>{params}\r\n", envelope.mail_from));
    group.extend(rcpt_to.iter().map(|r| format!("RCPT TO:<{r}>\r\n")));
    group.push("DATA\r\n".to_owned());
    let replies = conn.client.cmds(&group).await.map_err(|e| broken(e, true))?;
    let (Some(mail), Some(data)) = (replies.first(), replies.last()) else {
        return Err(Failure::Broken { reason: "no reply to the pipelined commands".into(), before_data: true });
    };
    let mut result = RecipientOutcome::default();
    let mut accepted = Vec::new();
    for (rcpt, reply) in rcpt_to.iter().zip(&replies[1..replies.len() - 1]) {
        if (200..300).contains(&reply.code) {
            accepted.push(rcpt.clone());
        } else {
            rcpt_refused(&mut result, rcpt, reply);
        }
    }
    let mail_ok = (200..300).contains(&mail.code);
    if data.code != 354 {
        // DATA refused (as it must be when MAIL or every RCPT was): nothing was sent.
        let _ = conn.client.rset().await;
        if !mail_ok {
            return Ok(mail_refused(mail));
        }
        if !accepted.is_empty() {
            data_refused(&mut result, accepted, data);
        }
        return Ok(Outcome::PerRecipient(result));
    }
    if !mail_ok || accepted.is_empty() {
        // A server that says 354 with no valid recipient gets an empty message it must refuse
        // (RFC 2920 section 3.1); its answer does not matter.
        let _ = conn.client.cmd(b".\r\n").await;
        let _ = conn.client.rset().await;
        return Ok(if mail_ok { Outcome::PerRecipient(result) } else { mail_refused(mail) });
    }
    let sent = tokio::time::timeout(COMMAND_TIMEOUT, async {
        conn.client.write_message(&data_bytes(&msg.raw)).await?;
        conn.client.stream.flush().await?;
        conn.client.read().await
    })
    .await;
    let reply = match sent {
        Ok(Ok(reply)) => reply,
        // The data may have been taken: retrying risks a duplicate, not retrying risks a loss.
        Ok(Err(e)) => return Err(broken(e, false)),
        Err(_) => return Err(broken(mail_send::Error::Timeout, false)),
    };
    if (200..300).contains(&reply.code) {
        result.delivered = accepted;
        result.reference = reply_text(&reply);
    } else {
        let _ = conn.client.rset().await;
        data_refused(&mut result, accepted, &reply);
    }
    Ok(match (result.retry.is_empty(), result.failed.is_empty()) {
        (true, true) => Outcome::Delivered { reference: result.reference },
        _ => Outcome::PerRecipient(result),
    })
}

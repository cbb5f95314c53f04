//! `postmark-relay queue list | show ID | retry ID | retry --all | purge ID`.
//!
//! These work on the spool directory directly, whether or not a relay is running on it. A
//! running relay picks up retry requests (and dead letters moved back into the queue) on its next
//! scan of the spool, within a few seconds.

use std::io::Write;
use std::time::{Duration, UNIX_EPOCH};

use crate::cli::QueueAction;
use crate::spool::{Area, QueueId, Spool};

/// Runs one queue subcommand, writing to `out`. Returns the process exit code.
pub fn run(spool: &Spool, action: &QueueAction, out: &mut dyn Write) -> std::io::Result<i32> {
    match action {
        QueueAction::List => list(spool, out),
        QueueAction::Show { id } => show(spool, id, out),
        QueueAction::Retry { id: Some(id), .. } => retry_one(spool, id, out),
        QueueAction::Retry { id: None, .. } => retry_all(spool, out),
        QueueAction::Purge { id } => purge(spool, id, out),
    }
}

fn parse_id(id: &str, out: &mut dyn Write) -> std::io::Result<Option<QueueId>> {
    let parsed = QueueId::parse(id.trim());
    if parsed.is_none() {
        writeln!(out, "error: {id:?} is not a queue id (24 hex digits, as shown by `queue list`)")?;
    }
    Ok(parsed)
}

fn list(spool: &Spool, out: &mut dyn Write) -> std::io::Result<i32> {
    let now = crate::clock::now_ms();
    let mut rows = Vec::new();
    for area in [Area::Queue, Area::Dead] {
        for entry in spool.entries(area)? {
            let (size, rcpts) = match &entry.header {
                Ok(h) => (h.size.to_string(), h.envelope.rcpt_to.len().to_string()),
                Err(_) => ("?".into(), "?".into()),
            };
            let (state, attempts, info) = match area {
                Area::Queue => {
                    let st = spool.state(&entry.id);
                    let mut info = match st.next_attempt_ms {
                        Some(t) if t > now => format!("next attempt in {}", human(t - now)),
                        _ => "due now".to_string(),
                    };
                    if let Some(e) = &st.last_error {
                        info.push_str(&format!("; last error: {e}"));
                    }
                    if let Err(e) = &entry.header {
                        info = format!("unreadable: {e}");
                    }
                    ("pending", st.attempts.to_string(), info)
                }
                Area::Dead => {
                    let reason = spool.dead_reason(&entry.id);
                    let attempts = reason.as_ref().map_or("?".into(), |r| r.attempts.to_string());
                    let info = reason.map_or_else(|| "reason unknown".into(), |r| r.reason);
                    ("dead", attempts, info)
                }
            };
            rows.push([entry.id.to_string(), state.into(), size, rcpts, attempts, info]);
        }
    }
    // Messages a running relay holds in memory with no file yet (its journal shows them).
    for msg in spool.journal_pending()? {
        if rows.iter().any(|r| r[0] == msg.id.as_str()) {
            continue;
        }
        rows.push([
            msg.id.to_string(),
            "pending".into(),
            msg.header.size.to_string(),
            msg.header.envelope.rcpt_to.len().to_string(),
            "0".into(),
            IN_JOURNAL.into(),
        ]);
    }
    if rows.is_empty() {
        writeln!(out, "spool {} is empty", spool.root().display())?;
        return Ok(0);
    }
    writeln!(out, "{:<24}  {:<7}  {:>9}  {:>5}  {:>8}  INFO", "ID", "STATE", "SIZE", "RCPTS", "ATTEMPTS")?;
    for [id, state, size, rcpts, attempts, info] in &rows {
        writeln!(out, "{id:<24}  {state:<7}  {size:>9}  {rcpts:>5}  {attempts:>8}  {}", one_line(info, 200))?;
    }
    let pending = rows.iter().filter(|r| r[1] == "pending").count();
    writeln!(out, "{pending} pending, {} dead", rows.len() - pending)?;
    Ok(0)
}

fn show(spool: &Spool, id: &str, out: &mut dyn Write) -> std::io::Result<i32> {
    let Some(id) = parse_id(id, out)? else {
        return Ok(1);
    };
    let (area, msg) = match spool.locate(&id) {
        Some(area) => match spool.load_from(area, &id) {
            Ok(m) => (Some(area), m),
            Err(e) => {
                writeln!(out, "error: {id}: {e}")?;
                return Ok(1);
            }
        },
        None => match in_journal(spool, &id)? {
            Some(m) => (None, m),
            None => {
                writeln!(out, "error: no message {id} in {}", spool.root().display())?;
                return Ok(1);
            }
        },
    };
    let h = &msg.header;
    writeln!(out, "id:          {id}")?;
    let state = match area {
        Some(Area::Queue) => "pending",
        Some(Area::Dead) => "dead",
        None => IN_JOURNAL,
    };
    writeln!(out, "state:       {state}")?;
    writeln!(out, "received:    {}", rfc3339(h.received_ms))?;
    writeln!(out, "size:        {} bytes", h.size)?;
    writeln!(out, "mail from:   <{}>", h.envelope.mail_from)?;
    for rcpt in &h.envelope.rcpt_to {
        writeln!(out, "rcpt to:     <{rcpt}>")?;
    }
    match area {
        None => {}
        Some(Area::Queue) => {
            let st = spool.state(&id);
            writeln!(out, "attempts:    {}", st.attempts)?;
            if let Some(t) = st.next_attempt_ms {
                writeln!(out, "next:        {}", rfc3339(t))?;
            }
            if let Some(e) = st.last_error {
                writeln!(out, "last error:  {e}")?;
            }
        }
        Some(Area::Dead) => {
            if let Some(r) = spool.dead_reason(&id) {
                writeln!(out, "attempts:    {}", r.attempts)?;
                writeln!(out, "dead since:  {}", rfc3339(r.dead_ms))?;
                writeln!(out, "reason:      {}", r.reason)?;
            }
        }
    }
    writeln!(out, "headers:")?;
    let end = find_header_end(&msg.raw);
    for line in String::from_utf8_lossy(&msg.raw[..end]).lines() {
        writeln!(out, "  {}", one_line(line, 998))?;
    }
    Ok(0)
}

fn retry_one(spool: &Spool, id: &str, out: &mut dyn Write) -> std::io::Result<i32> {
    let Some(id) = parse_id(id, out)? else {
        return Ok(1);
    };
    match spool.locate(&id) {
        Some(Area::Dead) => {
            spool.revive(&id)?;
            spool.request_retry(&id)?;
            writeln!(out, "{id}: moved from dead letters back into the queue; it will be sent again")?;
        }
        Some(Area::Queue) => {
            spool.request_retry(&id)?;
            writeln!(out, "{id}: retry requested; a running relay attempts it within seconds")?;
        }
        None => {
            writeln!(out, "error: no message {id} in {}", spool.root().display())?;
            return Ok(1);
        }
    }
    Ok(0)
}

fn retry_all(spool: &Spool, out: &mut dyn Write) -> std::io::Result<i32> {
    let mut revived = 0;
    for id in spool.ids(Area::Dead)? {
        if spool.revive(&id)? {
            revived += 1;
        }
    }
    let pending = spool.ids(Area::Queue)?;
    for id in &pending {
        spool.request_retry(id)?;
    }
    writeln!(out, "retry requested for {} messages ({revived} moved back from dead letters)", pending.len())?;
    Ok(0)
}

fn purge(spool: &Spool, id: &str, out: &mut dyn Write) -> std::io::Result<i32> {
    let Some(id) = parse_id(id, out)? else {
        return Ok(1);
    };
    match spool.purge(&id)? {
        Some(Area::Queue) => writeln!(out, "{id}: purged from the queue (it will not be sent)")?,
        Some(Area::Dead) => writeln!(out, "{id}: purged from dead letters")?,
        None if in_journal(spool, &id)?.is_some() => {
            writeln!(
                out,
                "error: {id} is being delivered by the running relay and has no file to purge; \
                 if it is not delivered, it gets one within seconds"
            )?;
            return Ok(1);
        }
        None => {
            writeln!(out, "error: no message {id} in {}", spool.root().display())?;
            return Ok(1);
        }
    }
    Ok(0)
}

/// How `list` and `show` describe a message a running relay holds without a file.
const IN_JOURNAL: &str = "pending, in the journal, being delivered (no file yet)";

/// `id`, if a running relay holds it without a file (see [`Spool::journal_pending`]).
fn in_journal(spool: &Spool, id: &QueueId) -> std::io::Result<Option<crate::spool::StoredMessage>> {
    Ok(spool.journal_pending()?.into_iter().find(|m| &m.id == id))
}

fn find_header_end(raw: &[u8]) -> usize {
    raw.windows(4)
        .position(|w| w == b"\r\n\r\n")
        .or_else(|| raw.windows(2).position(|w| w == b"\n\n"))
        .unwrap_or(raw.len().min(64 * 1024))
}

fn one_line(s: &str, max: usize) -> String {
    let mut line: String = s.chars().map(|c| if c.is_control() { ' ' } else { c }).take(max).collect();
    if s.chars().count() > max {
        line.push('…');
    }
    line
}

fn human(ms: u64) -> String {
    humantime::format_duration(Duration::from_secs(ms.div_ceil(1000))).to_string()
}

fn rfc3339(ms: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

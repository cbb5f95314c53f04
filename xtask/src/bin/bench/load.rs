//! The load generator: raw tokio TCP, one task per session. With PIPELINING (which every server here advertises)
//! `MAIL`, `RCPT` and `DATA` go out in one write; the message goes out in one write, then the terminating `.` line
//! in another, and the DATA-to-250 latency is measured from that last write to reading the reply. Each session
//! reuses one connection, or opens one per message (connect, EHLO, one message, QUIT).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::task::JoinSet;

use crate::cli::{Options, Shape};

pub const MAIL_FROM: &str = "bench@example.com";
pub const RCPT_TO: &str = "rcpt@example.com";

/// What the client saw.
#[derive(Debug)]
pub struct Load {
    /// The first connect.
    pub started: Instant,
    /// Messages answered 250.
    pub accepted: usize,
    /// Messages refused or lost to connection errors.
    pub failed: usize,
    pub first_error: Option<String>,
    /// First connect to the last 250.
    pub accept_secs: f64,
    /// DATA-to-250 latencies in microseconds, sorted.
    pub latencies_us: Vec<u32>,
}

#[derive(Default)]
struct SessionResult {
    accepted: usize,
    failed: usize,
    error: Option<String>,
    latencies_us: Vec<u32>,
    last_accept: Option<Instant>,
}

/// Sends `opts.messages` messages over `opts.sessions` concurrent sessions.
pub async fn drive(addr: SocketAddr, opts: &Options, deadline: Instant) -> Load {
    if opts.load == crate::cli::LoadGenerator::SmtpSource {
        return smtp_source(addr, opts, deadline).await;
    }
    let body: Arc<[u8]> = Arc::from(message_body(opts.size));
    let started = Instant::now();
    let mut set = JoinSet::new();
    let per = opts.messages / opts.sessions;
    let extra = opts.messages % opts.sessions;
    for s in 0..opts.sessions {
        let count = per + usize::from(s < extra);
        let body = Arc::clone(&body);
        let shape = opts.shape();
        set.spawn(async move {
            let mut r = SessionResult { latencies_us: Vec::with_capacity(count), ..SessionResult::default() };
            let work = session(addr, s, count, &body, shape, &mut r);
            match tokio::time::timeout_at(deadline.into(), work).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => r.error = Some(format!("{e:#}")),
                Err(_) => r.error = Some("deadline passed".into()),
            }
            r.failed = count - r.accepted;
            r
        });
    }
    let mut load =
        Load { started, accepted: 0, failed: 0, first_error: None, accept_secs: 0.0, latencies_us: Vec::new() };
    let mut last = started;
    while let Some(r) = set.join_next().await {
        let Ok(r) = r else { continue };
        load.accepted += r.accepted;
        load.failed += r.failed;
        if load.first_error.is_none() {
            load.first_error = r.error;
        }
        if let Some(t) = r.last_accept {
            last = last.max(t);
        }
        load.latencies_us.extend(r.latencies_us);
    }
    load.accept_secs = last.duration_since(started).as_secs_f64();
    load.latencies_us.sort_unstable();
    load
}

/// The same load from Postfix's `smtp-source`: `-s` sessions, `-m` messages of `-l` bytes, a new connection per
/// message unless `-d`. It reports no per-message outcome: all accepted when it exits 0, none otherwise (its
/// error is kept).
async fn smtp_source(addr: SocketAddr, opts: &Options, deadline: Instant) -> Load {
    let started = Instant::now();
    let mut cmd = std::process::Command::new("smtp-source");
    cmd.args(["-s", &opts.sessions.to_string(), "-m", &opts.messages.to_string(), "-l", &opts.size.to_string()]);
    cmd.args(["-f", MAIL_FROM, "-t", RCPT_TO, "-M", "bench.localhost"]);
    if opts.shape() == crate::cli::Shape::Reuse {
        cmd.arg("-d");
    }
    cmd.arg(addr.to_string());
    let budget = deadline.saturating_duration_since(Instant::now());
    let run = tokio::task::spawn_blocking(move || cmd.output());
    let out = tokio::time::timeout(budget, run).await;
    let accept_secs = started.elapsed().as_secs_f64();
    let mut load = Load { started, accepted: 0, failed: 0, first_error: None, accept_secs, latencies_us: Vec::new() };
    match out {
        Ok(Ok(Ok(o))) if o.status.success() => load.accepted = opts.messages,
        Ok(Ok(Ok(o))) => {
            load.failed = opts.messages;
            load.first_error = Some(format!("smtp-source: {}", String::from_utf8_lossy(&o.stderr).trim()));
        }
        Ok(Ok(Err(e))) => {
            load.failed = opts.messages;
            load.first_error = Some(format!("cannot run smtp-source (Debian's postfix package): {e}"));
        }
        _ => {
            load.failed = opts.messages;
            load.first_error = Some("smtp-source did not finish before the deadline".into());
        }
    }
    load
}

/// The message body (after the per-message headers) so that headers + body come to about `size` bytes.
pub fn message_body(size: usize) -> Vec<u8> {
    const LINE: &[u8] = b"The quick brown fox jumps over the lazy dog; pack my box with five dozen jugs.\r\n";
    let target = size.saturating_sub(header_block(0, 0).len()).max(80);
    let mut body = Vec::with_capacity(target + LINE.len());
    while body.len() + LINE.len() <= target {
        body.extend_from_slice(LINE);
    }
    let rest = target - body.len();
    if rest > 2 {
        body.extend_from_slice(&LINE[..rest - 2]);
        body.extend_from_slice(b"\r\n");
    } else if body.is_empty() {
        body.extend_from_slice(LINE);
    }
    body
}

/// The header section of message `n` of session `session`.
pub fn header_block(session: usize, n: usize) -> String {
    format!(
        "From: Bench Sender <{MAIL_FROM}>\r\nTo: Bench Recipient <{RCPT_TO}>\r\nSubject: bench message {session:04}-{n:07}\r\n\
         Date: Sun, 22 Nov 2026 10:00:00 +0000\r\nMessage-ID: <{session:04}.{n:07}@bench.example.com>\r\n\
         MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
    )
}

struct Client {
    r: BufReader<OwnedReadHalf>,
    w: OwnedWriteHalf,
    line: String,
    pipelining: bool,
}

impl Client {
    async fn connect(addr: SocketAddr) -> Result<Client> {
        let stream = TcpStream::connect(addr).await.with_context(|| format!("connecting to {addr}"))?;
        stream.set_nodelay(true)?;
        let (r, w) = stream.into_split();
        let mut c = Client { r: BufReader::with_capacity(16 * 1024, r), w, line: String::new(), pipelining: false };
        c.expect(220, "greeting").await?;
        c.w.write_all(b"EHLO bench.example.com\r\n").await?;
        let (code, text) = c.reply().await?;
        if code != 250 {
            bail!("EHLO answered {text}");
        }
        c.pipelining = text.lines().any(|l| l.get(4..).is_some_and(|k| k.eq_ignore_ascii_case("PIPELINING")));
        Ok(c)
    }

    /// Reads one (possibly multi-line) reply: its code and its full text.
    async fn reply(&mut self) -> Result<(u16, String)> {
        let mut text = String::new();
        loop {
            self.line.clear();
            if self.r.read_line(&mut self.line).await? == 0 {
                bail!("connection closed by the server (after {text:?})");
            }
            text.push_str(&self.line);
            let code = self.line.get(..3).and_then(|c| c.parse::<u16>().ok());
            let more = self.line.as_bytes().get(3) == Some(&b'-');
            match code {
                Some(code) if !more => return Ok((code, text)),
                Some(_) => {}
                None => bail!("malformed reply line {:?}", self.line),
            }
        }
    }

    async fn expect(&mut self, code: u16, what: &str) -> Result<()> {
        let (got, text) = self.reply().await?;
        if got != code {
            bail!("{what}: expected {code}, got {}", text.trim_end());
        }
        Ok(())
    }

    /// One transaction. `Ok(Some(latency))` when the message was accepted, `Ok(None)` when refused.
    async fn send(&mut self, header: &[u8], body: &[u8], refused: &mut Option<String>) -> Result<Option<Duration>> {
        const ENVELOPE: &str = "MAIL FROM:<bench@example.com>\r\nRCPT TO:<rcpt@example.com>\r\nDATA\r\n";
        let mut replies = [(0u16, String::new()), (0, String::new()), (0, String::new())];
        if self.pipelining {
            self.w.write_all(ENVELOPE.as_bytes()).await?;
            for r in &mut replies {
                *r = self.reply().await?;
            }
        } else {
            for (cmd, r) in ENVELOPE.split_inclusive("\r\n").zip(&mut replies) {
                self.w.write_all(cmd.as_bytes()).await?;
                *r = self.reply().await?;
                if r.0 >= 400 {
                    break;
                }
            }
        }
        if replies[2].0 != 354 {
            if refused.is_none() {
                *refused = Some(replies.iter().map(|r| r.1.trim_end()).collect::<Vec<_>>().join(" / "));
            }
            self.w.write_all(b"RSET\r\n").await?;
            self.reply().await?;
            return Ok(None);
        }
        self.w.write_all(header).await?;
        self.w.write_all(body).await?;
        let t0 = Instant::now();
        self.w.write_all(b".\r\n").await?;
        let (code, text) = self.reply().await?;
        let latency = t0.elapsed();
        if code == 250 {
            Ok(Some(latency))
        } else {
            if refused.is_none() {
                *refused = Some(format!("end of DATA: {}", text.trim_end()));
            }
            Ok(None)
        }
    }

    async fn quit(mut self) -> Result<()> {
        self.w.write_all(b"QUIT\r\n").await?;
        let _ = self.reply().await;
        Ok(())
    }
}

/// One session's share of the load.
async fn session(
    addr: SocketAddr,
    s: usize,
    count: usize,
    body: &[u8],
    shape: Shape,
    r: &mut SessionResult,
) -> Result<()> {
    let mut refused = None;
    let mut client = match shape {
        Shape::Reuse => Some(Client::connect(addr).await?),
        Shape::PerMessage => None,
    };
    for n in 0..count {
        let header = header_block(s, n);
        let c = match &mut client {
            Some(c) => c,
            None => client.insert(Client::connect(addr).await?),
        };
        if let Some(latency) = c.send(header.as_bytes(), body, &mut refused).await? {
            r.accepted += 1;
            r.latencies_us.push(u32::try_from(latency.as_micros()).unwrap_or(u32::MAX));
            r.last_accept = Some(Instant::now());
        }
        if shape == Shape::PerMessage
            && let Some(c) = client.take()
        {
            c.quit().await?;
        }
    }
    if let Some(c) = client {
        c.quit().await?;
    }
    if r.error.is_none() {
        r.error = refused;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_come_out_at_the_requested_size() {
        for size in [1024, 50 * 1024, 300] {
            let total = header_block(1, 1).len() + message_body(size).len();
            assert!(total.abs_diff(size) <= 80, "{size}: {total}");
            assert!(message_body(size).ends_with(b"\r\n"));
        }
    }
}

//! A minimal SMTP acceptor: it answers the relay's dialogue (greeting, EHLO with PIPELINING, MAIL, RCPT, DATA,
//! `250` after the final dot, RSET, NOOP, QUIT) and discards every message: no parsing, no disk, no upstream.
//!
//! It serves twice:
//!
//! * **The ceiling** (`bench sink --listen ADDR`, [`run_ceiling`]): what any server could reach on this machine with
//!   this client. It runs as a process of its own, like the relay and Postfix, so that it does not share the
//!   client's runtime and its CPU time and memory are read from `/proc` the same way as the relay's; and, like the
//!   relay, on a multi-threaded tokio runtime with default settings.
//! * **Postfix's upstream** ([`Sink`], in this process): where the private Postfix relays to, counting messages.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use memchr::memmem::Finder;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

use crate::cli::Options;
use crate::load::drive;
use crate::measure::{Measurement, Server};
use crate::process::{ChildGuard, WorkDir, free_port, tail, wait_ready};
use crate::procfs::{Machine, Watch};

const GREETING: &[u8] = b"220 bench-sink ESMTP ready\r\n";
const EHLO: &[u8] = b"250-bench-sink Hello\r\n250-PIPELINING\r\n250-SIZE 26214400\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n\
                      250 ENHANCEDSTATUSCODES\r\n";
const END_OF_DATA: &[u8] = b"\r\n.\r\n";
const READ_BUFFER: usize = 64 * 1024;

/// Serves one connection; every message that ends with the final dot counts in `accepted`.
pub async fn serve_connection(mut stream: TcpStream, accepted: &AtomicUsize) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    stream.write_all(GREETING).await?;
    let finder = Finder::new(END_OF_DATA);
    let mut buf = vec![0u8; READ_BUFFER];
    let (mut start, mut end) = (0, 0);
    let mut out = Vec::with_capacity(512);
    let mut data: Option<Tail> = None;
    loop {
        let n = stream.read(&mut buf[end..]).await?;
        if n == 0 {
            return Ok(());
        }
        end += n;
        let mut quit = false;
        while start < end && !quit {
            if let Some(t) = &mut data {
                match t.find_end(&finder, &buf[start..end]) {
                    Some(used) => {
                        start += used;
                        data = None;
                        accepted.fetch_add(1, Ordering::Relaxed);
                        out.extend_from_slice(b"250 2.0.0 Ok: queued\r\n");
                    }
                    None => start = end,
                }
                continue;
            }
            let Some(nl) = memchr::memchr(b'\n', &buf[start..end]) else { break };
            let verb = buf[start..start + nl].get(..4).map(<[u8]>::to_ascii_uppercase).unwrap_or_default();
            start += nl + 1;
            out.extend_from_slice(match verb.as_slice() {
                b"EHLO" => EHLO,
                b"HELO" => b"250 bench-sink\r\n",
                b"MAIL" => b"250 2.1.0 Ok\r\n",
                b"RCPT" => b"250 2.1.5 Ok\r\n",
                b"DATA" => {
                    data = Some(Tail::start());
                    b"354 End data with <CR><LF>.<CR><LF>\r\n"
                }
                b"RSET" | b"NOOP" => b"250 2.0.0 Ok\r\n",
                b"QUIT" => {
                    quit = true;
                    b"221 2.0.0 Bye\r\n"
                }
                _ => b"502 5.5.2 Command not recognized\r\n",
            });
        }
        // One write per read: pipelined commands get their replies together.
        if !out.is_empty() {
            stream.write_all(&out).await?;
            out.clear();
        }
        if quit {
            return Ok(());
        }
        if start == end {
            (start, end) = (0, 0);
        } else if end == buf.len() {
            if start == 0 {
                stream.write_all(b"500 5.5.6 Line too long\r\n").await?;
                return Ok(());
            }
            buf.copy_within(start..end, 0);
            (start, end) = (0, end - start);
        }
    }
}

/// The last bytes of a message so far, so that an end of data split over two reads is found.
#[derive(Debug, Clone, Copy)]
struct Tail {
    bytes: [u8; 4],
    len: usize,
}

impl Tail {
    /// Right after `DATA`: its line's CRLF counts, so a message may end at once with `.` CRLF.
    fn start() -> Tail {
        Tail { bytes: [b'\r', b'\n', 0, 0], len: 2 }
    }

    /// How many bytes of `chunk` the message takes, up to and including its end, or `None` if it goes on.
    fn find_end(&mut self, finder: &Finder<'_>, chunk: &[u8]) -> Option<usize> {
        let head = &chunk[..chunk.len().min(4)];
        let mut joined = [0u8; 8];
        joined[..self.len].copy_from_slice(&self.bytes[..self.len]);
        joined[self.len..self.len + head.len()].copy_from_slice(head);
        if let Some(at) = finder.find(&joined[..self.len + head.len()]) {
            return Some(at + END_OF_DATA.len() - self.len);
        }
        if let Some(at) = finder.find(chunk) {
            return Some(at + END_OF_DATA.len());
        }
        let kept = (self.len + chunk.len()).min(4);
        let from_chunk = chunk.len().min(kept);
        let from_tail = kept - from_chunk;
        self.bytes.copy_within(self.len - from_tail..self.len, 0);
        self.bytes[from_tail..kept].copy_from_slice(&chunk[chunk.len() - from_chunk..]);
        self.len = kept;
        None
    }
}

async fn accept_loop(listener: TcpListener, accepted: Arc<AtomicUsize>, connections: Arc<AtomicUsize>) {
    let mut conns = JoinSet::new();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        connections.fetch_add(1, Ordering::Relaxed);
        let accepted = Arc::clone(&accepted);
        conns.spawn(async move {
            let _ = serve_connection(stream, &accepted).await;
        });
        while conns.try_join_next().is_some() {}
    }
}

/// `bench sink --listen ADDR`: the ceiling's process; serves until killed.
pub fn serve_forever(listen: SocketAddr) -> Result<()> {
    if !listen.ip().is_loopback() {
        return Err(anyhow!("the sink listens on loopback only, not {listen}"));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("tokio runtime")?;
    runtime.block_on(async {
        let listener = TcpListener::bind(listen).await.with_context(|| format!("binding {listen}"))?;
        accept_loop(listener, Arc::default(), Arc::default()).await;
        Ok(())
    })
}

/// Postfix's upstream, in this process.
pub struct Sink {
    pub addr: SocketAddr,
    pub delivered: Arc<AtomicUsize>,
    pub connections: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Sink {
    pub async fn start() -> Result<Sink> {
        let listener = TcpListener::bind("127.0.0.1:0").await.context("binding the sink")?;
        let addr = listener.local_addr()?;
        let delivered = Arc::new(AtomicUsize::new(0));
        let connections = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn(accept_loop(listener, Arc::clone(&delivered), Arc::clone(&connections)));
        Ok(Sink { addr, delivered, connections, task })
    }
}

/// One run of the load against the ceiling process.
pub async fn run_ceiling(opts: &Options, work: &WorkDir, machine: &Machine) -> Result<Measurement> {
    let dir = work.fresh("ceiling")?;
    let listen = SocketAddr::from(([127, 0, 0, 1], free_port()?));
    let exe = std::env::current_exe().context("the bench's own executable")?;
    let log = dir.join("sink.log");
    let args = ["sink".to_string(), "--listen".into(), listen.to_string()];
    let mut sink = ChildGuard::spawn("the ceiling", &[], &exe, &args, &[], &dir, &log)?;
    wait_ready(listen, Duration::from_secs(10), || sink.exited())
        .await
        .map_err(|e| anyhow!("{e}; its log:\n{}", tail(&log, 20)))?;
    let mut watch = Watch::start(machine, sink.id(), false);
    let load = drive(listen, opts, Instant::now() + opts.timeout).await;
    watch.accepting_done();
    let usage = watch.finish();
    sink.stop(Duration::from_secs(5));
    let mut m = Measurement::new(Server::Ceiling, "ceiling".into(), load, usage);
    m.notes.push("minimal SMTP acceptor (bench sink): discards every message, writes nothing".into());
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `message` (after DATA) in chunks of `step` bytes; returns where the end was found.
    fn end_in_chunks(message: &[u8], step: usize) -> Option<usize> {
        let finder = Finder::new(END_OF_DATA);
        let mut t = Tail::start();
        let mut offset = 0;
        for chunk in message.chunks(step) {
            if let Some(used) = t.find_end(&finder, chunk) {
                return Some(offset + used);
            }
            offset += chunk.len();
        }
        None
    }

    #[test]
    fn the_end_of_data_is_found_across_reads() {
        let msg = b"Subject: x\r\n\r\nbody\r\n..stuffed\r\n.\r\nQUIT\r\n";
        let end = msg.len() - b"QUIT\r\n".len();
        for step in 1..=msg.len() {
            assert_eq!(end_in_chunks(msg, step), Some(end), "chunks of {step}");
        }
        for step in 1..=3 {
            assert_eq!(end_in_chunks(b".\r\nMAIL", step), Some(3), "an empty message, chunks of {step}");
        }
        assert_eq!(end_in_chunks(b"a\r\n.x\r\n.\r", 2), None);
    }

    #[test]
    fn it_answers_a_pipelined_session() {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let sink = Sink::start().await.unwrap();
            let mut s = TcpStream::connect(sink.addr).await.unwrap();
            s.write_all(b"EHLO me\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n").await.unwrap();
            s.write_all(b"Subject: x\r\n\r\nhi\r\n.\r\nQUIT\r\n").await.unwrap();
            let mut text = String::new();
            s.read_to_string(&mut text).await.unwrap();
            let codes: Vec<&str> = text.lines().map(|l| &l[..4]).filter(|c| !c.ends_with('-')).collect();
            assert_eq!(codes, ["220 ", "250 ", "250 ", "250 ", "354 ", "250 ", "221 "], "{text}");
            assert_eq!(sink.delivered.load(Ordering::Relaxed), 1);
        });
    }
}

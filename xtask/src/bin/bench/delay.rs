//! `--rtt`: a TCP proxy on 127.0.0.1 that holds every chunk of bytes, in both directions, for half the round trip
//! before passing it on, so the relay (or Postfix) meets its upstream at the distance Postmark really is. Chunks are
//! queued with their due time, so the link's bandwidth is not limited, only its latency; the connections open
//! through it are counted (now and at the peak).

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result};
use postmark_fake::load::InFlight;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// A running delay proxy; it stops when dropped.
pub struct DelayProxy {
    pub addr: SocketAddr,
    pub connections: InFlight,
    task: JoinHandle<()>,
}

impl Drop for DelayProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl DelayProxy {
    /// Listens on an ephemeral loopback port and forwards every connection to `target`, each direction delayed by
    /// `rtt / 2`.
    pub async fn start(target: SocketAddr, rtt: Duration) -> Result<DelayProxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await.context("binding the delay proxy")?;
        let addr = listener.local_addr()?;
        let connections = InFlight::default();
        let counter = connections.clone();
        let one_way = rtt / 2;
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let open = counter.enter();
                tokio::spawn(async move {
                    let _open = open;
                    let Ok(server) = TcpStream::connect(target).await else {
                        return;
                    };
                    let _ = (client.set_nodelay(true), server.set_nodelay(true));
                    let (cr, cw) = client.into_split();
                    let (sr, sw) = server.into_split();
                    let up = tokio::spawn(pipe(cr, sw, one_way));
                    pipe(sr, cw, one_way).await;
                    let _ = up.await;
                });
            }
        });
        Ok(DelayProxy { addr, connections, task })
    }
}

/// Copies `from` to `to`, each chunk `delay` after it was read; closes `to` once `from` ends and all is written.
async fn pipe(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, delay: Duration) {
    let (tx, mut rx) = mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let writer = tokio::spawn(async move {
        while let Some((due, bytes)) = rx.recv().await {
            tokio::time::sleep_until(due).await;
            if to.write_all(&bytes).await.is_err() {
                return;
            }
        }
        let _ = to.shutdown().await;
    });
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if tx.send((Instant::now() + delay, buf[..n].to_vec())).is_err() {
                    break;
                }
            }
        }
    }
    drop(tx);
    let _ = writer.await;
}

//! Limits and failure paths over real sockets.

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::support::{TestRelay, message, send};

#[tokio::test]
async fn the_51st_recipient_is_refused_with_452() {
    let mut relay = TestRelay::start(&[], &[]).await;
    let rcpts: Vec<String> = (0..51).map(|i| format!("r{i}@example.com")).collect();
    let refs: Vec<&str> = rcpts.iter().map(String::as_str).collect();
    let err = send(relay.addr, "sender@example.com", &refs, &message("many")).await.expect_err("452");
    assert!(err.is_transient(), "{err}");
    assert!(err.to_string().contains("4.5.3"), "{err}");
    // Fifty go through in one transaction.
    send(relay.addr, "sender@example.com", &refs[..50], &message("fifty")).await.expect("250");
    relay.stop().await;
}

#[tokio::test]
async fn an_oversized_message_gets_552_and_nothing_is_spooled() {
    let mut relay = TestRelay::start(&[], &[]).await;
    let mut raw = message("big");
    raw.extend_from_slice(b"\r\n");
    // 10 MB + a little, in 1000-byte lines.
    let line = [b'a'; 998];
    while raw.len() <= 10_000_000 {
        raw.extend_from_slice(&line);
        raw.extend_from_slice(b"\r\n");
    }
    let err = send(relay.addr, "sender@example.com", &["rcpt@example.com"], &raw).await.expect_err("552");
    assert!(err.is_permanent(), "{err}");
    assert!(err.to_string().contains("5.3.4"), "{err}");
    assert!(relay.files("queue").is_empty());
    assert!(relay.files("tmp").is_empty());
    relay.stop().await;
}

#[tokio::test]
async fn an_unwritable_spool_answers_4xx_never_250() {
    let mut relay = TestRelay::start(&[], &[]).await;
    // Replace queue/ with a plain file (root ignores permission bits, so chmod would not do).
    let queue = relay.spool.join("queue");
    std::fs::remove_dir(&queue).unwrap();
    std::fs::write(&queue, b"x").unwrap();
    let err =
        send(relay.addr, "sender@example.com", &["rcpt@example.com"], &message("nospool")).await.expect_err("4xx");
    assert!(err.is_transient(), "{err}");
    assert!(err.to_string().contains("4.3.0"), "{err}");
    assert!(relay.files("tmp").is_empty(), "nothing half-kept");
    std::fs::remove_file(&queue).unwrap();
    std::fs::create_dir(&queue).unwrap();
    relay.stop().await;
}

async fn read_reply(reader: &mut BufReader<TcpStream>) -> String {
    let mut all = String::new();
    loop {
        let mut line = String::new();
        tokio::time::timeout(Duration::from_secs(10), reader.read_line(&mut line)).await.unwrap().unwrap();
        all.push_str(&line);
        if line.len() < 4 || line.as_bytes()[3] != b'-' {
            return all;
        }
    }
}

#[tokio::test]
async fn connections_over_the_limit_get_421() {
    let mut relay = TestRelay::start(&["--max-connections", "1"], &[]).await;
    let mut first = BufReader::new(TcpStream::connect(relay.addr).await.unwrap());
    assert!(read_reply(&mut first).await.starts_with("220 "));
    let mut second = BufReader::new(TcpStream::connect(relay.addr).await.unwrap());
    let reply = read_reply(&mut second).await;
    assert!(reply.starts_with("421 4.7.0 "), "{reply}");
    // Once the first leaves, a new client gets in.
    first.get_mut().write_all(b"QUIT\r\n").await.unwrap();
    assert!(read_reply(&mut first).await.starts_with("221 "));
    drop(first);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut third = BufReader::new(TcpStream::connect(relay.addr).await.unwrap());
    assert!(read_reply(&mut third).await.starts_with("220 "));
    relay.stop().await;
}

#[tokio::test]
async fn shutdown_answers_421_to_connected_clients() {
    let mut relay = TestRelay::start(&[], &[]).await;
    let mut conn = BufReader::new(TcpStream::connect(relay.addr).await.unwrap());
    read_reply(&mut conn).await;
    conn.get_mut().write_all(b"EHLO test\r\n").await.unwrap();
    read_reply(&mut conn).await;
    let r = relay.relay.take().unwrap();
    r.shutdown();
    let reply = read_reply(&mut conn).await;
    assert!(reply.starts_with("421 4.3.0 "), "{reply}");
    // Idle, it stops at once (not at the next timer of the delivery worker).
    tokio::time::timeout(Duration::from_secs(1), r.wait()).await.expect("stops within a second");
    assert!(TcpStream::connect(relay.addr).await.is_err(), "no longer accepting");
}

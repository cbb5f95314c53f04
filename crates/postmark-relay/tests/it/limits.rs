//! Limits and failure paths over real sockets.

use std::time::Duration;

use tokio::net::TcpStream;

use crate::support::{Smtp, TestRelay, message, send};

#[tokio::test]
async fn the_1001st_recipient_is_refused_with_452() {
    let mut relay = TestRelay::start(&[], &[]).await;
    let rcpts: Vec<String> = (0..1001).map(|i| format!("r{i}@example.com")).collect();
    let refs: Vec<&str> = rcpts.iter().map(String::as_str).collect();
    let err = send(relay.addr, "sender@example.com", &refs, &message("many")).await.expect_err("452");
    assert!(err.is_transient(), "{err}");
    assert!(err.to_string().contains("4.5.3"), "{err}");
    // A thousand go through in one transaction.
    send(relay.addr, "sender@example.com", &refs[..1000], &message("thousand")).await.expect("250");
    relay.stop().await;
    // --max-recipients lowers it.
    let mut relay = TestRelay::start(&["--max-recipients", "3"], &[]).await;
    let err = send(relay.addr, "sender@example.com", &refs[..4], &message("four")).await.expect_err("452");
    assert!(err.to_string().contains("at most 3 per message"), "{err}");
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
    // The relay looks every second whether the spool takes files (and learns it from any failed
    // write). A message acknowledged before it noticed went only to the journal, which is intact;
    // from then on every message needs its own file at once, and is refused.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let err = loop {
        match send(relay.addr, "sender@example.com", &["rcpt@example.com"], &message("nospool")).await {
            Err(e) => break e,
            Ok(_) => {
                assert!(tokio::time::Instant::now() < deadline, "still 250 with queue/ unusable");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    assert!(err.is_transient(), "{err}");
    assert!(err.to_string().contains("4.3.0"), "{err}");
    assert!(relay.files("tmp").is_empty(), "nothing half-kept");
    std::fs::remove_file(&queue).unwrap();
    std::fs::create_dir(&queue).unwrap();
    relay.stop().await;
}

#[tokio::test]
async fn connections_over_the_limit_get_421() {
    let mut relay = TestRelay::start(&["--max-connections", "1"], &[]).await;
    let (mut first, greeting) = Smtp::connect(relay.addr).await;
    assert!(greeting.starts_with("220 "), "{greeting}");
    let (_second, reply) = Smtp::connect(relay.addr).await;
    assert!(reply.starts_with("421 4.7.0 "), "{reply}");
    // Once the first leaves, a new client gets in.
    assert!(first.command("QUIT").await.starts_with("221 "));
    drop(first);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (_third, greeting) = Smtp::connect(relay.addr).await;
    assert!(greeting.starts_with("220 "), "{greeting}");
    relay.stop().await;
}

#[tokio::test]
async fn shutdown_answers_421_to_connected_clients() {
    let mut relay = TestRelay::start(&[], &[]).await;
    let mut conn = Smtp::ready(relay.addr).await;
    let r = relay.relay.take().unwrap();
    r.shutdown();
    let reply = conn.reply().await;
    assert!(reply.starts_with("421 4.3.0 "), "{reply}");
    // Idle, it stops at once (not at the next timer of the delivery worker).
    tokio::time::timeout(Duration::from_secs(1), r.wait()).await.expect("stops within a second");
    assert!(TcpStream::connect(relay.addr).await.is_err(), "no longer accepting");
}

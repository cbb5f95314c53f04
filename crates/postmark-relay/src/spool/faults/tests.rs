//! The disk-full behaviour, in-process on every machine: the whole relay (listener, sessions,
//! group commit, delivery to the fake Postmark) with its spool's free space taken away by the
//! seam. The same scenario runs on a real 1 MiB tmpfs where namespaces allow it
//! (`tests/it/faults.rs`, `a_full_spool_disk_answers_452_and_never_250`).

use std::time::Duration;

use clap::Parser;
use postmark_fake::http::FakeApi;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use super::*;
use crate::cli::Cli;
use crate::config::Config;
use crate::testing::env_of;

const TOKEN: &str = "disk-full-token";

/// A message of about 150 KB in 76-character lines.
fn big_message(subject: &str) -> Vec<u8> {
    let mut m = format!("From: sender@example.com\r\nTo: rcpt@example.com\r\nSubject: {subject}\r\n\r\n").into_bytes();
    let line = [b'x'; 76];
    for _ in 0..2_000 {
        m.extend_from_slice(&line);
        m.extend_from_slice(b"\r\n");
    }
    m
}

/// Sends one message over plain SMTP; returns the reply to the end of DATA.
async fn send(addr: std::net::SocketAddr, body: &[u8]) -> String {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    let mut reply = async || -> String {
        loop {
            let line = lines.next_line().await.unwrap().expect("a reply");
            if line.as_bytes().get(3) != Some(&b'-') {
                return line;
            }
        }
    };
    assert!(reply().await.starts_with("220"));
    for command in ["EHLO test\r\n", "MAIL FROM:<sender@example.com>\r\n", "RCPT TO:<rcpt@example.com>\r\n", "DATA\r\n"]
    {
        write.write_all(command.as_bytes()).await.unwrap();
        let answer = reply().await;
        assert!(answer.starts_with('2') || answer.starts_with("354"), "{command}: {answer}");
    }
    write.write_all(body).await.unwrap();
    write.write_all(b".\r\nQUIT\r\n").await.unwrap();
    reply().await
}

fn files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_spool_answers_452_never_250_and_recovers_when_space_returns() {
    let fake = FakeApi::start().await;
    // Postmark refuses the token for now (delivery pauses), so what is accepted stays spooled.
    fake.set_server_token("not-yet");
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    let url = fake.url();
    let argv = ["postmark-relay", "--listen", "127.0.0.1:0", "--spool", spool.to_str().unwrap(), "--api-url", &url];
    let args = Cli::try_parse_from(argv.iter().copied().chain(["--max-retry-delay", "200ms"])).unwrap().args;
    let config = Config::resolve(&args, &env_of(&[("POSTMARK_SERVER_TOKEN", TOKEN)])).unwrap();
    let relay = crate::start(config).await.unwrap();
    let addr = relay.local_addr();

    // As on a 1 MiB disk: room for a few 150 KB messages and their journal records.
    set_free(&spool, Some(1024 * 1024));
    let mut acked = Vec::new();
    let mut refused = 0;
    for i in 0..30 {
        let subject = format!("full-{i}");
        let answer = send(addr, &big_message(&subject)).await;
        if answer.starts_with("250 ") {
            assert_eq!(refused, 0, "a 250 after a 452 while the disk is still full: {answer}");
            acked.push(subject);
        } else {
            assert!(answer.starts_with("452 4.3.1 "), "only 250 or 452 4.3.1: {answer}");
            refused += 1;
            if refused == 3 {
                break;
            }
        }
    }
    assert!(acked.len() >= 2, "some fit before the disk was full: {}", acked.len());
    assert_eq!(refused, 3, "the disk filled up");
    assert_eq!(files(&spool.join("tmp")), Vec::<String>::new(), "a refused message leaves nothing behind");
    // The acknowledged messages are in files or, handed to the worker in memory, only in the
    // journal (their files cannot be written while the disk is full): what counts is below,
    // that Postmark gets exactly them.

    // Space comes back and Postmark takes the token: 250 again, and every acknowledged message
    // is delivered once.
    set_free(&spool, None);
    let answer = send(addr, &big_message("after")).await;
    assert!(answer.starts_with("250 "), "{answer}");
    acked.push("after".into());
    fake.set_server_token(TOKEN);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while fake.emails().len() < acked.len() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut subjects: Vec<String> =
        fake.emails().iter().map(|e| e["Subject"].as_str().unwrap_or_default().to_owned()).collect();
    subjects.sort();
    acked.sort();
    assert_eq!(subjects, acked, "Postmark got exactly the acknowledged messages, once each");
    relay.stop().await;
}

#[test]
fn the_budget_is_per_spool_and_refuses_before_writing() {
    let a = Path::new("/nonexistent/spool-a");
    let b = Path::new("/nonexistent/spool-b");
    set_free(a, Some(10));
    charge(a, 6).unwrap();
    let e = charge(a, 5).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::StorageFull);
    assert!(super::super::state::is_storage_full(&e));
    charge(a, 4).unwrap();
    charge(b, u64::MAX).unwrap();
    set_free(a, None);
    charge(a, u64::MAX).unwrap();
}

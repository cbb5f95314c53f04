//! Any bytes from a client → a fresh SMTP session (the public `Session`, over an in-memory
//! duplex stream, with a real spool on tmpfs and API-path validation).
//!
//! Fails on: a panic anywhere (the session, the parser, validation or conversion in the
//! acceptor's blocking task: cargo-fuzz builds with `panic = "abort"`), a reply that is not
//! well-formed (see `tests/it/smtp_replies.rs`), a `451` (with a healthy spool it can only come
//! from a failed acceptor task), or a `250 … queued as` count that differs from the messages on
//! disk.
//!
//! The first input byte picks the configuration: bit 0 a 10 MB or a 300-byte message limit, bits
//! 1–2 the write size (all at once, 1, 7 or 64 bytes per read).

#![no_main]

use std::sync::{Arc, LazyLock};

use libfuzzer_sys::fuzz_target;
use postmark_relay::Via;
use postmark_relay::convert::ConvertOptions;
use postmark_relay::session::{Acceptor, Session, SessionConfig};
use postmark_relay::shutdown::Shutdown;
use postmark_relay::spool::{Area, Spool};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[path = "../../tests/it/smtp_replies.rs"]
mod smtp_replies;

const HOST: &str = "relay.fuzz";

struct Env {
    rt: tokio::runtime::Runtime,
    _dir: tempfile::TempDir,
    spool: Arc<Spool>,
    acceptor: Arc<Acceptor>,
    shutdown: Shutdown,
    configs: [Arc<SessionConfig>; 2],
}

static ENV: LazyLock<Env> = LazyLock::new(|| {
    let dir = tempfile::tempdir_in("/dev/shm").or_else(|_| tempfile::tempdir()).expect("temp dir");
    let spool = Arc::new(Spool::open(dir.path()).expect("spool"));
    // Nobody listens for new-message announcements; the acceptor ignores a closed channel.
    let (tx, _) = tokio::sync::mpsc::unbounded_channel();
    let acceptor =
        Arc::new(Acceptor::new(Arc::clone(&spool), Via::Api, ConvertOptions::default(), tx).expect("acceptor"));
    let config = |max_message_size| {
        Arc::new(SessionConfig { hostname: HOST.into(), max_message_size, ..SessionConfig::default() })
    };
    Env {
        rt: tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime"),
        _dir: dir,
        spool,
        acceptor,
        shutdown: Shutdown::new(),
        configs: [config(postmark_core::limits::MAX_MESSAGE_BYTES), config(300)],
    }
});

fuzz_target!(|data: &[u8]| {
    let Some((&mode, input)) = data.split_first() else {
        return;
    };
    let env = &*ENV;
    let cfg = Arc::clone(&env.configs[usize::from(mode & 1)]);
    let chunk = [usize::MAX, 1, 7, 64][usize::from(mode >> 1 & 3)];

    let (client, server) = tokio::io::duplex(64 * 1024);
    let session = Session::new(server, cfg, Default::default(), Arc::clone(&env.acceptor), env.shutdown.signal());
    let (mut client_r, mut client_w) = tokio::io::split(client);
    let out = env.rt.block_on(async {
        let write = async {
            for piece in input.chunks(chunk.min(input.len().max(1))) {
                if client_w.write_all(piece).await.is_err() {
                    return; // the session closed first (QUIT, too many errors)
                }
                tokio::task::yield_now().await;
            }
            let _ = client_w.shutdown().await;
        };
        let read = async {
            let mut out = Vec::new();
            client_r.read_to_end(&mut out).await.expect("read replies");
            out
        };
        let (result, (), out) = tokio::join!(session.run(), write, read);
        result.expect("session ends cleanly");
        out
    });

    let replies = match smtp_replies::check_replies(&out, HOST) {
        Ok(replies) => replies,
        Err(e) => panic!("malformed reply: {e}\nall output: {:?}", String::from_utf8_lossy(&out)),
    };
    assert!(replies.first().is_some_and(|(code, _)| *code == 220), "no greeting: {replies:?}");
    assert!(!replies.iter().any(|(code, _)| *code == 451), "451 with a healthy spool: {replies:?}");
    let acked = replies.iter().filter(|(code, lines)| *code == 250 && lines[0].contains("queued as")).count();
    let ids = env.spool.ids(Area::Queue).expect("list queue");
    assert_eq!(acked, ids.len(), "250 queued replies vs messages on disk");
    for id in ids {
        env.spool.remove(&id).expect("clean the spool");
    }
});

//! Property tests of the SMTP session (issue 7 §6): a fresh in-memory session fed any byte
//! stream never panics, answers only with well-formed replies, and says `250 queued` exactly for
//! the messages it put on disk; a DATA body full of bare-CR/LF dot sequences is one message.
//!
//! The session is the public [`Session`] driven over `tokio::io::duplex` with a real spool in a
//! temporary directory (on `/dev/shm` when there is one, so fsync costs nothing), validating for
//! the API path so the MIME conversion runs on every accepted message too.

use std::sync::Arc;

use postmark_relay::Via;
use postmark_relay::convert::ConvertOptions;
use postmark_relay::delivery::handoff::Queued;
use postmark_relay::session::{Acceptor, Session, SessionConfig};
use postmark_relay::shutdown::Shutdown;
use postmark_relay::spool::{Area, Spool};
use proptest::prelude::*;
use proptest::test_runner::Config as ProptestConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[path = "smtp_replies.rs"]
mod smtp_replies;
use smtp_replies::check_replies;

const HOST: &str = "relay.test";

/// What one session run produced.
#[derive(Debug)]
pub(crate) struct Run {
    /// Everything the server wrote.
    pub(crate) out: Vec<u8>,
    /// The raw bytes of every message in `queue/` after the session ended.
    pub(crate) queued: Vec<Vec<u8>>,
}

fn temp_dir() -> tempfile::TempDir {
    let shm = std::path::Path::new("/dev/shm");
    if shm.is_dir()
        && let Ok(dir) = tempfile::tempdir_in(shm)
    {
        return dir;
    }
    tempfile::tempdir().expect("temp dir")
}

thread_local! {
    static RT: tokio::runtime::Runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
}

/// Runs a fresh session over `input`, written in `chunks` pieces (cycled through as sizes, so the
/// session sees different read boundaries), then half-closed. Panics if the session panics or
/// fails.
pub(crate) fn run_session(input: &[u8], chunks: &[usize], max_message_size: usize) -> Run {
    let dir = temp_dir();
    let spool = Arc::new(Spool::open(dir.path()).expect("spool"));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Queued>();
    let acceptor = Arc::new(Acceptor::new(Arc::clone(&spool), Via::Api, ConvertOptions::default(), tx).unwrap());
    let cfg = Arc::new(SessionConfig { hostname: HOST.into(), max_message_size, ..SessionConfig::default() });
    let shutdown = Shutdown::new();
    let (client, server) = tokio::io::duplex(64 * 1024);
    let session = Session::new(server, cfg, Default::default(), acceptor, shutdown.signal());
    let (mut client_r, mut client_w) = tokio::io::split(client);

    let out = RT.with(|rt| {
        rt.block_on(async {
            let write = async {
                let mut rest = input;
                let mut sizes = chunks.iter().copied().cycle();
                while !rest.is_empty() {
                    let n = sizes.next().unwrap_or(rest.len()).clamp(1, rest.len());
                    // The session may close first (QUIT, too many errors): a broken pipe is fine.
                    if client_w.write_all(&rest[..n]).await.is_err() {
                        return;
                    }
                    rest = &rest[n..];
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
        })
    });
    // Every message queued, as the worker gets it: in memory (then in the journal only, until
    // the acceptor's end checkpoints it), or by its id (then in a file of its own).
    let mut queued = Vec::new();
    let mut announced = Vec::new();
    while let Ok(q) = rx.try_recv() {
        announced.push(q.id.clone());
        queued.push(match q.fresh {
            Some(fresh) => fresh.message.raw,
            None => spool.load(&q.id).expect("queued message loads").raw,
        });
    }
    for id in spool.ids(Area::Queue).expect("list queue") {
        assert!(announced.contains(&id), "{id} queued without a 250");
    }
    drop(shutdown);
    Run { out, queued }
}

/// The invariants every run must satisfy, whatever the input.
fn check_run(run: &Run) -> Result<(), TestCaseError> {
    let replies = check_replies(&run.out, HOST).map_err(TestCaseError::fail)?;
    prop_assert!(
        replies.first().is_some_and(|(code, _)| *code == 220),
        "first reply is not the 220 greeting: {:?}",
        replies.first()
    );
    // With a healthy spool a 451 can only mean the acceptor's blocking task panicked (the
    // session turns a JoinError into 451 4.3.0), which would otherwise go unnoticed here.
    prop_assert!(
        !replies.iter().any(|(code, _)| *code == 451),
        "451 with a healthy spool (did validation panic?): {replies:?}"
    );
    let acked = replies.iter().filter(|(code, lines)| *code == 250 && lines[0].contains("queued as")).count();
    prop_assert_eq!(acked, run.queued.len(), "250 queued replies vs messages on disk");
    Ok(())
}

// ---- generators ---------------------------------------------------------------------------

fn line_end() -> impl Strategy<Value = &'static [u8]> {
    prop_oneof![
        8 => Just(&b"\r\n"[..]),
        1 => Just(&b"\n"[..]),
        1 => Just(&b"\r"[..]),
        1 => Just(&b"\r\r\n"[..]),
        1 => Just(&b""[..]),
    ]
}

fn address() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => "[a-zA-Z0-9._+-]{1,12}@(example\\.com|Example\\.ORG|x\\.test)",
        1 => Just(String::new()),
        1 => Just("postmaster".to_owned()),
        1 => "[^<>\r\n]{0,20}",
        1 => "[a-z]{1,5}@[a-z]{1,5}\\.xn--[a-z]{2,4}",
        1 => "j\u{fc}rgen@b\u{fc}cher\\.example",
    ]
}

fn mail_params() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => Just(String::new()),
        1 => Just(" BODY=8BITMIME".to_owned()),
        1 => Just(" BODY=7BIT".to_owned()),
        1 => Just(" BODY=BINARYMIME".to_owned()),
        1 => Just(" SMTPUTF8".to_owned()),
        1 => (0usize..20_000_000).prop_map(|n| format!(" SIZE={n}")),
        1 => Just(" FOO=BAR".to_owned()),
        1 => "( [A-Z]{1,8}=[ -~]{0,8}){1,3}",
    ]
}

/// A DATA body: lines with leading dots, stuffed dots, NULs, 8-bit bytes, bare CR/LF, optionally
/// a header section, and most of the time the `CRLF.CRLF` terminator.
fn data_body() -> BoxedStrategy<Vec<u8>> {
    let piece = prop_oneof![
        4 => "[ -~]{0,40}".prop_map(String::into_bytes),
        2 => Just(b"\r\n".to_vec()),
        1 => Just(b".".to_vec()),
        1 => Just(b"..".to_vec()),
        1 => Just(b"\n".to_vec()),
        1 => Just(b"\r".to_vec()),
        1 => Just(b"\0".to_vec()),
        1 => Just(b"\r\n.\n".to_vec()),
        1 => Just(b"\n.\r\n".to_vec()),
        1 => Just(b"\r.\r".to_vec()),
        1 => proptest::collection::vec(any::<u8>(), 0..32),
    ];
    let header = prop_oneof![
        3 => Just(b"From: s@example.com\r\nTo: r@example.com\r\nSubject: s\r\n\r\n".to_vec()),
        1 => Just(b"Subject: no from\r\n\r\n".to_vec()),
        1 => Just(Vec::new()),
    ];
    (header, proptest::collection::vec(piece, 0..24), any::<bool>())
        .prop_map(|(mut body, pieces, terminate)| {
            for p in pieces {
                body.extend_from_slice(&p);
            }
            if terminate {
                body.extend_from_slice(b"\r\n.\r\n");
            }
            body
        })
        .boxed()
}

/// One client action (a command with its line end, a message body, or junk).
fn action() -> BoxedStrategy<Vec<u8>> {
    let cmd = prop_oneof![
        3 => "(EHLO|HELO|ehlo|Ehlo) [ -~]{0,20}".prop_map(String::into_bytes),
        4 => (address(), mail_params()).prop_map(|(a, p)| format!("MAIL FROM:<{a}>{p}").into_bytes()),
        5 => address().prop_map(|a| format!("RCPT TO:<{a}>").into_bytes()),
        4 => Just(b"DATA".to_vec()),
        1 => Just(b"RSET".to_vec()),
        1 => Just(b"NOOP".to_vec()),
        1 => "NOOP [ -~]{0,20}".prop_map(String::into_bytes),
        1 => Just(b"QUIT".to_vec()),
        1 => "(VRFY|EXPN|HELP) [ -~]{0,20}".prop_map(String::into_bytes),
        1 => "(STARTTLS|AUTH PLAIN|AUTH LOGIN|BDAT 10 LAST|BDAT x|ETRN x|BURL x|ATRN|LHLO x)".prop_map(String::into_bytes),
        1 => "MAIL FROM:[ -~]{0,30}".prop_map(String::into_bytes),
        1 => "RCPT TO:[ -~]{0,30}".prop_map(String::into_bytes),
        2 => proptest::collection::vec(any::<u8>(), 0..64),
        1 => "[A-Z]{1,10}( [ -~]{0,30})?".prop_map(String::into_bytes),
        1 => proptest::collection::vec(prop_oneof![Just(0u8), Just(b'\r'), Just(b'\n'), Just(b'.'), Just(b' ')], 1..16),
        1 => (400usize..6000, prop_oneof![Just(b'a'), Just(b'.'), Just(b'\0'), Just(0xffu8)])
            .prop_map(|(n, c)| { let mut v = b"NOOP ".to_vec(); v.extend(std::iter::repeat_n(c, n)); v }),
    ];
    prop_oneof![
        6 => (cmd, line_end()).prop_map(|(mut c, end)| { c.extend_from_slice(end); c }),
        1 => data_body(),
    ]
    .boxed()
}

/// A plausible session: usually a greeting and a transaction first, then random actions.
fn session_input() -> impl Strategy<Value = Vec<u8>> {
    let prefix = prop_oneof![
        1 => Just(Vec::new()),
        1 => Just(b"EHLO client.example\r\n".to_vec()),
        2 => Just(b"EHLO client.example\r\nMAIL FROM:<s@example.com>\r\nRCPT TO:<r@example.com>\r\nDATA\r\n".to_vec()),
    ];
    (prefix, proptest::collection::vec(action(), 0..24)).prop_map(|(mut input, actions)| {
        for a in actions {
            input.extend_from_slice(&a);
        }
        input
    })
}

fn chunking() -> impl Strategy<Value = Vec<usize>> {
    prop_oneof![
        3 => Just(vec![usize::MAX]),
        1 => proptest::collection::vec(1usize..64, 1..8),
        1 => Just(vec![1]),
    ]
}

fn message_size() -> impl Strategy<Value = usize> {
    prop_oneof![3 => Just(postmark_core::limits::MAX_MESSAGE_BYTES), 1 => 0usize..300]
}

/// 256 cases (about a second or two in a debug build); `PROPTEST_CASES=n` runs more.
fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(256);
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn any_bytes_get_well_formed_replies(input in proptest::collection::vec(any::<u8>(), 0..2048),
                                         chunks in chunking()) {
        let run = run_session(&input, &chunks, postmark_core::limits::MAX_MESSAGE_BYTES);
        check_run(&run)?;
    }

    #[test]
    fn command_streams_get_well_formed_replies(input in session_input(), chunks in chunking(),
                                               max in message_size()) {
        let run = run_session(&input, &chunks, max);
        check_run(&run)?;
    }
}

// ---- SMTP smuggling ---------------------------------------------------------------------

const SMUGGLE_PREFIX: &[u8] =
    b"EHLO client.example\r\nMAIL FROM:<s@example.com>\r\nRCPT TO:<r@example.com>\r\nDATA\r\n";
const SMUGGLE_HEADER: &[u8] = b"From: s@example.com\r\nTo: r@example.com\r\nSubject: smuggling\r\n\r\n";

/// A body made of the known smuggling sequences, text, and a complete second transaction
/// (which must stay part of the first message's text).
fn smuggling_body() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        2 => "[a-z ]{0,12}".prop_map(String::into_bytes),
        1 => Just(b"\r\n".to_vec()),
        1 => Just(b"\n".to_vec()),
        1 => Just(b"\r".to_vec()),
        1 => Just(b".".to_vec()),
        1 => Just(b"\n.\n".to_vec()),
        1 => Just(b"\n.\r\n".to_vec()),
        1 => Just(b"\r.\r".to_vec()),
        1 => Just(b"\r.\n".to_vec()),
        1 => Just(b"\r\n.\n".to_vec()),
        1 => Just(b"\r\n.\r".to_vec()),
        1 => Just(b"\n.\r".to_vec()),
        1 => Just(b"\r\n..\r\n".to_vec()),
        1 => Just(b"\r\n.\0\r\n".to_vec()),
        1 => Just(b"\r\n .\r\n".to_vec()),
        2 => Just(b"MAIL FROM:<evil@example.com>\r\nRCPT TO:<victim@example.com>\r\nDATA\r\nFrom: evil@example.com\r\n\r\nsmuggled\r\n".to_vec()),
    ];
    proptest::collection::vec(piece, 0..24).prop_map(|pieces| pieces.concat())
}

/// Dot-stuffs every `CRLF.CRLF` in `body` (with the header and the terminator around it) except
/// the final terminator, so exactly one remains.
fn only_one_terminator(body: Vec<u8>) -> Vec<u8> {
    // Everything between DATA's CRLF and the end, with that CRLF (smtp-proto sees it too).
    let mut full = b"\r\n".to_vec();
    full.extend_from_slice(SMUGGLE_HEADER);
    full.extend_from_slice(&body);
    full.extend_from_slice(b"\r\n.\r\n");
    loop {
        let first = full.windows(5).position(|w| w == b"\r\n.\r\n").expect("the terminator");
        if first == full.len() - 5 {
            break;
        }
        full.insert(first + 2, b'.');
    }
    full[2 + SMUGGLE_HEADER.len()..full.len() - 5].to_vec()
}

/// What a strict receiver stores: every dot that starts a line (after CRLF) removed, the final
/// CRLF of the body kept.
fn unstuffed(body: &[u8]) -> Vec<u8> {
    let mut data = SMUGGLE_HEADER.to_vec();
    data.extend_from_slice(body);
    data.extend_from_slice(b"\r\n");
    let mut out = Vec::with_capacity(data.len());
    for (i, &b) in data.iter().enumerate() {
        let line_start = i == 0 || (i >= 2 && &data[i - 2..i] == b"\r\n");
        if b == b'.' && line_start {
            continue;
        }
        out.push(b);
    }
    out
}

fn smuggling_input(body: &[u8]) -> Vec<u8> {
    let mut input = SMUGGLE_PREFIX.to_vec();
    input.extend_from_slice(SMUGGLE_HEADER);
    input.extend_from_slice(body);
    input.extend_from_slice(b"\r\n.\r\nQUIT\r\n");
    input
}

/// The property, also used by the regression test below.
fn check_smuggling(body: &[u8], chunks: &[usize]) -> Result<(), TestCaseError> {
    let run = run_session(&smuggling_input(body), chunks, postmark_core::limits::MAX_MESSAGE_BYTES);
    check_run(&run)?;
    let replies = check_replies(&run.out, HOST).map_err(TestCaseError::fail)?;
    let codes: Vec<u16> = replies.iter().map(|(c, _)| *c).collect();
    prop_assert_eq!(&codes, &[220, 250, 250, 250, 354, 250, 221], "replies: {:?}", replies);
    prop_assert_eq!(run.queued.len(), 1, "messages accepted");
    let expected = unstuffed(body);
    prop_assert!(
        run.queued[0] == expected,
        "stored bytes differ\n stored:   {:?}\n expected: {:?}",
        String::from_utf8_lossy(&run.queued[0]),
        String::from_utf8_lossy(&expected)
    );
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn only_crlf_dot_crlf_ends_data(body in smuggling_body().prop_map(only_one_terminator), chunks in chunking()) {
        check_smuggling(&body, &chunks)?;
    }
}

/// Regression for a finding of `only_crlf_dot_crlf_ends_data` (2026-11-22, minimal body
/// `"\r\n.\r"`): smtp-proto 0.2.5's `DataReceiver`, which the session used then, ended DATA at
/// `CRLF "." CR+ LF`, not only at `CRLF.CRLF` (after a line-initial dot it waited for any LF
/// preceded by a CR). So `<CR><LF>.<CR><CR><LF>` ended the message, keeping a stray CR, and what
/// followed was read as commands: a second, smuggled transaction was accepted. Fixed by the
/// session's own `DataReader`.
#[test]
fn crlf_dot_cr_cr_lf_does_not_end_data() {
    let body = b"hello\r\n.\r\r\nMAIL FROM:<evil@example.com>\r\nRCPT TO:<victim@example.com>\r\nDATA\r\n\
                 From: evil@example.com\r\n\r\nsmuggled";
    if let Err(e) = check_smuggling(body, &[usize::MAX]) {
        panic!("{e}");
    }
}

#[test]
fn known_smuggling_payloads_are_one_message() {
    let second = b"MAIL FROM:<evil@example.com>\r\nRCPT TO:<victim@example.com>\r\nDATA\r\nsmuggled\r\n";
    for sep in [&b"\n.\n"[..], b"\n.\r\n", b"\r.\r", b"\r.\n", b"\r\n.\n", b"\r\n.\r", b"\n.\r", b"\r\n.\0\r\n"] {
        let mut body = b"hello".to_vec();
        body.extend_from_slice(sep);
        body.extend_from_slice(second);
        for chunks in [&[usize::MAX][..], &[1]] {
            if let Err(e) = check_smuggling(&body, chunks) {
                panic!("separator {:?}: {e}", String::from_utf8_lossy(sep));
            }
        }
    }
}

/// Regression for a finding of `command_streams_get_well_formed_replies` (2026-11-22, minimal
/// input `"MAIL FROM:<_@example.com> SMTPUTF8\x7f\r\n"`): the `555 5.5.4 Unsupported parameter …`
/// reply echoed the client's parameter unfiltered, so control characters (ESC, DEL…) and
/// non-ASCII bytes reached the client's terminal or log, and the reply text was no longer an
/// RFC 5321 `textstring` (HT or printable ASCII). Fixed in `Reply::write_to`.
#[test]
fn echoed_parameters_are_printable_ascii() {
    let input = b"EHLO c\r\nMAIL FROM:<a@example.com> SMTPUTF8\x7f\r\nMAIL FROM:<a@example.com> X\x1b[2J=1\r\n\
                  MAIL FROM:<a@example.com> X\xc3\xa9\xff=1\r\nQUIT\r\n";
    let run = run_session(input, &[usize::MAX], 1000);
    if let Err(e) = check_replies(&run.out, HOST) {
        panic!("{e}");
    }
}

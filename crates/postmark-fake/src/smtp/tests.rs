//! FakeSmtp driven by lettre (as the relay's tests will) and by raw sockets for the protocol
//! details lettre never exercises.

use std::time::Duration;

use lettre::{
    AsyncSmtpTransport, AsyncTransport, Tokio1Executor,
    address::Envelope,
    transport::smtp::{
        authentication::{Credentials, Mechanism},
        client::{Certificate, CertificateStore, Tls, TlsParameters},
    },
};
use rustls_pki_types::ServerName;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};

use super::*;

const WAIT: Duration = Duration::from_secs(5);

fn transport(fake: &FakeSmtp, user: &str, password: &str, mechanism: Mechanism) -> AsyncSmtpTransport<Tokio1Executor> {
    let tls = TlsParameters::builder("localhost".to_owned())
        .certificate_store(CertificateStore::None)
        .add_root_certificate(Certificate::from_pem(fake.ca_pem().as_bytes()).expect("CA PEM"))
        .build()
        .expect("TLS parameters");
    AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
        .port(fake.addr().port())
        .tls(Tls::Required(tls))
        .credentials(Credentials::new(user.to_owned(), password.to_owned()))
        .authentication(vec![mechanism])
        .timeout(Some(WAIT))
        .build()
}

fn envelope(from: &str, to: &[&str]) -> Envelope {
    Envelope::new(Some(from.parse().unwrap()), to.iter().map(|a| a.parse().unwrap()).collect()).unwrap()
}

const RAW: &[u8] = b"From: App <app@example.com>\r\nTo: ann@example.org\r\nSubject: hi\r\n\r\n\
first line\r\n.leading dot\r\n..two dots\r\n.\r\nlast line\r\n";

#[tokio::test]
async fn lettre_starttls_auth_plain_records_envelope_and_exact_bytes() {
    let fake = FakeSmtp::builder().credentials("access-key", "secret-key").start().await.unwrap();
    let client = transport(&fake, "access-key", "secret-key", Mechanism::Plain);
    // hidden@… is in the envelope only, like a Bcc.
    let response = client
        .send_raw(&envelope("bounces@example.com", &["ann@example.org", "hidden@example.net"]), RAW)
        .await
        .unwrap();
    assert_eq!(response.code().to_string(), "250");

    let messages = fake.messages();
    assert_eq!(messages.len(), 1);
    let m = &messages[0];
    assert_eq!(m.mail_from, "bounces@example.com");
    assert_eq!(m.rcpt_to, ["ann@example.org", "hidden@example.net"]);
    assert_eq!(m.auth_user.as_deref(), Some("access-key"));
    assert!(m.tls);
    // lettre always ends with CRLF "." CRLF, so a message that already ends in CRLF arrives with
    // one more empty line; the dot-led lines come back unstuffed.
    assert_eq!(m.data, [RAW, b"\r\n"].concat());
}

#[tokio::test]
async fn lettre_auth_login_with_a_second_credential_pair() {
    let fake = FakeSmtp::builder()
        .credentials("server-token", "server-token")
        .credentials("other", "pw")
        .start()
        .await
        .unwrap();
    let client = transport(&fake, "other", "pw", Mechanism::Login);
    client.send_raw(&envelope("a@example.com", &["b@example.org"]), b"Subject: x\r\n\r\nbody").await.unwrap();
    let m = &fake.messages()[0];
    assert_eq!(m.auth_user.as_deref(), Some("other"));
    assert_eq!(m.data, b"Subject: x\r\n\r\nbody\r\n");
}

#[tokio::test]
async fn lettre_wrong_password_is_refused_and_nothing_recorded() {
    let fake = FakeSmtp::builder().credentials("user", "right").start().await.unwrap();
    for mechanism in [Mechanism::Plain, Mechanism::Login] {
        let client = transport(&fake, "user", "wrong", mechanism);
        let err = client.send_raw(&envelope("a@example.com", &["b@example.org"]), RAW).await.unwrap_err();
        assert!(err.is_permanent(), "{err}");
        assert_eq!(err.status().map(|c| c.to_string()).as_deref(), Some("535"));
    }
    assert!(fake.messages().is_empty());
}

#[tokio::test]
async fn lettre_sees_injected_faults_then_success() {
    let fake = FakeSmtp::builder().credentials("u", "p").start().await.unwrap();
    fake.inject(Fault::new(Stage::Data, 451, "4.3.0", "try again later"));
    fake.inject(Fault::new(Stage::Rcpt, 550, "5.1.1", "inactive recipient").for_recipient("gone@example.org"));
    let client = transport(&fake, "u", "p", Mechanism::Plain);
    let env = envelope("a@example.com", &["b@example.org"]);

    let err = client.send_raw(&env, RAW).await.unwrap_err();
    assert!(err.is_transient(), "{err}");
    assert!(fake.messages().is_empty());

    let err = client.send_raw(&envelope("a@example.com", &["gone@example.org"]), RAW).await.unwrap_err();
    assert!(err.is_permanent(), "{err}");

    client.send_raw(&env, RAW).await.unwrap();
    let messages = fake.wait_for_messages(1, WAIT).await;
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].rcpt_to, ["b@example.org"]);
}

/// A line-oriented SMTP client on any stream, reading whole (multi-line) replies.
struct Raw<S> {
    io: BufReader<S>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Raw<S> {
    fn new(io: S) -> Self {
        Self { io: BufReader::new(io) }
    }

    async fn reply(&mut self) -> String {
        let mut all = String::new();
        loop {
            let mut line = String::new();
            let n = tokio::time::timeout(WAIT, self.io.read_line(&mut line)).await.expect("reply in time").unwrap();
            if n == 0 {
                return all; // closed
            }
            all.push_str(&line);
            if line.as_bytes().get(3) != Some(&b'-') {
                return all;
            }
        }
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.io.get_mut().write_all(bytes).await.unwrap();
    }

    async fn cmd(&mut self, line: &str) -> String {
        self.send(format!("{line}\r\n").as_bytes()).await;
        self.reply().await
    }

    fn into_inner(self) -> S {
        self.io.into_inner()
    }
}

async fn connect(fake: &FakeSmtp) -> Raw<TcpStream> {
    let mut raw = Raw::new(TcpStream::connect(fake.addr()).await.unwrap());
    let greeting = raw.reply().await;
    assert!(greeting.starts_with("220 "), "{greeting}");
    raw
}

fn plain(user: &str, password: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{password}"))
}

#[tokio::test]
async fn auth_before_starttls_is_refused_by_default() {
    let fake = FakeSmtp::builder().credentials("user", "pw").start().await.unwrap();
    let mut raw = connect(&fake).await;
    let ehlo = raw.cmd("EHLO client.example").await;
    assert!(ehlo.contains("250 STARTTLS\r\n"), "{ehlo}");
    assert!(!ehlo.contains("AUTH"), "AUTH must not be offered in clear text: {ehlo}");
    assert!(ehlo.contains("ENHANCEDSTATUSCODES"), "{ehlo}");

    let auth = raw.cmd(&format!("AUTH PLAIN {}", plain("user", "pw"))).await;
    assert_eq!(auth, "538 5.7.11 Encryption required for requested authentication mechanism\r\n");
    assert_eq!(
        raw.cmd("AUTH LOGIN").await,
        "538 5.7.11 Encryption required for requested authentication mechanism\r\n"
    );
    assert_eq!(raw.cmd("MAIL FROM:<a@example.com>").await, "530 5.7.0 Authentication required\r\n");
    assert_eq!(raw.cmd("QUIT").await, "221 2.0.0 Bye\r\n");
}

#[tokio::test]
async fn auth_before_starttls_can_be_allowed() {
    let fake = FakeSmtp::builder().credentials("user", "pw").auth_before_tls(true).start().await.unwrap();
    let mut raw = connect(&fake).await;
    assert!(raw.cmd("EHLO c").await.contains("250 AUTH PLAIN LOGIN\r\n"));
    // PLAIN without initial response, then LOGIN-style continuation.
    assert_eq!(raw.cmd("AUTH PLAIN").await, "334 \r\n");
    assert_eq!(raw.cmd(&plain("user", "pw")).await, "235 2.7.0 Authentication successful\r\n");
    assert_eq!(raw.cmd("AUTH PLAIN").await, "503 5.5.1 Already authenticated\r\n");
    assert_eq!(raw.cmd("MAIL FROM:<a@example.com>").await, "250 2.1.0 Ok\r\n");
    assert_eq!(raw.cmd("RCPT TO:<b@example.org>").await, "250 2.1.5 Ok\r\n");
    assert!(raw.cmd("DATA").await.starts_with("354 "));
    assert!(raw.cmd("x\r\n.").await.starts_with("250 2.0.0 Ok: queued as"));
    let m = &fake.messages()[0];
    assert!(!m.tls);
    assert_eq!(m.auth_user.as_deref(), Some("user"));
    assert_eq!(m.data, b"x\r\n");
}

#[tokio::test]
async fn auth_login_challenges_and_cancel() {
    let fake = FakeSmtp::builder().credentials("user", "pw").auth_before_tls(true).start().await.unwrap();
    let mut raw = connect(&fake).await;
    raw.cmd("EHLO c").await;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    assert_eq!(raw.cmd("AUTH LOGIN").await, "334 VXNlcm5hbWU6\r\n");
    assert_eq!(raw.cmd(&b64("user")).await, "334 UGFzc3dvcmQ6\r\n");
    assert_eq!(raw.cmd(&b64("nope")).await, "535 5.7.8 Authentication credentials invalid\r\n");
    assert_eq!(raw.cmd(&format!("AUTH LOGIN {}", b64("user"))).await, "334 UGFzc3dvcmQ6\r\n");
    assert_eq!(raw.cmd("*").await, "501 5.0.0 Authentication cancelled\r\n");
    assert_eq!(raw.cmd("AUTH PLAIN !!!").await, "501 5.5.2 Cannot decode response\r\n");
    assert_eq!(raw.cmd("AUTH CRAM-MD5").await, "504 5.5.4 Unrecognized authentication type\r\n");
    assert_eq!(raw.cmd("MAIL FROM:<a@example.com>").await, "530 5.7.0 Authentication required\r\n");
}

#[tokio::test]
async fn starttls_then_auth_over_a_raw_tls_stream() {
    let fake = FakeSmtp::builder().credentials("user", "pw").start().await.unwrap();
    let mut raw = connect(&fake).await;
    raw.cmd("EHLO c").await;
    assert_eq!(raw.cmd("STARTTLS").await, "220 2.0.0 Ready to start TLS\r\n");
    let connector = tokio_rustls::TlsConnector::from(fake.pki().client_config());
    let tls = connector.connect(ServerName::try_from("localhost").unwrap(), raw.into_inner()).await.unwrap();
    let mut raw = Raw::new(tls);
    // The session starts over: EHLO again, now with AUTH and without STARTTLS.
    assert_eq!(raw.cmd("MAIL FROM:<a@example.com>").await, "503 5.5.1 Send EHLO first\r\n");
    let ehlo = raw.cmd("EHLO c").await;
    assert!(ehlo.contains("AUTH PLAIN LOGIN"), "{ehlo}");
    assert!(!ehlo.contains("STARTTLS"), "{ehlo}");
    assert_eq!(raw.cmd("STARTTLS").await, "503 5.5.1 Already in TLS\r\n");
    assert_eq!(
        raw.cmd(&format!("AUTH PLAIN {}", plain("user", "pw"))).await,
        "235 2.7.0 Authentication successful\r\n"
    );
    assert_eq!(raw.cmd("MAIL FROM:<>").await, "250 2.1.0 Ok\r\n");
    assert_eq!(raw.cmd("RCPT TO:<b@example.org>").await, "250 2.1.5 Ok\r\n");
    raw.cmd("DATA").await;
    raw.cmd("Subject: t\r\n\r\nhello\r\n.").await;
    let m = &fake.wait_for_messages(1, WAIT).await[0];
    assert_eq!((m.mail_from.as_str(), m.tls, m.auth_user.as_deref()), ("", true, Some("user")));
    assert_eq!(m.data, b"Subject: t\r\n\r\nhello\r\n");
}

#[tokio::test]
async fn pipelined_commands_and_dot_unstuffing_are_exact() {
    let fake = FakeSmtp::start().await.unwrap();
    let mut raw = connect(&fake).await;
    raw.send(b"EHLO c\r\nMAIL FROM:<a@example.com> SIZE=40\r\nRCPT TO:<b@example.org>\r\nRCPT TO:<c@example.org>\r\nDATA\r\n")
        .await;
    let ehlo = raw.reply().await;
    assert!(ehlo.contains("250-PIPELINING\r\n") && ehlo.contains("250-SIZE 10485760\r\n"), "{ehlo}");
    assert_eq!(raw.reply().await, "250 2.1.0 Ok\r\n");
    assert_eq!(raw.reply().await, "250 2.1.5 Ok\r\n");
    assert_eq!(raw.reply().await, "250 2.1.5 Ok\r\n");
    assert!(raw.reply().await.starts_with("354 "));
    // Stuffed first line, a stuffed lone dot, bare LF inside a line, 8-bit bytes; sent in pieces.
    raw.send(b"..first\r\nmid\nline \xe4\r\n..\r").await;
    raw.send(b"\n.").await;
    raw.send(b"\r\nQUIT\r\n").await;
    assert_eq!(raw.reply().await, "250 2.0.0 Ok: queued as FAKE000001\r\n");
    assert_eq!(raw.reply().await, "221 2.0.0 Bye\r\n");
    let m = &fake.messages()[0];
    assert_eq!(m.data, b".first\r\nmid\nline \xe4\r\n.\r\n");
    assert_eq!(m.rcpt_to, ["b@example.org", "c@example.org"]);
    assert_eq!(m.auth_user, None);
    assert!(!m.tls);
}

#[tokio::test]
async fn protocol_errors_get_enhanced_codes() {
    let fake = FakeSmtp::start().await.unwrap();
    let mut raw = connect(&fake).await;
    assert_eq!(raw.cmd("MAIL FROM:<a@example.com>").await, "503 5.5.1 Send EHLO first\r\n");
    raw.cmd("HELO c").await;
    assert_eq!(raw.cmd("RCPT TO:<b@example.org>").await, "503 5.5.1 MAIL first\r\n");
    assert_eq!(raw.cmd("DATA").await, "503 5.5.1 MAIL first\r\n");
    assert_eq!(
        raw.cmd("MAIL FROM:<a@example.com> SIZE=99999999").await,
        "552 5.3.4 Message size exceeds fixed limit\r\n"
    );
    assert_eq!(raw.cmd("MAIL FROM:<a@example.com>").await, "250 2.1.0 Ok\r\n");
    assert_eq!(raw.cmd("MAIL FROM:<a@example.com>").await, "503 5.5.1 Nested MAIL command\r\n");
    assert_eq!(raw.cmd("DATA").await, "554 5.5.1 No valid recipients\r\n");
    assert_eq!(raw.cmd("RSET").await, "250 2.0.0 Ok\r\n");
    assert_eq!(raw.cmd("NOOP").await, "250 2.0.0 Ok\r\n");
    assert_eq!(raw.cmd("VRFY root").await, "252 2.5.2 Cannot VRFY user\r\n");
    assert!(raw.cmd("FROB").await.starts_with("500 5.5.2"));
    assert!(fake.messages().is_empty());
}

#[tokio::test]
async fn size_limit_is_enforced_on_the_data() {
    let fake = FakeSmtp::builder().max_size(10).start().await.unwrap();
    let mut raw = connect(&fake).await;
    raw.cmd("EHLO c").await;
    raw.cmd("MAIL FROM:<a@example.com>").await;
    raw.cmd("RCPT TO:<b@example.org>").await;
    raw.cmd("DATA").await;
    assert_eq!(raw.cmd("0123456789abcdef\r\n.").await, "552 5.3.4 Message size exceeds fixed limit\r\n");
    assert!(fake.messages().is_empty());
}

#[tokio::test]
async fn faults_at_each_stage() {
    let fake = FakeSmtp::start().await.unwrap();

    // Greeting: 421 and the connection is closed.
    fake.inject(Fault::new(Stage::Greeting, 421, "4.3.2", "not now"));
    let mut raw = Raw::new(TcpStream::connect(fake.addr()).await.unwrap());
    assert_eq!(raw.reply().await, "421 4.3.2 not now\r\n");
    assert_eq!(raw.reply().await, "", "closed after 421");

    // MAIL: twice 451, then normal.
    fake.inject(Fault::new(Stage::Mail, 451, "4.3.0", "busy").times(2));
    let mut raw = connect(&fake).await;
    raw.cmd("EHLO c").await;
    assert_eq!(raw.cmd("MAIL FROM:<a@example.com>").await, "451 4.3.0 busy\r\n");
    assert_eq!(raw.cmd("MAIL FROM:<a@example.com>").await, "451 4.3.0 busy\r\n");
    assert_eq!(raw.cmd("MAIL FROM:<a@example.com>").await, "250 2.1.0 Ok\r\n");

    // RCPT: only the named recipient is refused.
    fake.inject(Fault::new(Stage::Rcpt, 550, "5.1.1", "inactive").for_recipient("GONE@example.org"));
    assert_eq!(raw.cmd("RCPT TO:<b@example.org>").await, "250 2.1.5 Ok\r\n");
    assert_eq!(raw.cmd("RCPT TO:<gone@example.org>").await, "550 5.1.1 inactive\r\n");
    assert_eq!(raw.cmd("RCPT TO:<gone@example.org>").await, "250 2.1.5 Ok\r\n");

    // DATA: 554 after the content; nothing recorded; the next transaction goes through.
    fake.inject(Fault::new(Stage::Data, 554, "5.6.0", "rejected content"));
    raw.cmd("DATA").await;
    assert_eq!(raw.cmd("one\r\n.").await, "554 5.6.0 rejected content\r\n");
    assert!(fake.messages().is_empty());
    raw.cmd("MAIL FROM:<a@example.com>").await;
    raw.cmd("RCPT TO:<b@example.org>").await;
    raw.cmd("DATA").await;
    assert!(raw.cmd("two\r\n.").await.starts_with("250 "));
    assert_eq!(fake.messages()[0].data, b"two\r\n");

    // A 421 at MAIL closes the connection.
    fake.inject(Fault::new(Stage::Mail, 421, "4.4.2", "closing"));
    assert_eq!(raw.cmd("MAIL FROM:<a@example.com>").await, "421 4.4.2 closing\r\n");
    assert_eq!(raw.reply().await, "");
    assert_eq!(fake.connections(), 2);
}

#[tokio::test]
async fn wait_for_messages_times_out_with_what_it_has() {
    let fake = FakeSmtp::start().await.unwrap();
    let started = tokio::time::Instant::now();
    assert!(fake.wait_for_messages(1, Duration::from_millis(100)).await.is_empty());
    assert!(started.elapsed() >= Duration::from_millis(100));
    assert!(fake.url().starts_with("smtp://127.0.0.1:"));
}

#[tokio::test]
async fn pipelined_groups_are_recorded_and_illegal_pipelining_is_reported() {
    let fake = FakeSmtp::start().await.unwrap();
    let mut raw = connect(&fake).await;
    assert!(raw.cmd("EHLO c").await.contains("250-PIPELINING\r\n"));
    // Legal: MAIL, RCPT and DATA in one group, then the content with the next transaction.
    raw.send(b"MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n").await;
    for _ in 0..3 {
        raw.reply().await;
    }
    raw.send(b"one\r\n.\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n").await;
    for _ in 0..4 {
        raw.reply().await;
    }
    // Illegal: content sent with DATA before the 354, then NOOP with something after it.
    raw.send(b"two\r\n.\r\nRSET\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.org>\r\nDATA\r\nthree\r\n.\r\n")
        .await;
    for _ in 0..6 {
        raw.reply().await;
    }
    raw.send(b"NOOP\r\nQUIT\r\n").await;
    raw.reply().await;
    assert_eq!(raw.reply().await, "221 2.0.0 Bye\r\n");
    assert_eq!(fake.wait_for_messages(3, WAIT).await.len(), 3);
    let groups = fake.command_groups();
    assert_eq!(
        groups,
        [
            vec!["EHLO"],
            vec!["MAIL", "RCPT", "DATA"],
            vec!["<content>", "MAIL", "RCPT", "DATA"],
            vec!["<content>", "RSET", "MAIL", "RCPT", "DATA", "<content>"],
            vec!["NOOP", "QUIT"],
        ]
    );
    let violations = fake.pipelining_violations();
    assert_eq!(violations.len(), 2, "{violations:?}");
    assert!(violations[0].starts_with("DATA must be the last"), "{violations:?}");
    assert!(violations[1].starts_with("NOOP must be the last"), "{violations:?}");
}

#[tokio::test]
async fn without_pipelining_advertised_any_command_sent_ahead_is_a_violation() {
    let fake = FakeSmtp::builder().pipelining(false).start().await.unwrap();
    let mut raw = connect(&fake).await;
    assert!(!raw.cmd("EHLO c").await.contains("PIPELINING"));
    assert_eq!(raw.cmd("MAIL FROM:<a@example.com>").await, "250 2.1.0 Ok\r\n");
    assert!(fake.pipelining_violations().is_empty(), "one command at a time is legal");
    raw.send(b"RCPT TO:<b@example.org>\r\nRCPT TO:<c@example.org>\r\n").await;
    raw.reply().await;
    raw.reply().await;
    assert_eq!(fake.pipelining_violations().len(), 1, "{:?}", fake.pipelining_violations());
    assert!(fake.pipelining_violations()[0].contains("PIPELINING was not advertised"));
}

#[tokio::test]
async fn latency_holds_each_reply_and_open_connections_are_counted() {
    let fake = FakeSmtp::builder().latency(Duration::from_millis(30)).start().await.unwrap();
    let first = connect(&fake).await;
    let mut second = connect(&fake).await;
    assert_eq!((fake.load().current(), fake.load().peak()), (2, 2));
    let started = std::time::Instant::now();
    second.cmd("NOOP").await;
    assert!(started.elapsed() >= Duration::from_millis(30), "the reply waited for the latency");
    drop(first);
    second.cmd("QUIT").await;
    drop(second);
    for _ in 0..100 {
        if fake.load().current() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!((fake.load().current(), fake.load().peak()), (0, 2));
    assert_eq!(fake.load().arrivals(), [1, 2]);
}

//! The real binary: start-up banner, SIGTERM, logs, and a restart after `kill -9`.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use postmark_fake::http::FakeApi;

use crate::support::{message, send, wait_for};

const BIN: &str = env!("CARGO_BIN_EXE_postmark-relay");

/// The relay binary running as a child process, its stderr collected.
struct RelayProcess {
    child: Child,
    addr: SocketAddr,
    log: Arc<Mutex<String>>,
}

impl RelayProcess {
    async fn start(spool: &Path, flags: &[&str], env: &[(&str, &str)]) -> RelayProcess {
        let mut cmd = Command::new(BIN);
        cmd.arg("--listen").arg("127.0.0.1:0").arg("--spool").arg(spool).args(flags);
        cmd.env_clear().env("RUST_LOG", "info").env("PATH", std::env::var("PATH").unwrap_or_default());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let (child, log) = crate::support::spawn_logged(cmd);
        let addr = wait_for("the start-up banner", Duration::from_secs(30), || {
            let l = log.lock().unwrap();
            let start = l.find("listen=")? + "listen=".len();
            let end = l[start..].find(' ').map_or(l.len(), |e| start + e);
            l[start..end].parse::<SocketAddr>().ok()
        })
        .await;
        RelayProcess { child, addr, log }
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    fn signal(&self, sig: &str) {
        let status = Command::new("kill").arg(format!("-{sig}")).arg(self.child.id().to_string()).status().unwrap();
        assert!(status.success());
    }

    async fn wait_exit(&mut self, timeout: Duration) -> std::process::ExitStatus {
        wait_for("the relay to exit", timeout, || self.child.try_wait().unwrap()).await
    }
}

impl Drop for RelayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn without_credentials_the_banner_says_dry_run_and_sigterm_exits_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let mut relay = RelayProcess::start(&dir.path().join("spool"), &[], &[]).await;
    let log = relay.log();
    assert!(log.contains("DRY-RUN"), "{log}");
    assert!(log.contains("dry-run"), "{log}");
    let id = send(relay.addr, "sender@example.com", &["rcpt@example.com"], &message("bin")).await.expect("250");
    let json = dir.path().join("spool").join("dry-run").join(format!("{id}.json"));
    wait_for("dry-run output", Duration::from_secs(10), || json.exists().then_some(())).await;
    relay.signal("TERM");
    let status = relay.wait_exit(Duration::from_secs(20)).await;
    assert!(status.success(), "{status:?}");
    let log = relay.log();
    assert!(log.contains("shutting down") && log.contains("stopped"), "{log}");
}

#[tokio::test]
async fn logs_have_one_line_per_outcome_and_never_secrets_addresses_or_content() {
    let fake = FakeApi::start().await;
    let token = "tok-SECRET-0123456789";
    fake.set_server_token(token);
    let dir = tempfile::tempdir().unwrap();
    let url = fake.url();
    let mut relay =
        RelayProcess::start(&dir.path().join("spool"), &["--api-url", &url], &[("POSTMARK_SERVER_TOKEN", token)]).await;
    let raw =
        b"From: secret-sender@example.com\r\nTo: secret-rcpt@example.com\r\nSubject: SecretSubject\r\n\r\nSecretBody";
    let id = send(relay.addr, "secret-sender@example.com", &["secret-rcpt@example.com"], raw).await.expect("250");
    wait_for("delivery", Duration::from_secs(10), || (fake.emails().len() == 1).then_some(())).await;
    wait_for("the delivered line", Duration::from_secs(10), || relay.log().contains(" delivered").then_some(())).await;
    relay.signal("TERM");
    relay.wait_exit(Duration::from_secs(20)).await;
    let log = relay.log();
    let queued: Vec<&str> = log.lines().filter(|l| l.contains(&id) && l.contains(" queued")).collect();
    let delivered: Vec<&str> = log.lines().filter(|l| l.contains(&id) && l.contains(" delivered")).collect();
    assert_eq!(queued.len(), 1, "{log}");
    assert_eq!(delivered.len(), 1, "{log}");
    assert!(queued[0].contains("size=") && queued[0].contains("recipients=1"), "{}", queued[0]);
    assert!(delivered[0].contains("message_id=00000001-"), "{}", delivered[0]);
    for secret in [token, "secret-rcpt", "secret-sender", "SecretSubject", "SecretBody"] {
        assert!(!log.contains(secret), "{secret} appears in the log:\n{log}");
    }
}

#[tokio::test]
async fn a_restart_after_kill_9_delivers_every_acknowledged_message() {
    let fake = FakeApi::start().await;
    // Until the "restart", Postmark refuses the token: nothing is delivered, nothing bounces.
    fake.set_server_token("not-yet");
    let token = "restart-token";
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    let url = fake.url();
    let flags = ["--api-url", url.as_str(), "--max-retry-delay", "300ms"];
    let env = [("POSTMARK_SERVER_TOKEN", token)];
    let mut relay = RelayProcess::start(&spool, &flags, &env).await;
    let addr = relay.addr;

    // Eight clients send concurrently; the relay is killed while they are still sending.
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut tasks = Vec::new();
    for client in 0..8 {
        let acked = Arc::clone(&acked);
        tasks.push(tokio::spawn(async move {
            for n in 0..50 {
                let subject = format!("kill9-{client}-{n}");
                match send(addr, "sender@example.com", &["rcpt@example.com"], &message(&subject)).await {
                    Ok(_) => acked.lock().unwrap().push(subject),
                    Err(_) => break,
                }
            }
        }));
    }
    wait_for("some acknowledged messages", Duration::from_secs(30), || {
        (acked.lock().unwrap().len() >= 40).then_some(())
    })
    .await;
    relay.child.kill().unwrap(); // SIGKILL
    relay.child.wait().unwrap();
    for t in tasks {
        let _ = t.await;
    }
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() >= 40);
    assert!(fake.emails().is_empty());

    // Restart on the same spool; Postmark now accepts the token.
    fake.set_server_token(token);
    let relay = RelayProcess::start(&spool, &flags, &env).await;
    wait_for("every acknowledged message at Postmark", Duration::from_secs(60), || {
        let subjects: Vec<String> =
            fake.emails().iter().filter_map(|e| e["Subject"].as_str().map(String::from)).collect();
        acked.iter().all(|s| subjects.contains(s)).then_some(())
    })
    .await;
    let subjects: Vec<String> = fake.emails().iter().filter_map(|e| e["Subject"].as_str().map(String::from)).collect();
    for s in &acked {
        assert_eq!(subjects.iter().filter(|x| *x == s).count(), 1, "{s} delivered once");
    }
    wait_for("an empty queue", Duration::from_secs(20), || {
        crate::support::files(&spool.join("queue")).is_empty().then_some(())
    })
    .await;
    drop(relay);
}

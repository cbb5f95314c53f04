//! Observability (issue 7 §5, issue 14 §4): `--metrics ADDR` serves `/metrics` in the Prometheus
//! text format, `/readyz` and `/healthz`. Every test scrapes over a real socket and checks exact counter values after
//! real SMTP sessions and real deliveries to the fake Postmark.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::time::Duration;

use postmark_fake::http::{FakeApi, Fault};
use postmark_fake::smtp::{FakeSmtp, Fault as SmtpFault, Stage};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{Smtp, TestRelay, message, send, wait_for};

const TOKEN: &str = "metrics-server-token";

// ---------------------------------------------------------------------------------------------
// A minimal HTTP/1.1 client and a strict parser of the exposition format.

/// `GET path` with `Connection: close`; returns the status code, the Content-Type and the body.
async fn get(addr: SocketAddr, path: &str) -> (u16, String, String) {
    let mut stream = TcpStream::connect(addr).await.expect("connect to the metrics listener");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut raw)).await.expect("answer").unwrap();
    let text = String::from_utf8(raw).expect("UTF-8 answer");
    let (head, body) = text.split_once("\r\n\r\n").expect("a header section");
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("a status line");
    let content_type = head
        .lines()
        .find_map(|l| l.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case("content-type")).map(|(_, v)| v.trim()))
        .unwrap_or_default()
        .to_string();
    (status, content_type, body.to_string())
}

/// Every sample of a scrape: `name{labels}` (labels sorted, as written) → value.
type Samples = BTreeMap<String, f64>;

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// Parses the text exposition format (0.0.4) strictly: every line is `# HELP name text`,
/// `# TYPE name counter|gauge|histogram`, or `name{label="value",…} value`; each family is
/// declared once, before its samples; sample names belong to a declared family (histograms:
/// `_bucket` with `le`, `_sum`, `_count`); no series appears twice; histogram buckets are
/// cumulative and end with `le="+Inf"` equal to `_count`.
fn parse(text: &str) -> Samples {
    assert!(text.ends_with('\n'), "the exposition ends with a newline");
    let mut types: BTreeMap<String, String> = BTreeMap::new();
    let mut helped: HashSet<String> = HashSet::new();
    let mut samples = Samples::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').expect("HELP name text");
            assert!(valid_name(name) && !help.is_empty(), "{line}");
            assert!(helped.insert(name.to_string()), "HELP twice: {line}");
            assert!(!types.contains_key(name), "HELP after TYPE or samples: {line}");
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE name kind");
            assert!(valid_name(name), "{line}");
            assert!(["counter", "gauge", "histogram"].contains(&kind), "{line}");
            assert!(types.insert(name.to_string(), kind.to_string()).is_none(), "TYPE twice: {line}");
            continue;
        }
        assert!(!line.starts_with('#') && !line.is_empty(), "unexpected line {line:?}");
        let (series, value) = line.rsplit_once(' ').expect("name value");
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("value of {line:?}")),
        };
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => (name, Some(rest.strip_suffix('}').unwrap_or_else(|| panic!("labels of {line:?}")))),
            None => (series, None),
        };
        assert!(valid_name(name), "{line}");
        let mut label_names = Vec::new();
        if let Some(labels) = labels {
            for pair in labels.split(',') {
                let (k, v) = pair.split_once('=').unwrap_or_else(|| panic!("label {pair:?} in {line:?}"));
                assert!(valid_name(k) && !k.starts_with("__"), "{line}");
                let inner = v.strip_prefix('"').and_then(|v| v.strip_suffix('"')).expect("quoted label value");
                assert!(!inner.contains(['"', '\\', '\n']), "{line}");
                label_names.push(k);
            }
        }
        let family = types
            .get(name)
            .map(|kind| (name, kind.as_str()))
            .or_else(|| {
                ["_bucket", "_sum", "_count"].iter().find_map(|suffix| {
                    let base = name.strip_suffix(suffix)?;
                    types.get(base).filter(|k| *k == "histogram").map(|k| (base, k.as_str()))
                })
            })
            .unwrap_or_else(|| panic!("sample before its TYPE line: {line}"));
        assert!(helped.contains(family.0), "no HELP for {line}");
        if family.1 == "histogram" {
            assert_ne!(name, family.0, "a histogram has only _bucket, _sum and _count samples: {line}");
            assert_eq!(name.ends_with("_bucket"), label_names.contains(&"le"), "{line}");
        }
        if family.1 == "counter" {
            assert!(value >= 0.0, "{line}");
        }
        assert!(samples.insert(series.to_string(), value).is_none(), "series twice: {line}");
    }
    // Histograms: cumulative buckets, +Inf equals _count.
    for (family, kind) in &types {
        if kind != "histogram" {
            continue;
        }
        let counts: Vec<&String> = samples.keys().filter(|k| k.starts_with(&format!("{family}_count"))).collect();
        assert!(!counts.is_empty(), "{family} has no _count");
        for count_key in counts {
            let labels = count_key.trim_start_matches(&format!("{family}_count"));
            let path = labels.trim_start_matches('{').trim_end_matches('}');
            let prefix = format!("{family}_bucket{{{path},le=");
            let buckets: Vec<f64> = samples.iter().filter(|(k, _)| k.starts_with(&prefix)).map(|(_, v)| *v).collect();
            assert!(buckets.len() > 1, "{family} {path} has buckets");
            let inf = samples[&format!("{prefix}\"+Inf\"}}")];
            assert_eq!(inf, samples[count_key], "+Inf bucket equals _count for {path}");
            assert!(buckets.iter().all(|b| *b <= inf), "no bucket above +Inf for {path}");
        }
    }
    // Buckets are cumulative in the order written.
    let mut last: BTreeMap<String, f64> = BTreeMap::new();
    for line in text.lines().filter(|l| l.contains("_bucket{")) {
        let (series, value) = line.rsplit_once(' ').unwrap();
        let key = series.split(",le=").next().unwrap().to_string();
        let value: f64 = value.parse().unwrap();
        assert!(value >= *last.get(&key).unwrap_or(&0.0), "buckets not cumulative at {line}");
        last.insert(key, value);
    }
    samples
}

/// Scrapes `/metrics`, checking the status, the content type and the format.
async fn scrape(addr: SocketAddr) -> Samples {
    let (status, content_type, body) = get(addr, "/metrics").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
    parse(&body)
}

fn value(samples: &Samples, series: &str) -> f64 {
    *samples.get(series).unwrap_or_else(|| panic!("{series} missing from {samples:#?}"))
}

fn rejected(samples: &Samples, reason: &str) -> f64 {
    value(samples, &format!("postmark_relay_rejected_total{{reason=\"{reason}\"}}"))
}

/// Rejection reasons with a non-zero count.
fn rejections(samples: &Samples) -> BTreeMap<String, f64> {
    samples
        .iter()
        .filter_map(|(k, v)| {
            let reason = k.strip_prefix("postmark_relay_rejected_total{reason=\"")?.strip_suffix("\"}")?;
            (*v > 0.0).then(|| (reason.to_string(), *v))
        })
        .collect()
}

fn metrics_addr(relay: &TestRelay) -> SocketAddr {
    relay.relay.as_ref().unwrap().metrics_addr().expect("--metrics was given")
}

async fn api_relay(fake: &FakeApi, extra: &[&str]) -> TestRelay {
    let mut flags = vec!["--metrics", "127.0.0.1:0"];
    flags.extend_from_slice(extra);
    TestRelay::with_api(fake, TOKEN, &flags).await
}

/// Polls an async check every 20 ms until it returns `Some`, for at most 15 s.
async fn until<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn email_posts(fake: &FakeApi) -> usize {
    fake.requests().iter().filter(|r| r.path.starts_with("/email")).count()
}

// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn metrics_count_accepted_rejected_delivered_retried_and_dead_lettered_mail() {
    let fake = FakeApi::start().await;
    fake.set_server_token(TOKEN);
    fake.push_fault(Fault::api_error(503, 100, "Maintenance"));
    fake.reject_recipient("gone@example.com", 406);
    let mut relay = api_relay(&fake, &[]).await;
    let addr = metrics_addr(&relay);

    // Before any traffic: every series is there, at zero.
    let s = scrape(addr).await;
    assert_eq!(value(&s, "postmark_relay_accepted_messages_total"), 0.0);
    assert!(rejections(&s).is_empty(), "{:?}", rejections(&s));
    assert_eq!(value(&s, "postmark_relay_queue_depth"), 0.0);
    assert_eq!(value(&s, "postmark_relay_delivery_paused"), 0.0);
    assert_eq!(value(&s, "postmark_relay_upstream_request_duration_seconds_count{path=\"api\"}"), 0.0);
    assert_eq!(value(&s, "postmark_relay_last_upstream_success_timestamp_seconds"), 0.0);
    let idle = "queue_depth 0\noldest_pending_age_seconds 0.000\nlast_upstream_success_seconds_ago never\n";
    assert_eq!(get(addr, "/healthz").await, (200, "text/plain; charset=utf-8".into(), format!("alive\n{idle}")));
    assert_eq!(get(addr, "/readyz").await, (200, "text/plain; charset=utf-8".into(), format!("ready\n{idle}")));

    // One message retried once (503), then delivered.
    let first = message("retried");
    send(relay.addr, "sender@example.com", &["rcpt@example.com"], &first).await.expect("250");
    wait_for("delivery after the 503", Duration::from_secs(20), || (fake.emails().len() == 1).then_some(())).await;
    wait_for("the queue to empty", Duration::from_secs(5), || relay.files("queue").is_empty().then_some(())).await;

    // One message dead-lettered (ErrorCode 406).
    let second = message("inactive");
    let id = send(relay.addr, "sender@example.com", &["gone@example.com"], &second).await.expect("250");
    wait_for("the dead letter", Duration::from_secs(10), || {
        relay.files("dead").contains(&format!("{id}.msg")).then_some(())
    })
    .await;

    // Refusals, each once, in one raw session (and one more for the too-many-errors close).
    let (mut c, greeting) = Smtp::connect(relay.addr).await;
    assert!(greeting.starts_with("220"), "{greeting}");
    assert!(c.command("MAIL FROM:<a@example.com>").await.starts_with("503 5.5.1"), "sequence");
    assert!(c.command("EHLO client.example").await.starts_with("250"));
    assert!(c.command("BOGUS").await.starts_with("500 5.5.1"), "syntax");
    assert!(c.command("MAIL FROM:<a@example.com> SIZE=99999999").await.starts_with("552 5.3.4"), "size");
    assert!(c.command("MAIL FROM:<a@example.com>").await.starts_with("250"));
    assert!(c.command("RCPT TO:<a b@example.com>").await.starts_with("501 5.1.3"), "address");
    for i in 0..1000 {
        assert!(c.command(&format!("RCPT TO:<r{i}@example.com>")).await.starts_with("250"));
    }
    assert!(c.command("RCPT TO:<r1000@example.com>").await.starts_with("452 4.5.3"), "recipients");
    let forbidden = "From: a@example.com\r\nSubject: x\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n\
                     --b\r\nContent-Type: text/plain\r\n\r\nhi\r\n--b\r\nContent-Type: application/octet-stream\r\n\
                     Content-Disposition: attachment; filename=run.exe\r\n\r\nMZ\r\n--b--";
    assert!(c.data(format!("{forbidden}\r\n").as_bytes()).await.starts_with("554 5.6.1"), "attachment");
    assert!(c.command("MAIL FROM:<>").await.starts_with("250"));
    assert!(c.command("RCPT TO:<r@example.com>").await.starts_with("250"));
    assert!(c.data(b"Subject: no sender anywhere\r\n\r\nhi\r\n").await.starts_with("550 5.1.7"), "sender");
    assert!(c.command("QUIT").await.starts_with("221"));

    let s = scrape(addr).await;
    assert_eq!(value(&s, "postmark_relay_accepted_messages_total"), 2.0);
    // lettre ends the data with CRLF . CRLF; the CRLF belongs to the message.
    let bytes = (first.len() + 2 + second.len() + 2) as f64;
    assert_eq!(value(&s, "postmark_relay_accepted_bytes_total"), bytes);
    let want: BTreeMap<String, f64> = [
        ("address", 1.0),
        ("attachment", 1.0),
        ("recipients", 1.0),
        ("sequence", 1.0),
        ("sender", 1.0),
        ("size", 1.0),
        ("syntax", 1.0),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    assert_eq!(rejections(&s), want);
    assert_eq!(value(&s, "postmark_relay_delivered_total{path=\"api\"}"), 1.0);
    assert_eq!(value(&s, "postmark_relay_delivered_total{path=\"smtp\"}"), 0.0);
    assert_eq!(value(&s, "postmark_relay_deferred_total{class=\"transient\"}"), 1.0);
    assert_eq!(value(&s, "postmark_relay_deferred_total{class=\"paused\"}"), 0.0);
    assert_eq!(value(&s, "postmark_relay_dead_lettered_total{class=\"permanent\"}"), 1.0);
    assert_eq!(value(&s, "postmark_relay_dead_lettered_total{class=\"expired\"}"), 0.0);
    assert_eq!(value(&s, "postmark_relay_queue_depth"), 0.0);
    assert_eq!(value(&s, "postmark_relay_oldest_pending_age_seconds"), 0.0);
    // One observation per HTTP request: the 503, the success, the 406.
    assert_eq!(email_posts(&fake), 3);
    assert_eq!(value(&s, "postmark_relay_upstream_request_duration_seconds_count{path=\"api\"}"), 3.0);
    assert!(value(&s, "postmark_relay_upstream_request_duration_seconds_sum{path=\"api\"}") > 0.0);
    // Two lettre sessions and the raw one.
    assert_eq!(value(&s, "postmark_relay_sessions_total"), 3.0);
    until("connections_open back to 0", || async {
        (value(&scrape(addr).await, "postmark_relay_connections_open") == 0.0).then_some(())
    })
    .await;

    // Too many errors: every bad command counts, and so does the closing 421.
    let (mut c, _) = Smtp::connect(relay.addr).await;
    for _ in 0..19 {
        assert!(c.command("BOGUS").await.starts_with("500"));
    }
    c.send(b"BOGUS\r\n").await;
    assert!(c.reply().await.starts_with("500"));
    assert!(c.reply().await.starts_with("421 4.7.0"));
    let s = scrape(addr).await;
    assert_eq!(rejected(&s, "syntax"), 21.0);
    assert_eq!(rejected(&s, "too_many_errors"), 1.0);

    // Unknown paths are 404; only GET is served.
    assert_eq!(get(addr, "/").await.0, 404);
    assert_eq!(get(addr, "/metrics/extra").await.0, 404);
    relay.stop().await;
}

#[tokio::test]
async fn queue_gauges_move_and_both_probes_report_a_paused_delivery_without_failing() {
    let fake = FakeApi::start().await;
    // The relay's token is not the one the fake expects: 401, ErrorCode 10, delivery pauses.
    fake.set_server_token("the-rotated-token");
    let mut relay = api_relay(&fake, &[]).await;
    let addr = metrics_addr(&relay);
    assert_eq!(get(addr, "/healthz").await.0, 200);

    let before = postmark_relay::clock::now_ms();
    send(relay.addr, "sender@example.com", &["rcpt@example.com"], &message("paused-1")).await.expect("250");
    send(relay.addr, "sender@example.com", &["rcpt@example.com"], &message("paused-2")).await.expect("250");
    // A pause is reported, but neither probe fails: restarting the relay or sending it no mail
    // would not fix a refused token, and the mail is kept meanwhile.
    let body = until("healthz to report the pause", || async {
        let (status, _, body) = get(addr, "/healthz").await;
        assert_eq!(status, 200, "{body}");
        body.contains("delivery_paused ").then_some(body)
    })
    .await;
    assert!(body.starts_with("alive\nqueue_depth 2\noldest_pending_age_seconds "), "{body}");
    assert!(body.contains("\nlast_upstream_success_seconds_ago never\n"), "{body}");
    let paused = body.lines().last().unwrap();
    assert!(paused.contains("401") || paused.contains("ErrorCode 10"), "{body}");
    assert!(!body.contains(TOKEN), "the token never shows: {body}");
    let (status, _, ready) = get(addr, "/readyz").await;
    assert_eq!(status, 200, "{ready}");
    assert!(ready.starts_with("ready\nqueue_depth 2\n") && ready.contains("\ndelivery_paused "), "{ready}");

    let s = scrape(addr).await;
    assert_eq!(value(&s, "postmark_relay_delivery_paused"), 1.0);
    assert_eq!(value(&s, "postmark_relay_queue_depth"), 2.0);
    assert!(value(&s, "postmark_relay_deferred_total{class=\"paused\"}") >= 1.0);
    assert_eq!(value(&s, "postmark_relay_delivered_total{path=\"api\"}"), 0.0);
    assert_eq!(value(&s, "postmark_relay_dead_lettered_total{class=\"permanent\"}"), 0.0, "a 401 never bounces mail");
    // The age is measured from the first message's arrival, at scrape time.
    let age = value(&s, "postmark_relay_oldest_pending_age_seconds");
    let bound = (postmark_relay::clock::now_ms() - before) as f64 / 1000.0;
    assert!(age > 0.0 && age <= bound + 0.001, "age {age} within {bound}");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let later = value(&scrape(addr).await, "postmark_relay_oldest_pending_age_seconds");
    assert!(later >= age + 1.0, "the age grows between scrapes: {age} then {later}");

    // The operator fixes the token: the pause ends by itself, both messages go out.
    fake.set_server_token(TOKEN);
    wait_for("both deliveries", Duration::from_secs(20), || (fake.emails().len() == 2).then_some(())).await;
    let s = until("the gauges to settle", || async {
        let s = scrape(addr).await;
        (value(&s, "postmark_relay_queue_depth") == 0.0).then_some(s)
    })
    .await;
    assert_eq!(value(&s, "postmark_relay_oldest_pending_age_seconds"), 0.0);
    assert_eq!(value(&s, "postmark_relay_delivery_paused"), 0.0);
    assert_eq!(value(&s, "postmark_relay_delivered_total{path=\"api\"}"), 2.0);
    let last = value(&s, "postmark_relay_last_upstream_success_timestamp_seconds");
    let now = postmark_relay::clock::now_ms() as f64 / 1000.0;
    assert!(last > now - 30.0 && last <= now, "last success {last}, now {now}");
    let (status, _, body) = get(addr, "/healthz").await;
    assert_eq!(status, 200);
    assert!(body.starts_with("alive\nqueue_depth 0\noldest_pending_age_seconds 0.000\n"), "{body}");
    let ago: f64 = body
        .lines()
        .find_map(|l| l.strip_prefix("last_upstream_success_seconds_ago "))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("a last success age: {body}"));
    assert!((0.0..30.0).contains(&ago), "{body}");
    assert!(!body.contains("delivery_paused"), "{body}");
    relay.stop().await;
}

/// Makes the spool's `tmp/` unusable in a way that also stops root (tests run as root, where
/// `chmod 0500` does not stop writes): `tmp` becomes a regular file.
fn break_tmp(spool: &std::path::Path) {
    std::fs::rename(spool.join("tmp"), spool.join("tmp.saved")).unwrap();
    std::fs::write(spool.join("tmp"), b"not a directory").unwrap();
}

fn repair_tmp(spool: &std::path::Path) {
    std::fs::remove_file(spool.join("tmp")).unwrap();
    std::fs::rename(spool.join("tmp.saved"), spool.join("tmp")).unwrap();
}

#[tokio::test]
async fn readyz_is_503_while_the_spool_cannot_be_written_and_the_client_gets_451() {
    let mut relay = TestRelay::start(&["--dry-run", "--metrics", "127.0.0.1:0"], &[]).await;
    let addr = metrics_addr(&relay);
    assert_eq!(get(addr, "/readyz").await.0, 200);

    break_tmp(&relay.spool);
    // Within the one-second cache, then for real.
    let body = until("readyz to see the spool", || async {
        let (status, _, body) = get(addr, "/readyz").await;
        (status == 503).then_some(body)
    })
    .await;
    assert!(body.starts_with("not ready\nspool not writable: cannot create"), "{body}");
    assert!(
        body.ends_with("\nqueue_depth 0\noldest_pending_age_seconds 0.000\nlast_upstream_success_seconds_ago never\n"),
        "{body}"
    );
    // Alive all the same: a restart would not give the disk back.
    assert_eq!(get(addr, "/healthz").await.0, 200);
    // The probe's verdict matches what a client gets: no 250 for mail not on disk.
    let err = send(relay.addr, "sender@example.com", &["rcpt@example.com"], &message("unwritable")).await.unwrap_err();
    assert!(err.to_string().contains("451"), "{err}");
    let s = scrape(addr).await;
    assert_eq!(rejected(&s, "spool_error"), 1.0);
    assert_eq!(value(&s, "postmark_relay_accepted_messages_total"), 0.0);

    repair_tmp(&relay.spool);
    until("readyz to recover", || async { (get(addr, "/readyz").await.0 == 200).then_some(()) }).await;
    send(relay.addr, "sender@example.com", &["rcpt@example.com"], &message("writable")).await.expect("250");
    wait_for("the dry-run delivery", Duration::from_secs(10), || relay.files("queue").is_empty().then_some(())).await;
    let s = until("the delivery to be counted", || async {
        let s = scrape(addr).await;
        (value(&s, "postmark_relay_delivered_total{path=\"dry_run\"}") == 1.0).then_some(s)
    })
    .await;
    assert_eq!(value(&s, "postmark_relay_accepted_messages_total"), 1.0);
    assert_eq!(value(&s, "postmark_relay_upstream_request_duration_seconds_count{path=\"dry_run\"}"), 1.0);
    // The probe leaves nothing behind.
    assert_eq!(std::fs::read_dir(relay.spool.join("tmp")).unwrap().count(), 0);
    relay.stop().await;
}

#[tokio::test]
async fn connection_gauges_and_the_connection_limit_are_counted() {
    let mut relay = TestRelay::start(&["--dry-run", "--max-connections", "1", "--metrics", "127.0.0.1:0"], &[]).await;
    let addr = metrics_addr(&relay);
    let (mut first, greeting) = Smtp::connect(relay.addr).await;
    assert!(greeting.starts_with("220"), "{greeting}");
    let s = scrape(addr).await;
    assert_eq!(value(&s, "postmark_relay_connections_open"), 1.0);
    assert_eq!(value(&s, "postmark_relay_sessions_total"), 1.0);

    let (_second, refused) = Smtp::connect(relay.addr).await;
    assert!(refused.starts_with("421"), "{refused}");
    let s = scrape(addr).await;
    assert_eq!(rejected(&s, "connection_limit"), 1.0);
    assert_eq!(value(&s, "postmark_relay_sessions_total"), 1.0, "a refused connection is no session");

    assert!(first.command("QUIT").await.starts_with("221"));
    until("connections_open back to 0", || async {
        (value(&scrape(addr).await, "postmark_relay_connections_open") == 0.0).then_some(())
    })
    .await;
    relay.stop().await;
}

#[tokio::test]
async fn smtp_path_counts_per_recipient_outcomes_and_transaction_latency() {
    let fake = FakeSmtp::builder().credentials("access-key", "secret-key").start().await.unwrap();
    fake.inject(SmtpFault::new(Stage::Rcpt, 450, "4.2.1", "Try later").for_recipient("soft@example.com"));
    fake.inject(SmtpFault::new(Stage::Rcpt, 550, "5.1.1", "No such user").for_recipient("hard@example.com"));
    let mut relay = TestRelay::with_smtp(
        &fake,
        &["--max-retry-delay", "200ms", "--metrics", "127.0.0.1:0"],
        &[("POSTMARK_SMTP_ACCESS_KEY", "access-key"), ("POSTMARK_SMTP_SECRET_KEY", "secret-key")],
    )
    .await;
    let addr = metrics_addr(&relay);
    send(relay.addr, "s@example.com", &["ok@example.com", "soft@example.com", "hard@example.com"], &message("split"))
        .await
        .expect("250");
    fake.wait_for_messages(2, Duration::from_secs(20)).await;
    let s = until("the retry to be counted", || async {
        let s = scrape(addr).await;
        (value(&s, "postmark_relay_queue_depth") == 0.0).then_some(s)
    })
    .await;
    // First attempt: ok delivered, soft deferred, hard a dead copy; second attempt: soft delivered.
    assert_eq!(value(&s, "postmark_relay_delivered_total{path=\"smtp\"}"), 2.0);
    assert_eq!(value(&s, "postmark_relay_deferred_total{class=\"recipients\"}"), 1.0);
    assert_eq!(value(&s, "postmark_relay_dead_lettered_total{class=\"recipients\"}"), 1.0);
    assert_eq!(value(&s, "postmark_relay_upstream_request_duration_seconds_count{path=\"smtp\"}"), 2.0);
    assert_eq!(value(&s, "postmark_relay_upstream_request_duration_seconds_count{path=\"api\"}"), 0.0);
    relay.stop().await;
}

#[tokio::test]
async fn without_the_flag_there_is_no_metrics_listener() {
    let mut relay = TestRelay::start(&["--dry-run"], &[]).await;
    assert_eq!(relay.relay.as_ref().unwrap().metrics_addr(), None);
    relay.stop().await;
}

#[test]
fn the_parser_refuses_malformed_expositions() {
    let good = "# HELP x_total X.\n# TYPE x_total counter\nx_total{a=\"b\"} 1\n";
    assert_eq!(parse(good)["x_total{a=\"b\"}"], 1.0);
    for bad in [
        "x_total 1\n",                             // no TYPE
        "# HELP x X.\n# TYPE x gauge\nx one\n",    // not a number
        "# HELP x X.\n# TYPE x gauge\nx{a=b} 1\n", // unquoted label
        "# HELP x X.\n# TYPE x gauge\nx 1\nx 2\n", // series twice
        "# HELP x X.\n# TYPE x gauge\nx 1",        // no final newline
        // buckets not cumulative
        "# HELP h H.\n# TYPE h histogram\nh_bucket{p=\"a\",le=\"1\"} 2\nh_bucket{p=\"a\",le=\"+Inf\"} 2\nh_sum{p=\"a\"} 1\nh_count{p=\"a\"} 2\nh_bucket{p=\"a\",le=\"5\"} 1\n",
        // +Inf differs from _count
        "# HELP h H.\n# TYPE h histogram\nh_bucket{p=\"a\",le=\"1\"} 1\nh_bucket{p=\"a\",le=\"+Inf\"} 1\nh_sum{p=\"a\"} 1\nh_count{p=\"a\"} 2\n",
    ] {
        assert!(std::panic::catch_unwind(|| parse(bad)).is_err(), "accepted: {bad:?}");
    }
}

/// `postmark-relay healthcheck` (the binary) with a clean environment plus `env`.
async fn healthcheck(args: &[&str], env: &[(&str, String)]) -> (i32, String) {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
    tokio::task::spawn_blocking(move || {
        let out = std::process::Command::new(crate::binary::BIN)
            .arg("healthcheck")
            .args(&args)
            .env_clear()
            .envs(env)
            .stdin(std::process::Stdio::null())
            .output()
            .expect("run postmark-relay healthcheck");
        (out.status.code().expect("an exit status"), String::from_utf8_lossy(&out.stdout).into_owned())
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn the_healthcheck_command_follows_readyz_and_healthz() {
    let mut relay = TestRelay::start(&["--dry-run", "--metrics", "127.0.0.1:0"], &[]).await;
    let addr = metrics_addr(&relay);
    // The default: /readyz on RELAY_METRICS.
    let (code, out) = healthcheck(&[], &[("RELAY_METRICS", addr.to_string())]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with(&format!("http://{addr}/readyz: HTTP 200\nready\nqueue_depth 0\n")), "{out}");
    let (code, out) = healthcheck(&["--url", &format!("http://{addr}/healthz")], &[]).await;
    assert_eq!((code, out.lines().nth(1)), (0, Some("alive")), "{out}");

    break_tmp(&relay.spool);
    let out = until("the healthcheck to fail", || async {
        let (code, out) = healthcheck(&[], &[("RELAY_METRICS", addr.to_string())]).await;
        (code == 1).then_some(out)
    })
    .await;
    assert!(out.starts_with(&format!("http://{addr}/readyz: HTTP 503\nnot ready\nspool not writable: ")), "{out}");
    repair_tmp(&relay.spool);
    until("the healthcheck to pass again", || async {
        (healthcheck(&[], &[("RELAY_METRICS", addr.to_string())]).await.0 == 0).then_some(())
    })
    .await;

    relay.stop().await;
    let (code, out) = healthcheck(&[], &[("RELAY_METRICS", addr.to_string())]).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("cannot connect"), "{out}");
    // No listener configured: a usage error, not a silent pass.
    let (code, _) = healthcheck(&[], &[]).await;
    assert_eq!(code, 2);
}

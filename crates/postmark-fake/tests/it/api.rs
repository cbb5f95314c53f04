//! `FakeApi`'s send endpoints answer like Postmark: HTTP 422 with `{ErrorCode, Message}` for a single send, HTTP 200
//! with one result per message for a batch (good messages still accepted and recorded), 413 / 415 for the request.

use postmark_fake::http::{FakeApi, Fault};
use postmark_fake::rules::{Limits, Rules};
use serde_json::{Value, json};

const TOKEN: &str = "server-token";

async fn fake() -> FakeApi {
    let fake = FakeApi::start().await;
    fake.set_server_token(TOKEN);
    fake
}

/// An answer: HTTP status, `Content-Type`, body (JSON when it parses).
#[derive(Debug)]
struct Answer {
    status: u16,
    content_type: String,
    body: Value,
    text: String,
}

impl Answer {
    fn code(&self) -> i64 {
        self.body["ErrorCode"].as_i64().unwrap_or(-1)
    }

    /// The ErrorCode of each element of a batch answer.
    fn codes(&self) -> Vec<i64> {
        self.body
            .as_array()
            .expect("a batch answer is an array")
            .iter()
            .map(|a| a["ErrorCode"].as_i64().unwrap())
            .collect()
    }
}

/// POSTs `body` with the headers Postmark requires.
async fn post(fake: &FakeApi, path: &str, body: &Value) -> Answer {
    post_raw(fake, path, Some("application/json"), Some("application/json"), body.to_string().into_bytes()).await
}

async fn post_raw(
    fake: &FakeApi,
    path: &str,
    content_type: Option<&str>,
    accept: Option<&str>,
    body: Vec<u8>,
) -> Answer {
    let mut request = reqwest::Client::new()
        .post(format!("{}{path}", fake.url()))
        .header("X-Postmark-Server-Token", TOKEN)
        .body(body);
    if let Some(ct) = content_type {
        request = request.header("Content-Type", ct);
    }
    if let Some(accept) = accept {
        request = request.header("Accept", accept);
    }
    let response = request.send().await.expect("the fake answers");
    let status = response.status().as_u16();
    let content_type =
        response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let text = response.text().await.expect("a body");
    Answer { status, content_type, body: serde_json::from_str(&text).unwrap_or(Value::Null), text }
}

fn message(to: &str) -> Value {
    json!({"From": "Sender <sender@example.com>", "To": to, "Subject": "Hi", "TextBody": "Hello."})
}

fn scanner_message() -> Value {
    // Issue 11: what the relay made of a scanner's attachment-only message.
    json!({
        "From": "scanner@example.com",
        "To": "office@example.com",
        "Subject": "Scan",
        "TextBody": "",
        "Attachments": [{"Name": "scan.pdf", "Content": "JVBERi0=", "ContentType": "application/pdf"}],
    })
}

#[tokio::test]
async fn a_good_message_is_accepted_and_recorded() {
    let fake = fake().await;
    let answer = post(&fake, "/email", &message("rcpt@example.com")).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.code(), 0);
    assert_eq!(answer.body["Message"], "OK");
    assert_eq!(answer.body["To"], "rcpt@example.com");
    assert!(answer.body["MessageID"].as_str().is_some_and(|id| !id.is_empty()));
    assert_eq!(fake.emails(), [message("rcpt@example.com")]);
}

#[tokio::test]
async fn an_attachment_only_message_with_an_empty_body_is_422_300_and_not_recorded() {
    let fake = fake().await;
    let answer = post(&fake, "/email", &scanner_message()).await;
    assert_eq!(answer.status, 422);
    assert!(answer.content_type.starts_with("application/json"), "{answer:?}");
    assert_eq!(answer.body, json!({"ErrorCode": 300, "Message": "Provide either email TextBody or HtmlBody or both."}));
    assert!(fake.emails().is_empty());
    // The recorded request is what was posted, so a test can inspect what the relay sent.
    assert_eq!(fake.requests()[0].json(), Some(scanner_message()));
}

#[tokio::test]
async fn single_sends_answer_422_with_the_rule_s_error_code() {
    let fake = fake().await;
    let cases: Vec<(Value, i64)> = vec![
        (message("Jane O'Brien <jane@example.com>"), 300),
        (message("a..b@example.com"), 300),
        (message(&(0..51).map(|i| format!("r{i}@example.com")).collect::<Vec<_>>().join(",")), 300),
        (json!({"From": "s@example.com", "To": "r@example.com", "TextBody": "x", "Tag": "t".repeat(1001)}), 300),
        (
            json!({"From": "s@example.com", "To": "r@example.com", "TextBody": "x", "Metadata": {"k": "v".repeat(81)}}),
            300,
        ),
        (
            json!({"From": "s@example.com", "To": "r@example.com", "TextBody": "x",
                   "Attachments": [{"Name": "invoice.pdf.exe", "Content": "TVo=", "ContentType": "application/octet-stream"}]}),
            411,
        ),
        (json!({"From": "s@example.com", "To": "r@example.com", "TextBody": "x", "TrackOpens": "yes"}), 403),
        (json!({"From": "s@example.com", "To": "r@example.com", "Textbody": "x"}), 403),
    ];
    for (message, code) in cases {
        let answer = post(&fake, "/email", &message).await;
        assert_eq!((answer.status, answer.code()), (422, code), "{message}: {answer:?}");
        assert!(answer.body["Message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    assert!(fake.emails().is_empty(), "nothing refused is recorded");
}

#[tokio::test]
async fn request_level_refusals() {
    let fake = fake().await;
    let body = message("rcpt@example.com").to_string().into_bytes();
    let no_accept = post_raw(&fake, "/email", Some("application/json"), None, body.clone()).await;
    assert_eq!((no_accept.status, no_accept.code()), (422, 409), "{no_accept:?}");
    let form =
        post_raw(&fake, "/email", Some("application/x-www-form-urlencoded"), Some("application/json"), body.clone())
            .await;
    assert_eq!(form.status, 415);
    assert!(!form.text.contains("ErrorCode"), "a 415 carries no ErrorCode: {form:?}");
    let no_ct = post_raw(&fake, "/email", None, Some("application/json"), body.clone()).await;
    assert_eq!(no_ct.status, 415);
    let not_json =
        post_raw(&fake, "/email", Some("application/json"), Some("application/json"), b"{From:".to_vec()).await;
    assert_eq!((not_json.status, not_json.code()), (422, 402));
    let mut big = message("rcpt@example.com");
    big["TextBody"] = json!("a".repeat(10_000_000));
    let too_big = post(&fake, "/email", &big).await;
    assert_eq!(too_big.status, 413, "over 10 MB");
    assert!(!too_big.text.contains("ErrorCode"), "HTTP 413 is not ErrorCode 413 (account may not send)");
    let ok = post_raw(&fake, "/email", Some("application/json; charset=utf-8"), Some("application/json"), body).await;
    assert_eq!(ok.status, 200);
    assert_eq!(fake.emails().len(), 1);
}

#[tokio::test]
async fn a_batch_answers_200_per_message_and_keeps_the_good_ones() {
    let fake = fake().await;
    fake.reject_recipient("gone@example.com", 406);
    let batch = json!([
        message("one@example.com"),
        scanner_message(),
        message("gone@example.com"),
        message("not an address"),
        {"From": "s@example.com", "To": "r@example.com", "TextBody": "x",
         "Attachments": [{"Name": "run.BAT", "Content": "", "ContentType": "text/plain"}]},
        42,
        message("five@example.com"),
    ]);
    let answer = post(&fake, "/email/batch", &batch).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.codes(), [0, 300, 406, 300, 411, 403, 0]);
    let items = answer.body.as_array().unwrap();
    assert!(items[0]["MessageID"].is_string());
    assert!(items[1]["Message"].as_str().unwrap().contains("TextBody or HtmlBody"));
    assert!(items[2]["Message"].as_str().unwrap().contains("gone@example.com"));
    assert_eq!(fake.emails(), [message("one@example.com"), message("five@example.com")]);
}

#[tokio::test]
async fn a_batch_over_500_messages_is_refused_whole_and_over_50_mb_is_413() {
    let fake = fake().await;
    let batch = Value::Array(vec![message("r@example.com"); 501]);
    let answer = post(&fake, "/email/batch", &batch).await;
    assert_eq!((answer.status, answer.code()), (422, 410));
    assert!(fake.emails().is_empty());
    let answer = post(&fake, "/email/batch", &Value::Array(vec![message("r@example.com"); 500])).await;
    assert_eq!(answer.codes().len(), 500);
    assert_eq!(fake.emails().len(), 500);

    // Limits are configurable, so the 50 MB rule is shown on a small batch.
    let small = Rules { limits: Limits { max_batch_bytes: 1000, ..Limits::default() }, ..Rules::default() };
    fake.set_rules(small);
    let answer = post(&fake, "/email/batch", &Value::Array(vec![message("r@example.com"); 20])).await;
    assert_eq!(answer.status, 413);
}

#[tokio::test]
async fn a_message_over_10_mb_inside_a_batch_is_refused_on_its_own() {
    let fake = fake().await;
    let mut big = message("r@example.com");
    big["Attachments"] =
        json!([{"Name": "big.pdf", "Content": "QUFB".repeat(2_500_001), "ContentType": "application/pdf"}]);
    let answer = post(&fake, "/email/batch", &json!([big, message("r@example.com")])).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.codes(), [300, 0]);
}

#[tokio::test]
async fn template_sends_need_exactly_one_template_but_no_body() {
    let fake = fake().await;
    let templated =
        |to: &str| json!({"From": "s@example.com", "To": to, "TemplateAlias": "welcome", "TemplateModel": {}});
    let answer = post(&fake, "/email/withTemplate", &templated("r@example.com")).await;
    assert_eq!((answer.status, answer.code()), (200, 0), "{answer:?}");
    let mut both = templated("r@example.com");
    both["TemplateId"] = json!(7);
    let answer = post(&fake, "/email/withTemplate", &both).await;
    assert_eq!((answer.status, answer.code()), (422, 403));
    let answer = post(&fake, "/email/withTemplate", &templated("a@@example.com")).await;
    assert_eq!((answer.status, answer.code()), (422, 300));

    let batch = json!({"Messages": [templated("one@example.com"), both, templated("two@example.com"), message("x@example.com")]});
    let answer = post(&fake, "/email/batchWithTemplates", &batch).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.codes(), [0, 403, 0, 403], "a plain message is not a template send");
    let recorded: Vec<String> = fake.emails().iter().map(|e| e["To"].as_str().unwrap_or_default().to_owned()).collect();
    assert_eq!(recorded, ["r@example.com", "one@example.com", "two@example.com"]);
    let answer = post(&fake, "/email/batchWithTemplates", &json!([templated("r@example.com")])).await;
    assert_eq!((answer.status, answer.code()), (422, 403), "the batch body is an object with Messages");
}

#[tokio::test]
async fn verified_and_unconfirmed_senders() {
    let fake = fake().await;
    let from = |f: &str| json!({"From": f, "To": "r@example.com", "TextBody": "x"});
    assert_eq!(post(&fake, "/email", &from("anyone@anywhere.example")).await.code(), 0, "no list: every sender");
    fake.set_verified_senders(&["example.com", "ops@example.org"]);
    fake.set_unconfirmed_senders(&["new@example.com"]);
    assert_eq!(post(&fake, "/email", &from("Team <team@example.com>")).await.code(), 0);
    assert_eq!(post(&fake, "/email", &from("ops@example.org")).await.code(), 0);
    let answer = post(&fake, "/email", &from("dev@example.org")).await;
    assert_eq!((answer.status, answer.code()), (422, 400));
    let answer = post(&fake, "/email", &from("new@example.com")).await;
    assert_eq!((answer.status, answer.code()), (422, 401));
    let batch = post(&fake, "/email/batch", &json!([from("a@example.com"), from("b@elsewhere.example")])).await;
    assert_eq!(batch.codes(), [0, 400]);
    assert_eq!(fake.rules().verified_senders.map(|v| v.len()), Some(2));
}

#[tokio::test]
async fn canned_answers_faults_and_the_token_come_before_the_rules() {
    let fake = fake().await;
    // The token first: a bad token is 401 / 10 whatever the message.
    let answer = reqwest::Client::new()
        .post(format!("{}/email", fake.url()))
        .header("X-Postmark-Server-Token", "wrong")
        .header("Content-Type", "application/json")
        .header("Accept", "application/json")
        .body(scanner_message().to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 401);
    // A fault wins over the rules.
    fake.push_fault(Fault::api_error(503, 100, "Maintenance"));
    let answer = post(&fake, "/email", &scanner_message()).await;
    assert_eq!((answer.status, answer.code()), (503, 100));
    // A canned answer too (the contract tests rely on it).
    fake.respond("POST", "/email", 200, r#"{"ErrorCode": 0, "Message": "canned"}"#);
    let answer = post(&fake, "/email", &scanner_message()).await;
    assert_eq!((answer.status, answer.body["Message"].as_str()), (200, Some("canned")));
    assert!(fake.emails().is_empty(), "canned answers record no email");
    // Other endpoints are not send endpoints.
    let other = post(&fake, "/email/bulk", &scanner_message()).await;
    assert_eq!(other.status, 404);
}

#[tokio::test]
async fn latency_holds_answers_and_requests_in_flight_are_counted() {
    let fake = fake().await;
    fake.set_latency(std::time::Duration::from_millis(200));
    let client = reqwest::Client::new();
    let send = |n: usize| {
        let request = client
            .post(format!("{}/email", fake.url()))
            .header("X-Postmark-Server-Token", TOKEN)
            .header("Accept", "application/json")
            .json(
                &json!({"From": "a@example.com", "To": format!("r{n}@example.org"), "Subject": "s", "TextBody": "b"}),
            );
        async move { request.send().await.unwrap().status().as_u16() }
    };
    // Three at once: each is held for the latency, so all three are in flight together.
    let statuses = futures_join3(send(1), send(2), send(3)).await;
    assert_eq!(statuses, [200, 200, 200]);
    assert_eq!((fake.load().current(), fake.load().peak()), (0, 3));
    assert_eq!(fake.load().arrivals().iter().max(), Some(&3));
    fake.load().reset_peak();
    fake.set_latency(std::time::Duration::ZERO);
    assert_eq!(send(4).await, 200);
    assert_eq!(fake.load().peak(), 1);
}

async fn futures_join3<T>(
    a: impl std::future::Future<Output = T>,
    b: impl std::future::Future<Output = T>,
    c: impl std::future::Future<Output = T>,
) -> [T; 3] {
    let (a, b, c) = tokio::join!(a, b, c);
    [a, b, c]
}

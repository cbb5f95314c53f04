//! Error decoding, retry classification, batch results and secret hygiene, against the fake Postmark.

use postmark_core::{Error, ErrorCode, TransportFailure};
use postmark_fake::http::{FakeApi, Fault};
use postmark_server::{BatchItemError, ServerClient, types};
use serde_json::json;

const TOKEN: &str = "srv-secret-1234";

async fn setup() -> (FakeApi, ServerClient) {
    let fake = FakeApi::start().await;
    fake.set_server_token(TOKEN);
    let client = ServerClient::builder(TOKEN).base_url(fake.url()).build().expect("client");
    (fake, client)
}

fn email(to: &str) -> types::SendEmailRequest {
    types::SendEmailRequest::builder()
        .from("sender@example.com")
        .to(to)
        .subject(Some("Hi".to_string()))
        .text_body(Some("Hello".to_string()))
        .try_into()
        .expect("valid request")
}

#[tokio::test]
async fn wrong_token_is_401_error_code_10_and_not_retryable() {
    let fake = FakeApi::start().await;
    fake.set_server_token("the-right-one");
    let client = ServerClient::builder("the-wrong-one").base_url(fake.url()).build().expect("client");
    let err = Error::from(client.send_email().body(email("a@example.com")).send().await.expect_err("401"));
    assert_eq!(err.status(), Some(401));
    assert_eq!(err.error_code(), Some(ErrorCode::BadOrMissingApiToken));
    assert!(err.is_unauthorized());
    assert!(!err.is_retryable());
    assert!(!format!("{err} {err:?}").contains("the-wrong-one"), "token leaked into the error");
}

#[tokio::test]
async fn invalid_request_422_300_is_permanent() {
    let (fake, client) = setup().await;
    fake.push_fault(Fault::api_error(422, 300, "Invalid 'To' address: 'nope'."));
    let err = Error::from(client.send_email().body(email("nope")).send().await.expect_err("422"));
    match &err {
        Error::Api { status, code, message, errors, request_id, operation } => {
            assert_eq!(*status, 422);
            assert!(errors.is_empty(), "no `Errors` in the body: {errors:?}");
            assert_eq!(request_id.as_deref(), Some(fake.requests()[0].request_id.as_str()));
            assert_eq!(*code, ErrorCode::InvalidEmailRequest);
            assert!(message.contains("Invalid 'To'"));
            assert_eq!(operation.as_ref().map(|o| o.id.as_str()), Some("send_email"));
            assert_eq!(operation.as_ref().map(|o| o.method.as_str()), Some("POST"));
        }
        other => panic!("expected Api error, got {other:?}"),
    }
    assert!(!err.is_retryable());
    assert!(!err.is_inactive_recipient());
}

#[tokio::test]
async fn inactive_recipient_422_406_is_recognised_by_code() {
    let (fake, client) = setup().await;
    fake.reject_recipient("gone@example.com", 406);
    let err = Error::from(client.send_email().body(email("gone@example.com")).send().await.expect_err("406"));
    assert!(err.is_inactive_recipient());
    assert!(!err.is_retryable());
    // Keyed on the code, not the text: the same text with another code is not "inactive".
    fake.push_fault(Fault::api_error(422, 300, "You tried to send to recipient(s) that have been marked as inactive."));
    let err = Error::from(client.send_email().body(email("x@example.com")).send().await.expect_err("300"));
    assert!(!err.is_inactive_recipient());
}

#[tokio::test]
async fn rate_limit_429_is_retryable_even_for_sends() {
    let (fake, client) = setup().await;
    fake.push_fault(Fault::api_error(429, 429, "Rate limit exceeded."));
    let err = Error::from(client.send_email().body(email("a@example.com")).send().await.expect_err("429"));
    assert_eq!(err.status(), Some(429));
    assert!(err.is_retryable());
}

#[tokio::test]
async fn server_error_500_retries_reads_but_never_sends() {
    let (fake, client) = setup().await;
    fake.push_fault(Fault::api_error(500, 0, "Internal Server Error"));
    let send = Error::from(client.send_email().body(email("a@example.com")).send().await.expect_err("500"));
    assert_eq!(send.status(), Some(500));
    assert!(!send.is_retryable(), "a send that may have reached Postmark is never retried");
    fake.push_fault(Fault::api_error(500, 0, "Internal Server Error"));
    let read = Error::from(client.get_server().send().await.expect_err("500"));
    assert!(read.is_retryable(), "an idempotent read may be retried");
}

#[tokio::test]
async fn maintenance_503_error_code_100_is_retryable() {
    let (fake, client) = setup().await;
    fake.push_fault(Fault::api_error(503, 100, "The API is offline for maintenance."));
    let err = Error::from(client.send_email().body(email("a@example.com")).send().await.expect_err("503"));
    assert_eq!(err.error_code(), Some(ErrorCode::Maintenance));
    assert!(err.is_retryable());
}

#[tokio::test]
async fn non_json_5xx_keeps_status_and_text() {
    let (fake, client) = setup().await;
    fake.push_fault(Fault::Status { status: 502, body: "<html><body>Bad gateway</body></html>".into() });
    let err = Error::from(client.get_server().send().await.expect_err("502"));
    match &err {
        Error::UnexpectedResponse { status, body, request_id, operation } => {
            assert_eq!(*status, 502);
            assert_eq!(request_id.as_deref(), Some(fake.requests()[0].request_id.as_str()), "kept on non-JSON errors");
            assert!(body.contains("Bad gateway"));
            assert_eq!(operation.as_ref().map(|o| o.id.as_str()), Some("get_server"));
        }
        other => panic!("expected UnexpectedResponse, got {other:?}"),
    }
    assert!(err.is_retryable(), "a 502 on a GET is retryable");
}

#[tokio::test]
async fn connection_refused_is_a_retryable_connect_failure() {
    // Bind then drop a listener to get a port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let client = ServerClient::builder(TOKEN).base_url(format!("http://127.0.0.1:{port}")).build().expect("client");
    let err = Error::from(client.send_email().body(email("a@example.com")).send().await.expect_err("refused"));
    assert!(matches!(err, Error::Transport { kind: TransportFailure::Connect, .. }), "{err:?}");
    assert!(err.is_retryable(), "the request never left");
}

#[tokio::test]
async fn timeout_on_a_send_is_not_retryable() {
    let fake = FakeApi::start().await;
    fake.push_fault(Fault::Delay(std::time::Duration::from_millis(500)));
    let client = ServerClient::builder(TOKEN)
        .base_url(fake.url())
        .timeout(std::time::Duration::from_millis(100))
        .build()
        .expect("client");
    let err = Error::from(client.send_email().body(email("a@example.com")).send().await.expect_err("timeout"));
    assert!(matches!(err, Error::Transport { kind: TransportFailure::Timeout, .. }), "{err:?}");
    assert!(!err.is_retryable(), "Postmark may have accepted it");
}

#[tokio::test]
async fn batch_with_mixed_item_results_is_surfaced_per_message() {
    let (fake, client) = setup().await;
    fake.reject_recipient("bounced@example.com", 406);
    let messages = vec![email("one@example.com"), email("bounced@example.com"), email("three@example.com")];
    let results = client.send_batch(messages).await;
    assert_eq!(results.len(), 3);
    assert!(results[0].as_ref().is_ok_and(|r| r.message_id.is_some()));
    let err = results[1].as_ref().expect_err("item 2 refused inside HTTP 200");
    assert!(err.is_inactive_recipient());
    assert!(matches!(err, BatchItemError::Rejected { code: ErrorCode::InactiveRecipient, .. }));
    assert!(results[2].is_ok());
    assert_eq!(fake.requests().len(), 1, "one request for three messages");
}

#[tokio::test]
async fn batch_splits_over_500_and_keeps_input_order() {
    let (fake, client) = setup().await;
    let messages: Vec<_> = (0..1203).map(|i| email(&format!("r{i}@example.com"))).collect();
    let results = client.send_batch(messages).await;
    assert_eq!(results.len(), 1203);
    let sizes: Vec<usize> =
        fake.requests().iter().map(|r| r.json().and_then(|v| v.as_array().map(Vec::len)).unwrap_or(0)).collect();
    assert_eq!(sizes, vec![500, 500, 203]);
    for (i, r) in results.iter().enumerate() {
        assert_eq!(r.as_ref().expect("sent").to.as_deref(), Some(format!("r{i}@example.com").as_str()), "order kept");
    }
}

#[tokio::test]
async fn batch_request_failure_marks_its_chunk_and_skips_the_rest() {
    let (fake, client) = setup().await;
    fake.push_fault(Fault::Delay(std::time::Duration::ZERO)); // first chunk goes through normally
    fake.push_fault(Fault::api_error(503, 100, "maintenance"));
    let messages: Vec<_> = (0..1100).map(|i| email(&format!("r{i}@example.com"))).collect();
    let results = client.send_batch(messages).await;
    assert!(results[..500].iter().all(Result::is_ok));
    assert!(results[500..1000].iter().all(|r| matches!(r, Err(BatchItemError::RequestFailed(_)))));
    assert!(results[1000..].iter().all(|r| matches!(r, Err(BatchItemError::NotAttempted))));
    assert!(results[500..].iter().all(|r| r.as_ref().expect_err("failed").is_retryable()));
    assert_eq!(fake.requests().len(), 2);
}

#[tokio::test]
async fn batch_answer_with_fewer_items_is_missing_result() {
    let (fake, client) = setup().await;
    fake.respond(
        "POST",
        "/email/batch",
        200,
        &json!([{"ErrorCode": 0, "Message": "OK", "MessageID": "x"}]).to_string(),
    );
    let results = client.send_batch(vec![email("a@example.com"), email("b@example.com")]).await;
    assert!(results[0].is_ok());
    assert!(matches!(results[1], Err(BatchItemError::MissingResult)));
}

#[tokio::test]
async fn account_errors_with_5xx_range_codes_decode() {
    let fake = FakeApi::start().await;
    let client = postmark_account::AccountClient::builder("acct").base_url(fake.url()).build().expect("client");
    for (code, expected) in
        [(505, ErrorCode::DkimRenewalScheduled), (510, ErrorCode::DomainNotFound), (604, ErrorCode::NoDeleteAccess)]
    {
        fake.push_fault(Fault::api_error(422, code, "refused"));
        let err = Error::from(client.get_domain().domainid(1).send().await.expect_err("422"));
        assert_eq!(err.status(), Some(422), "a 5xx-range ErrorCode is still HTTP 422");
        assert_eq!(err.error_code(), Some(expected));
        assert!(!err.is_retryable(), "ErrorCode {code} inside a 422 is not a server error");
    }
    fake.push_fault(Fault::api_error(401, 10, "No Account token"));
    let err = Error::from(client.list_servers().count(1).offset(0).send().await.expect_err("401"));
    assert!(err.is_unauthorized());
}

#[test]
fn debug_output_never_contains_tokens() {
    let server = ServerClient::new("server-secret-abc").expect("client");
    let account = postmark_account::AccountClient::new("account-secret-xyz").expect("client");
    let builder = ServerClient::builder("builder-secret-q");
    let shown =
        format!("{server:?} {account:?} {builder:?} {:?} {:?}", *server, postmark_core::Token::new("tok-secret-z"));
    for secret in ["server-secret-abc", "account-secret-xyz", "builder-secret-q", "tok-secret-z"] {
        assert!(!shown.contains(secret), "{secret} leaked: {shown}");
    }
    assert!(shown.contains("https://api.postmarkapp.com"));
}

#[test]
fn from_env_reports_the_missing_variable_by_name() {
    // SAFETY-free: edition 2024 makes env mutation unsafe, so this test only reads a variable nobody sets.
    let err = postmark_core::ClientBuilder::<postmark_server::ServerApi>::new("t")
        .base_url("ftp://x")
        .build()
        .expect_err("bad scheme");
    assert!(matches!(err, Error::Config(_)));
    let err = postmark_core::Token::from_env("POSTMARK_RS_TEST_VARIABLE_THAT_IS_NEVER_SET").expect_err("unset");
    assert!(err.to_string().contains("POSTMARK_RS_TEST_VARIABLE_THAT_IS_NEVER_SET"));
}

#[test]
fn test_token_is_postmarks() {
    assert_eq!(postmark_core::TEST_TOKEN, "POSTMARK_API_TEST");
    assert!(ServerClient::new(postmark_core::TEST_TOKEN).is_ok());
}

/// An attachment built by hand (not through `EmailAttachment::from_path`/`from_bytes`) with an extension Postmark
/// refuses never leaves the client on a single send; a batch is left to Postmark, which refuses only that message.
#[tokio::test]
async fn a_forbidden_attachment_built_by_hand_is_refused_before_sending() {
    let (fake, client) = setup().await;
    let exe = || types::EmailAttachment {
        name: "Setup.EXE".into(),
        content: "TVo=".into(),
        content_type: "application/octet-stream".into(),
        content_id: None,
    };
    let err = client.send_email().body(email("a@example.com").attach(exe())).send().await.expect_err("refused");
    let err = Error::from(err);
    assert!(matches!(err, Error::InvalidInput(_)), "{err:?}");
    assert!(err.to_string().contains("ErrorCode 411") && err.to_string().contains("Setup.EXE"), "{err}");
    let templated =
        types::SendEmailWithTemplateRequest::with_alias("sender@example.com", "a@example.com", "welcome").attach(exe());
    let err = client.send_email_with_template().body(templated).send().await.expect_err("refused");
    assert!(matches!(Error::from(err), Error::InvalidInput(_)));
    assert!(fake.requests().is_empty(), "nothing reached the wire");

    // A harmless attachment goes through; a batch reaches Postmark, which refuses the one bad message (411).
    let pdf = types::EmailAttachment { name: "invoice.pdf".into(), content_type: "application/pdf".into(), ..exe() };
    client.send_email().body(email("a@example.com").attach(pdf)).send().await.expect("accepted");
    let results = client.send_batch(vec![email("b@example.com").attach(exe()), email("c@example.com")]).await;
    assert_eq!(fake.requests().len(), 2);
    assert!(results[1].is_ok());
    let refused = results[0].as_ref().expect_err("refused by Postmark");
    assert_eq!(refused.error_code(), Some(ErrorCode::ForbiddenAttachmentType), "{refused:?}");
}

fn bulk_request() -> types::SendBulkEmailRequest {
    serde_json::from_value(json!({"From": "sender@example.com", "Subject": "Hi", "TextBody": "Hello",
        "Messages": [{"To": "not an address"}]}))
    .expect("bulk request")
}

#[tokio::test]
async fn per_field_errors_are_kept_shown_and_listed_one_per_line() {
    let (fake, client) = setup().await;
    // The shape of a bulk validation error (postmark-rs PR 56).
    fake.push_fault(Fault::field_errors(
        422,
        11,
        "The request is invalid.",
        &[
            ("From", 300, "Invalid 'From' address."),
            ("Messages[0].To", 300, "Invalid 'To' address: 'not an address'."),
            ("Messages[0].To", 303, "Too many recipients."),
        ],
    ));
    let err = Error::from(client.send_bulk_email().body(bulk_request()).send().await.expect_err("422"));
    assert_eq!(err.error_code(), Some(ErrorCode::from_i64(11)));
    let fields = err.field_errors();
    assert_eq!(fields.keys().collect::<Vec<_>>(), ["From", "Messages[0].To"]);
    assert_eq!(fields["From"][0].error_code, 300);
    assert_eq!(fields["From"][0].message, "Invalid 'From' address.");
    assert_eq!(fields["Messages[0].To"].iter().map(|e| e.error_code).collect::<Vec<_>>(), [300, 303]);

    let id = fake.requests()[0].request_id.clone();
    assert_eq!(err.request_id(), Some(id.as_str()));
    assert_eq!(
        err.to_string(),
        format!(
            "Postmark answered HTTP 422 with ErrorCode 11: The request is invalid. [From: ErrorCode 300: Invalid 'From' \
             address.; Messages[0].To: ErrorCode 300: Invalid 'To' address: 'not an address'.; Messages[0].To: \
             ErrorCode 303: Too many recipients.] (request id {id})"
        )
    );
    assert_eq!(
        format!("{err:#}"),
        format!(
            "Postmark answered HTTP 422 with ErrorCode 11: The request is invalid. (request id {id})\n  \
             From: ErrorCode 300: Invalid 'From' address.\n  \
             Messages[0].To: ErrorCode 300: Invalid 'To' address: 'not an address'.\n  \
             Messages[0].To: ErrorCode 303: Too many recipients."
        )
    );
}

#[tokio::test]
async fn an_error_body_with_null_or_odd_field_errors_still_decodes() {
    let (fake, client) = setup().await;
    fake.push_fault(Fault::Status { status: 422, body: r#"{"ErrorCode":300,"Message":"Bad.","Errors":null}"#.into() });
    fake.push_fault(Fault::Status {
        status: 422,
        body: r#"{"ErrorCode":11,"Message":"Bad.","Errors":{"From":[{}]}}"#.into(),
    });
    let err = Error::from(client.send_bulk_email().body(bulk_request()).send().await.expect_err("422"));
    assert!(err.field_errors().is_empty());
    assert!(!err.to_string().contains('['), "{err}");
    let err = Error::from(client.send_bulk_email().body(bulk_request()).send().await.expect_err("422"));
    assert_eq!(err.field_errors()["From"], [postmark_core::FieldError::default()]);
}

#[tokio::test]
async fn the_request_id_is_in_the_message_and_a_fault_can_set_its_own() {
    let (fake, client) = setup().await;
    fake.push_fault(Fault::Respond {
        status: 401,
        headers: vec![("X-Request-Id".into(), "6f1c0a52-0d0e-4c55-9b7e-2f1d1e0c9a11".into())],
        body: json!({"ErrorCode": 10, "Message": "Bad token."}).to_string(),
    });
    let err = Error::from(client.get_server().send().await.expect_err("401"));
    assert_eq!(err.request_id(), Some("6f1c0a52-0d0e-4c55-9b7e-2f1d1e0c9a11"));
    assert_eq!(
        err.to_string(),
        "Postmark answered HTTP 401 with ErrorCode 10: Bad token. (request id 6f1c0a52-0d0e-4c55-9b7e-2f1d1e0c9a11)"
    );
    // Errors without an answer have no request id.
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let offline = ServerClient::builder(TOKEN).base_url(format!("http://127.0.0.1:{port}")).build().expect("client");
    assert_eq!(Error::from(offline.get_server().send().await.expect_err("refused")).request_id(), None);
}

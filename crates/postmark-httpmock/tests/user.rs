//! Uses the mocks the way an application's test suite would: code under test takes a client, the test points it at
//! a `MockServer` and declares typed expectations.

use postmark_httpmock::httpmock::MockServer;
use postmark_httpmock::prelude::*;
use postmark_server::{ApiErrorBody, ResultExt as _, ServerClient, types};

/// Application code: deactivate-aware sending with a fallback address.
async fn notify(client: &ServerClient, to: &str, fallback: &str) -> Result<String, postmark_server::Error> {
    let email = |rcpt: &str| types::SendEmailRequest::new("alerts@example.com", rcpt).subject("Alert").text_body("!");
    match client.send_email().body(email(to)).send().await.into_postmark() {
        Ok(sent) => Ok(sent.message_id.unwrap_or_default()),
        Err(e) if e.is_inactive_recipient() => {
            let sent = client.send_email().body(email(fallback)).send().await.into_postmark()?;
            Ok(sent.message_id.unwrap_or_default())
        }
        Err(e) => Err(e),
    }
}

fn accepted(id: &str) -> types::SendEmailResponse {
    types::SendEmailResponse {
        error_code: 0,
        message: "OK".into(),
        message_id: Some(id.into()),
        submitted_at: None,
        to: None,
    }
}

#[tokio::test]
async fn falls_back_when_postmark_says_the_recipient_is_inactive() {
    let server = MockServer::start_async().await;
    let client = ServerClient::builder("token").base_url(server.base_url()).build().expect("client");
    let inactive = server.send_email(|when, then| {
        when.body(
            &types::SendEmailRequest::new("alerts@example.com", "old@example.org").subject("Alert").text_body("!"),
        );
        then.unprocessable_entity(&ApiErrorBody::new(406, "Inactive recipient"));
    });
    let fallback = server.send_email(|when, then| {
        when.body(
            &types::SendEmailRequest::new("alerts@example.com", "ops@example.org").subject("Alert").text_body("!"),
        );
        then.ok(&accepted("fallback-id"));
    });
    assert_eq!(notify(&client, "old@example.org", "ops@example.org").await.expect("sent"), "fallback-id");
    inactive.assert_async().await;
    fallback.assert_async().await;
}

#[tokio::test]
async fn other_errors_are_not_papered_over() {
    let server = MockServer::start_async().await;
    let client = ServerClient::builder("token").base_url(server.base_url()).build().expect("client");
    let refused = server.send_email(|_, then| {
        then.unauthorized(&ApiErrorBody::new(10, "Bad token"));
    });
    let err = notify(&client, "a@example.org", "b@example.org").await.expect_err("401");
    assert!(err.is_unauthorized());
    refused.assert_calls_async(1).await;
}

#[tokio::test]
async fn query_and_path_parameters_are_matched_typed() {
    let server = MockServer::start_async().await;
    let client = ServerClient::builder("token").base_url(server.base_url()).build().expect("client");
    let page = server.list_bounces(|when, then| {
        when.count(500).offset(0).type_("HardBounce").inactive(None);
        then.ok(&types::BounceListResponse { total_count: 0, bounces: vec![] });
    });
    let dump = server.get_bounce_dump(|when, then| {
        when.bounceid(42);
        then.ok(&types::BounceDump { body: None });
    });
    let listed = client.list_bounces().count(500).offset(0).type_("HardBounce").send().await.into_postmark();
    assert_eq!(listed.expect("listed").total_count, 0);
    assert_eq!(client.get_bounce_dump().bounceid(42).send().await.into_postmark().expect("dump").body, None);
    // A request the mocks do not describe gets httpmock's 404, which the client reports as an error.
    assert!(client.get_bounce_dump().bounceid(43).send().await.into_postmark().is_err());
    page.assert_async().await;
    dump.assert_async().await;
}

#[tokio::test]
async fn account_operations_are_mocked_too() {
    let server = MockServer::start_async().await;
    let client = postmark_account::AccountClient::builder("acct").base_url(server.base_url()).build().expect("client");
    let mock = server.get_data_removal(|when, then| {
        when.data_removal_id(7);
        then.ok(&postmark_account::types::DataRemovalStatus { id: 7, status: "Done".into() });
    });
    let status = client.get_data_removal().data_removal_id(7).send().await.into_postmark().expect("status");
    assert_eq!(status.status, "Done");
    mock.assert_async().await;
}

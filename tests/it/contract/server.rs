//! Contract tests for the Server API's 60 operations.

use super::Harness;

#[tokio::test]
async fn send_email() {
    let h = Harness::server("send_email").await;
    let r = h.server.send_email().body(h.body::<postmark_server::types::SendEmailRequest>()).send().await.expect("ok");
    h.check("/email", &r.into_inner());
}

#[tokio::test]
async fn list_bounces() {
    let h = Harness::server("list_bounces").await;
    let r = h
        .server
        .list_bounces()
        .count(h.qi("count"))
        .offset(h.qi("offset"))
        .type_(h.qs("type"))
        .inactive(h.qb("inactive"))
        .email_filter(h.qs("emailFilter"))
        .tag(h.qs("tag"))
        .message_id(h.qs("messageID"))
        .fromdate(h.qs("fromdate"))
        .todate(h.qs("todate"))
        .messagestream(h.qs("messagestream"))
        .send()
        .await
        .expect("ok");
    h.check("/bounces", &r.into_inner());
}

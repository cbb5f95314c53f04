//! The preview UI lists a message Postmark accepted as delivered, with Postmark's MessageID, from
//! the relay's in-memory record (the content itself is gone).

use std::time::Duration;

use crate::support::{Smtp, TestRelay, wait_for};
use crate::ui::http;

#[tokio::test]
async fn a_message_delivered_through_the_api_is_listed_as_delivered_with_its_message_id() {
    let fake = postmark_fake::http::FakeApi::start().await;
    fake.set_server_token("server-token-for-tests");
    let relay = TestRelay::with_api(&fake, "server-token-for-tests", &["--ui", "127.0.0.1:0"]).await;
    let ui = relay.relay.as_ref().unwrap().ui_addr().expect("the UI is served when set");
    let mut smtp = Smtp::ready(relay.addr).await;
    let data = "From: Shop <shop@example.com>\r\nTo: ann@example.com\r\nSubject: Shipped <b>today</b>\r\n\r\n\
                the parcel left the warehouse\r\n.\r\n";
    let reply = smtp.transaction("shop@example.com", "ann@example.com", data.as_bytes()).await;
    assert!(reply.starts_with("250 "), "{reply}");
    let id = reply.trim().rsplit(' ').next().unwrap().to_owned();
    wait_for("the message at the fake Postmark", Duration::from_secs(10), || (fake.email_count() == 1).then_some(()))
        .await;
    // The fake numbers the messages it accepts; this is the first.
    let message_id = "00000001-f4c1-4a3e-9b1c-000000000001";

    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let row = loop {
        let list: serde_json::Value =
            http().get(format!("http://{ui}/api/messages")).send().await.unwrap().json().await.unwrap();
        let row = list["messages"].as_array().and_then(|all| all.iter().find(|m| m["id"] == id.as_str()).cloned());
        match row {
            Some(row) if row["state"] == "delivered" => break row,
            _ if std::time::Instant::now() > deadline => panic!("not listed as delivered: {list}"),
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    };
    assert_eq!(row["reference"], message_id, "{row}");
    assert_eq!(row["from"], "Shop <shop@example.com>");
    assert_eq!(row["to"], serde_json::json!(["ann@example.com"]));
    assert_eq!(row["subject"], "Shipped <b>today</b>");
    assert_eq!(row["size"].as_u64(), Some(data.len() as u64 - 3), "the size of the message as accepted");
    assert!(row["delivered"].as_str().is_some_and(|t| t.starts_with("20")), "{row}");

    let detail: serde_json::Value =
        http().get(format!("http://{ui}/api/messages/{id}")).send().await.unwrap().json().await.unwrap();
    assert_eq!(detail["state"], "delivered");
    assert_eq!(detail["reference"], message_id);
    assert_eq!(detail["requests"], serde_json::json!([]), "the content is no longer held");
    assert!(!detail.to_string().contains("parcel left"), "{detail}");

    let page = http().get(format!("http://{ui}/messages/{id}")).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("no longer held") && page.contains(message_id), "{page}");
    assert!(page.contains("Shipped &lt;b&gt;today&lt;/b&gt;") && !page.contains("<b>today"), "{page}");
    assert!(!page.contains("parcel left"), "{page}");
    let list = http().get(format!("http://{ui}/")).send().await.unwrap().text().await.unwrap();
    assert!(list.contains("s-delivered") && list.contains(message_id), "{list}");
    let found = http().get(format!("http://{ui}/?q={message_id}")).send().await.unwrap().text().await.unwrap();
    assert!(found.contains(&id), "the search finds it by its MessageID");
}

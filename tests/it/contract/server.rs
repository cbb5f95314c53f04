//! Contract tests for the Server API's 60 operations.

use postmark_server::types;

use super::{Harness, date, iso};

const BOUNCE_ID: i64 = 4_323_372_036; // bounce IDs outgrow i32
const OUTBOUND_MESSAGE_ID: &str = "0ac29aee-e1cd-480d-b08d-4f48548ff48d";
const INBOUND_MESSAGE_ID: &str = "cbbd1a2f-53f4-4f3b-9d0e-6a8b2f0e7c41";
const BULK_REQUEST_ID: &str = "f24af63c-533d-4b7a-ad65-4a7b3202d3a7";
const WEBHOOK_ID: i64 = 4_218_795;

// ---- Email sending -------------------------------------------------------------------------------------------------

#[tokio::test]
async fn send_email() {
    let h = Harness::server("send_email").await;
    let r = h.server.send_email().body(h.body::<types::SendEmailRequest>()).send().await.expect("ok").into_inner();
    h.check("/email", &r);
    assert_eq!(r.error_code, 0);
    assert_eq!(iso(r.submitted_at), "2026-03-02T15:15:30.123456700Z");
}

#[tokio::test]
async fn send_email_batch() {
    let h = Harness::server("send_email_batch").await;
    let r = h
        .server
        .send_email_batch()
        .body(h.body::<Vec<types::SendEmailRequest>>())
        .send()
        .await
        .expect("ok")
        .into_inner();
    h.check("/email/batch", &r);
    // HTTP 200 with a per-message failure: the second message went to an inactive recipient.
    assert_eq!(r.len(), 2);
    assert_eq!((r[0].error_code, r[1].error_code), (0, 406));
    assert_eq!(r[1].message_id, None);
}

#[tokio::test]
async fn send_email_with_template() {
    let h = Harness::server("send_email_with_template").await;
    let r = h
        .server
        .send_email_with_template()
        .body(h.body::<types::SendEmailWithTemplateRequest>())
        .send()
        .await
        .expect("ok")
        .into_inner();
    h.check("/email/withTemplate", &r);
    assert_eq!(iso(r.submitted_at), "2026-03-02T15:16:02.550127300Z");
}

#[tokio::test]
async fn send_email_batch_with_templates() {
    let h = Harness::server("send_email_batch_with_templates").await;
    let r = h
        .server
        .send_email_batch_with_templates()
        .body(h.body::<types::SendEmailBatchWithTemplatesRequest>())
        .send()
        .await
        .expect("ok")
        .into_inner();
    h.check("/email/batchWithTemplates", &r);
    assert_eq!(r.iter().map(|m| m.error_code).collect::<Vec<_>>(), [0, 1101]);
}

#[tokio::test]
async fn send_bulk_email() {
    let h = Harness::server("send_bulk_email").await;
    let r =
        h.server.send_bulk_email().body(h.body::<types::SendBulkEmailRequest>()).send().await.expect("ok").into_inner();
    h.check("/email/bulk", &r);
    assert_eq!(r.id, BULK_REQUEST_ID);
    assert_eq!(iso(r.submitted_at), "2026-03-02T15:20:01.417864500Z");
}

#[tokio::test]
async fn get_bulk_email_status() {
    let h = Harness::server("get_bulk_email_status").await;
    let r = h.server.get_bulk_email_status().bulk_request_id(BULK_REQUEST_ID).send().await.expect("ok").into_inner();
    h.check(&format!("/email/bulk/{BULK_REQUEST_ID}"), &r);
    assert_eq!(r.id, BULK_REQUEST_ID, "status spells it `Id`, not `ID`");
    assert_eq!(r.percentage_completed, Some(50.0));
}

// ---- Bounces -------------------------------------------------------------------------------------------------------

#[tokio::test]
async fn get_delivery_stats() {
    let h = Harness::server("get_delivery_stats").await;
    let r = h.server.get_delivery_stats().send().await.expect("ok").into_inner();
    h.check("/deliverystats", &r);
    assert_eq!(r.inactive_mails, 192);
    assert_eq!(r.bounces[0].type_, None, "the `All` row has no Type");
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
        .expect("ok")
        .into_inner();
    h.check("/bounces", &r);
    assert_eq!(r.total_count, 2);
    assert_eq!(r.bounces[0].id, BOUNCE_ID);
    assert_eq!(r.bounces[1].tag, None);
}

#[tokio::test]
async fn get_bounce() {
    let h = Harness::server("get_bounce").await;
    let r = h.server.get_bounce().bounceid(BOUNCE_ID).send().await.expect("ok").into_inner();
    h.check(&format!("/bounces/{BOUNCE_ID}"), &r);
    assert_eq!(r.id, BOUNCE_ID);
    assert_eq!(iso(r.bounced_at), "2026-03-02T15:15:34.881200100Z");
}

#[tokio::test]
async fn get_bounce_dump() {
    let h = Harness::server("get_bounce_dump").await;
    let r = h.server.get_bounce_dump().bounceid(BOUNCE_ID).send().await.expect("ok").into_inner();
    h.check(&format!("/bounces/{BOUNCE_ID}/dump"), &r);
    assert!(r.body.as_deref().is_some_and(|b| b.starts_with("Return-Path: <>\r\n")), "raw source keeps its CRLFs");
}

#[tokio::test]
async fn activate_bounce() {
    let h = Harness::server("activate_bounce").await;
    let r = h.server.activate_bounce().bounceid(BOUNCE_ID).send().await.expect("ok").into_inner();
    h.check(&format!("/bounces/{BOUNCE_ID}/activate"), &r);
    assert_eq!(r.bounce.inactive, Some(false));
    assert_eq!(r.bounce.tag, None);
}

// ---- Templates -----------------------------------------------------------------------------------------------------

#[tokio::test]
async fn list_templates() {
    let h = Harness::server("list_templates").await;
    let r = h
        .server
        .list_templates()
        .count(h.qi("Count"))
        .offset(h.qi("Offset"))
        .template_type(h.qs("TemplateType"))
        .layout_template(h.qs("LayoutTemplate"))
        .send()
        .await
        .expect("ok")
        .into_inner();
    h.check("/templates", &r);
    assert_eq!(r.total_count, 2);
    assert_eq!(r.templates[1].alias, None);
}

#[tokio::test]
async fn create_template() {
    let h = Harness::server("create_template").await;
    let r = h
        .server
        .create_template()
        .body(h.body::<types::CreateTemplateRequest>())
        .send()
        .await
        .expect("ok")
        .into_inner();
    h.check("/templates", &r);
    assert_eq!(r.template_id, 4_820_193);
}

#[tokio::test]
async fn get_template() {
    let h = Harness::server("get_template").await;
    let r = h.server.get_template().template_id_or_alias("4820193").send().await.expect("ok").into_inner();
    h.check("/templates/4820193", &r);
    assert_eq!(r.alias.as_deref(), Some("order-confirmation"));
    assert_eq!((r.text_body, r.layout_template), (None, None));
}

#[tokio::test]
async fn edit_template() {
    let h = Harness::server("edit_template").await;
    let r = h
        .server
        .edit_template()
        .template_id_or_alias("order-confirmation")
        .body(h.body::<types::EditTemplateRequest>())
        .send()
        .await
        .expect("ok")
        .into_inner();
    h.check("/templates/order-confirmation", &r);
    assert_eq!(r.layout_template.as_deref(), Some("base-layout-2026"));
}

#[tokio::test]
async fn delete_template() {
    let h = Harness::server("delete_template").await;
    let r = h.server.delete_template().template_id_or_alias("4820193").send().await.expect("ok").into_inner();
    h.check("/templates/4820193", &r);
    assert_eq!(r.error_code, 0);
}

#[tokio::test]
async fn validate_template() {
    let h = Harness::server("validate_template").await;
    let r = h
        .server
        .validate_template()
        .body(h.body::<types::ValidateTemplateRequest>())
        .send()
        .await
        .expect("ok")
        .into_inner();
    h.check("/templates/validate", &r);
    assert!(!r.all_content_is_valid);
    let text = r.text_body.as_ref().expect("TextBody");
    assert_eq!((text.validation_errors[0].line, text.validation_errors[0].character_position), (Some(1), Some(23)));
    assert!(r.suggested_template_model.contains_key("order"));
}

// ---- Server --------------------------------------------------------------------------------------------------------

#[tokio::test]
async fn get_server() {
    let h = Harness::server("get_server").await;
    let r = h.server.get_server().send().await.expect("ok").into_inner();
    h.check("/server", &r);
    assert_eq!(r.inbound_hook_url, None);
    assert_eq!(r.open_hook_url.as_deref(), Some(""), "an empty hook URL is not the same as null");
}

#[tokio::test]
async fn edit_server() {
    let h = Harness::server("edit_server").await;
    let r = h.server.edit_server().body(h.body::<types::EditServerRequest>()).send().await.expect("ok").into_inner();
    h.check("/server", &r);
    assert_eq!(r.id, 231_847);
}

// ---- Messages ------------------------------------------------------------------------------------------------------

#[tokio::test]
async fn list_outbound_messages() {
    let h = Harness::server("list_outbound_messages").await;
    let r = h
        .server
        .list_outbound_messages()
        .count(h.qi("count"))
        .offset(h.qi("offset"))
        .recipient(h.qs("recipient"))
        .fromemail(h.qs("fromemail"))
        .tag(h.qs("tag"))
        .status(h.qs("status"))
        .todate(h.qs("todate"))
        .fromdate(h.qs("fromdate"))
        .subject(h.qs("subject"))
        .messagestream(h.qs("messagestream"))
        .send()
        .await
        .expect("ok")
        .into_inner();
    h.check("/messages/outbound", &r);
    assert_eq!(r.messages[0].cc[0].name, None);
    assert_eq!(iso(r.messages[1].received_at), "2026-03-01T13:02:11.987654300Z");
}

#[tokio::test]
async fn get_outbound_message_details() {
    let h = Harness::server("get_outbound_message_details").await;
    let r =
        h.server.get_outbound_message_details().messageid(OUTBOUND_MESSAGE_ID).send().await.expect("ok").into_inner();
    h.check(&format!("/messages/outbound/{OUTBOUND_MESSAGE_ID}/details"), &r);
    assert_eq!(r.metadata.get("plan").and_then(|v| v.as_str()), Some("pro"));
    assert_eq!(iso(r.message_events[1].received_at), "2026-03-02T15:41:07.000012300Z");
}

#[tokio::test]
async fn get_outbound_message_dump() {
    let h = Harness::server("get_outbound_message_dump").await;
    let r = h.server.get_outbound_message_dump().messageid(OUTBOUND_MESSAGE_ID).send().await.expect("ok").into_inner();
    h.check(&format!("/messages/outbound/{OUTBOUND_MESSAGE_ID}/dump"), &r);
    assert!(r.body.as_deref().is_some_and(|b| b.contains("\r\nSubject: Welcome to Acme\r\n")));
}

#[tokio::test]
async fn list_inbound_messages() {
    let h = Harness::server("list_inbound_messages").await;
    let r = h
        .server
        .list_inbound_messages()
        .count(h.qi("count"))
        .offset(h.qi("offset"))
        .recipient(h.qs("recipient"))
        .fromemail(h.qs("fromemail"))
        .subject(h.qs("subject"))
        .mailboxhash(h.qs("mailboxhash"))
        .tag(h.qs("tag"))
        .status(h.qs("status"))
        .todate(h.qs("todate"))
        .fromdate(h.qs("fromdate"))
        .send()
        .await
        .expect("ok")
        .into_inner();
    h.check("/messages/inbound", &r);
    assert_eq!(r.inbound_messages[0].mailbox_hash.as_deref(), Some("ticket-1234"));
    assert_eq!(r.inbound_messages[1].cc, None);
}

#[tokio::test]
async fn get_inbound_message_details() {
    let h = Harness::server("get_inbound_message_details").await;
    let r = h.server.get_inbound_message_details().messageid(INBOUND_MESSAGE_ID).send().await.expect("ok").into_inner();
    h.check(&format!("/messages/inbound/{INBOUND_MESSAGE_ID}/details"), &r);
    assert_eq!(r.date.as_deref(), Some("Mon, 2 Mar 2026 10:15:30 -0500"), "inbound Date stays RFC 2822 text");
    assert_eq!(r.tag, None);
}

#[tokio::test]
async fn bypass_inbound_message() {
    let h = Harness::server("bypass_inbound_message").await;
    let r = h.server.bypass_inbound_message().messageid(INBOUND_MESSAGE_ID).send().await.expect("ok").into_inner();
    h.check(&format!("/messages/inbound/{INBOUND_MESSAGE_ID}/bypass"), &r);
    assert_eq!(r.error_code, 0);
}

#[tokio::test]
async fn retry_inbound_message() {
    let h = Harness::server("retry_inbound_message").await;
    let r = h.server.retry_inbound_message().messageid(INBOUND_MESSAGE_ID).send().await.expect("ok").into_inner();
    h.check(&format!("/messages/inbound/{INBOUND_MESSAGE_ID}/retry"), &r);
    assert_eq!(r.error_code, 0);
}

#[tokio::test]
async fn list_opens() {
    let h = Harness::server("list_opens").await;
    let r = h
        .server
        .list_opens()
        .count(h.qi("count"))
        .offset(h.qi("offset"))
        .recipient(h.qs("recipient"))
        .tag(h.qs("tag"))
        .client_name(h.qs("client_name"))
        .client_company(h.qs("client_company"))
        .client_family(h.qs("client_family"))
        .os_name(h.qs("os_name"))
        .os_family(h.qs("os_family"))
        .os_company(h.qs("os_company"))
        .platform(h.qs("platform"))
        .country(h.qs("country"))
        .region(h.qs("region"))
        .city(h.qs("city"))
        .messagestream(h.qs("messagestream"))
        .send()
        .await
        .expect("ok")
        .into_inner();
    h.check("/messages/outbound/opens", &r);
    assert_eq!(r.opens[0].read_seconds, Some(17));
    assert_eq!(iso(r.opens[0].received_at), "2026-03-02T15:41:07.000012300Z");
}

#[tokio::test]
async fn list_opens_for_message() {
    let h = Harness::server("list_opens_for_message").await;
    let r = h
        .server
        .list_opens_for_message()
        .messageid(OUTBOUND_MESSAGE_ID)
        .count(h.qi("count"))
        .offset(h.qi("offset"))
        .send()
        .await
        .expect("ok")
        .into_inner();
    h.check(&format!("/messages/outbound/opens/{OUTBOUND_MESSAGE_ID}"), &r);
    assert_eq!(r.opens[0].message_id, OUTBOUND_MESSAGE_ID);
}

#[tokio::test]
async fn list_clicks() {
    let h = Harness::server("list_clicks").await;
    let r = h
        .server
        .list_clicks()
        .count(h.qi("count"))
        .offset(h.qi("offset"))
        .recipient(h.qs("recipient"))
        .tag(h.qs("tag"))
        .client_name(h.qs("client_name"))
        .client_company(h.qs("client_company"))
        .client_family(h.qs("client_family"))
        .os_name(h.qs("os_name"))
        .os_family(h.qs("os_family"))
        .os_company(h.qs("os_company"))
        .platform(h.qs("platform"))
        .country(h.qs("country"))
        .region(h.qs("region"))
        .city(h.qs("city"))
        .messagestream(h.qs("messagestream"))
        .send()
        .await
        .expect("ok")
        .into_inner();
    h.check("/messages/outbound/clicks", &r);
    assert_eq!(r.clicks[1].user_agent, None);
    assert_eq!(iso(r.clicks[0].received_at), "2026-03-02T15:41:55.330000000Z");
}

#[tokio::test]
async fn list_clicks_for_message() {
    let h = Harness::server("list_clicks_for_message").await;
    let r = h
        .server
        .list_clicks_for_message()
        .messageid(OUTBOUND_MESSAGE_ID)
        .count(h.qi("count"))
        .offset(h.qi("offset"))
        .send()
        .await
        .expect("ok")
        .into_inner();
    h.check(&format!("/messages/outbound/clicks/{OUTBOUND_MESSAGE_ID}"), &r);
    assert_eq!(r.clicks[0].click_location.as_deref(), Some("HTML"));
}

// ---- Stats ---------------------------------------------------------------------------------------------------------

#[tokio::test]
async fn get_outbound_overview() {
    let h = Harness::server("get_outbound_overview").await;
    let r = h
        .server
        .get_outbound_overview()
        .tag(h.qs("tag"))
        .fromdate(h.qs("fromdate"))
        .todate(h.qs("todate"))
        .messagestream(h.qs("messagestream"))
        .send()
        .await
        .expect("ok")
        .into_inner();
    h.check("/stats/outbound", &r);
    assert_eq!((r.bounce_rate, r.spam_complaints_rate), (Some(1.184), Some(0.066)), "rates are decimals");
}

#[tokio::test]
async fn get_sent_counts() {
    let h = Harness::server("get_sent_counts").await;
    let r = h
        .server
        .get_sent_counts()
        .tag(h.qs("tag"))
        .fromdate(h.qs("fromdate"))
        .todate(h.qs("todate"))
        .messagestream(h.qs("messagestream"))
        .send()
        .await
        .expect("ok")
        .into_inner();
    h.check("/stats/outbound/sends", &r);
    assert_eq!(r.days[0].date, date(2026, 2, 1));
    assert_eq!(r.sent, Some(1551));
}

#[tokio::test]
async fn get_bounce_counts() {
    let h = Harness::server("get_bounce_counts").await;
    let r = h
        .server
        .get_bounce_counts()
        .tag(h.qs("tag"))
        .fromdate(h.qs("fromdate"))
        .todate(h.qs("todate"))
        .messagestream(h.qs("messagestream"))
        .send()
        .await
        .expect("ok")
        .into_inner();
    h.check("/stats/outbound/bounces", &r);
    assert_eq!(r.smtp_api_error, Some(1));
    assert_eq!(r.days[1].transient, None, "Postmark leaves out counters a day does not have");
}

#[tokio::test]
async fn get_spam_complaint_counts() {
    let h = Harness::server("get_spam_complaint_counts").await;
    let r = h
        .server
        .get_spam_complaint_counts()
        .tag(h.qs("tag"))
        .fromdate(h.qs("fromdate"))
        .todate(h.qs("todate"))
        .messagestream(h.qs("messagestream"))
        .send()
        .await
        .expect("ok")
        .into_inner();
    h.check("/stats/outbound/spam", &r);
    assert_eq!(r.spam_complaint, Some(1));
}

#[tokio::test]
async fn get_tracked_email_counts() {
    let h = Harness::server("get_tracked_email_counts").await;
    let r = h
        .server
        .get_tracked_email_counts()
        .tag(h.qs("tag"))
        .fromdate(h.qs("fromdate"))
        .todate(h.qs("todate"))
        .messagestream(h.qs("messagestream"))
        .send()
        .await
        .expect("ok")
        .into_inner();
    h.check("/stats/outbound/tracked", &r);
    assert_eq!(r.tracked, Some(1401));
}

#[tokio::test]
async fn get_email_open_counts() {
    let h = Harness::server("get_email_open_counts").await;
    let r = h
        .server
        .get_email_open_counts()
        .tag(h.qs("tag"))
        .fromdate(h.qs("fromdate"))
        .todate(h.qs("todate"))
        .messagestream(h.qs("messagestream"))
        .send()
        .await
        .expect("ok")
        .into_inner();
    h.check("/stats/outbound/opens", &r);
    assert_eq!((r.opens, r.unique), (Some(921), Some(636)));
}

#[tokio::test]
async fn get_email_platform_usage() {
    let h = Harness::server("get_email_platform_usage").await;
    let r = h
        .server
        .get_email_platform_usage()
        .tag(h.qs("tag"))
        .fromdate(h.qs("fromdate"))
        .todate(h.qs("todate"))
        .messagestream(h.qs("messagestream"))
        .send()
        .await
        .expect("ok")
        .into_inner();
    h.check("/stats/outbound/opens/platforms", &r);
    assert_eq!(r.web_mail, Some(351));
    assert_eq!(r.days[1].unknown, None);
}

#[tokio::test]
async fn get_email_client_usage() {
    let h = Harness::server("get_email_client_usage").await;
    let r = h
        .server
        .get_email_client_usage()
        .tag(h.qs("tag"))
        .fromdate(h.qs("fromdate"))
        .todate(h.qs("todate"))
        .messagestream(h.qs("messagestream"))
        .send()
        .await
        .expect("ok")
        .into_inner();
    h.check("/stats/outbound/opens/emailclients", &r);
    // Dynamic keys, one per client family, at the top level and in each day.
    assert_eq!(r.extra.get("Apple Mail"), Some(&261));
    assert_eq!(r.days[0].date, date(2026, 2, 1));
    assert_eq!(r.days[0].extra.get("Yahoo! Mail"), Some(&4));
    assert!(!r.days[2].extra.contains_key("Yahoo! Mail"));
}

#[tokio::test]
async fn get_email_read_times() {
    let h = Harness::server("get_email_read_times").await;
    let r = h
        .server
        .get_email_read_times()
        .tag(h.qs("tag"))
        .fromdate(h.qs("fromdate"))
        .todate(h.qs("todate"))
        .messagestream(h.qs("messagestream"))
        .send()
        .await
        .expect("ok")
        .into_inner();
    h.check("/stats/outbound/opens/readtimes", &r);
    assert_eq!(r.extra.get("20s+"), Some(&9));
    assert_eq!(r.days[0].extra.get("0s"), Some(&40));
}

#[tokio::test]
async fn get_click_counts() {
    let h = Harness::server("get_click_counts").await;
    let r = h
        .server
        .get_click_counts()
        .tag(h.qs("tag"))
        .fromdate(h.qs("fromdate"))
        .todate(h.qs("todate"))
        .messagestream(h.qs("messagestream"))
        .send()
        .await
        .expect("ok")
        .into_inner();
    h.check("/stats/outbound/clicks", &r);
    assert_eq!(r.clicks, Some(381));
}

#[tokio::test]
async fn get_browser_usage() {
    let h = Harness::server("get_browser_usage").await;
    let r = h
        .server
        .get_browser_usage()
        .tag(h.qs("tag"))
        .fromdate(h.qs("fromdate"))
        .todate(h.qs("todate"))
        .messagestream(h.qs("messagestream"))
        .send()
        .await
        .expect("ok")
        .into_inner();
    h.check("/stats/outbound/clicks/browserfamilies", &r);
    assert_eq!(r.extra.get("Google Chrome"), Some(&201));
    assert!(!r.days[2].extra.contains_key("Microsoft Edge"));
}

#[tokio::test]
async fn get_browser_platform_usage() {
    let h = Harness::server("get_browser_platform_usage").await;
    let r = h
        .server
        .get_browser_platform_usage()
        .tag(h.qs("tag"))
        .fromdate(h.qs("fromdate"))
        .todate(h.qs("todate"))
        .messagestream(h.qs("messagestream"))
        .send()
        .await
        .expect("ok")
        .into_inner();
    h.check("/stats/outbound/clicks/platforms", &r);
    assert_eq!((r.desktop, r.mobile, r.unknown), (Some(171), Some(156), Some(3)));
}

#[tokio::test]
async fn get_click_location() {
    let h = Harness::server("get_click_location").await;
    let r = h
        .server
        .get_click_location()
        .tag(h.qs("tag"))
        .fromdate(h.qs("fromdate"))
        .todate(h.qs("todate"))
        .messagestream(h.qs("messagestream"))
        .send()
        .await
        .expect("ok")
        .into_inner();
    h.check("/stats/outbound/clicks/location", &r);
    assert_eq!((r.html, r.text), (Some(351), Some(21)));
}

// ---- Inbound rules -------------------------------------------------------------------------------------------------

#[tokio::test]
async fn list_inbound_rules() {
    let h = Harness::server("list_inbound_rules").await;
    let r = h
        .server
        .list_inbound_rules()
        .count(h.qi("count"))
        .offset(h.qi("offset"))
        .send()
        .await
        .expect("ok")
        .into_inner();
    h.check("/triggers/inboundrules", &r);
    assert_eq!(r.total_count, 2);
    assert_eq!(r.inbound_rules[0].rule, "promo@spammy.example");
}

#[tokio::test]
async fn create_inbound_rule() {
    let h = Harness::server("create_inbound_rule").await;
    let r = h
        .server
        .create_inbound_rule()
        .body(h.body::<types::CreateInboundRuleRequest>())
        .send()
        .await
        .expect("ok")
        .into_inner();
    h.check("/triggers/inboundrules", &r);
    assert_eq!(r.id, 5);
}

#[tokio::test]
async fn delete_inbound_rule() {
    let h = Harness::server("delete_inbound_rule").await;
    let r = h.server.delete_inbound_rule().triggerid(5).send().await.expect("ok").into_inner();
    h.check("/triggers/inboundrules/5", &r);
    assert_eq!(r.error_code, 0);
}

// ---- Webhooks ------------------------------------------------------------------------------------------------------

#[tokio::test]
async fn list_webhooks() {
    let h = Harness::server("list_webhooks").await;
    let r = h.server.list_webhooks().message_stream(h.qs("MessageStream")).send().await.expect("ok").into_inner();
    h.check("/webhooks", &r);
    assert_eq!(r.webhooks.len(), 2);
    assert_eq!(r.webhooks[1].http_auth.as_ref().and_then(|a| a.username.as_deref()), None);
}

#[tokio::test]
async fn create_webhook() {
    let h = Harness::server("create_webhook").await;
    let r =
        h.server.create_webhook().body(h.body::<types::CreateWebhookRequest>()).send().await.expect("ok").into_inner();
    h.check("/webhooks", &r);
    assert_eq!(r.id, WEBHOOK_ID);
    let triggers = r.triggers.as_ref().expect("Triggers");
    assert_eq!(triggers.open.as_ref().and_then(|o| o.post_first_open_only), Some(false));
}

#[tokio::test]
async fn get_webhook() {
    let h = Harness::server("get_webhook").await;
    let r = h.server.get_webhook().webhook_id(WEBHOOK_ID).send().await.expect("ok").into_inner();
    h.check(&format!("/webhooks/{WEBHOOK_ID}"), &r);
    assert_eq!(r.status.as_deref(), Some("verified"));
}

#[tokio::test]
async fn edit_webhook() {
    let h = Harness::server("edit_webhook").await;
    let r = h
        .server
        .edit_webhook()
        .webhook_id(WEBHOOK_ID)
        .body(h.body::<types::EditWebhookRequest>())
        .send()
        .await
        .expect("ok")
        .into_inner();
    h.check(&format!("/webhooks/{WEBHOOK_ID}"), &r);
    assert_eq!(r.http_headers.len(), 2);
}

#[tokio::test]
async fn delete_webhook() {
    let h = Harness::server("delete_webhook").await;
    let r = h.server.delete_webhook().webhook_id(WEBHOOK_ID).send().await.expect("ok").into_inner();
    h.check(&format!("/webhooks/{WEBHOOK_ID}"), &r);
    assert_eq!(r.error_code, 0);
}

// ---- Message streams -----------------------------------------------------------------------------------------------

#[tokio::test]
async fn list_message_streams() {
    let h = Harness::server("list_message_streams").await;
    let r = h
        .server
        .list_message_streams()
        .message_stream_type(h.qs("MessageStreamType"))
        .include_archived_streams(h.qb("IncludeArchivedStreams"))
        .send()
        .await
        .expect("ok")
        .into_inner();
    h.check("/message-streams", &r);
    assert_eq!(r.message_streams[0].description, None);
    assert_eq!(iso(r.message_streams[1].expected_purge_date), "2026-04-16T14:15:30.123456700Z");
}

#[tokio::test]
async fn create_message_stream() {
    let h = Harness::server("create_message_stream").await;
    let r = h
        .server
        .create_message_stream()
        .body(h.body::<types::CreateMessageStreamRequest>())
        .send()
        .await
        .expect("ok")
        .into_inner();
    h.check("/message-streams", &r);
    assert_eq!(r.id, "transactional-dev");
    assert_eq!((r.updated_at, r.archived_at), (None, None));
}

#[tokio::test]
async fn get_message_stream() {
    let h = Harness::server("get_message_stream").await;
    let r = h.server.get_message_stream().stream_id("outbound").send().await.expect("ok").into_inner();
    h.check("/message-streams/outbound", &r);
    assert_eq!(iso(r.created_at), "2024-01-05T17:01:05.179474800Z");
    assert_eq!(r.description, None);
}

#[tokio::test]
async fn edit_message_stream() {
    let h = Harness::server("edit_message_stream").await;
    let r = h
        .server
        .edit_message_stream()
        .stream_id("transactional-dev")
        .body(h.body::<types::EditMessageStreamRequest>())
        .send()
        .await
        .expect("ok")
        .into_inner();
    h.check("/message-streams/transactional-dev", &r);
    assert_eq!(iso(r.updated_at), "2026-03-03T13:02:11.555001200Z");
}

#[tokio::test]
async fn archive_message_stream() {
    let h = Harness::server("archive_message_stream").await;
    let r = h.server.archive_message_stream().stream_id("transactional-dev").send().await.expect("ok").into_inner();
    h.check("/message-streams/transactional-dev/archive", &r);
    // -04:00: the purge date falls after the switch to daylight saving time.
    assert_eq!(iso(r.expected_purge_date), "2026-04-17T14:15:30.123456700Z");
}

#[tokio::test]
async fn unarchive_message_stream() {
    let h = Harness::server("unarchive_message_stream").await;
    let r = h.server.unarchive_message_stream().stream_id("transactional-dev").send().await.expect("ok").into_inner();
    h.check("/message-streams/transactional-dev/unarchive", &r);
    assert_eq!((r.archived_at, r.expected_purge_date), (None, None));
}

// ---- Suppressions --------------------------------------------------------------------------------------------------

#[tokio::test]
async fn dump_suppressions() {
    let h = Harness::server("dump_suppressions").await;
    let r = h
        .server
        .dump_suppressions()
        .stream_id("outbound")
        .suppression_reason(h.qs("SuppressionReason"))
        .origin(h.qs("Origin"))
        .fromdate(h.qs("fromdate"))
        .todate(h.qs("todate"))
        .email_address(h.qs("EmailAddress"))
        .send()
        .await
        .expect("ok")
        .into_inner();
    h.check("/message-streams/outbound/suppressions/dump", &r);
    assert_eq!(r.suppressions[2].origin.as_deref(), Some("Customer"));
    assert_eq!(iso(r.suppressions[2].created_at), "2026-02-20T23:30:00.000000000Z");
}

#[tokio::test]
async fn create_suppressions() {
    let h = Harness::server("create_suppressions").await;
    let r = h
        .server
        .create_suppressions()
        .stream_id("outbound")
        .body(h.body::<types::SuppressionsRequest>())
        .send()
        .await
        .expect("ok")
        .into_inner();
    h.check("/message-streams/outbound/suppressions", &r);
    assert_eq!(r.suppressions[0].message, None);
    assert_eq!(r.suppressions[2].status.as_deref(), Some("Failed"));
}

#[tokio::test]
async fn delete_suppressions() {
    let h = Harness::server("delete_suppressions").await;
    let r = h
        .server
        .delete_suppressions()
        .stream_id("outbound")
        .body(h.body::<types::SuppressionsRequest>())
        .send()
        .await
        .expect("ok")
        .into_inner();
    h.check("/message-streams/outbound/suppressions/delete", &r);
    assert_eq!(r.suppressions[0].status.as_deref(), Some("Deleted"));
}

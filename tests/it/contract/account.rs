//! Contract tests for the Account API's 26 operations.

use postmark_account::types;

use super::Harness;

const SERVER_ID: i64 = 418_237;
const DOMAIN_ID: i64 = 90_311; // example.net, DKIM verified
const NEW_DOMAIN_ID: i64 = 90_344; // mail.example.org, just added
const SIGNATURE_ID: i64 = 1_502_277; // billing@example.net, confirmed
const NEW_SIGNATURE_ID: i64 = 1_502_301; // alerts@example.org, unconfirmed

// ---- Servers -------------------------------------------------------------------------------------------------------

#[tokio::test]
async fn list_servers() {
    let h = Harness::account("list_servers").await;
    let r = h
        .account
        .list_servers()
        .count(h.qi("count"))
        .offset(h.qi("offset"))
        .name(h.qs("name"))
        .send()
        .await
        .expect("ok")
        .into_inner();
    h.check("/servers", &r);
    assert_eq!(r.total_count, 2);
    assert!(r.servers.iter().all(|s| s.name.contains("Billing")));
}

#[tokio::test]
async fn create_server() {
    let h = Harness::account("create_server").await;
    let r =
        h.account.create_server().body(h.body::<types::CreateServerRequest>()).send().await.expect("ok").into_inner();
    h.check("/servers", &r);
    assert_eq!(r.api_tokens, ["a1f3c2d4-7b8e-4f21-9c3d-5e6f7a8b9c0d"], "the new server's first token");
    assert_eq!(r.delivery_type.as_deref(), Some("Live"));
}

#[tokio::test]
async fn get_server_by_id() {
    let h = Harness::account("get_server_by_id").await;
    let r = h.account.get_server_by_id().serverid(SERVER_ID).send().await.expect("ok").into_inner();
    h.check(&format!("/servers/{SERVER_ID}"), &r);
    assert_eq!(r.id, SERVER_ID);
    assert_eq!(r.color.as_deref(), Some("Turquoise"));
}

#[tokio::test]
async fn edit_server_by_id() {
    let h = Harness::account("edit_server_by_id").await;
    let r = h
        .account
        .edit_server_by_id()
        .serverid(SERVER_ID)
        .body(h.body::<types::EditServerRequest>())
        .send()
        .await
        .expect("ok")
        .into_inner();
    h.check(&format!("/servers/{SERVER_ID}"), &r);
    assert_eq!((r.track_links.as_deref(), r.inbound_spam_threshold), (Some("HtmlOnly"), Some(8)));
}

#[tokio::test]
async fn delete_server() {
    let h = Harness::account("delete_server").await;
    let r = h.account.delete_server().serverid(418_240).send().await.expect("ok").into_inner();
    h.check("/servers/418240", &r);
    assert_eq!(r.error_code, 0);
}

// ---- Domains -------------------------------------------------------------------------------------------------------

#[tokio::test]
async fn list_domains() {
    let h = Harness::account("list_domains").await;
    let r = h.account.list_domains().count(h.qi("count")).offset(h.qi("offset")).send().await.expect("ok").into_inner();
    h.check("/domains", &r);
    assert_eq!(r.total_count, 2);
    assert_eq!(r.domains[1].custom_tracking_verified, None);
}

#[tokio::test]
async fn create_domain() {
    let h = Harness::account("create_domain").await;
    let r =
        h.account.create_domain().body(h.body::<types::CreateDomainRequest>()).send().await.expect("ok").into_inner();
    h.check("/domains", &r);
    // A new domain's DKIM key waits in the Pending fields until the DNS record is verified.
    assert_eq!(r.dkim_host.as_deref(), Some(""));
    assert_eq!(r.dkim_pending_host.as_deref(), Some("20260302101530pm._domainkey.mail.example.org"));
    assert_eq!(r.return_path_domain_cname_value.as_deref(), Some("pm.mtasv.net"));
}

#[tokio::test]
async fn get_domain() {
    let h = Harness::account("get_domain").await;
    let r = h.account.get_domain().domainid(DOMAIN_ID).send().await.expect("ok").into_inner();
    h.check(&format!("/domains/{DOMAIN_ID}"), &r);
    assert_eq!((r.custom_tracking_domain, r.custom_tracking_domain_cname_value), (None, None));
    assert_eq!(r.dkim_update_status.as_deref(), Some("Verified"));
}

#[tokio::test]
async fn edit_domain() {
    let h = Harness::account("edit_domain").await;
    let r = h
        .account
        .edit_domain()
        .domainid(DOMAIN_ID)
        .body(h.body::<types::EditDomainRequest>())
        .send()
        .await
        .expect("ok")
        .into_inner();
    h.check(&format!("/domains/{DOMAIN_ID}"), &r);
    assert_eq!(r.return_path_domain.as_deref(), Some("bounces.example.net"));
    assert_eq!(r.return_path_domain_verified, Some(false), "a changed Return-Path needs verifying again");
}

#[tokio::test]
async fn delete_domain() {
    let h = Harness::account("delete_domain").await;
    let r = h.account.delete_domain().domainid(NEW_DOMAIN_ID).send().await.expect("ok").into_inner();
    h.check(&format!("/domains/{NEW_DOMAIN_ID}"), &r);
    assert_eq!(r.error_code, 0);
}

#[tokio::test]
async fn verify_domain_dkim() {
    let h = Harness::account("verify_domain_dkim").await;
    let r = h.account.verify_domain_dkim().domainid(NEW_DOMAIN_ID).send().await.expect("ok").into_inner();
    h.check(&format!("/domains/{NEW_DOMAIN_ID}/verifyDkim"), &r);
    assert_eq!(r.dkim_verified, Some(true));
    assert_eq!(r.dkim_pending_host.as_deref(), Some(""), "the pending key became the active one");
}

#[tokio::test]
async fn verify_domain_return_path() {
    let h = Harness::account("verify_domain_return_path").await;
    let r = h.account.verify_domain_return_path().domainid(NEW_DOMAIN_ID).send().await.expect("ok").into_inner();
    h.check(&format!("/domains/{NEW_DOMAIN_ID}/verifyReturnPath"), &r);
    assert_eq!(r.return_path_domain_verified, Some(true));
}

#[tokio::test]
async fn verify_domain_spf() {
    let h = Harness::account("verify_domain_spf").await;
    let r = h.account.verify_domain_spf().domainid(DOMAIN_ID).send().await.expect("ok").into_inner();
    h.check(&format!("/domains/{DOMAIN_ID}/verifyspf"), &r);
    assert_eq!(r.spf_verified, Some(true));
}

#[tokio::test]
async fn rotate_domain_dkim() {
    let h = Harness::account("rotate_domain_dkim").await;
    let r = h.account.rotate_domain_dkim().domainid(DOMAIN_ID).send().await.expect("ok").into_inner();
    h.check(&format!("/domains/{DOMAIN_ID}/rotatedkim"), &r);
    assert_eq!(r.dkim_update_status.as_deref(), Some("Pending"));
    assert_eq!(r.dkim_pending_host.as_deref(), Some("20260302101530pm._domainkey.example.net"));
}

#[tokio::test]
async fn verify_domain_custom_tracking() {
    let h = Harness::account("verify_domain_custom_tracking").await;
    let r = h.account.verify_domain_custom_tracking().domainid(DOMAIN_ID).send().await.expect("ok").into_inner();
    h.check(&format!("/domains/{DOMAIN_ID}/verifyCustomTracking"), &r);
    assert_eq!(r.custom_tracking_verified, Some(true));
    assert_eq!(r.custom_tracking_domain_cname_value.as_deref(), Some("track.pmtrk.net"));
}

// ---- Sender signatures ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn list_sender_signatures() {
    let h = Harness::account("list_sender_signatures").await;
    let r = h
        .account
        .list_sender_signatures()
        .count(h.qi("count"))
        .offset(h.qi("offset"))
        .send()
        .await
        .expect("ok")
        .into_inner();
    h.check("/senders", &r);
    assert_eq!(r.total_count, 2);
    assert_eq!(r.sender_signatures[1].confirmed, Some(false));
}

#[tokio::test]
async fn create_sender_signature() {
    let h = Harness::account("create_sender_signature").await;
    let r = h
        .account
        .create_sender_signature()
        .body(h.body::<types::CreateSenderSignatureRequest>())
        .send()
        .await
        .expect("ok")
        .into_inner();
    h.check("/senders", &r);
    assert_eq!(r.id, NEW_SIGNATURE_ID);
    assert_eq!(r.confirmed, Some(false));
}

#[tokio::test]
async fn get_sender_signature() {
    let h = Harness::account("get_sender_signature").await;
    let r = h.account.get_sender_signature().signatureid(SIGNATURE_ID).send().await.expect("ok").into_inner();
    h.check(&format!("/senders/{SIGNATURE_ID}"), &r);
    assert_eq!(r.confirmation_personal_note, None);
}

#[tokio::test]
async fn edit_sender_signature() {
    let h = Harness::account("edit_sender_signature").await;
    let r = h
        .account
        .edit_sender_signature()
        .signatureid(SIGNATURE_ID)
        .body(h.body::<types::EditSenderSignatureRequest>())
        .send()
        .await
        .expect("ok")
        .into_inner();
    h.check(&format!("/senders/{SIGNATURE_ID}"), &r);
    // Sent as ReplyToEmail, returned as ReplyToEmailAddress.
    assert_eq!(r.reply_to_email_address.as_deref(), Some("accounts@example.net"));
}

#[tokio::test]
async fn delete_sender_signature() {
    let h = Harness::account("delete_sender_signature").await;
    let r = h.account.delete_sender_signature().signatureid(NEW_SIGNATURE_ID).send().await.expect("ok").into_inner();
    h.check(&format!("/senders/{NEW_SIGNATURE_ID}"), &r);
    assert_eq!(r.error_code, 0);
}

#[tokio::test]
async fn resend_sender_signature_confirmation() {
    let h = Harness::account("resend_sender_signature_confirmation").await;
    let r = h
        .account
        .resend_sender_signature_confirmation()
        .signatureid(NEW_SIGNATURE_ID)
        .send()
        .await
        .expect("ok")
        .into_inner();
    h.check(&format!("/senders/{NEW_SIGNATURE_ID}/resend"), &r);
    assert_eq!(r.error_code, 0);
}

#[tokio::test]
async fn verify_sender_signature_spf() {
    let h = Harness::account("verify_sender_signature_spf").await;
    let r = h.account.verify_sender_signature_spf().signatureid(SIGNATURE_ID).send().await.expect("ok").into_inner();
    h.check(&format!("/senders/{SIGNATURE_ID}/verifyspf"), &r);
    assert_eq!(r.spf_verified, Some(true));
}

#[tokio::test]
async fn request_new_sender_dkim() {
    let h = Harness::account("request_new_sender_dkim").await;
    let r = h.account.request_new_sender_dkim().signatureid(SIGNATURE_ID).send().await.expect("ok").into_inner();
    h.check(&format!("/senders/{SIGNATURE_ID}/requestnewdkim"), &r);
    assert_eq!(r.error_code, 0);
}

// ---- Template push, data removals ----------------------------------------------------------------------------------

#[tokio::test]
async fn push_templates() {
    let h = Harness::account("push_templates").await;
    let r =
        h.account.push_templates().body(h.body::<types::PushTemplatesRequest>()).send().await.expect("ok").into_inner();
    h.check("/templates/push", &r);
    assert_eq!(r.total_count, 3);
    assert_eq!(r.templates[2].alias, None);
}

#[tokio::test]
async fn create_data_removal() {
    let h = Harness::account("create_data_removal").await;
    let r = h
        .account
        .create_data_removal()
        .body(h.body::<types::CreateDataRemovalRequest>())
        .send()
        .await
        .expect("ok")
        .into_inner();
    h.check("/data-removals", &r);
    assert_eq!((r.id, r.status.as_str()), (7731, "Pending"));
}

#[tokio::test]
async fn get_data_removal() {
    let h = Harness::account("get_data_removal").await;
    let r = h.account.get_data_removal().data_removal_id(7731).send().await.expect("ok").into_inner();
    h.check("/data-removals/7731", &r);
    assert_eq!(r.status, "Done");
}

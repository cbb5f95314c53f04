//! Contract tests for the Account API's 26 operations.

use super::Harness;

#[tokio::test]
async fn get_domain() {
    let h = Harness::account("get_domain").await;
    let r = h.account.get_domain().domainid(36735).send().await.expect("ok");
    h.check("/domains/36735", &r.into_inner());
}

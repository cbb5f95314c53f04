//! Testing application code without a network: a function that reactivates every hard bounce Postmark allows,
//! run against typed mocks of `GET /bounces` and `PUT /bounces/{bounceid}/activate` on a local `MockServer`.
//!
//! ```sh
//! cargo run -p postmark-httpmock --example mocked_bounces
//! ```
//!
//! The same few lines belong in an application's `#[tokio::test]`; `assert_async` fails the test when the code under
//! test did not make the expected call.

use futures_util::TryStreamExt as _;
use postmark_httpmock::httpmock::MockServer;
use postmark_httpmock::server::MockServerExt as _;
use postmark_server::{Error, ResultExt as _, ServerClient, types};

/// The application code under test: reactivates the hard-bounced addresses Postmark lets us reactivate and returns
/// them.
async fn reactivate_hard_bounces(client: &ServerClient) -> Result<Vec<String>, Error> {
    let bounces: Vec<types::Bounce> =
        client.list_bounces().type_("HardBounce").inactive(true).stream().try_collect().await?;
    let mut reactivated = Vec::new();
    for bounce in bounces.into_iter().filter(|b| b.can_activate == Some(true)) {
        let answer = client.activate_bounce().bounceid(bounce.id).send().await.into_postmark()?;
        reactivated.push(answer.bounce.email.clone().unwrap_or_default());
    }
    Ok(reactivated)
}

fn bounce(id: i64, email: &str, can_activate: bool) -> types::Bounce {
    types::Bounce::builder()
        .id(id)
        .email(email.to_string())
        .type_("HardBounce".to_string())
        .inactive(true)
        .can_activate(can_activate)
        .try_into()
        .expect("every required field is set")
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let server = MockServer::start_async().await;
    let client = ServerClient::builder("test-token").base_url(server.base_url()).build().expect("client");

    // One page: `stream()` asks for the largest page Postmark serves (500) from offset 0 and stops at TotalCount.
    let listing = server.list_bounces(|when, then| {
        when.type_("HardBounce").inactive(true).count(500).offset(0);
        then.ok(&types::BounceListResponse {
            total_count: 2,
            bounces: vec![bounce(7, "jane@example.org", true), bounce(8, "spam-trap@example.org", false)],
        });
    });
    // Only the bounce that can be activated is; the typed `bounceid` matcher checks the path parameter.
    let activation = server.activate_bounce(|when, then| {
        when.bounceid(7);
        then.ok(&types::ActivateBounceResponse { message: "OK".into(), bounce: bounce(7, "jane@example.org", false) });
    });

    let reactivated = reactivate_hard_bounces(&client).await.expect("mocked calls succeed");
    listing.assert_async().await;
    activation.assert_async().await;
    assert_eq!(reactivated, ["jane@example.org"]);
    println!("reactivated: {}", reactivated.join(", "));
}

//! A fake Postmark on 127.0.0.1 to try the `postmark` command line against, without a network or a real token.
//!
//! ```sh
//! cargo run -p postmark-cli --example fake_postmark          # prints the address and the tokens it accepts
//! export POSTMARK_API_URL=http://127.0.0.1:PORT POSTMARK_SERVER_TOKEN=fake-server-token \
//!        POSTMARK_ACCOUNT_TOKEN=fake-account-token
//! cargo run -p postmark-cli -- check
//! cargo run -p postmark-cli -- templates pull ./templates
//! ```
//!
//! It serves `GET /server`, `GET /servers`, a template store (two templates and a layout) and the fake's `/email`;
//! it stops on Ctrl-C, or after the number of seconds given as the first argument.

use std::time::Duration;

use postmark_fake::http::FakeApi;
use serde_json::json;

#[tokio::main]
async fn main() {
    let seconds: u64 = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(3600);
    let fake = FakeApi::start().await;
    fake.set_server_token("fake-server-token");
    fake.set_account_token("fake-account-token");
    let server = json!({"ID": 1, "Name": "Production", "DeliveryType": "Live", "Color": "Blue",
        "ApiTokens": ["fake-server-token"], "TrackOpens": true, "TrackLinks": "HtmlOnly"});
    fake.respond("GET", "/server", 200, &server.to_string());
    fake.respond("GET", "/servers", 200, &json!({"TotalCount": 1, "Servers": [server]}).to_string());
    fake.store_templates(vec![
        json!({"TemplateId": 1001, "Name": "Base layout", "Alias": "base", "TemplateType": "Layout",
               "HtmlBody": "<html><body>{{{@content}}}</body></html>", "TextBody": "{{{@content}}}"}),
        json!({"TemplateId": 1002, "Name": "Welcome", "Alias": "welcome", "Subject": "Welcome, {{name}}",
               "HtmlBody": "<p>Hello {{name}}</p>", "TextBody": "Hello {{name}}", "LayoutTemplate": "base"}),
        json!({"TemplateId": 1003, "Name": "Receipt", "Subject": "Your receipt", "TextBody": "Total: {{total}}"}),
    ]);
    println!("POSTMARK_API_URL={}", fake.url());
    println!("POSTMARK_SERVER_TOKEN=fake-server-token");
    println!("POSTMARK_ACCOUNT_TOKEN=fake-account-token");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = tokio::time::sleep(Duration::from_secs(seconds)) => {}
    }
}

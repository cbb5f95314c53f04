//! `stream()` on the listings, against the fake serving Postmark's paging rules: more than one page, the end at
//! `TotalCount`, and the 10,000-result window reported instead of silently truncated.

use futures_util::{StreamExt as _, TryStreamExt as _};
use postmark_core::Error;
use postmark_core::paging::{MAX_PAGE_SIZE, MESSAGE_WINDOW};
use postmark_fake::http::{FakeApi, Fault};
use postmark_server::ServerClient;
use serde_json::{Value, json};

fn bounces(n: usize) -> Vec<Value> {
    (0..n).map(|i| json!({"RecordType": "Bounce", "ID": i, "Email": format!("r{i}@example.org")})).collect()
}

async fn fake_with_bounces(n: usize) -> (FakeApi, ServerClient) {
    let fake = FakeApi::start().await;
    fake.serve_list("/bounces", "Bounces", bounces(n), Some(MESSAGE_WINDOW as usize));
    let client = ServerClient::builder("t").base_url(fake.url()).build().expect("client");
    (fake, client)
}

/// (count, offset) of every request the fake received.
fn pages(fake: &FakeApi) -> Vec<(i64, i64)> {
    fake.requests()
        .iter()
        .map(|r| {
            let q =
                |n: &str| r.query.iter().find(|(k, _)| k.eq_ignore_ascii_case(n)).map(|(_, v)| v.parse().expect("int"));
            (q("count").expect("count"), q("offset").expect("offset"))
        })
        .collect()
}

#[tokio::test]
async fn streams_every_item_in_pages_of_500_and_keeps_the_filters() {
    let (fake, client) = fake_with_bounces(1234).await;
    let ids: Vec<i64> = client
        .list_bounces()
        .type_("HardBounce")
        .count(3) // ignored: the stream pages with the maximum
        .stream()
        .map_ok(|b| b.id)
        .try_collect()
        .await
        .expect("all pages");
    assert_eq!(ids, (0..1234).collect::<Vec<i64>>());
    assert_eq!(pages(&fake), [(500, 0), (500, 500), (500, 1000)], "stops at TotalCount without an extra request");
    assert!(fake.requests().iter().all(|r| r.query.contains(&("type".into(), "HardBounce".into()))));
}

#[tokio::test]
async fn an_empty_listing_is_one_request() {
    let (fake, client) = fake_with_bounces(0).await;
    let items: Vec<_> = client.list_bounces().stream().try_collect().await.expect("ok");
    assert!(items.is_empty());
    assert_eq!(pages(&fake), [(500, 0)]);
}

#[tokio::test]
async fn exactly_the_window_is_not_an_error() {
    let (fake, client) = fake_with_bounces(MESSAGE_WINDOW as usize).await;
    let n = client.list_bounces().stream().try_fold(0usize, |n, _| async move { Ok(n + 1) }).await.expect("ok");
    assert_eq!(n, 10_000);
    assert_eq!(pages(&fake).len(), 20);
}

#[tokio::test]
async fn past_the_window_the_stream_ends_with_a_clear_error_not_silence() {
    let (fake, client) = fake_with_bounces(10_250).await;
    let mut stream = client.list_bounces().fromdate("2026-01-01").stream();
    let mut seen = 0;
    let err = loop {
        match stream.next().await.expect("an item or the window error") {
            Ok(_) => seen += 1,
            Err(e) => break e,
        }
    };
    assert_eq!(seen, 10_000, "every reachable item comes first");
    assert!(stream.next().await.is_none(), "the error ends the stream");
    match &err {
        Error::PageWindow { total, window, operation } => {
            assert_eq!((*total, *window, operation.as_str()), (10_250, 10_000, "ListBounces"));
        }
        other => panic!("expected PageWindow, got {other:?}"),
    }
    assert!(err.to_string().contains("narrow the query"), "{err}");
    let asked = pages(&fake);
    assert!(asked.iter().all(|(c, o)| c + o <= MESSAGE_WINDOW), "never asks past the window: {asked:?}");
    assert_eq!(asked.len(), 20, "no request is wasted on the unreachable rest");
}

#[tokio::test]
async fn a_server_refusal_of_a_page_is_an_error_not_a_short_listing() {
    // A fake whose window (1,200) is smaller than Postmark's: the third page is refused, and the stream says so.
    let fake = FakeApi::start().await;
    let messages = (0..1500).map(|i| json!({"MessageID": i.to_string()})).collect();
    fake.serve_list("/messages/outbound", "Messages", messages, Some(1200));
    let client = ServerClient::builder("t").base_url(fake.url()).build().expect("client");
    let mut stream = client.list_outbound_messages().stream();
    let mut n = 0;
    let err = loop {
        match stream.next().await.expect("item or error") {
            Ok(_) => n += 1,
            Err(e) => break e,
        }
    };
    assert_eq!(n, 1000);
    assert_eq!((err.status(), err.error_code().map(|c| c.as_i64())), (Some(422), Some(700)));
    assert_eq!(pages(&fake), [(500, 0), (500, 500), (500, 1000)]);
}

#[tokio::test]
async fn an_error_mid_way_is_yielded_and_ends_the_stream() {
    let (fake, client) = fake_with_bounces(1200).await;
    let mut stream = client.list_bounces().stream();
    for _ in 0..MAX_PAGE_SIZE {
        stream.next().await.expect("item").expect("ok");
    }
    fake.push_fault(Fault::api_error(500, 0, "Internal error"));
    let err = stream.next().await.expect("the error").expect_err("500");
    assert_eq!(err.status(), Some(500));
    assert!(stream.next().await.is_none());
}

#[tokio::test]
async fn templates_page_with_capitalised_parameters() {
    let fake = FakeApi::start().await;
    fake.store_templates((0..620).map(|i| json!({"Name": format!("t{i}"), "Alias": format!("a{i}")})).collect());
    let client = ServerClient::builder("t").base_url(fake.url()).build().expect("client");
    let names: Vec<String> =
        client.list_templates().stream().map_ok(|t| t.name.unwrap_or_default()).try_collect().await.expect("ok");
    assert_eq!(names.len(), 620);
    assert_eq!(names[619], "t619");
    assert!(fake.requests().iter().all(|r| r.query.iter().any(|(k, _)| k == "Count")));
}

#[tokio::test]
async fn account_listings_stream_too() {
    let fake = FakeApi::start().await;
    let servers = (0..501).map(|i| json!({"ID": i, "Name": format!("s{i}")})).collect();
    fake.serve_list("/servers", "Servers", servers, None);
    let client = postmark_account::AccountClient::builder("a").base_url(fake.url()).build().expect("client");
    let servers: Vec<_> = client.list_servers().stream().try_collect().await.expect("ok");
    assert_eq!(servers.len(), 501);
    assert_eq!(pages(&fake), [(500, 0), (500, 500)]);
}

/// Every operation of both specs that takes `count` and `offset` has `stream()` (one `Builder => Item` line in the
/// client crate's `paging.rs`), so a listing added to a spec cannot be left to hand paging.
#[test]
fn every_count_offset_listing_has_a_stream() {
    let root = xtask::workspace_root();
    let mut listings = Vec::new();
    for (spec, crate_dir) in [("openapi/server.yaml", "postmark-server"), ("openapi/account.yaml", "postmark-account")]
    {
        let doc = xtask::load_bundled(&root.join(spec), &root.join(xtask::SHARED_SPEC)).expect("spec loads");
        let paging = std::fs::read_to_string(root.join("crates").join(crate_dir).join("src/paging.rs")).expect("read");
        for item in doc["paths"].as_object().expect("paths").values() {
            for (method, op) in item.as_object().expect("path item") {
                let params: Vec<String> = op["parameters"]
                    .as_array()
                    .map(|ps| ps.iter().filter_map(|p| p["name"].as_str()).map(str::to_ascii_lowercase).collect())
                    .unwrap_or_default();
                if method == "parameters"
                    || !(params.iter().any(|p| p == "count") && params.iter().any(|p| p == "offset"))
                {
                    continue;
                }
                let id = op["operationId"].as_str().expect("operationId");
                let builder: String = id.split('_').map(|w| w[..1].to_ascii_uppercase() + &w[1..]).collect();
                assert!(paging.contains(&format!("{builder} =>")), "{id} pages with count/offset but has no stream()");
                listings.push(id.to_string());
            }
        }
    }
    assert_eq!(listings.len(), 12, "the listings found: {listings:?}");
}

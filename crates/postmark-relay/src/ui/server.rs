//! The UI's HTTP server (axum): pages, the JSON API, live updates and the guarded actions.
//!
//! Safety rules, each with a test:
//! * every response carries `X-Content-Type-Options: nosniff` and `Referrer-Policy: no-referrer`;
//!   the UI's own pages `Content-Security-Policy: default-src 'none'; script-src 'self'; …`
//!   (no inline script, framed by nobody);
//! * a message's HTML is served only from `/messages/{id}/html`, under [`HTML_CSP`] (no script,
//!   no remote load, no form) plus the CSP `sandbox` directive, and shown in an
//!   `<iframe sandbox="">`; remote images only with `?remote=1` (a click), fetched by the
//!   browser, never by the relay;
//! * clients outside loopback and `ui_allow` get `403`; on loopback, a `Host` that is not
//!   `localhost` or an address literal gets `403` (DNS rebinding);
//! * `DELETE` and release answer `403` unless `ui_actions = true` and a token is set, and `401`
//!   without `Authorization: Bearer <token>` (compared in constant time).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;

use super::Ui;
use super::pages::{self, TabContent};
use super::store::{self, Place};
use crate::shutdown::ShutdownSignal;
use crate::spool::QueueId;

/// The policy of a message's HTML (as Mailpit's advisories teach): nothing but inline styles and
/// embedded images.
pub const HTML_CSP: &str = "default-src 'none'; img-src data: cid:; style-src 'unsafe-inline'";
/// The same after a click on "show remote images": the browser may fetch images.
const HTML_CSP_REMOTE: &str = "default-src 'none'; img-src data: cid: https: http:; style-src 'unsafe-inline'";
/// What both add: no form submission, framed only by the UI, sandboxed even when opened alone.
const HTML_CSP_TAIL: &str = "; form-action 'none'; frame-ancestors 'self'; sandbox";
/// The UI's own pages.
pub const PAGE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                            frame-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// Messages per page.
const PAGE: usize = 50;
/// How many messages a search reads at most before it answers.
const SEARCH_SCAN: usize = 5_000;

/// The router, with the safety layers.
pub fn router(ui: Arc<Ui>) -> Router {
    Router::new()
        .route("/", get(list_page))
        .route("/rows", get(rows))
        .route("/events", get(events))
        .route("/assets/ui.css", get(|| async { asset("text/css; charset=utf-8", include_str!("assets/ui.css")) }))
        .route("/assets/ui.js", get(|| async { asset("text/javascript; charset=utf-8", include_str!("assets/ui.js")) }))
        .route("/messages/{id}", get(message_page))
        .route("/messages/{id}/html", get(html_body))
        .route("/messages/{id}/source.eml", get(source))
        .route("/messages/{id}/attachments/{index}", get(attachment))
        .route("/api/messages", get(api_list))
        .route("/api/messages/{id}", get(api_detail).delete(api_delete))
        .route("/api/messages/{id}/release", axum::routing::post(api_release))
        .layer(middleware::from_fn_with_state(Arc::clone(&ui), guard))
        .with_state(ui)
}

/// Who may ask, and the headers every answer carries.
async fn guard(
    State(ui): State<Arc<Ui>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
    next: Next,
) -> Response {
    if !ui.settings.admits(peer.ip()) {
        return (StatusCode::FORBIDDEN, "this address may not use the UI (see ui_allow)\n").into_response();
    }
    if ui.settings.allow.is_empty() && !host_is_local(req.headers()) {
        return (StatusCode::FORBIDDEN, "the Host header must be localhost or an address\n").into_response();
    }
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    h.entry(header::CONTENT_SECURITY_POLICY).or_insert(HeaderValue::from_static(PAGE_CSP));
    h.entry(header::CACHE_CONTROL).or_insert(HeaderValue::from_static("no-store"));
    resp
}

/// `localhost`, or an IP address literal, with any port.
fn host_is_local(headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else { return false };
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or_default(),
        None => host.rsplit_once(':').map_or(host, |(n, _)| n),
    };
    name.eq_ignore_ascii_case("localhost") || name.parse::<std::net::IpAddr>().is_ok()
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "max-age=300")], body).into_response()
}

fn html(body: String) -> Response {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response()
}

fn error(status: StatusCode, text: impl Into<String>) -> Response {
    (status, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], format!("{}\n", text.into())).into_response()
}

/// A refusal: the status and its text.
type Fail = (StatusCode, String);

fn fail((status, text): Fail) -> Response {
    error(status, text)
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, Fail> {
    tokio::task::spawn_blocking(f).await.map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}

#[derive(Debug, Default, Deserialize)]
struct ListQuery {
    #[serde(default)]
    q: String,
    before: Option<String>,
}

/// A page of summaries (matching `q`), the id to page on from, and whether the search read
/// everything older than `before`.
struct Listing {
    messages: Vec<super::view::Summary>,
    older: Option<String>,
    complete: bool,
}

fn listing(ui: &Ui, query: &ListQuery) -> std::io::Result<Listing> {
    let needle = query.q.trim().to_lowercase();
    let mut before = query.before.as_deref().and_then(QueueId::parse);
    let (mut messages, mut scanned) = (Vec::new(), 0);
    loop {
        let batch = store::page(&ui.spool, &ui.delivered, before.as_ref(), PAGE)?;
        let done = batch.len() < PAGE;
        for (id, place) in batch {
            scanned += 1;
            before = Some(id.clone());
            // Loaded one at a time and dropped: at most one message in memory.
            let Ok(loaded) = store::load(&ui.spool, &ui.delivered, &id, place) else { continue };
            let (requests, _, _) = super::view::requests(&loaded, &ui.view);
            let summary = super::view::summary(&loaded, &requests);
            if needle.is_empty() || matches(&summary, &needle) {
                messages.push(summary);
                if messages.len() == PAGE {
                    return Ok(Listing { messages, older: before.map(|b| b.to_string()), complete: false });
                }
            }
        }
        if done {
            return Ok(Listing { messages, older: None, complete: true });
        }
        if scanned >= SEARCH_SCAN {
            return Ok(Listing { messages, older: before.map(|b| b.to_string()), complete: false });
        }
    }
}

fn matches(s: &super::view::Summary, needle: &str) -> bool {
    let fields = [&s.id, &s.from, &s.subject, &s.info, &s.state.to_string()];
    fields.iter().any(|f| f.to_lowercase().contains(needle))
        || s.to.iter().chain(&s.cc).chain(&s.bcc).any(|a| a.to_lowercase().contains(needle))
        || s.error_code.is_some_and(|c| c.to_string() == needle)
}

async fn list_page(State(ui): State<Arc<Ui>>, Query(query): Query<ListQuery>) -> Response {
    let u = Arc::clone(&ui);
    let q = query.q.clone();
    match blocking(move || listing(&u, &query)).await {
        Ok(Ok(l)) => html(pages::list(&l.messages, &q, l.older.as_deref(), l.complete, &ui.mode)),
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, format!("cannot read the spool: {e}")),
        Err(f) => fail(f),
    }
}

async fn rows(State(ui): State<Arc<Ui>>, Query(query): Query<ListQuery>) -> Response {
    match blocking(move || listing(&ui, &query)).await {
        Ok(Ok(l)) => html(pages::rows(&l.messages)),
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, format!("cannot read the spool: {e}")),
        Err(f) => fail(f),
    }
}

async fn api_list(State(ui): State<Arc<Ui>>, Query(query): Query<ListQuery>) -> Response {
    match blocking(move || listing(&ui, &query)).await {
        Ok(Ok(l)) => axum::Json(serde_json::json!({ "messages": l.messages, "older": l.older })).into_response(),
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, format!("cannot read the spool: {e}")),
        Err(f) => fail(f),
    }
}

/// `change` events when the spool's contents change (polled every second), until shutdown.
async fn events(State(ui): State<Arc<Ui>>) -> impl IntoResponse {
    let start = (ui, None::<String>);
    let stream = futures_util::stream::unfold(start, |(ui, mut last)| async move {
        let mut shutdown: ShutdownSignal = ui.shutdown.clone();
        loop {
            let spool = Arc::clone(&ui.spool);
            let now = tokio::task::spawn_blocking(move || store::fingerprint(&spool)).await.ok()?;
            let now = format!("{now}{:?}", ui.delivered.newest());
            if last.as_ref().is_some_and(|l| *l != now) {
                let event = Event::default().event("change").data("spool changed");
                return Some((Ok::<_, std::convert::Infallible>(event), (ui, Some(now))));
            }
            last = Some(now);
            tokio::select! {
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
                () = shutdown.wait() => return None,
            }
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

/// The message `id`, loaded and viewed.
async fn detail_of(ui: &Arc<Ui>, id: &str) -> Result<(super::view::Detail, Option<Vec<u8>>), Fail> {
    let Some(id) = QueueId::parse(id) else { return Err((StatusCode::NOT_FOUND, "not a queue id".into())) };
    let ui = Arc::clone(ui);
    blocking(move || {
        let place = store::locate(&ui.spool, &ui.delivered, &id)
            .ok_or_else(|| (StatusCode::NOT_FOUND, format!("no message {id}")))?;
        let loaded = store::load(&ui.spool, &ui.delivered, &id, place).map_err(|e| (StatusCode::NOT_FOUND, e))?;
        let detail = super::view::detail(&loaded, &ui.view);
        Ok((detail, loaded.message.map(|m| m.raw)))
    })
    .await?
}

#[derive(Debug, Default, Deserialize)]
struct ViewQuery {
    tab: Option<String>,
    remote: Option<String>,
}

async fn message_page(State(ui): State<Arc<Ui>>, Path(id): Path<String>, Query(q): Query<ViewQuery>) -> Response {
    let (detail, raw) = match detail_of(&ui, &id).await {
        Ok(d) => d,
        Err(f) => return fail(f),
    };
    let tab = q.tab.as_deref().filter(|t| pages::TABS.iter().any(|(k, _)| k == t)).unwrap_or("html");
    let content = TabContent {
        tab,
        remote: q.remote.as_deref() == Some("1"),
        source: raw.as_deref(),
        actions: ui.settings.actions_enabled(),
    };
    html(pages::message(&detail, &content, &ui.mode))
}

/// The HTML body, its `cid:` images made `data:` URIs, under the strict policy.
async fn html_body(State(ui): State<Arc<Ui>>, Path(id): Path<String>, Query(q): Query<ViewQuery>) -> Response {
    let (detail, _) = match detail_of(&ui, &id).await {
        Ok(d) => d,
        Err(f) => return fail(f),
    };
    let first = detail.requests.first();
    let body = first.and_then(|r| r.get("HtmlBody")).and_then(|v| v.as_str()).unwrap_or_default();
    let body = inline_images(body, first);
    let policy = if q.remote.as_deref() == Some("1") { HTML_CSP_REMOTE } else { HTML_CSP };
    let csp = HeaderValue::from_str(&format!("{policy}{HTML_CSP_TAIL}")).expect("a constant header value");
    let mut resp = html(body);
    resp.headers_mut().insert(header::CONTENT_SECURITY_POLICY, csp);
    resp
}

/// Replaces each `cid:<id>` reference the request's attachments answer with a `data:` URI.
fn inline_images(body: &str, request: Option<&serde_json::Value>) -> String {
    use base64::Engine as _;
    let mut out = body.to_owned();
    let Some(list) = request.and_then(|r| r.get("Attachments")).and_then(|a| a.as_array()) else { return out };
    let mut inline: Vec<(&str, String)> = list
        .iter()
        .filter_map(|a| {
            let cid = a.get("ContentID")?.as_str()?;
            let kind = a.get("ContentType")?.as_str()?.split(';').next()?.trim();
            if !kind.starts_with("image/") || !kind.bytes().all(|b| b.is_ascii_alphanumeric() || b"/+.-".contains(&b)) {
                return None;
            }
            let content = super::view::decoded(a)?;
            Some((cid, format!("data:{kind};base64,{}", base64::engine::general_purpose::STANDARD.encode(content))))
        })
        .collect();
    inline.sort_by_key(|(cid, _)| std::cmp::Reverse(cid.len()));
    for (cid, uri) in inline {
        let cid = if cid.starts_with("cid:") { cid.to_owned() } else { format!("cid:{cid}") };
        out = out.replace(&cid, &uri);
    }
    out
}

fn download(name: &str, bytes: Vec<u8>) -> Response {
    let safe: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() || "._-".contains(c) { c } else { '_' }).collect();
    let disposition = format!("attachment; filename=\"{}\"", if safe.is_empty() { "attachment" } else { &safe });
    let disposition = HeaderValue::from_str(&disposition).unwrap_or(HeaderValue::from_static("attachment"));
    let mut resp = Response::new(Body::from(bytes));
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
    h.insert(header::CONTENT_DISPOSITION, disposition);
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static("default-src 'none'; sandbox"));
    resp
}

async fn source(State(ui): State<Arc<Ui>>, Path(id): Path<String>) -> Response {
    match detail_of(&ui, &id).await {
        Ok((_, Some(raw))) => download(&format!("{id}.eml"), raw),
        Ok((_, None)) => error(StatusCode::NOT_FOUND, "the MIME source of this message was not kept"),
        Err(f) => fail(f),
    }
}

async fn attachment(State(ui): State<Arc<Ui>>, Path((id, index)): Path<(String, usize)>) -> Response {
    let (detail, _) = match detail_of(&ui, &id).await {
        Ok(d) => d,
        Err(f) => return fail(f),
    };
    let found = detail.requests.first().and_then(|r| r.get("Attachments")).and_then(|a| a.get(index));
    match found.and_then(|a| Some((a.get("Name")?.as_str()?.to_owned(), super::view::decoded(a)?))) {
        Some((name, bytes)) => download(&name, bytes),
        None => error(StatusCode::NOT_FOUND, "no such attachment"),
    }
}

async fn api_detail(State(ui): State<Arc<Ui>>, Path(id): Path<String>) -> Response {
    match detail_of(&ui, &id).await {
        Ok((detail, _)) => axum::Json(detail).into_response(),
        Err(f) => fail(f),
    }
}

/// Refuses unless actions are on and the request carries the token.
fn authorize(ui: &Ui, headers: &HeaderMap) -> Result<(), Fail> {
    let (true, Some(token)) = (ui.settings.actions, ui.settings.token.as_ref()) else {
        return Err((
            StatusCode::FORBIDDEN,
            "actions are off: set ui_actions = true and an access token (RELAY_UI_TOKEN, RELAY_UI_TOKEN_FILE, ui_token or \
             ui_token_file)"
                .into(),
        ));
    };
    let given =
        headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    match given {
        Some(given) if constant_time_eq(given.trim().as_bytes(), token.expose().as_bytes()) => Ok(()),
        _ => {
            Err((StatusCode::UNAUTHORIZED, "the UI access token is missing or wrong (Authorization: Bearer …)".into()))
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for i in 0..a.len().max(b.len()) {
        diff |= usize::from(a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0));
    }
    diff == 0
}

async fn api_delete(State(ui): State<Arc<Ui>>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    if let Err(f) = authorize(&ui, &headers) {
        return fail(f);
    }
    act(ui, id, super::actions::delete).await
}

async fn api_release(State(ui): State<Arc<Ui>>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    if let Err(f) = authorize(&ui, &headers) {
        return fail(f);
    }
    act(ui, id, super::actions::release).await
}

async fn act(ui: Arc<Ui>, id: String, f: fn(&Ui, &QueueId, Place) -> super::actions::Answer) -> Response {
    let Some(id) = QueueId::parse(&id) else { return error(StatusCode::NOT_FOUND, "not a queue id") };
    let done = blocking(move || {
        let place = store::locate(&ui.spool, &ui.delivered, &id).ok_or((404, format!("no message {id}")))?;
        f(&ui, &id, place)
    })
    .await;
    match done {
        Ok(Ok(text)) => error(StatusCode::OK, text),
        Ok(Err((code, text))) => error(StatusCode::from_u16(code).unwrap_or(StatusCode::CONFLICT), text),
        Err(f) => fail(f),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_localhost_and_address_literals_pass_the_host_check() {
        let host = |h: &str| {
            let mut m = HeaderMap::new();
            m.insert(header::HOST, HeaderValue::from_str(h).unwrap());
            host_is_local(&m)
        };
        assert!(host("127.0.0.1:8025") && host("localhost:8025") && host("LOCALHOST") && host("[::1]:8025"));
        assert!(!host("evil.example.com:8025") && !host("127.0.0.1.evil.example"));
        assert!(!host_is_local(&HeaderMap::new()));
    }

    #[test]
    fn cid_images_become_data_uris_and_nothing_else_changes() {
        let request = serde_json::json!({"Attachments": [
            {"Name": "logo.png", "ContentType": "image/png", "Content": "iVBORw==", "ContentID": "cid:logo@x"},
            {"Name": "evil", "ContentType": "text/html", "Content": "PHA+", "ContentID": "cid:evil"}]});
        let out = inline_images("<img src=\"cid:logo@x\"><img src=\"cid:evil\">", Some(&request));
        assert_eq!(out, "<img src=\"data:image/png;base64,iVBORw==\"><img src=\"cid:evil\">");
    }

    #[test]
    fn token_comparison_is_exact() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(
            !constant_time_eq(b"abc", b"abd") && !constant_time_eq(b"abc", b"abcd") && !constant_time_eq(b"", b"a")
        );
    }
}

//! Contract tests: every operation of both clients against the fake Postmark on 127.0.0.1.
//!
//! Each test calls one generated method with every parameter set from the operation's fixtures in
//! `tests/fixtures/<api>/`, then [`Harness::check`] asserts what went over the wire (method, path, token header,
//! `Accept`/`Content-Type`, query names as Postmark spells them, PascalCase body keys) and that the realistic response
//! sample decoded without losing a documented field.

mod account;
mod server;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::OnceLock;

use postmark_fake::http::{FakeApi, RecordedRequest};
use serde_json::Value;

pub const SERVER_TOKEN: &str = "server-token-7f3a";
pub const ACCOUNT_TOKEN: &str = "account-token-91c2";

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Api {
    Server,
    Account,
}

impl Api {
    fn dir(self) -> &'static str {
        match self {
            Api::Server => "server",
            Api::Account => "account",
        }
    }
    fn spec(self) -> &'static str {
        match self {
            Api::Server => "openapi/server.yaml",
            Api::Account => "openapi/account.yaml",
        }
    }
}

/// One operation under test: the fake, the two clients, and the operation's fixtures.
pub struct Harness {
    pub api: Api,
    pub op: &'static str,
    pub fake: FakeApi,
    pub server: postmark_server::ServerClient,
    pub account: postmark_account::AccountClient,
    method: String,
    path_template: String,
    has_body: bool,
    response: Value,
    request: Option<Value>,
    query: Option<Value>,
}

pub fn fixture(api_dir: &str, name: &str) -> Option<String> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures").join(api_dir).join(name);
    std::fs::read_to_string(path).ok()
}

impl Harness {
    pub async fn server(op: &'static str) -> Harness {
        Harness::new(Api::Server, op).await
    }

    pub async fn account(op: &'static str) -> Harness {
        Harness::new(Api::Account, op).await
    }

    async fn new(api: Api, op: &'static str) -> Harness {
        let (method, path_template, has_body) =
            find_operation(bundled_spec(api), op).unwrap_or_else(|| panic!("{op} is not in {}", api.spec()));
        let response_text = fixture(api.dir(), &format!("{op}.response.json"))
            .unwrap_or_else(|| panic!("no response fixture for {op}"));
        let response: Value = serde_json::from_str(&response_text).expect("response fixture is JSON");
        let request = fixture(api.dir(), &format!("{op}.request.json"))
            .map(|t| serde_json::from_str(&t).expect("request fixture is JSON"));
        let query = fixture(api.dir(), &format!("{op}.query.json"))
            .map(|t| serde_json::from_str(&t).expect("query fixture is JSON"));
        assert_eq!(has_body, request.is_some(), "{op}: a request fixture exists exactly when the operation has a body");
        let fake = FakeApi::start().await;
        fake.set_server_token(SERVER_TOKEN);
        fake.set_account_token(ACCOUNT_TOKEN);
        if path_template.contains('{') {
            fake.respond_any(200, &response_text);
        } else {
            // Also overrides the fake's own /email and /email/batch handling.
            fake.respond(&method, &path_template, 200, &response_text);
        }
        let server =
            postmark_server::ServerClient::builder(SERVER_TOKEN).base_url(fake.url()).build().expect("server client");
        let account = postmark_account::AccountClient::builder(ACCOUNT_TOKEN)
            .base_url(fake.url())
            .build()
            .expect("account client");
        Harness { api, op, fake, server, account, method, path_template, has_body, response, request, query }
    }

    /// The request fixture, decoded into the operation's body type.
    pub fn body<T: serde::de::DeserializeOwned>(&self) -> T {
        let v = self.request.clone().unwrap_or_else(|| panic!("{}: no request fixture", self.op));
        serde_json::from_value(v).unwrap_or_else(|e| panic!("{}: request fixture does not decode: {e}", self.op))
    }

    fn q(&self, name: &str) -> &Value {
        self.query
            .as_ref()
            .and_then(|q| q.get(name))
            .unwrap_or_else(|| panic!("{}: query fixture has no {name:?}", self.op))
    }

    /// A query parameter from the fixture, as text (strings and enums).
    pub fn qs(&self, name: &str) -> String {
        match self.q(name) {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        }
    }

    /// A query parameter from the fixture, as an integer.
    pub fn qi(&self, name: &str) -> i64 {
        self.q(name).as_i64().unwrap_or_else(|| panic!("{}: query {name} is not an integer", self.op))
    }

    /// A query parameter from the fixture, as a boolean.
    pub fn qb(&self, name: &str) -> bool {
        self.q(name).as_bool().unwrap_or_else(|| panic!("{}: query {name} is not a boolean", self.op))
    }

    /// The one request the call made.
    pub fn recorded(&self) -> RecordedRequest {
        let requests = self.fake.requests();
        assert_eq!(requests.len(), 1, "{}: exactly one request", self.op);
        requests.into_iter().next().expect("one request")
    }

    /// Asserts the request on the wire and the decoded response. `path` is the concrete path the call used.
    pub fn check<T: serde::Serialize>(&self, path: &str, decoded: &T) {
        let req = self.recorded();
        assert_eq!(req.method, self.method, "{}: method", self.op);
        assert_eq!(req.path, path, "{}: path", self.op);
        assert!(path_matches(&self.path_template, path), "{}: {path} does not fit {}", self.op, self.path_template);
        let (mine, other, token) = match self.api {
            Api::Server => ("x-postmark-server-token", "x-postmark-account-token", SERVER_TOKEN),
            Api::Account => ("x-postmark-account-token", "x-postmark-server-token", ACCOUNT_TOKEN),
        };
        assert_eq!(req.header(mine), Some(token), "{}: token header", self.op);
        assert_eq!(req.header(other), None, "{}: the other API's token header must never be sent", self.op);
        assert_eq!(req.header("accept"), Some("application/json"), "{}: Accept", self.op);
        assert_eq!(req.header("api-version"), None, "{}: progenitor's api-version header is stripped", self.op);
        if self.has_body {
            assert!(
                req.header("content-type").is_some_and(|ct| ct.starts_with("application/json")),
                "{}: Content-Type",
                self.op
            );
            let sent: Value = serde_json::from_slice(&req.body).expect("body is JSON");
            let fixture = self.request.as_ref().expect("request fixture");
            assert_same_json(fixture, &sent, &format!("{}: request body", self.op));
            assert_same_json(&sent, fixture, &format!("{}: request body (no extra keys)", self.op));
        } else {
            assert!(req.body.is_empty(), "{}: no body expected", self.op);
        }
        let expected_query: BTreeSet<(String, String)> = match &self.query {
            Some(Value::Object(q)) => q
                .iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        match v {
                            Value::String(s) => s.clone(),
                            other => other.to_string(),
                        },
                    )
                })
                .collect(),
            _ => BTreeSet::new(),
        };
        let sent_query: BTreeSet<(String, String)> = req.query.iter().cloned().collect();
        assert_eq!(sent_query, expected_query, "{}: query parameters (names as Postmark spells them)", self.op);
        let decoded = serde_json::to_value(decoded).expect("decoded response serializes");
        assert_same_json(&self.response, &decoded, &format!("{}: response", self.op));
    }
}

/// A decoded timestamp as RFC 3339 in UTC with nanoseconds, to show that the offset was applied and that all seven of
/// Postmark's fractional digits survived (`…T10:15:30.1234567-05:00` becomes `…T15:15:30.123456700Z`).
pub fn iso(t: Option<chrono::DateTime<chrono::Utc>>) -> String {
    t.expect("timestamp present").to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

/// A stats day, for comparing `Days[].Date`.
pub fn date(y: i32, m: u32, d: u32) -> chrono::NaiveDate {
    chrono::NaiveDate::from_ymd_opt(y, m, d).expect("valid date")
}

/// The bundled spec of `api`, parsed once per test binary (parsing the Server API's YAML takes a while in debug builds).
fn bundled_spec(api: Api) -> &'static Value {
    static SERVER: OnceLock<Value> = OnceLock::new();
    static ACCOUNT: OnceLock<Value> = OnceLock::new();
    let cell = match api {
        Api::Server => &SERVER,
        Api::Account => &ACCOUNT,
    };
    cell.get_or_init(|| {
        xtask::load_bundled(
            &xtask::workspace_root().join(api.spec()),
            &xtask::workspace_root().join(xtask::SHARED_SPEC),
        )
        .expect("spec loads")
    })
}

fn find_operation(spec: &Value, op: &str) -> Option<(String, String, bool)> {
    for (path, item) in spec.get("paths")?.as_object()? {
        for (method, o) in item.as_object()? {
            if o.get("operationId").and_then(Value::as_str) == Some(op) {
                return Some((method.to_uppercase(), path.clone(), o.get("requestBody").is_some()));
            }
        }
    }
    None
}

fn path_matches(template: &str, path: &str) -> bool {
    let t: Vec<&str> = template.split('/').collect();
    let p: Vec<&str> = path.split('/').collect();
    t.len() == p.len() && t.iter().zip(&p).all(|(t, p)| (t.starts_with('{') && !p.is_empty()) || t == p)
}

/// Every non-null value of `expected` (except the deliberately unknown `FutureField`) must be in `actual`, equal; an
/// empty array or object may be absent from `actual`.
/// Numbers compare as numbers and timestamps as instants, since a decoded `DateTime` re-serializes differently.
pub fn assert_same_json(expected: &Value, actual: &Value, what: &str) {
    fn walk(e: &Value, a: &Value, at: &str, errors: &mut Vec<String>) {
        match (e, a) {
            (Value::Null, _) => {}
            (Value::Object(eo), Value::Object(ao)) => {
                for (k, ev) in eo {
                    if k == "FutureField" || ev.is_null() {
                        continue;
                    }
                    match ao.get(k) {
                        Some(av) => walk(ev, av, &format!("{at}.{k}"), errors),
                        // typify skips empty optional arrays and maps when serializing (`skip_serializing_if =
                        // "Vec::is_empty"`): `[]`/`{}` and an absent key carry the same information.
                        None if ev.as_array().is_some_and(Vec::is_empty) => {}
                        None if ev.as_object().is_some_and(serde_json::Map::is_empty) => {}
                        None => errors.push(format!("{at}.{k} is missing")),
                    }
                }
            }
            (Value::Array(ea), Value::Array(aa)) => {
                if ea.len() != aa.len() {
                    errors.push(format!("{at}: {} items, expected {}", aa.len(), ea.len()));
                }
                for (i, (ev, av)) in ea.iter().zip(aa).enumerate() {
                    walk(ev, av, &format!("{at}[{i}]"), errors);
                }
            }
            (Value::Number(en), Value::Number(an)) if en.as_f64() != an.as_f64() => {
                errors.push(format!("{at}: {an} != {en}"));
            }
            (Value::Number(_), Value::Number(_)) => {}
            (Value::String(es), Value::String(as_)) if es != as_ => {
                let same_instant = matches!(
                    (chrono::DateTime::parse_from_rfc3339(es), chrono::DateTime::parse_from_rfc3339(as_)),
                    (Ok(x), Ok(y)) if x == y
                );
                if !same_instant {
                    errors.push(format!("{at}: {as_:?} != {es:?}"));
                }
            }
            (e, a) if e != a => errors.push(format!("{at}: {a} != {e}")),
            _ => {}
        }
    }
    let mut errors = Vec::new();
    walk(expected, actual, "$", &mut errors);
    assert!(errors.is_empty(), "{what}:\n  {}", errors.join("\n  "));
}

/// Every operationId of both specs has exactly one contract test named after it, so a new spec operation without a
/// test fails here.
#[test]
fn every_operation_has_a_contract_test() {
    let sources = [(Api::Server, include_str!("server.rs")), (Api::Account, include_str!("account.rs"))];
    let mut problems = Vec::new();
    for (api, source) in sources {
        let spec = xtask::load_document(&xtask::workspace_root().join(api.spec())).expect("spec loads");
        let paths = spec.get("paths").and_then(Value::as_object).expect("paths");
        let ops: Vec<&str> = paths
            .values()
            .filter_map(Value::as_object)
            .flat_map(|item| item.values())
            .filter_map(|op| op.get("operationId").and_then(Value::as_str))
            .collect();
        assert!(!ops.is_empty(), "{} has no operations", api.spec());
        for op in ops {
            let found = source.matches(&format!("async fn {op}()")).count();
            if found != 1 {
                problems.push(format!("{op} ({}): {found} tests in contract/{}.rs", api.spec(), api.dir()));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "each operation needs exactly one `async fn <operationId>()`:\n  {}",
        problems.join("\n  ")
    );
}

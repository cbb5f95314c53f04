//! Listings with Postmark's paging rules, and a template store, for paging tests and the CLI's template commands.
//!
//! * [`FakeApi::serve_list`]: `GET <path>?count=&offset=` over a fixed list of items, answered
//!   `{"TotalCount": n, "<Key>": [...]}` like Postmark: `count` and `offset` are required (either case), `count` at
//!   most 500, and with a window `count + offset` may not pass it (422 otherwise).
//! * [`FakeApi::store_templates`]: `GET/POST /templates`, `GET/PUT /templates/{idOrAlias}` over an in-memory store.

use serde_json::{Value, json};

use super::{FakeApi, RecordedRequest, Response, State, api_error, json_response};

/// A listing served with Postmark's paging rules.
#[derive(Debug, Clone)]
pub(super) struct FakeList {
    items_key: String,
    items: Vec<Value>,
    window: Option<usize>,
}

/// The in-memory templates of [`FakeApi::store_templates`].
#[derive(Debug, Clone, Default)]
pub(super) struct TemplateStore {
    templates: Vec<Value>,
    next_id: i64,
}

impl FakeApi {
    /// Serves `GET path` as a paged listing of `items` under `items_key` (e.g. `"/bounces"`, `"Bounces"`), with
    /// Postmark's window (`Some(10_000)` for bounces and messages) or none. Canned answers for the path win.
    pub fn serve_list(&self, path: &str, items_key: &str, items: Vec<Value>, window: Option<usize>) {
        self.state().lists.insert(path.to_string(), FakeList { items_key: items_key.to_string(), items, window });
    }

    /// Turns on the template store with these templates (each an object with at least `Name`; `TemplateId` is
    /// assigned when absent). From now on the fake lists, gets, creates and edits templates.
    pub fn store_templates(&self, templates: Vec<Value>) {
        let mut store = TemplateStore { templates: Vec::new(), next_id: 1000 };
        for t in templates {
            store.insert(t);
        }
        self.state().templates = Some(store);
    }

    /// The stored templates (full objects), in creation order.
    pub fn templates(&self) -> Vec<Value> {
        self.state().templates.as_ref().map(|s| s.templates.clone()).unwrap_or_default()
    }
}

fn query_value<'a>(request: &'a RecordedRequest, name: &str) -> Option<&'a str> {
    request.query.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

fn query_error_code(path: &str) -> i64 {
    match path {
        p if p.starts_with("/bounces") => 1000,
        p if p.starts_with("/messages") => 700,
        p if p.starts_with("/templates") => 1100,
        _ => 13,
    }
}

/// Why a page request is refused: Postmark's ErrorCode and message (answered with HTTP 422).
struct Refusal(i64, String);

impl Refusal {
    fn response(self) -> Response {
        api_error(422, self.0, &self.1)
    }
}

/// `(count, offset)` checked like Postmark: both required integers, count 1..=500, within the window.
fn page_bounds(request: &RecordedRequest, window: Option<usize>) -> Result<(usize, usize), Refusal> {
    let code = query_error_code(&request.path);
    let number = |name: &str| -> Result<usize, Refusal> {
        let raw =
            query_value(request, name).ok_or_else(|| Refusal(code, format!("The '{name}' parameter is required.")))?;
        raw.parse::<usize>().map_err(|_| Refusal(code, format!("The '{name}' parameter must be a number.")))
    };
    let (count, offset) = (number("count")?, number("offset")?);
    if count == 0 || count > 500 {
        return Err(Refusal(code, "Count must be between 1 and 500.".into()));
    }
    if let Some(w) = window
        && count + offset > w
    {
        return Err(Refusal(code, format!("Count + Offset cannot exceed {w}.")));
    }
    Ok((count, offset))
}

/// The account's sender signatures and domains as `GET /senders` and `GET /domains` list them, derived from the
/// verified-sender rules (so the listing and the send endpoints agree): an address in
/// [`Rules::verified_senders`](crate::rules::Rules) is a confirmed signature, an address in `unconfirmed_senders` a
/// signature not yet confirmed, and a bare domain in `verified_senders` a domain with DKIM verified. Field names
/// and shapes as in Postmark's reference (`SenderSignatures` items: `Domain`, `EmailAddress`,
/// `ReplyToEmailAddress`, `Name`, `Confirmed`, `ID`; `Domains` items: `Name`, `SPFVerified`, `DKIMVerified`,
/// `WeakDKIM`, `ReturnPathDomainVerified`, `ID`).
fn account_listing(state: &State, path: &str) -> Option<(&'static str, Vec<Value>)> {
    let verified = state.rules.verified_senders.as_ref()?;
    let unconfirmed = &state.rules.unconfirmed_senders;
    match path {
        "/senders" => {
            let signature = |(i, address): (usize, &String), confirmed: bool| {
                let domain = address.rsplit_once('@').map_or("", |(_, d)| d);
                let name = address.split('@').next().unwrap_or_default();
                json!({"Domain": domain, "EmailAddress": address, "ReplyToEmailAddress": "", "Name": name,
                       "Confirmed": confirmed, "ID": 100 + i})
            };
            let mut items: Vec<Value> =
                verified.iter().filter(|s| s.contains('@')).enumerate().map(|e| signature(e, true)).collect();
            let offset = items.len();
            items.extend(
                unconfirmed
                    .iter()
                    .filter(|s| s.contains('@'))
                    .enumerate()
                    .map(|(i, a)| signature((offset + i, a), false)),
            );
            Some(("SenderSignatures", items))
        }
        "/domains" => {
            let items = verified
                .iter()
                .filter(|s| !s.contains('@'))
                .enumerate()
                .map(|(i, name)| {
                    json!({"Name": name, "SPFVerified": true, "DKIMVerified": true, "WeakDKIM": false,
                           "ReturnPathDomainVerified": true, "ID": 200 + i})
                })
                .collect();
            Some(("Domains", items))
        }
        _ => None,
    }
}

/// Answers the request from a listing or the template store, or `None` when neither handles it.
pub(super) fn route(state: &mut State, request: &RecordedRequest) -> Option<Response> {
    if request.method == "GET"
        && let Some((key, items)) = account_listing(state, &request.path)
    {
        return Some(match page_bounds(request, None) {
            Ok((count, offset)) => {
                let page: Vec<Value> = items.iter().skip(offset).take(count).cloned().collect();
                let mut body = serde_json::Map::new();
                body.insert("TotalCount".into(), json!(items.len()));
                body.insert(key.into(), Value::Array(page));
                json_response(200, Value::Object(body).to_string())
            }
            Err(refusal) => refusal.response(),
        });
    }
    if request.method == "GET"
        && let Some(list) = state.lists.get(&request.path)
    {
        return Some(match page_bounds(request, list.window) {
            Ok((count, offset)) => {
                let page: Vec<Value> = list.items.iter().skip(offset).take(count).cloned().collect();
                let mut body = serde_json::Map::new();
                body.insert("TotalCount".into(), json!(list.items.len()));
                body.insert(list.items_key.clone(), Value::Array(page));
                json_response(200, Value::Object(body).to_string())
            }
            Err(refusal) => refusal.response(),
        });
    }
    let store = state.templates.as_mut()?;
    let rest = request.path.strip_prefix("/templates")?;
    let key = rest.strip_prefix('/').filter(|k| !k.is_empty() && !k.contains('/') && *k != "push");
    match (request.method.as_str(), key) {
        ("GET", None) => Some(match page_bounds(request, None) {
            Ok((count, offset)) => {
                let wanted = query_value(request, "TemplateType").filter(|t| *t != "All");
                let matching: Vec<Value> = store
                    .templates
                    .iter()
                    .filter(|t| wanted.is_none_or(|w| t["TemplateType"].as_str() == Some(w)))
                    .map(summary)
                    .collect();
                let page: Vec<Value> = matching.iter().skip(offset).take(count).cloned().collect();
                json_response(200, json!({"TotalCount": matching.len(), "Templates": page}).to_string())
            }
            Err(refusal) => refusal.response(),
        }),
        ("POST", None) => Some(match request.json() {
            Some(Value::Object(body)) if body.get("Name").and_then(Value::as_str).is_some_and(|n| !n.is_empty()) => {
                if let Some(alias) = body.get("Alias").and_then(Value::as_str)
                    && store.find(alias).is_some()
                {
                    return Some(api_error(422, 1122, &format!("A template with the alias '{alias}' exists.")));
                }
                let created = store.insert(Value::Object(body));
                json_response(200, summary(&created).to_string())
            }
            _ => api_error(422, 1120, "The 'Name' field is required."),
        }),
        ("GET", Some(key)) => Some(match store.find(key) {
            Some(i) => json_response(200, store.templates[i].to_string()),
            None => api_error(422, 1101, &format!("The template '{key}' does not exist.")),
        }),
        ("PUT", Some(key)) => Some(match (store.find(key), request.json()) {
            (Some(i), Some(Value::Object(changes))) => {
                let template = store.templates[i].as_object_mut().expect("templates are objects");
                for (k, v) in changes {
                    if k != "TemplateType" {
                        template.insert(k, v);
                    }
                }
                json_response(200, summary(&store.templates[i]).to_string())
            }
            (None, _) => api_error(422, 1101, &format!("The template '{key}' does not exist.")),
            (Some(_), _) => api_error(422, 402, "Received invalid JSON input."),
        }),
        _ => None,
    }
}

fn summary(t: &Value) -> Value {
    json!({
        "TemplateId": t["TemplateId"], "Name": t["Name"], "Alias": t["Alias"], "Active": t["Active"],
        "TemplateType": t["TemplateType"], "LayoutTemplate": t["LayoutTemplate"],
    })
}

impl TemplateStore {
    fn find(&self, key: &str) -> Option<usize> {
        self.templates.iter().position(|t| {
            t["TemplateId"].as_i64().is_some_and(|id| id.to_string() == key) || t["Alias"].as_str() == Some(key)
        })
    }

    fn insert(&mut self, mut t: Value) -> Value {
        let obj = t.as_object_mut().expect("a template is an object");
        let id = obj.get("TemplateId").and_then(Value::as_i64).unwrap_or_else(|| {
            self.next_id += 1;
            self.next_id
        });
        self.next_id = self.next_id.max(id);
        obj.insert("TemplateId".into(), json!(id));
        obj.entry("Active").or_insert(json!(true));
        obj.entry("TemplateType").or_insert(json!("Standard"));
        obj.entry("AssociatedServerId").or_insert(json!(1));
        for k in ["Alias", "Subject", "HtmlBody", "TextBody", "LayoutTemplate"] {
            obj.entry(k).or_insert(Value::Null);
        }
        self.templates.push(t.clone());
        t
    }
}

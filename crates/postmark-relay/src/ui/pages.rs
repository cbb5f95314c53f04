//! The HTML pages. Every piece of message data goes through [`esc`]; the pages carry no inline
//! script or style (their own CSP forbids both), and the message's HTML is never part of them:
//! it is served from its own path into a sandboxed iframe (see [`super::server`]).

use std::fmt::Write as _;

use serde_json::Value;

use super::view::{Detail, Summary};

/// Escapes text for HTML element content and quoted attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() && c != '\n' && c != '\t' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// Escapes a query parameter's value.
fn url_param(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// A whole page.
pub fn layout(title: &str, mode: &str, query: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" \
         content=\"width=device-width, initial-scale=1\"><title>{title} · postmark-relay</title>\
         <link rel=\"stylesheet\" href=\"/assets/ui.css\"><script src=\"/assets/ui.js\" defer></script></head><body>\
         <header class=\"top\"><a class=\"brand\" href=\"/\">postmark-relay <span>preview</span></a>\
         <span class=\"mode\">{mode}</span><form action=\"/\" method=\"get\" role=\"search\">\
         <input type=\"search\" name=\"q\" value=\"{query}\" placeholder=\"Search from, to, subject, state, id…\" \
         aria-label=\"Search\"></form></header><main>{body}</main></body></html>",
        title = esc(title),
        mode = esc(mode),
        query = esc(query),
    )
}

fn recipients(s: &Summary) -> String {
    let mut out = String::new();
    for (label, list) in [("To", &s.to), ("Cc", &s.cc), ("Bcc", &s.bcc)] {
        if !list.is_empty() {
            let _ = write!(
                out,
                "<span class=\"rcpt\" title=\"{all}\"><b>{label}</b>{all}</span>",
                all = esc(&list.join(", "))
            );
        }
    }
    out
}

fn state_badge(s: &Summary) -> String {
    let code = s.error_code.map(|c| format!(" · ErrorCode {c}")).unwrap_or_default();
    let info = if s.info.is_empty() { String::new() } else { format!("<span class=\"info\">{}</span>", esc(&s.info)) };
    format!("<span class=\"badge s-{0}\">{0}{1}</span>{info}", s.state, esc(&code))
}

fn size(n: u64) -> String {
    match n {
        n if n >= 1_000_000 => format!("{:.1} MB", n as f64 / 1e6),
        n if n >= 1_000 => format!("{:.1} KB", n as f64 / 1e3),
        n => format!("{n} B"),
    }
}

/// The table rows of the list (also sent alone to refresh the list live).
pub fn rows(list: &[Summary]) -> String {
    if list.is_empty() {
        return "<tr><td colspan=\"6\" class=\"empty\">No messages. Send one to the relay's SMTP port and it \
                appears here.</td></tr>"
            .into();
    }
    let mut out = String::new();
    for s in list {
        let subject = if s.subject.is_empty() { "(no subject)" } else { &s.subject };
        let _ = write!(
            out,
            "<tr class=\"msg\" data-href=\"/messages/{id}\"><td class=\"time\">{time}</td><td>{from}</td><td>{rcpt}</td>\
             <td class=\"subject\"><a href=\"/messages/{id}\">{subject}</a></td><td class=\"size\">{size}</td><td>{state}</td></tr>",
            id = esc(&s.id),
            time = esc(s.received.get(..19).unwrap_or(&s.received).replacen('T', " ", 1).as_str()),
            from = esc(&s.from),
            rcpt = recipients(s),
            subject = esc(subject),
            size = size(s.size),
            state = state_badge(s),
        );
    }
    out
}

/// The list page.
pub fn list(list: &[Summary], query: &str, older: Option<&str>, scanned_all: bool, mode: &str) -> String {
    let mut body = String::from(
        "<table><thead><tr><th>Received</th><th>From</th><th>Recipients (as Postmark delivers)</th><th>Subject</th>\
         <th>Size</th><th>State</th></tr></thead><tbody id=\"rows\">",
    );
    body.push_str(&rows(list));
    body.push_str("</tbody></table><div class=\"pager\"><span>");
    if !query.is_empty() {
        let _ = write!(body, "Matching “{}”. ", esc(query));
        if !scanned_all {
            body.push_str("Only the newest messages were searched; page on for more.");
        }
    }
    body.push_str("</span>");
    if let Some(before) = older {
        let _ = write!(body, "<a href=\"/?q={}&amp;before={}\">Older →</a>", url_param(query), url_param(before));
    }
    body.push_str("</div>");
    layout("Messages", mode, query, &body)
}

/// The tabs of the message view.
pub const TABS: [(&str, &str); 7] = [
    ("html", "HTML"),
    ("text", "Text"),
    ("json", "Postmark JSON"),
    ("source", "MIME source"),
    ("headers", "Headers"),
    ("attachments", "Attachments"),
    ("verdict", "Verdict"),
];

/// What a tab shows besides the [`Detail`].
pub struct TabContent<'a> {
    /// The tab.
    pub tab: &'a str,
    /// `remote=1`: the HTML with remote images allowed (by the browser, on this click).
    pub remote: bool,
    /// The MIME source, for the source tab.
    pub source: Option<&'a [u8]>,
    /// Whether the delete and release buttons are shown.
    pub actions: bool,
}

/// The message view.
pub fn message(d: &Detail, content: &TabContent<'_>, mode: &str) -> String {
    let s = &d.summary;
    if let (Some(when), Some(reference)) = (&s.delivered, &s.reference) {
        return delivered(s, when, reference, mode);
    }
    let id = esc(&s.id);
    let subject = if s.subject.is_empty() { "(no subject)" } else { &s.subject };
    let failed = d.verdict.iter().filter(|r| r.passed == Some(false)).count();
    let verdict = if failed == 0 {
        "<span class=\"ok\">✓ Postmark's rules that can be checked here pass</span>".to_string()
    } else {
        format!("<span class=\"fail\">✗ {failed} rule(s) fail</span>")
    };
    let mut body = format!(
        "<div class=\"card\"><h1>{subject}</h1><dl class=\"meta\"><dt>From</dt><dd>{from}</dd>{rcpt}\
         <dt>Received</dt><dd>{received}</dd><dt>State</dt><dd>{state}</dd><dt>Sent as</dt><dd>{via}</dd>\
         <dt>Verdict</dt><dd>{verdict}</dd>{repairs}<dt>Id</dt><dd>{id}</dd></dl></div>",
        repairs = if d.repairs.is_empty() {
            String::new()
        } else {
            format!("<dt>Repaired</dt><dd>{}</dd>", esc(&d.repairs.join("; ")))
        },
        subject = esc(subject),
        from = esc(&s.from),
        rcpt = [("To", &s.to), ("Cc", &s.cc), ("Bcc", &s.bcc)]
            .iter()
            .filter(|(_, l)| !l.is_empty())
            .map(|(k, l)| format!("<dt>{k}</dt><dd>{}</dd>", esc(&l.join(", "))))
            .collect::<String>(),
        received = esc(&s.received),
        state = state_badge(s),
        via = if d.via == "api" { "Postmark's HTTP API (/email)" } else { "Postmark's SMTP service (the MIME as is)" },
    );
    body.push_str("<nav class=\"tabs\">");
    for (key, label) in TABS {
        let on = if key == content.tab { " class=\"on\"" } else { "" };
        let _ = write!(body, "<a{on} href=\"/messages/{id}?tab={key}\">{label}</a>");
    }
    body.push_str("</nav><div class=\"pane\">");
    body.push_str(&tab(d, content));
    body.push_str("</div>");
    if content.actions && matches!(s.state, "dry-run" | "dead") {
        let _ = write!(
            body,
            "<div class=\"card actions\"><input id=\"token\" type=\"password\" \
             placeholder=\"UI access token\" autocomplete=\"off\"><button data-method=\"POST\" \
             data-url=\"/api/messages/{id}/release\">Release to Postmark</button><button data-method=\"DELETE\" \
             data-url=\"/api/messages/{id}\">Delete</button><span id=\"action-result\" class=\"note\"></span></div>"
        );
    }
    layout(subject, mode, "", &body)
}

/// The view of a delivered message: what the relay kept, and that the content is gone.
fn delivered(s: &Summary, when: &str, reference: &str, mode: &str) -> String {
    let subject = if s.subject.is_empty() { "(no subject)" } else { &s.subject };
    let body = format!(
        "<div class=\"card\"><h1>{subject}</h1><dl class=\"meta\"><dt>From</dt><dd>{from}</dd>\
         <dt>Delivered to</dt><dd>{to}</dd><dt>Received</dt><dd>{received}</dd><dt>State</dt><dd>{state}</dd>\
         <dt>Delivered</dt><dd>{when}</dd><dt>Reference</dt><dd><code>{reference}</code></dd><dt>Size</dt>\
         <dd>{size}</dd><dt>Id</dt><dd>{id}</dd></dl><p class=\"note\">Postmark accepted this message. Its content is \
         no longer held: once delivered, the relay keeps only what this page shows, in memory, for its last \
         messages.</p></div>",
        subject = esc(subject),
        from = esc(&s.from),
        to = esc(&s.to.join(", ")),
        received = esc(&s.received),
        state = state_badge(&Summary { info: String::new(), ..s.clone() }),
        when = esc(when),
        reference = esc(reference),
        size = size(s.size),
        id = esc(&s.id),
    );
    layout(subject, mode, "", &body)
}

fn first_str<'a>(d: &'a Detail, key: &str) -> Option<&'a str> {
    d.requests.first().and_then(|r| r.get(key)).and_then(Value::as_str).filter(|s| !s.is_empty())
}

fn tab(d: &Detail, c: &TabContent<'_>) -> String {
    let id = esc(&d.summary.id);
    match c.tab {
        "text" => match first_str(d, "TextBody") {
            Some(text) => format!("<pre>{}</pre>", esc(text)),
            None => "<p class=\"note\">No TextBody.</p>".into(),
        },
        "json" => json_tab(d),
        "source" => match c.source {
            Some(raw) => {
                const SHOWN: usize = 1 << 20;
                let more = if raw.len() > SHOWN { "<p class=\"note\">The first 1 MB.</p>" } else { "" };
                format!(
                    "<p class=\"note\">As the relay spooled it. <a href=\"/messages/{id}/source.eml\">Download</a></p>{more}<pre>{}</pre>",
                    esc(&String::from_utf8_lossy(&raw[..raw.len().min(SHOWN)]))
                )
            }
            None => "<p class=\"note\">The MIME source of this message was not kept.</p>".into(),
        },
        "headers" => headers_tab(d),
        "attachments" => attachments_tab(d),
        "verdict" => verdict_tab(d),
        _ => match first_str(d, "HtmlBody") {
            Some(_) => {
                let (src, note) = if c.remote {
                    (
                        format!("/messages/{id}/html?remote=1"),
                        "Remote images are shown: your browser loaded them, the relay did not.".to_string(),
                    )
                } else {
                    (
                        format!("/messages/{id}/html"),
                        format!(
                            "Scripts, forms and remote content are blocked. <a href=\"/messages/{id}?tab=html&amp;remote=1\">Show remote images</a>"
                        ),
                    )
                };
                format!(
                    "<p class=\"note\">{note}</p><iframe class=\"html\" sandbox=\"\" referrerpolicy=\"no-referrer\" \
                     title=\"HTML body\" src=\"{src}\"></iframe>"
                )
            }
            None => "<p class=\"note\">No HtmlBody: recipients see the text.</p>".into(),
        },
    }
}

/// The requests, pretty, with each attachment's content cut short.
fn json_tab(d: &Detail) -> String {
    let mut shown = d.requests.clone();
    for r in &mut shown {
        if let Some(list) = r.get_mut("Attachments").and_then(Value::as_array_mut) {
            for a in list {
                if let Some(Value::String(content)) = a.get_mut("Content")
                    && content.len() > 120
                {
                    *content = format!("{}… ({} characters of base64)", &content[..120], content.len());
                }
            }
        }
    }
    let json = match shown.as_slice() {
        [one] => serde_json::to_string_pretty(one),
        all => serde_json::to_string_pretty(all),
    }
    .unwrap_or_default();
    let origin = if d.requests_as_written {
        "The request body the dry-run wrote."
    } else if d.via == "api" {
        "The request body the relay will POST to /email (its token goes in a header, never here)."
    } else {
        "Over SMTP Postmark receives the MIME source; this is the relay's conversion of it, for comparison."
    };
    let error = d.conversion_error.as_deref().map(|e| format!("<p class=\"fail\">{}</p>", esc(e))).unwrap_or_default();
    format!("<p class=\"note\">{origin} Attachment contents are shortened here.</p>{error}<pre>{}</pre>", esc(&json))
}

fn headers_tab(d: &Detail) -> String {
    if d.headers.is_empty() {
        return "<p class=\"note\">The MIME source of this message was not kept.</p>".into();
    }
    let mut out = String::from(
        "<table><thead><tr><th>Header</th><th>Value</th><th>Fate</th><th>Becomes</th></tr></thead><tbody>",
    );
    for h in &d.headers {
        let _ = write!(
            out,
            "<tr><td>{}</td><td><pre>{}</pre></td><td><span class=\"badge f-{2}\">{2}</span></td><td>{3}</td></tr>",
            esc(&h.name),
            esc(&h.value),
            h.fate,
            esc(&h.note)
        );
    }
    out.push_str("</tbody></table>");
    out
}

fn attachments_tab(d: &Detail) -> String {
    if d.attachments.is_empty() {
        return "<p class=\"note\">No attachments.</p>".into();
    }
    let id = esc(&d.summary.id);
    let mut out = String::from(
        "<table><thead><tr><th>Name</th><th>Type</th><th>Inline (ContentID)</th><th>Size</th></tr></thead><tbody>",
    );
    for a in &d.attachments {
        let _ = write!(
            out,
            "<tr><td><a href=\"/messages/{id}/attachments/{}\">{}</a></td><td>{}</td><td>{}</td><td>{}</td></tr>",
            a.index,
            esc(&a.name),
            esc(&a.content_type),
            esc(a.content_id.as_deref().unwrap_or("")),
            size(a.size as u64)
        );
    }
    out.push_str("</tbody></table>");
    out
}

fn verdict_tab(d: &Detail) -> String {
    let mut out =
        String::from("<table><thead><tr><th></th><th>Rule</th><th>ErrorCode</th><th>Found</th></tr></thead><tbody>");
    for r in &d.verdict {
        let (mark, class) = match r.passed {
            Some(true) => ("✓", "ok"),
            Some(false) => ("✗", "fail"),
            None => ("?", "unknown"),
        };
        let row = if r.passed == Some(false) { " class=\"failed\"" } else { "" };
        let _ = write!(
            out,
            "<tr{row}><td class=\"{class}\">{mark}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&r.rule),
            r.error_code.map(|c| c.to_string()).unwrap_or_else(|| "–".into()),
            esc(&r.detail)
        );
    }
    out.push_str("</tbody></table>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(subject: &str, from: &str) -> Summary {
        Summary {
            id: "0123456789ab000001abcdef".into(),
            received: "2026-12-08T01:00:00Z".into(),
            from: from.into(),
            to: vec!["<img src=x onerror=alert(1)>@example.com".into()],
            cc: vec![],
            bcc: vec!["b\"@example.com".into()],
            subject: subject.into(),
            size: 1234,
            state: "dead",
            info: "<b>ErrorCode 406</b>".into(),
            error_code: Some(406),
            delivered: None,
            reference: None,
        }
    }

    #[test]
    fn a_delivered_message_shows_what_is_kept_escaped_and_no_tabs() {
        let s = Summary {
            state: "delivered",
            info: "<i>now</i>; reference <script>r()</script>".into(),
            error_code: None,
            delivered: Some("<i>now</i>".into()),
            reference: Some("<script>r()</script>".into()),
            ..summary("<script>s()</script>", "<b>f</b>@example.com")
        };
        let html = list(std::slice::from_ref(&s), "", None, true, "api");
        assert!(html.contains("s-delivered") && html.contains("&lt;script&gt;r()&lt;/script&gt;"), "{html}");
        assert!(!html.contains("<script>") && !html.contains("<i>now") && !html.contains("<b>f"), "{html}");
        let d = Detail::without_content(s, "api");
        let c = TabContent { tab: "html", remote: false, source: None, actions: true };
        let page = message(&d, &c, "api");
        assert!(page.contains("no longer held") && page.contains("<code>&lt;script&gt;r()&lt;/script&gt;</code>"));
        assert!(!page.contains("<script>") && !page.contains("<b>f") && !page.contains("<i>now"), "{page}");
        assert!(!page.contains("class=\"tabs\"") && !page.contains("Release to Postmark"), "{page}");
        assert!(page.contains("&lt;img src=x onerror=alert(1)&gt;@example.com"));
    }

    #[test]
    fn every_header_and_address_is_escaped_in_the_list() {
        let html =
            list(&[summary("<script>alert(1)</script>", "\"Evil\" <x@example.com>")], "<q>", None, true, "dry-run");
        assert!(!html.contains("<script>alert"), "{html}");
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(!html.contains("<img src=x"), "{html}");
        assert!(html.contains("&quot;Evil&quot; &lt;x@example.com&gt;"));
        assert!(html.contains("b&quot;@example.com"));
        assert!(!html.contains("<b>ErrorCode"));
        assert!(html.contains("value=\"&lt;q&gt;\""));
        assert_eq!(esc("a'b\u{7}c"), "a&#39;b\u{FFFD}c");
    }

    #[test]
    fn the_html_tab_is_a_sandboxed_iframe_and_remote_images_need_a_click() {
        let d = Detail {
            summary: summary("s", "f@example.com"),
            via: "api",
            requests: vec![serde_json::json!({"HtmlBody": "<p>hi</p><script>x()</script>"})],
            requests_as_written: true,
            conversion_error: None,
            headers: vec![],
            attachments: vec![],
            verdict: vec![],
            has_source: false,
            repairs: vec!["added a TextBody".into()],
        };
        let page = message(&d, &TabContent { tab: "html", remote: false, source: None, actions: false }, "dry-run");
        assert!(page.contains("<iframe class=\"html\" sandbox=\"\""), "{page}");
        assert!(page.contains("src=\"/messages/0123456789ab000001abcdef/html\""), "{page}");
        assert!(!page.contains("x()"), "the body is never inlined: {page}");
        assert!(page.contains("?tab=html&amp;remote=1"));
        assert!(page.contains("<dt>Repaired</dt><dd>added a TextBody</dd>"));
        let page = message(&d, &TabContent { tab: "html", remote: true, source: None, actions: false }, "dry-run");
        assert!(page.contains("/html?remote=1"));
        assert!(!page.contains("Release to Postmark"));
        let page = message(&d, &TabContent { tab: "verdict", remote: false, source: None, actions: true }, "dry-run");
        assert!(page.contains("Release to Postmark"));
    }
}

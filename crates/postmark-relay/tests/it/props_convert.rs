//! Property tests of the MIME → Postmark JSON conversion (issue 7 §6).
//!
//! Messages are assembled by hand from random parts (address headers with display names in every
//! quoting and encoded-word form, groups and folding; envelopes that are subsets and supersets of
//! the header recipients; bodies in UTF-8 and ISO-8859-1 with every transfer encoding; attachments
//! of random bytes with RFC 2231 / RFC 2047 / plain names), so the expected result is known:
//!
//! * the conversion never panics and succeeds;
//! * the addresses of `To` ∪ `Cc` ∪ `Bcc` in the request are the envelope recipients exactly,
//!   each once (compared with the domain case-insensitive, the local part as written), and every
//!   header recipient that is in the envelope stays in `To`/`Cc`;
//! * every attachment's base64 `Content` decodes to the original bytes, and its `Name` is the
//!   original name;
//! * the text and HTML bodies come back as sent.
//!
//! The same messages randomly damaged, and arbitrary bytes, must still never panic, and whenever
//! they convert the recipient rule must hold.

use std::collections::HashSet;

use base64::Engine as _;
use postmark_relay::Via;
use postmark_relay::convert::{ConvertOptions, Envelope, SendEmailRequest, to_postmark};
use proptest::prelude::*;
use proptest::test_runner::Config as ProptestConfig;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// 256 cases (about a second or two in a debug build); `PROPTEST_CASES=n` runs more.
fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(256);
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

// ---- the model ----------------------------------------------------------------------------

/// How a mailbox's display name is written.
#[derive(Debug, Clone)]
enum Name {
    None,
    /// `<addr>` without a name.
    Angle,
    Atom(String),
    Quoted(String),
    /// `=?utf-8?B?…?=`
    B(String),
    /// `=?utf-8?Q?…?=`
    Q(String),
    /// `=?iso-8859-1?B?…?=`
    Latin1B(String),
}

#[derive(Debug, Clone)]
struct Mailbox {
    name: Name,
    local: String,
    domain: String,
}

impl Mailbox {
    fn address(&self) -> String {
        format!("{}@{}", self.local, self.domain)
    }

    fn render(&self) -> String {
        let addr = self.address();
        match &self.name {
            Name::None => addr,
            Name::Angle => format!("<{addr}>"),
            Name::Atom(n) => format!("{n} <{addr}>"),
            Name::Quoted(n) => format!("\"{}\" <{addr}>", n.replace('\\', "\\\\").replace('"', "\\\"")),
            Name::B(n) => format!("=?utf-8?B?{}?= <{addr}>", B64.encode(n)),
            Name::Q(n) => format!("=?utf-8?Q?{}?= <{addr}>", q_word(n.as_bytes())),
            Name::Latin1B(n) => format!("=?iso-8859-1?B?{}?= <{addr}>", B64.encode(latin1(n))),
        }
    }
}

/// An address header: mailboxes, optionally some of them in a group, joined on one line or
/// folded.
#[derive(Debug, Clone)]
struct AddressList {
    boxes: Vec<Mailbox>,
    group: Option<(String, usize)>,
    folded: bool,
}

impl AddressList {
    fn render(&self) -> String {
        let sep = if self.folded { ",\r\n\t" } else { ", " };
        let items: Vec<String> = self.boxes.iter().map(Mailbox::render).collect();
        match &self.group {
            Some((name, n)) if *n <= items.len() => {
                let (grouped, rest) = items.split_at(*n);
                let mut parts = vec![format!("{name}: {};", grouped.join(sep))];
                parts.extend(rest.iter().cloned());
                parts.join(sep)
            }
            _ => items.join(sep),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Charset {
    Utf8,
    Latin1,
}

impl Charset {
    fn label(self) -> &'static str {
        match self {
            Charset::Utf8 => "utf-8",
            Charset::Latin1 => "iso-8859-1",
        }
    }

    fn encode(self, s: &str) -> Vec<u8> {
        match self {
            Charset::Utf8 => s.as_bytes().to_vec(),
            Charset::Latin1 => latin1(s),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cte {
    SevenBit,
    EightBit,
    Qp,
    Base64,
}

impl Cte {
    fn label(self) -> &'static str {
        match self {
            Cte::SevenBit => "7bit",
            Cte::EightBit => "8bit",
            Cte::Qp => "quoted-printable",
            Cte::Base64 => "base64",
        }
    }
}

/// A text body part.
#[derive(Debug, Clone)]
struct TextPart {
    /// Lines, joined with CRLF.
    lines: Vec<String>,
    charset: Charset,
    cte: Cte,
}

impl TextPart {
    fn text(&self) -> String {
        self.lines.join("\r\n")
    }

    fn render(&self, subtype: &str) -> Vec<u8> {
        let bytes = self.charset.encode(&self.text());
        let mut out = format!(
            "Content-Type: text/{subtype}; charset=\"{}\"\r\nContent-Transfer-Encoding: {}\r\n\r\n",
            self.charset.label(),
            self.cte.label()
        )
        .into_bytes();
        out.extend_from_slice(&transfer_encode(&bytes, self.cte));
        out
    }
}

/// How an attachment names itself.
#[derive(Debug, Clone)]
enum FileName {
    None,
    /// `filename="…"` (and `name="…"` on Content-Type).
    Plain(String),
    /// `filename*=utf-8''…`
    Rfc2231(String),
    /// `filename*0*=utf-8''…; filename*1*=…`
    Rfc2231Split(String, usize),
    /// `filename="=?utf-8?B?…?="`
    Rfc2047(String),
    /// Only `Content-Type: …; name="…"`.
    CtName(String),
}

impl FileName {
    fn expected(&self) -> Option<&str> {
        match self {
            FileName::None => None,
            FileName::Plain(n)
            | FileName::Rfc2231(n)
            | FileName::Rfc2231Split(n, _)
            | FileName::Rfc2047(n)
            | FileName::CtName(n) => Some(n),
        }
    }
}

#[derive(Debug, Clone)]
enum Content {
    /// Random bytes under a binary type.
    Binary { ctype: &'static str, bytes: Vec<u8> },
    /// A text file in a charset.
    Text { subtype: &'static str, part: TextPart },
    /// A forwarded message.
    Message(Vec<u8>),
}

#[derive(Debug, Clone)]
struct Attachment {
    content: Content,
    cte: Cte,
    name: FileName,
    inline: bool,
    /// A Content-ID the HTML body refers to.
    cid: Option<String>,
}

impl Attachment {
    /// The bytes the request must carry.
    fn bytes(&self) -> Vec<u8> {
        match &self.content {
            Content::Binary { bytes, .. } | Content::Message(bytes) => bytes.clone(),
            Content::Text { part, .. } => part.charset.encode(&part.text()),
        }
    }

    fn render(&self) -> Vec<u8> {
        let mut head = String::new();
        let ctype = match &self.content {
            Content::Binary { ctype, .. } => (*ctype).to_owned(),
            Content::Text { subtype, part } => format!("text/{subtype}; charset={}", part.charset.label()),
            Content::Message(_) => "message/rfc822".to_owned(),
        };
        head.push_str(&format!("Content-Type: {ctype}"));
        if let FileName::Plain(n) | FileName::CtName(n) = &self.name {
            head.push_str(&format!(";\r\n name=\"{}\"", quote(n)));
        }
        head.push_str("\r\n");
        let disposition = if self.inline { "inline" } else { "attachment" };
        match &self.name {
            FileName::None | FileName::CtName(_) => head.push_str(&format!("Content-Disposition: {disposition}\r\n")),
            FileName::Plain(n) => {
                head.push_str(&format!("Content-Disposition: {disposition};\r\n filename=\"{}\"\r\n", quote(n)))
            }
            FileName::Rfc2231(n) => head
                .push_str(&format!("Content-Disposition: {disposition}; filename*=utf-8''{}\r\n", pct(n.as_bytes()))),
            FileName::Rfc2231Split(n, at) => {
                let at = (0..=*at.min(&n.len())).rev().find(|&i| n.is_char_boundary(i)).unwrap_or(0);
                let (a, b) = n.split_at(at);
                head.push_str(&format!(
                    "Content-Disposition: {disposition};\r\n filename*0*=utf-8''{};\r\n filename*1*={}\r\n",
                    pct(a.as_bytes()),
                    pct(b.as_bytes())
                ));
            }
            FileName::Rfc2047(n) => head.push_str(&format!(
                "Content-Disposition: {disposition};\r\n filename=\"=?utf-8?B?{}?=\"\r\n",
                B64.encode(n)
            )),
        }
        if let Some(cid) = &self.cid {
            head.push_str(&format!("Content-ID: <{cid}>\r\n"));
        }
        head.push_str(&format!("Content-Transfer-Encoding: {}\r\n\r\n", self.cte.label()));
        let mut out = head.into_bytes();
        out.extend_from_slice(&transfer_encode(&self.bytes(), self.cte));
        out
    }
}

#[derive(Debug, Clone)]
struct Mail {
    from: Option<Mailbox>,
    mail_from: String,
    to: Option<AddressList>,
    cc: Option<AddressList>,
    bcc: Option<AddressList>,
    subject: Option<(String, u8)>,
    text: TextPart,
    html: Option<TextPart>,
    attachments: Vec<Attachment>,
    /// The envelope recipients, as given to RCPT TO.
    rcpt: Vec<String>,
    boundary: String,
}

impl Mail {
    fn render(&self) -> Vec<u8> {
        let mut out = String::new();
        if let Some(from) = &self.from {
            out.push_str(&format!("From: {}\r\n", from.render()));
        }
        for (name, list) in [("To", &self.to), ("Cc", &self.cc), ("Bcc", &self.bcc)] {
            if let Some(list) = list {
                out.push_str(&format!("{name}: {}\r\n", list.render()));
            }
        }
        if let Some((subject, how)) = &self.subject {
            let value = match how % 3 {
                0 => subject.clone(),
                1 => format!("=?utf-8?B?{}?=", B64.encode(subject)),
                _ => format!("=?utf-8?Q?{}?=", q_word(subject.as_bytes())),
            };
            out.push_str(&format!("Subject: {value}\r\n"));
        }
        out.push_str("Message-ID: <prop.test@example.com>\r\nX-Custom: kept\r\nMIME-Version: 1.0\r\n");
        let mut out = out.into_bytes();
        let b = &self.boundary;
        let body = match &self.html {
            None => self.text.render("plain"),
            Some(html) => {
                let mut alt = format!("Content-Type: multipart/alternative; boundary=\"{b}-alt\"\r\n\r\n--{b}-alt\r\n")
                    .into_bytes();
                alt.extend_from_slice(&self.text.render("plain"));
                alt.extend_from_slice(format!("\r\n--{b}-alt\r\n").as_bytes());
                alt.extend_from_slice(&html.render("html"));
                alt.extend_from_slice(format!("\r\n--{b}-alt--\r\n").as_bytes());
                alt
            }
        };
        if self.attachments.is_empty() {
            out.extend_from_slice(&body);
            out.extend_from_slice(b"\r\n");
            return out;
        }
        out.extend_from_slice(format!("Content-Type: multipart/mixed; boundary=\"{b}\"\r\n\r\n--{b}\r\n").as_bytes());
        out.extend_from_slice(&body);
        for att in &self.attachments {
            out.extend_from_slice(format!("\r\n--{b}\r\n").as_bytes());
            out.extend_from_slice(&att.render());
        }
        out.extend_from_slice(format!("\r\n--{b}--\r\n").as_bytes());
        out
    }

    fn envelope(&self) -> Envelope {
        Envelope::new(self.mail_from.clone(), self.rcpt.clone())
    }

    /// Header mailboxes of To and Cc, in order.
    fn header_recipients(&self) -> Vec<&Mailbox> {
        [&self.to, &self.cc].into_iter().flatten().flat_map(|l| l.boxes.iter()).collect()
    }
}

// ---- encoders -----------------------------------------------------------------------------

fn latin1(s: &str) -> Vec<u8> {
    s.chars().map(|c| u8::try_from(u32::from(c)).expect("latin-1 text")).collect()
}

fn q_word(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|&b| match b {
            b' ' => "_".to_owned(),
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' => (b as char).to_string(),
            _ => format!("={b:02X}"),
        })
        .collect()
}

fn pct(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|&b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'.' | b'-' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn quote(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

fn transfer_encode(bytes: &[u8], cte: Cte) -> Vec<u8> {
    match cte {
        Cte::SevenBit | Cte::EightBit => bytes.to_vec(),
        Cte::Base64 => {
            let b64 = B64.encode(bytes);
            b64.as_bytes().chunks(76).collect::<Vec<_>>().join(&b"\r\n"[..])
        }
        Cte::Qp => qp(bytes),
    }
}

/// Quoted-printable: CRLF pairs stay hard line breaks, every other byte outside printable ASCII
/// (and `=`, and blanks, so no line ends in one) is `=XX`, soft breaks keep lines under 76.
fn qp(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut line = 0;
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i..].starts_with(b"\r\n") {
            out.extend_from_slice(b"\r\n");
            line = 0;
            i += 2;
            continue;
        }
        let b = bytes[i];
        let enc = if (33..=126).contains(&b) && b != b'=' { vec![b] } else { format!("={b:02X}").into_bytes() };
        if line + enc.len() > 75 {
            out.extend_from_slice(b"=\r\n");
            line = 0;
        }
        line += enc.len();
        out.extend_from_slice(&enc);
        i += 1;
    }
    out
}

// ---- generators ---------------------------------------------------------------------------

/// Text without control characters (so names and subjects survive unchanged).
const ANY_TEXT: &str = "[^\\x00-\\x1f\\x7f-\\x9f]{1,16}";
const LATIN1_TEXT: &str = "[ -~\u{a0}-\u{ff}]{1,16}";

fn name() -> impl Strategy<Value = Name> {
    prop_oneof![
        3 => Just(Name::None),
        1 => Just(Name::Angle),
        2 => "[A-Za-z]{1,8}( [A-Za-z]{1,8})?".prop_map(Name::Atom),
        2 => "[ -~]{0,16}".prop_map(Name::Quoted),
        2 => ANY_TEXT.prop_map(Name::B),
        2 => ANY_TEXT.prop_map(Name::Q),
        1 => LATIN1_TEXT.prop_map(Name::Latin1B),
        1 => prop_oneof![Just("Doe, Jane"), Just("<evil@attacker.example>"), Just("a@b.example, c@d.example"),
                         Just("\"quoted\""), Just("x\\\" <y@z.example>")]
            .prop_map(|s| Name::B(s.to_owned())),
    ]
}

const DOMAINS: &[&str] = &["example.com", "Example.COM", "x.org", "X.Org", "sub.example.net"];

fn local_part() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9][a-zA-Z0-9_+-]{0,6}(\\.[a-zA-Z0-9]{1,4})?"
}

fn mailbox() -> impl Strategy<Value = Mailbox> {
    (name(), local_part(), proptest::sample::select(DOMAINS)).prop_map(|(name, local, domain)| Mailbox {
        name,
        local,
        domain: domain.to_owned(),
    })
}

fn address_list() -> impl Strategy<Value = AddressList> {
    (
        proptest::collection::vec(mailbox(), 1..6),
        proptest::option::weighted(0.2, ("[A-Za-z]{1,8}", 0usize..4)),
        any::<bool>(),
    )
        .prop_map(|(boxes, group, folded)| AddressList { boxes, group, folded })
}

fn text_part(html: bool) -> impl Strategy<Value = TextPart> {
    let charset = prop_oneof![Just(Charset::Utf8), Just(Charset::Latin1)];
    let cte = prop_oneof![Just(Cte::SevenBit), Just(Cte::EightBit), Just(Cte::Qp), Just(Cte::Base64)];
    (charset, cte, proptest::collection::vec("[ -~\u{a0}-\u{ff}]{0,60}", 1..6)).prop_map(
        move |(charset, cte, mut lines)| {
            // 7bit must be ASCII.
            let cte = if cte == Cte::SevenBit && lines.iter().any(|l| !l.is_ascii()) { Cte::EightBit } else { cte };
            if html {
                lines.insert(0, "<p>".to_owned());
            }
            TextPart { lines, charset, cte }
        },
    )
}

fn file_name() -> impl Strategy<Value = String> {
    (
        "[A-Za-z0-9 _äöüéñ中文,;'()=-]{1,16}",
        prop_oneof![Just("pdf"), Just("txt"), Just("png"), Just("csv"), Just("dat")],
    )
        .prop_map(|(stem, ext)| format!("{}.{ext}", stem.trim()))
        .prop_filter("a stem left after trimming", |n| !n.starts_with('.'))
}

fn file_name_form() -> impl Strategy<Value = FileName> {
    prop_oneof![
        3 => file_name().prop_map(FileName::Plain),
        2 => file_name().prop_map(FileName::Rfc2231),
        1 => (file_name(), 0usize..20).prop_map(|(n, at)| FileName::Rfc2231Split(n, at)),
        2 => file_name().prop_map(FileName::Rfc2047),
        1 => file_name().prop_map(FileName::CtName),
    ]
}

fn attachment() -> impl Strategy<Value = Attachment> {
    let binary = (
        proptest::sample::select(
            &["application/octet-stream", "application/pdf", "image/png", "application/x-custom"][..],
        ),
        proptest::collection::vec(any::<u8>(), 0..400),
        prop_oneof![Just(Cte::Base64), Just(Cte::Qp)],
        prop_oneof![2 => file_name_form(), 1 => Just(FileName::None)],
        any::<bool>(),
    )
        .prop_map(|(ctype, bytes, cte, name, inline)| Attachment {
            content: Content::Binary { ctype, bytes },
            cte,
            name,
            inline,
            cid: None,
        });
    // Text files always carry a name: a named text part is an attachment, an unnamed one a body.
    let text = (proptest::sample::select(&["plain", "csv", "html"][..]), text_part(false), file_name_form())
        .prop_filter("text attachments are named", |(_, _, n)| n.expected().is_some())
        .prop_map(|(subtype, part, name)| Attachment {
            cte: part.cte,
            content: Content::Text { subtype, part },
            name,
            inline: false,
            cid: None,
        });
    let message = ("[ -~]{0,40}", proptest::option::of(file_name_form())).prop_map(|(subject, name)| Attachment {
        content: Content::Message(
            format!("From: inner@example.com\r\nTo: other@example.org\r\nSubject: {subject}\r\n\r\nforwarded body\r\n")
                .into_bytes(),
        ),
        cte: Cte::SevenBit,
        name: match name {
            // A forwarded message's name gets ".eml" appended unless it has one; keep it simple.
            Some(FileName::Plain(n)) => FileName::Plain(format!("{n}.eml")),
            _ => FileName::None,
        },
        inline: false,
        cid: None,
    });
    prop_oneof![4 => binary, 2 => text, 1 => message]
}

/// Which header recipients the envelope keeps, and extra (Bcc-only) recipients.
fn mail() -> impl Strategy<Value = Mail> {
    (
        proptest::option::weighted(0.8, mailbox()),
        proptest::option::weighted(0.9, address_list()),
        proptest::option::of(address_list()),
        proptest::option::weighted(0.2, address_list()),
        proptest::option::of((ANY_TEXT, any::<u8>())),
        text_part(false),
        proptest::option::of(text_part(true)),
        proptest::collection::vec(attachment(), 0..4),
        proptest::collection::vec(any::<(bool, bool)>(), 16),
        proptest::collection::vec((local_part(), proptest::sample::select(DOMAINS)), 0..4),
        "[A-Za-z0-9]{8}",
    )
        .prop_map(|(from, to, cc, bcc, subject, text, html, mut attachments, picks, extra, tag)| {
            // An inline image the HTML refers to gets a Content-ID.
            let mut html = html;
            if let Some(h) = html.as_mut() {
                for (i, att) in attachments.iter_mut().enumerate() {
                    if matches!(att.content, Content::Binary { .. }) && i % 2 == 0 {
                        let cid = format!("img{i}.{tag}@example.com");
                        h.lines.push(format!("<img src=\"cid:{cid}\">"));
                        att.cid = Some(cid);
                    }
                }
            }
            let mut m = Mail {
                mail_from: if from.is_some() { String::new() } else { "sender@example.com".to_owned() },
                from,
                to,
                cc,
                bcc,
                subject,
                text,
                html,
                attachments,
                rcpt: Vec::new(),
                boundary: format!("=_b_{tag}"),
            };
            // The envelope: some header recipients (sometimes with another domain case), plus
            // extras only the envelope names.
            let mut rcpt = Vec::new();
            for (i, mb) in m.header_recipients().into_iter().enumerate() {
                let (keep, recase) = picks[i % picks.len()];
                if keep {
                    let domain = if recase { mb.domain.to_uppercase() } else { mb.domain.clone() };
                    rcpt.push(format!("{}@{domain}", mb.local));
                }
            }
            rcpt.extend(extra.into_iter().map(|(l, d)| format!("{l}@{d}")));
            if rcpt.is_empty() {
                rcpt.push("only-envelope@example.com".to_owned());
            }
            m.rcpt = rcpt;
            m
        })
}

// ---- checks -------------------------------------------------------------------------------

/// The comparison key the relay documents: local part as written, domain in lower case.
fn key(addr: &str) -> String {
    match addr.rsplit_once('@') {
        Some((local, domain)) => format!("{local}@{}", domain.to_lowercase()),
        None => addr.to_owned(),
    }
}

/// The addresses of an address-list header value, as a receiving parser reads them.
fn parse_addresses(value: &str) -> Vec<String> {
    let raw = format!("To: {value}\r\n\r\n");
    let Some(msg) = mail_parser::MessageParser::default().parse(raw.as_bytes()) else {
        return vec![format!("<unparseable {value:?}>")];
    };
    let Some(list) = msg.to() else {
        return if value.trim().is_empty() { Vec::new() } else { vec![format!("<no addresses in {value:?}>")] };
    };
    list.iter().map(|a| a.address().unwrap_or("<none>").to_owned()).collect()
}

/// `To` ∪ `Cc` ∪ `Bcc` of the request, each address once, equals the envelope (by key).
/// Over all the requests of one message (one per recipient when none is in To/Cc), the
/// recipients are the envelope's exactly, each once, and every request has a `To`.
fn check_recipients(requests: &[SendEmailRequest], rcpt: &[String]) -> Result<(), TestCaseError> {
    let mut delivered = Vec::new();
    for req in requests {
        prop_assert!(!req.to.is_empty(), "a request without To");
        delivered.extend(parse_addresses(&req.to));
        delivered.extend(req.cc.as_deref().map(parse_addresses).unwrap_or_default());
        delivered.extend(req.bcc.as_deref().map(parse_addresses).unwrap_or_default());
    }
    let req = &requests[0];
    let keys: Vec<String> = delivered.iter().map(|a| key(a)).collect();
    let unique: HashSet<&String> = keys.iter().collect();
    prop_assert_eq!(unique.len(), keys.len(), "an address gets two copies: {:?}", keys);
    let wanted: HashSet<String> = rcpt.iter().map(|a| key(a)).collect();
    let got: HashSet<String> = keys.iter().cloned().collect();
    prop_assert_eq!(
        &got,
        &wanted,
        "recipients differ from the envelope\n To: {:?}\n Cc: {:?}\n Bcc: {:?}",
        req.to,
        req.cc,
        req.bcc
    );
    Ok(())
}

fn check_mail(m: &Mail, raw: &[u8], requests: &[SendEmailRequest]) -> Result<(), TestCaseError> {
    check_recipients(requests, &m.rcpt)?;
    for req in requests {
        check_copy(m, raw, req)?;
    }
    Ok(())
}

fn check_copy(m: &Mail, raw: &[u8], req: &SendEmailRequest) -> Result<(), TestCaseError> {
    // Header recipients in the envelope stay visible in To/Cc (not moved to Bcc).
    let mut visible: HashSet<String> = parse_addresses(&req.to).iter().map(|a| key(a)).collect();
    visible.extend(req.cc.as_deref().map(parse_addresses).unwrap_or_default().iter().map(|a| key(a)));
    let envelope: HashSet<String> = m.rcpt.iter().map(|a| key(a)).collect();
    for mb in m.header_recipients() {
        let k = key(&mb.address());
        if envelope.contains(&k) {
            prop_assert!(visible.contains(&k), "{} is in the envelope and in To/Cc but not in the request's To/Cc", k);
        }
    }

    // Bodies: as sent; blank ones are not sent (Postmark counts them as missing), and a message
    // left with no body at all gets the empty-body text.
    let blank = |s: &str| s.chars().all(char::is_whitespace);
    let want_text = m.text.text();
    let want_html = m.html.as_ref().map(|h| h.text()).filter(|h| !blank(h));
    match (blank(&want_text), &want_html) {
        (false, _) => {
            let text = req.text_body.as_deref().unwrap_or_default();
            prop_assert_eq!(text.trim_end_matches("\r\n"), want_text.trim_end_matches("\r\n"), "TextBody");
        }
        (true, Some(_)) => prop_assert_eq!(&req.text_body, &None, "a blank TextBody is left out"),
        (true, None) => {
            let text = req.text_body.as_deref().unwrap_or_default();
            prop_assert!(text.starts_with("This message has no text of its own."), "TextBody {:?}", text);
        }
    }
    match &want_html {
        Some(want) => {
            let got = req.html_body.as_deref().unwrap_or_default();
            prop_assert_eq!(got.trim_end_matches("\r\n"), want.trim_end_matches("\r\n"), "HtmlBody");
        }
        None => prop_assert_eq!(&req.html_body, &None, "HtmlBody"),
    }

    // Attachments, in order.
    prop_assert_eq!(
        req.attachments.len(),
        m.attachments.len(),
        "attachment count; raw:\n{}",
        String::from_utf8_lossy(raw)
    );
    for (i, (got, want)) in req.attachments.iter().zip(&m.attachments).enumerate() {
        let bytes = B64.decode(&got.content).map_err(|e| TestCaseError::fail(format!("attachment {i}: {e}")))?;
        prop_assert!(
            bytes == want.bytes(),
            "attachment {} bytes differ ({} vs {} bytes)\n got:  {:?}\n want: {:?}",
            i,
            bytes.len(),
            want.bytes().len(),
            String::from_utf8_lossy(&bytes),
            String::from_utf8_lossy(&want.bytes())
        );
        if let Some(name) = want.name.expected() {
            prop_assert_eq!(&got.name, name, "attachment {} name", i);
        }
        prop_assert_eq!(
            got.content_id.clone(),
            want.cid.as_ref().map(|c| format!("cid:{c}")),
            "attachment {} ContentID",
            i
        );
    }
    Ok(())
}

/// Random damage: truncation, deletions, insertions, byte flips.
fn damage() -> impl Strategy<Value = Vec<(u8, usize, Vec<u8>)>> {
    proptest::collection::vec((0u8..4, any::<usize>(), proptest::collection::vec(any::<u8>(), 0..8)), 1..6)
}

fn apply(raw: &mut Vec<u8>, edits: &[(u8, usize, Vec<u8>)]) {
    for (kind, at, bytes) in edits {
        if raw.is_empty() {
            break;
        }
        let at = at % raw.len();
        match kind {
            0 => raw.truncate(at),
            1 => {
                let end = (at + bytes.len() + 1).min(raw.len());
                raw.drain(at..end);
            }
            2 => {
                raw.splice(at..at, bytes.iter().copied());
            }
            _ => raw[at] ^= bytes.first().copied().unwrap_or(0x20) | 1,
        }
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn generated_messages_convert_exactly(m in mail()) {
        let raw = m.render();
        let req = to_postmark(&raw, &m.envelope(), &ConvertOptions::default())
            .map_err(|e| TestCaseError::fail(format!("{e}; raw:\n{}", String::from_utf8_lossy(&raw))))?;
        check_mail(&m, &raw, &req)?;
        // The accept-time check sees the same request.
        let accepted = postmark_relay::validate::validate(&raw, &m.envelope(), Via::Api, &ConvertOptions::default())
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let largest = req.iter().map(|r| serde_json::to_vec(r).unwrap().len()).max();
        prop_assert_eq!(accepted.json_len, largest);
    }

    #[test]
    fn damaged_messages_never_panic_and_keep_the_envelope(m in mail(), edits in damage()) {
        let mut raw = m.render();
        apply(&mut raw, &edits);
        if let Ok(req) = to_postmark(&raw, &m.envelope(), &ConvertOptions::default()) {
            check_recipients(&req, &m.rcpt)
                .map_err(|e| TestCaseError::fail(format!("{e}\nraw: {:?}", String::from_utf8_lossy(&raw))))?;
        }
        let _ = postmark_relay::validate::validate(&raw, &m.envelope(), Via::Api, &ConvertOptions::default());
        let _ = postmark_relay::validate::validate(&raw, &m.envelope(), Via::Smtp, &ConvertOptions::default());
    }

    #[test]
    fn arbitrary_bytes_never_panic(raw in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let rcpt = vec!["a@example.com".to_owned(), "B@Example.ORG".to_owned()];
        let envelope = Envelope::new("s@example.com", rcpt.clone());
        if let Ok(req) = to_postmark(&raw, &envelope, &ConvertOptions::default()) {
            check_recipients(&req, &rcpt)?;
        }
        let _ = postmark_relay::validate::validate(&raw, &envelope, Via::Api, &ConvertOptions::default());
    }
}

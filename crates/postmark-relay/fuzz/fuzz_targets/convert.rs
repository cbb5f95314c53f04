//! Any bytes as a message → `convert::to_postmark` and `validate::validate` (both paths), with a
//! fixed envelope.
//!
//! Fails on: a panic, a request that does not serialize, an attachment whose `Content` is not
//! base64, or a request whose `To` ∪ `Cc` ∪ `Bcc` (as a mail parser reads them back) is not the
//! envelope exactly, each address once (domain case-insensitive, local part as written).

#![no_main]

use std::collections::HashSet;

use base64::Engine as _;
use libfuzzer_sys::fuzz_target;
use postmark_relay::Via;
use postmark_relay::convert::{ConvertOptions, Envelope, to_postmark};

/// Addresses the seed messages (tests/fixtures/mime) use, in other spellings, and one no header
/// names.
const RCPT: &[&str] = &["ann@example.org", "Cy@EXAMPLE.org", "other@Elsewhere.example", "secret@hidden.example"];

fn key(addr: &str) -> String {
    match addr.rsplit_once('@') {
        Some((local, domain)) => format!("{local}@{}", domain.to_lowercase()),
        None => addr.to_owned(),
    }
}

fn addresses(value: &str) -> Vec<String> {
    let raw = format!("To: {value}\r\n\r\n");
    let msg = mail_parser::MessageParser::default().parse(raw.as_bytes()).expect("a header parses");
    match msg.to() {
        Some(list) => list.iter().map(|a| a.address().unwrap_or("<no address>").to_owned()).collect(),
        None => {
            assert!(value.trim().is_empty(), "no addresses found in {value:?}");
            Vec::new()
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let envelope = Envelope::new("sender@example.com", RCPT.iter().copied());
    let opts = ConvertOptions::default();
    if let Ok(req) = to_postmark(data, &envelope, &opts) {
        serde_json::to_vec(&req).expect("the request serializes");
        for att in &req.attachments {
            base64::engine::general_purpose::STANDARD.decode(&att.content).expect("Content is base64");
        }
        let mut got = addresses(&req.to);
        got.extend(req.cc.as_deref().map(addresses).unwrap_or_default());
        got.extend(req.bcc.as_deref().map(addresses).unwrap_or_default());
        let keys: Vec<String> = got.iter().map(|a| key(a)).collect();
        let unique: HashSet<&String> = keys.iter().collect();
        assert_eq!(unique.len(), keys.len(), "an address gets two copies: {keys:?}");
        let wanted: HashSet<String> = RCPT.iter().map(|a| key(a)).collect();
        let got: HashSet<String> = keys.into_iter().collect();
        assert_eq!(
            got, wanted,
            "recipients differ from the envelope: To {:?} Cc {:?} Bcc {:?}",
            req.to, req.cc, req.bcc
        );
    }
    let _ = postmark_relay::validate::validate(data, &envelope, Via::Api, &opts);
    let _ = postmark_relay::validate::validate(data, &envelope, Via::Smtp, &opts);
});

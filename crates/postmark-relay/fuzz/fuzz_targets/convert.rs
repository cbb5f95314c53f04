//! Any bytes as a message → `convert::to_postmark` and `validate::validate` (both paths), with a
//! fixed envelope.
//!
//! Fails on: a panic, a request that does not serialize, an attachment whose `Content` is not
//! base64, requests whose `To` ∪ `Cc` ∪ `Bcc` (as a mail parser reads them back) are not the
//! envelope exactly, each address once (domain case-insensitive, local part as written), or a
//! message the relay would acknowledge that Postmark would refuse ("250 ⇒ Postmark accepts",
//! checked with `postmark-fake`'s rules: the API requests delivery would send, and on the SMTP
//! path the bytes as spooled).

#![no_main]

use std::collections::HashSet;

use base64::Engine as _;
use libfuzzer_sys::fuzz_target;
use postmark_fake::rules::{self, Endpoint, Rules};
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
    if let Ok(requests) = to_postmark(data, &envelope, &opts) {
        let mut got = Vec::new();
        for req in &requests {
            serde_json::to_vec(req).expect("the request serializes");
            for att in &req.attachments {
                base64::engine::general_purpose::STANDARD.decode(&att.content).expect("Content is base64");
            }
            got.extend(addresses(&req.to));
            got.extend(req.cc.as_deref().map(addresses).unwrap_or_default());
            got.extend(req.bcc.as_deref().map(addresses).unwrap_or_default());
        }
        let keys: Vec<String> = got.iter().map(|a| key(a)).collect();
        let unique: HashSet<&String> = keys.iter().collect();
        assert_eq!(unique.len(), keys.len(), "an address gets two copies: {keys:?}");
        let wanted: HashSet<String> = RCPT.iter().map(|a| key(a)).collect();
        let got: HashSet<String> = keys.into_iter().collect();
        assert_eq!(got, wanted, "recipients differ from the envelope");
    }
    for via in [Via::Api, Via::Smtp] {
        let Ok(accepted) = postmark_relay::validate::validate(data, &envelope, via, &opts) else {
            continue;
        };
        // What would be spooled, and sent from there.
        let stored = accepted.repaired.as_deref().unwrap_or(data);
        match via {
            Via::Api => {
                let opts = ConvertOptions { message_stream: accepted.routing.stream.clone(), ..opts.clone() };
                let requests = to_postmark(stored, &envelope, &opts).expect("an accepted message converts");
                for req in &requests {
                    let json = serde_json::to_value(req).expect("JSON");
                    if let Err(r) = rules::validate(Endpoint::Email, &json, &Rules::default()) {
                        panic!("acknowledged, but Postmark refuses it: {} {}", r.error_code, r.message);
                    }
                }
            }
            Via::Smtp => {
                if let Err(r) = rules::check_mime(stored, &envelope.rcpt_to, &Rules::default()) {
                    panic!("acknowledged, but Postmark's SMTP service bounces it: {} {}", r.error_code, r.message);
                }
            }
        }
    }
});

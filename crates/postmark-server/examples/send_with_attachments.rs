//! A first send: a message with files attached and an inline logo, retried only where that is safe.
//!
//! ```sh
//! export POSTMARK_SERVER_TOKEN=...     # POSTMARK_API_TEST validates without delivering; never printed
//! cargo run -p postmark-server --example send_with_attachments -- billing@example.com jane@example.org invoice.pdf
//! ```
//!
//! `POSTMARK_API_URL` points the client elsewhere (a test fake). Exit status: 0 sent, 1 Postmark refused or failed,
//! 2 bad arguments or a file Postmark would refuse (checked before sending).

use std::process::ExitCode;

use postmark_server::types::{EmailAttachment, SendEmailRequest};
use postmark_server::{Error, ResultExt as _, RetryPolicy, ServerClient};

/// A 1×1 transparent PNG, shown inline as the logo.
const LOGO: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52, 0x00, 0x00, 0x00,
    0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1f, 0x15, 0xc4, 0x89, 0x00, 0x00, 0x00, 0x0d, 0x49,
    0x44, 0x41, 0x54, 0x78, 0xda, 0x63, 0x64, 0x60, 0xf8, 0x5f, 0x0f, 0x00, 0x02, 0x87, 0x01, 0x80, 0xeb, 0x47, 0xba,
    0x92, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
];

async fn send(from: &str, to: &str, files: &[String]) -> Result<String, Error> {
    // Retries are opt-in; only what `Error::is_retryable()` allows is repeated (never a timed-out or 5xx send).
    let client = ServerClient::builder_from_env()?.retry(RetryPolicy::new()).build()?;
    let logo = EmailAttachment::inline("logo.png", LOGO, "logo")?;
    let mut email = SendEmailRequest::new(from, to)
        .subject("Your documents")
        .html_body(format!("<img src=\"{}\"><p>Your documents are attached.</p>", logo.cid().unwrap_or_default()))
        .text_body("Your documents are attached.")
        .tag("documents")
        .metadata("source", "example")
        .attach(logo);
    for file in files {
        // Name, MIME type and base64 from the file; a forbidden type (.exe, .bat, ...) is refused here.
        email = email.attach(EmailAttachment::from_path(file)?);
    }
    let sent = client.send_email().body(email).send().await.into_postmark()?;
    Ok(sent.message_id.unwrap_or_default())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [from, to, files @ ..] = args.as_slice() else {
        eprintln!("usage: send_with_attachments <from> <to> [file ...]  (POSTMARK_SERVER_TOKEN must be set)");
        return ExitCode::from(2);
    };
    match send(from, to, files).await {
        Ok(id) => {
            println!("sent: {id}");
            ExitCode::SUCCESS
        }
        Err(e @ (Error::InvalidInput(_) | Error::Config(_))) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

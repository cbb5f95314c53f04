//! `postmark send`: one message from flags, with attachments checked before anything is sent.

use std::path::PathBuf;

use clap::{Arg, ArgAction, ArgGroup, ArgMatches, Command};
use postmark_core::{Error, ResultExt as _};
use postmark_server::types::{EmailAttachment, SendEmailRequest, TrackLinks};

use crate::config;
use crate::output::Output;

pub fn command() -> Command {
    let text = |id: &'static str, help: &'static str| Arg::new(id).long(id).value_name("TEXT").help(help);
    Command::new("send")
        .about("Send one email (POST /email) and print Postmark's answer")
        .arg(
            text("from", "Sender, e.g. 'Billing <billing@example.com>' (a confirmed signature or domain)")
                .required(true),
        )
        .arg(text("to", "Recipients, comma-separated (at most 50 with --cc and --bcc)").required(true))
        .arg(text("cc", "Carbon-copy recipients, comma-separated"))
        .arg(text("bcc", "Blind-carbon-copy recipients, comma-separated"))
        .arg(text("reply-to", "Reply-To address"))
        .arg(text("subject", "Subject line"))
        .arg(text("text", "Plain-text body"))
        .arg(text("html", "HTML body; refer to inline images as cid:ID"))
        .group(ArgGroup::new("body").args(["text", "html"]).multiple(true).required(true))
        .arg(
            Arg::new("attach")
                .long("attach")
                .value_name("FILE")
                .action(ArgAction::Append)
                .value_parser(clap::value_parser!(PathBuf))
                .help("Attach a file (MIME type from its extension; repeatable)"),
        )
        .arg(
            Arg::new("inline")
                .long("inline")
                .value_name("ID=FILE")
                .action(ArgAction::Append)
                .help("Attach an inline image shown by <img src=\"cid:ID\"> in --html (repeatable)"),
        )
        .arg(text("stream", "Message stream ID (default: outbound)"))
        .arg(text("tag", "Tag for statistics and searches"))
        .arg(
            Arg::new("metadata")
                .long("metadata")
                .value_name("KEY=VALUE")
                .action(ArgAction::Append)
                .help("Metadata entry (repeatable)"),
        )
        .arg(
            Arg::new("track-opens")
                .long("track-opens")
                .value_name("BOOL")
                .value_parser(clap::value_parser!(bool))
                .help("Open tracking for this message"),
        )
        .arg(
            Arg::new("track-links")
                .long("track-links")
                .value_name("MODE")
                .value_parser(["None", "HtmlAndText", "HtmlOnly", "TextOnly"])
                .help("Link tracking for this message"),
        )
        .arg(
            Arg::new("dry-run")
                .long("dry-run")
                .action(ArgAction::SetTrue)
                .help("Print the request that would be sent, and send nothing"),
        )
}

fn split_pair<'a>(value: &'a str, flag: &str, what: &str) -> Result<(&'a str, &'a str), Error> {
    value
        .split_once('=')
        .filter(|(k, v)| !k.trim().is_empty() && !v.is_empty())
        .ok_or_else(|| Error::InvalidInput(format!("--{flag} wants {what}, got {value:?}")))
}

/// The request the flags describe; attachment files are read and checked here.
pub fn request(m: &ArgMatches) -> Result<SendEmailRequest, Error> {
    let s = |id: &str| m.get_one::<String>(id).cloned();
    let mut email = SendEmailRequest::new(s("from").unwrap_or_default(), s("to").unwrap_or_default());
    email.cc = s("cc");
    email.bcc = s("bcc");
    email.reply_to = s("reply-to");
    email.subject = s("subject");
    email.text_body = s("text");
    email.html_body = s("html");
    email.message_stream = s("stream");
    email.tag = s("tag");
    email.track_opens = m.get_one::<bool>("track-opens").copied();
    if let Some(mode) = s("track-links") {
        email = email.track_links(TrackLinks::try_from(mode.as_str()).map_err(|e| Error::InvalidInput(e.to_string()))?);
    }
    for pair in m.get_many::<String>("metadata").into_iter().flatten() {
        let (k, v) = split_pair(pair, "metadata", "KEY=VALUE")?;
        email = email.metadata(k.trim(), v);
    }
    for path in m.get_many::<PathBuf>("attach").into_iter().flatten() {
        email = email.attach(EmailAttachment::from_path(path)?);
    }
    for spec in m.get_many::<String>("inline").into_iter().flatten() {
        let (id, file) = split_pair(spec, "inline", "ID=FILE")?;
        let path = PathBuf::from(file);
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or(file).to_string();
        let bytes = std::fs::read(&path).map_err(|e| Error::InvalidInput(format!("cannot read {file}: {e}")))?;
        email = email.attach(EmailAttachment::inline(name, bytes, id)?);
    }
    email.validate_attachments()?;
    Ok(email)
}

pub async fn run(m: &ArgMatches, output: Output, retries: u32) -> anyhow::Result<()> {
    let email = request(m)?;
    if m.get_flag("dry-run") {
        output.json(&email);
        return Ok(());
    }
    let token = config::require_token(config::SERVER_TOKEN_ENV)?;
    let client = config::builder::<postmark_server::ServerApi>(token, retries).build()?;
    let sent = client.send_email().body(email).send().await.into_postmark()?;
    output.json(&sent);
    Ok(())
}

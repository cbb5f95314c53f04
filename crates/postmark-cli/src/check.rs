//! `postmark check`: which tokens are set, whether Postmark accepts them, and what each can do.

use clap::Command;
use postmark_core::{Error, ResultExt as _};
use serde_json::{Value, json};

use crate::config;
use crate::output::Output;

pub fn command() -> Command {
    Command::new("check").about(
        "Check the tokens set in the environment: the server token with GET /server, the account token with \
         GET /servers. Prints what each token can do; fails if a set token is refused.",
    )
}

const SERVER_CAN: &str = "send email (single, batch, templated, bulk) and manage this server's templates, bounces, \
                          messages, statistics, inbound rules, webhooks, message streams and suppressions";
const ACCOUNT_CAN: &str = "manage servers, domains (DKIM, Return-Path, custom tracking) and sender signatures, push \
                           templates between servers, and request data removals";

pub async fn run(output: Output, retries: u32) -> anyhow::Result<()> {
    let server = config::token(config::SERVER_TOKEN_ENV)?;
    let account = config::token(config::ACCOUNT_TOKEN_ENV)?;
    if server.is_none() && account.is_none() {
        return Err(Error::Config(format!(
            "no token set: set {} and/or {} (or their _FILE variants)",
            config::SERVER_TOKEN_ENV,
            config::ACCOUNT_TOKEN_ENV
        ))
        .into());
    }
    let mut report = serde_json::Map::new();
    let mut failure: Option<Error> = None;
    let mut note = |name: &str, outcome: Result<Value, Error>| {
        let entry = match outcome {
            Ok(v) => v,
            Err(e) => {
                let entry = json!({"valid": false, "error": e.to_string(),
                    "ErrorCode": e.error_code().map(|c| c.as_i64()), "status": e.status()});
                failure.get_or_insert(e);
                entry
            }
        };
        report.insert(name.to_string(), entry);
    };
    match server {
        Some(token) => {
            let client = config::builder::<postmark_server::ServerApi>(token, retries).build()?;
            let outcome = client.get_server().send().await.into_postmark().map(|s| {
                json!({"valid": true, "server": {"ID": s.id, "Name": s.name, "DeliveryType": s.delivery_type},
                    "can": SERVER_CAN})
            });
            note("server_token", outcome);
        }
        None => note("server_token", Ok(json!({"set": false}))),
    }
    match account {
        Some(token) => {
            let client = config::builder::<postmark_account::AccountApi>(token, retries).build()?;
            let outcome = client
                .list_servers()
                .count(1)
                .offset(0)
                .send()
                .await
                .into_postmark()
                .map(|l| json!({"valid": true, "servers": l.total_count, "can": ACCOUNT_CAN}));
            note("account_token", outcome);
        }
        None => note("account_token", Ok(json!({"set": false}))),
    }
    output.json(&Value::Object(report));
    match failure {
        Some(e) => Err(e.into()),
        None => Ok(()),
    }
}

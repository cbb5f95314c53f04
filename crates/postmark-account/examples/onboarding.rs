//! Onboarding with the Account API: create a server and print its first API token, add a sending domain and print
//! the DNS records to publish, then ask Postmark to verify DKIM and the Return-Path.
//!
//! ```sh
//! export POSTMARK_ACCOUNT_TOKEN=...            # never printed
//! cargo run -p postmark-account --example onboarding -- "Billing Production" mail.example.org
//! # publish the printed records, wait for DNS, then check again with the domain ID it printed:
//! cargo run -p postmark-account --example onboarding -- verify 90344
//! ```
//!
//! `POSTMARK_API_URL` points the client somewhere else than `https://api.postmarkapp.com` (a test fake, say).
//!
//! Printing the *new server's* API token is the point of this example: that token is what the application will send
//! mail with, so store it as a secret. The account token it runs with is never printed: the client keeps it in a
//! sensitive header, and neither its `Debug` output nor any error contains it.
//!
//! Exit status: 0 when done (the setup run succeeds even though DNS is not published yet; `verify` only when both
//! records verified), 1 when Postmark refused a call or a record is not verified yet, 2 on bad arguments or a missing
//! token.

use std::process::ExitCode;

use postmark_account::{AccountClient, Error, types};

const USAGE: &str = "\
usage: onboarding <server-name> <domain> [--return-path <host>]
       onboarding verify <domain-id>

  <server-name>         name of the Postmark server to create (e.g. \"Billing Production\")
  <domain>              sending domain to add (e.g. mail.example.org)
  --return-path <host>  custom Return-Path domain, a subdomain of <domain> (default: pm-bounces.<domain>)
  verify <domain-id>    check the DKIM and Return-Path records of a domain added earlier

environment: POSTMARK_ACCOUNT_TOKEN (required), POSTMARK_API_URL (optional)";

/// What the command line asked for.
#[derive(Debug, PartialEq)]
enum Command {
    Setup { server_name: String, domain: String, return_path: String },
    Verify { domain_id: i64 },
}

fn parse_args(args: &[String]) -> Result<Command, String> {
    match args {
        [verb, id] if verb == "verify" => {
            let domain_id = id.parse::<i64>().ok().filter(|n| *n > 0);
            let domain_id = domain_id.ok_or_else(|| format!("domain ID must be a positive integer, got {id:?}"))?;
            Ok(Command::Verify { domain_id })
        }
        [server_name, domain, rest @ ..] => {
            let server_name = server_name.trim().to_string();
            if server_name.is_empty() || server_name.starts_with('-') {
                return Err(format!("bad server name {server_name:?}"));
            }
            let domain = domain.trim().trim_end_matches('.').to_ascii_lowercase();
            if !looks_like_hostname(&domain) {
                return Err(format!("{domain:?} is not a domain name"));
            }
            let return_path = match rest {
                [] => format!("pm-bounces.{domain}"),
                [flag, host] if flag == "--return-path" => {
                    let host = host.trim().trim_end_matches('.').to_ascii_lowercase();
                    if !looks_like_hostname(&host) || !host.ends_with(&format!(".{domain}")) {
                        return Err(format!("the Return-Path {host:?} must be a subdomain of {domain}"));
                    }
                    host
                }
                _ => return Err(format!("unexpected arguments: {}", rest.join(" "))),
            };
            Ok(Command::Setup { server_name, domain, return_path })
        }
        _ => Err("missing arguments".to_string()),
    }
}

fn looks_like_hostname(s: &str) -> bool {
    s.contains('.')
        && s.split('.').all(|label| {
            !label.is_empty()
                && !label.starts_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        })
}

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if matches!(args.first().map(String::as_str), Some("-h" | "--help")) {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let command = match parse_args(&args) {
        Ok(command) => command,
        Err(problem) => {
            eprintln!("onboarding: {problem}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let client = match AccountClient::from_env() {
        Ok(client) => client,
        Err(e) => {
            eprintln!("onboarding: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let result = match command {
        Command::Setup { server_name, domain, return_path } => {
            setup(&client, &server_name, &domain, &return_path).await.map(|()| true)
        }
        Command::Verify { domain_id } => verify(&client, domain_id, true).await,
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            // `Error`'s Display never contains a token.
            eprintln!("onboarding: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Creates the server and the domain, prints the token and the DNS records, and tries a first verification.
async fn setup(client: &AccountClient, server_name: &str, domain: &str, return_path: &str) -> Result<(), Error> {
    let server =
        client.create_server().body(types::CreateServerRequest::builder().name(server_name)).send().await?.into_inner();
    println!("Created server {:?} (ID {}).", server.name, server.id);
    match server.api_tokens.first() {
        // The new server's token, shown on purpose: the application needs it. Store it as a secret.
        Some(token) => println!("  Server API token: {token}"),
        None => println!("  Postmark returned no API token; create one in the server's settings."),
    }
    if let Some(link) = server.server_link.as_deref().filter(|l| !l.is_empty()) {
        println!("  Manage it at {link}");
    }

    let created = client
        .create_domain()
        .body(types::CreateDomainRequest::builder().name(domain).return_path_domain(Some(return_path.to_string())))
        .send()
        .await?
        .into_inner();
    println!();
    println!(
        "Added domain {} (ID {}). Publish these DNS records:",
        created.name.as_deref().unwrap_or(domain),
        created.id
    );
    print_dns_records(&created);

    println!();
    let verified = verify(client, created.id, false).await?;
    if !verified {
        println!();
        println!("Once DNS has propagated, check again with: onboarding verify {}", created.id);
    }
    Ok(())
}

/// The records a domain needs: its DKIM key (the pending one while a key waits for DNS) and the Return-Path CNAME.
fn print_dns_records(d: &types::DomainDetails) {
    let pending = d.dkim_pending_host.as_deref().filter(|h| !h.is_empty());
    let (host, value) = match pending {
        Some(host) => (Some(host), d.dkim_pending_text_value.as_deref()),
        None => (d.dkim_host.as_deref().filter(|h| !h.is_empty()), d.dkim_text_value.as_deref()),
    };
    match host {
        Some(host) => {
            println!("  DKIM         TXT    {host}");
            println!("                      {}", value.unwrap_or(""));
        }
        None => println!("  DKIM         (Postmark has not issued a key yet; run verify later to see it)"),
    }
    match d.return_path_domain.as_deref().filter(|h| !h.is_empty()) {
        Some(host) => {
            println!("  Return-Path  CNAME  {host}");
            println!("                      {}", d.return_path_domain_cname_value.as_deref().unwrap_or("pm.mtasv.net"));
        }
        None => println!("  Return-Path  (none: Postmark's default pm-bounces address is used)"),
    }
}

/// Asks Postmark to check both records; true when both verified. With `show_records`, prints the records again when
/// one is not verified.
async fn verify(client: &AccountClient, domain_id: i64, show_records: bool) -> Result<bool, Error> {
    let dkim = client.verify_domain_dkim().domainid(domain_id).send().await?.into_inner();
    let return_path = client.verify_domain_return_path().domainid(domain_id).send().await?.into_inner();
    let dkim_ok = dkim.dkim_verified == Some(true)
        && dkim.dkim_pending_host.as_deref().unwrap_or("").is_empty()
        && dkim.dkim_update_status.as_deref().is_none_or(|s| s.eq_ignore_ascii_case("Verified"));
    let return_path_ok = return_path.return_path_domain_verified == Some(true);
    let name = dkim.name.as_deref().unwrap_or("the domain");
    println!("Verification of {name} (ID {domain_id}):");
    println!("  DKIM:        {}", if dkim_ok { "verified" } else { "not verified yet" });
    println!("  Return-Path: {}", if return_path_ok { "verified" } else { "not verified yet" });
    if show_records && !(dkim_ok && return_path_ok) {
        println!("Records to publish:");
        // The latest state: DKIM from the DKIM check, the Return-Path from the second one.
        print_dns_records(&return_path);
    }
    Ok(dkim_ok && return_path_ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn parses_setup_and_verify() {
        assert_eq!(
            parse_args(&args(&["Billing", "Mail.Example.org."])),
            Ok(Command::Setup {
                server_name: "Billing".into(),
                domain: "mail.example.org".into(),
                return_path: "pm-bounces.mail.example.org".into()
            })
        );
        assert_eq!(parse_args(&args(&["verify", "90344"])), Ok(Command::Verify { domain_id: 90344 }));
    }

    #[test]
    fn rejects_bad_input() {
        for bad in [
            &[][..],
            &["Billing"],
            &["Billing", "localhost"],
            &["Billing", "example.org", "--return-path", "bounces.other.org"],
            &["Billing", "example.org", "extra"],
            &["verify", "abc"],
            &["verify", "-5"],
        ] {
            assert!(parse_args(&args(bad)).is_err(), "{bad:?}");
        }
    }
}

//! Rotating a domain's DKIM key with the Account API: ask Postmark for a new key, print the TXT record to publish,
//! then poll the DKIM verification until Postmark reports the new key active.
//!
//! ```sh
//! export POSTMARK_ACCOUNT_TOKEN=...            # never printed
//! cargo run -p postmark-account --example rotate_dkim -- 90311
//! # DNS slow? poll longer, without asking for yet another key:
//! cargo run -p postmark-account --example rotate_dkim -- 90311 --verify-only --attempts 30 --interval 120
//! ```
//!
//! `POSTMARK_API_URL` points the client somewhere else than `https://api.postmarkapp.com` (a test fake, say).
//! The account token is never printed: the client keeps it in a sensitive header, and neither its `Debug` output nor
//! any error contains it.
//!
//! Keep the current DKIM record in DNS until the rotation is verified; the old key is removed from DNS only once
//! Postmark reports `SafeToRemoveRevokedKeyFromDNS`.
//!
//! Exit status: 0 when the new key is verified, 1 when Postmark refused a call or the key is still pending after the
//! last attempt, 2 on bad arguments or a missing token.

use std::process::ExitCode;
use std::time::Duration;

use postmark_account::{AccountClient, Error, types};

const USAGE: &str = "\
usage: rotate_dkim <domain-id> [--verify-only] [--attempts <n>] [--interval <seconds>]

  <domain-id>             ID of the domain (see GET /domains, or the onboarding example's output)
  --verify-only           do not request a new key, only poll the verification of the pending one
  --attempts <n>          how many times to ask Postmark to verify (default 10, at least 1)
  --interval <seconds>    pause between attempts (default 60)

environment: POSTMARK_ACCOUNT_TOKEN (required), POSTMARK_API_URL (optional)";

#[derive(Debug, PartialEq)]
struct Options {
    domain_id: i64,
    rotate: bool,
    attempts: u32,
    interval: Duration,
}

fn parse_args(args: &[String]) -> Result<Options, String> {
    let mut it = args.iter();
    let id = it.next().ok_or("missing <domain-id>")?;
    let domain_id = id.parse::<i64>().ok().filter(|n| *n > 0);
    let domain_id = domain_id.ok_or_else(|| format!("domain ID must be a positive integer, got {id:?}"))?;
    let mut options = Options { domain_id, rotate: true, attempts: 10, interval: Duration::from_secs(60) };
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--verify-only" => options.rotate = false,
            "--attempts" => {
                let n = it.next().ok_or("--attempts needs a number")?;
                options.attempts = n.parse().ok().filter(|n| *n >= 1).ok_or_else(|| format!("bad --attempts {n:?}"))?;
            }
            "--interval" => {
                let s = it.next().ok_or("--interval needs a number of seconds")?;
                options.interval = Duration::from_secs(s.parse().map_err(|_| format!("bad --interval {s:?}"))?);
            }
            other => return Err(format!("unexpected argument {other:?}")),
        }
    }
    Ok(options)
}

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if matches!(args.first().map(String::as_str), Some("-h" | "--help")) {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let options = match parse_args(&args) {
        Ok(options) => options,
        Err(problem) => {
            eprintln!("rotate_dkim: {problem}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let client = match AccountClient::from_env() {
        Ok(client) => client,
        Err(e) => {
            eprintln!("rotate_dkim: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match rotate(&client, &options).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            // `Error`'s Display never contains a token.
            eprintln!("rotate_dkim: {e}");
            if options.rotate {
                eprintln!("(if a rotation is already under way, poll it with --verify-only)");
            }
            ExitCode::FAILURE
        }
    }
}

/// Requests the new key (unless `--verify-only`), prints its record, then polls; true once the new key is verified.
async fn rotate(client: &AccountClient, options: &Options) -> Result<bool, Error> {
    let id = options.domain_id;
    if options.rotate {
        let r: types::DomainDkimRotation = client.rotate_domain_dkim().domainid(id).send().await?.into_inner();
        let name = r.name.as_deref().unwrap_or("the domain");
        println!(
            "Requested a new DKIM key for {name} (ID {id}); status: {}.",
            r.dkim_update_status.as_deref().unwrap_or("?")
        );
        print_pending(r.dkim_pending_host.as_deref(), r.dkim_pending_text_value.as_deref(), r.dkim_host.as_deref());
    }
    for attempt in 1..=options.attempts {
        let d = client.verify_domain_dkim().domainid(id).send().await?.into_inner();
        let pending = d.dkim_pending_host.as_deref().filter(|h| !h.is_empty());
        let status = d.dkim_update_status.as_deref().unwrap_or("?");
        if pending.is_none() && d.dkim_verified == Some(true) && status.eq_ignore_ascii_case("Verified") {
            println!("Attempt {attempt}/{}: verified.", options.attempts);
            println!("Active DKIM key: {}", d.dkim_host.as_deref().unwrap_or("?"));
            if let Some(revoked) = d.dkim_revoked_host.as_deref().filter(|h| !h.is_empty()) {
                if d.safe_to_remove_revoked_key_from_dns == Some(true) {
                    println!("The old key's record {revoked} can now be removed from DNS.");
                } else {
                    println!(
                        "Keep the old key's record {revoked} in DNS until Postmark reports it safe to remove \
                         (SafeToRemoveRevokedKeyFromDNS in GET /domains/{id})."
                    );
                }
            }
            return Ok(true);
        }
        println!("Attempt {attempt}/{}: DKIM status {status}, new key not verified yet.", options.attempts);
        if !options.rotate && attempt == 1 {
            // In --verify-only mode the record has not been printed yet.
            print_pending(pending, d.dkim_pending_text_value.as_deref(), d.dkim_host.as_deref());
        }
        if attempt < options.attempts {
            tokio::time::sleep(options.interval).await;
        }
    }
    eprintln!(
        "rotate_dkim: the new key is still not verified after {} attempt(s); publish the record and run again with \
         --verify-only",
        options.attempts
    );
    Ok(false)
}

fn print_pending(host: Option<&str>, value: Option<&str>, current: Option<&str>) {
    match host.filter(|h| !h.is_empty()) {
        Some(host) => {
            println!("Publish this DNS record:");
            println!("  TXT  {host}");
            println!("       {}", value.unwrap_or(""));
        }
        None => println!("Postmark reports no pending DKIM key."),
    }
    if let Some(current) = current.filter(|h| !h.is_empty()) {
        println!("Leave the current key's record {current} in place until the rotation is verified.");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn parses_options() {
        assert_eq!(
            parse_args(&args(&["90311", "--verify-only", "--attempts", "3", "--interval", "0"])),
            Ok(Options { domain_id: 90311, rotate: false, attempts: 3, interval: Duration::ZERO })
        );
        assert_eq!(parse_args(&args(&["7"])).map(|o| (o.rotate, o.attempts)), Ok((true, 10)));
    }

    #[test]
    fn rejects_bad_input() {
        for bad in [&[][..], &["example.net"], &["0"], &["7", "--attempts", "0"], &["7", "--interval"], &["7", "x"]] {
            assert!(parse_args(&args(bad)).is_err(), "{bad:?}");
        }
    }
}

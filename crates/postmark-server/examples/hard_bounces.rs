//! Every hard bounce since a date, paged through with `stream()`: pages of 500 until Postmark's `TotalCount`, and a
//! clear error (never a silent cut) when more than Postmark's 10,000-result window match.
//!
//! ```sh
//! export POSTMARK_SERVER_TOKEN=...
//! cargo run -p postmark-server --example hard_bounces -- 2026-03-01
//! ```
//!
//! Exit status: 0 listed, 1 Postmark refused or failed, 3 the window was reached (narrow the date range).

use std::process::ExitCode;

use futures_util::TryStreamExt as _;
use postmark_server::{Error, ServerClient};

async fn list(since: &str) -> Result<usize, Error> {
    let client = ServerClient::from_env()?;
    let mut bounces = client.list_bounces().type_("HardBounce").fromdate(since).stream();
    let mut n = 0;
    while let Some(b) = bounces.try_next().await? {
        n += 1;
        println!(
            "{}\t{}\t{}",
            b.id,
            b.email.unwrap_or_default(),
            b.bounced_at.map(|t| t.to_rfc3339()).unwrap_or_default()
        );
    }
    Ok(n)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let Some(since) = std::env::args().nth(1) else {
        eprintln!("usage: hard_bounces <YYYY-MM-DD>  (POSTMARK_SERVER_TOKEN must be set)");
        return ExitCode::from(2);
    };
    match list(&since).await {
        Ok(n) => {
            eprintln!("{n} hard bounce(s) since {since}");
            ExitCode::SUCCESS
        }
        Err(e @ Error::PageWindow { .. }) => {
            eprintln!("error: {e}");
            ExitCode::from(3)
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

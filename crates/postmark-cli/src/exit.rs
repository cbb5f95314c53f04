//! Exit codes by error class, so scripts can tell a typo from an outage.

use postmark_core::Error;

/// The classes of failure and their exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitClass {
    /// 0: done.
    Ok = 0,
    /// 1: anything else (an unreadable answer, a local I/O error).
    Other = 1,
    /// 2: the command line or its input is wrong (clap's usage errors, a forbidden attachment, a bad file).
    Usage = 2,
    /// 3: configuration: no token set, an unreadable token file, a bad `POSTMARK_API_URL`.
    Config = 3,
    /// 4: Postmark refused the token (HTTP 401, ErrorCode 10).
    Auth = 4,
    /// 5: Postmark refused the request (422 with an ErrorCode, 404, 413, …); sending it again will not help.
    Refused = 5,
    /// 6: temporary: rate limited (429) or Postmark unavailable (5xx, maintenance); try again later.
    Temporary = 6,
    /// 7: the network: Postmark could not be reached or did not answer in time.
    Network = 7,
}

/// The class of an error.
pub fn classify(e: &Error) -> ExitClass {
    match e {
        Error::Config(_) => ExitClass::Config,
        Error::InvalidInput(_) | Error::InvalidRequest(_) => ExitClass::Usage,
        Error::Transport { source, .. } if source.status().is_none() => ExitClass::Network,
        _ if e.is_unauthorized() => ExitClass::Auth,
        _ if e.status().is_some_and(|s| s == 429 || s >= 500) || e.is_retryable() => ExitClass::Temporary,
        _ if e.status().is_some_and(|s| (400..500).contains(&s)) => ExitClass::Refused,
        Error::PageWindow { .. } => ExitClass::Refused,
        _ => ExitClass::Other,
    }
}

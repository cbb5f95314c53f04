//! What the spool records about messages besides their bytes, and how its operations fail.

use std::io;

use serde::{Deserialize, Serialize};

use super::{Header, QueueId};

/// Advisory retry state kept beside a pending message.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetryState {
    /// Failed attempts so far.
    pub attempts: u32,
    /// The last error, as logged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// When the next attempt is due (ms since the Unix epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt_ms: Option<u64>,
    /// Set by `queue retry` on a dead letter: its lifetime starts again from here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revived_ms: Option<u64>,
}

/// Why a message is a dead letter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadReason {
    /// The reason in words (Postmark's ErrorCode and Message, or the SMTP reply).
    pub reason: String,
    /// When it was given up (ms since the Unix epoch).
    pub dead_ms: u64,
    /// Attempts made.
    pub attempts: u32,
    /// The recipients it was not delivered to, when that is fewer than the whole envelope.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recipients: Vec<String>,
}

/// Failure to store an incoming message.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The disk (or quota) is full: `452 4.3.1`.
    #[error("spool storage full: {0}")]
    Full(#[source] io::Error),
    /// Any other I/O failure: `451 4.3.0`.
    #[error("spool write failed: {0}")]
    Io(#[source] io::Error),
}

impl StoreError {
    pub(crate) fn from_io(e: io::Error) -> Self {
        if is_storage_full(&e) { StoreError::Full(e) } else { StoreError::Io(e) }
    }
}

pub(crate) fn is_storage_full(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded)
}

/// Failure to read a message back.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// No such message (delivered, purged or moved meanwhile).
    #[error("no such message")]
    NotFound,
    /// The file exists but cannot be trusted; it belongs in quarantine.
    #[error("corrupt spool file: {0}")]
    Corrupt(String),
    /// Reading failed.
    #[error("reading spool file: {0}")]
    Io(#[from] io::Error),
}

/// Where a message is in the spool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Area {
    /// Waiting for delivery (`queue/`).
    Queue,
    /// Given up (`dead/`).
    Dead,
}

impl Area {
    pub(crate) fn dir(self) -> &'static str {
        match self {
            Area::Queue => "queue",
            Area::Dead => "dead",
        }
    }
}

/// A summary of one spooled message, for listings (reads only the header line).
#[derive(Debug)]
pub struct Entry {
    /// Its id.
    pub id: QueueId,
    /// Pending or dead.
    pub area: Area,
    /// Its metadata, or why it could not be read.
    pub header: Result<Header, LoadError>,
}

#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod client;
mod codes;
pub mod de;
mod define;
mod error;
pub mod hooks;
pub mod limits;
pub mod paging;
mod result;
mod retry;
pub mod tls;

pub use client::{
    API_URL_ENV, ApiKind, ClientBuilder, DEFAULT_BASE_URL, DEFAULT_CONNECT_TIMEOUT, DEFAULT_TIMEOUT, TEST_TOKEN, Token,
};
pub use codes::ErrorCode;
pub use error::{ApiErrorBody, Error, FieldError, FieldErrors, Operation, REQUEST_ID_HEADERS, TransportFailure};
pub use hooks::ClientState;
pub use result::ResultExt;
pub use retry::{RetryEvent, RetryPolicy, parse_retry_after};

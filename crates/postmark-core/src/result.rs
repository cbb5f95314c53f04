//! `?`-friendly results: generated calls yield [`Error`](crate::Error) and the decoded value in one step.

use progenitor_client::ResponseValue;

use crate::{ApiErrorBody, Error};

/// Turns what a generated `send()` returns into `Result<T, postmark_core::Error>`.
///
/// ```no_run
/// # use postmark_core::{Error, ResultExt};
/// # async fn demo(call: impl std::future::Future<Output = Result<progenitor_client::ResponseValue<u8>,
/// #     progenitor_client::Error<postmark_core::ApiErrorBody>>>) -> Result<(), Error> {
/// // e.g. `client.send_email().body(email).send().await.into_postmark()?`
/// let value = call.await.into_postmark()?;
/// # let _ = value; Ok(()) }
/// ```
pub trait ResultExt<T> {
    /// The decoded body, or the typed [`Error`] (with `is_retryable()`, `error_code()`, …).
    fn into_postmark(self) -> Result<T, Error>;
}

impl<T> ResultExt<T> for Result<ResponseValue<T>, progenitor_client::Error<ApiErrorBody>> {
    fn into_postmark(self) -> Result<T, Error> {
        self.map(ResponseValue::into_inner).map_err(Error::from)
    }
}

//! The TLS crypto provider the HTTP client uses: a cargo feature, `aws-lc-rs` (default) or `ring`.
//!
//! With `aws-lc-rs`, reqwest's own rustls setup is used unchanged. With `ring` alone, the client gets a rustls
//! configuration built on ring's provider with the platform's certificate verifier (as reqwest builds its own), and
//! no process-wide default provider is installed.

use crate::Error;

#[cfg(not(any(feature = "aws-lc-rs", feature = "ring")))]
compile_error!("postmark-core needs a TLS crypto provider: enable its `aws-lc-rs` (default) or `ring` feature");

/// The name of the crypto provider this build uses.
pub const PROVIDER: &str = if cfg!(feature = "aws-lc-rs") { "aws-lc-rs" } else { "ring" };

/// Gives the client builder the configured provider.
pub(crate) fn configure(builder: reqwest::ClientBuilder) -> Result<reqwest::ClientBuilder, Error> {
    #[cfg(all(feature = "ring", not(feature = "aws-lc-rs")))]
    {
        use rustls_platform_verifier::BuilderVerifierExt as _;
        let tls_error = |e: rustls::Error| Error::Config(format!("could not set up TLS (ring): {e}"));
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(tls_error)?
            .with_platform_verifier()
            .map_err(tls_error)?
            .with_no_client_auth();
        Ok(builder.tls_backend_preconfigured(config))
    }
    #[cfg(feature = "aws-lc-rs")]
    Ok(builder)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// reqwest panics at `build()` when it has rustls without a provider: building a client proves the feature
    /// set (run once per provider, see `.ci/run`) gives it one.
    #[test]
    fn a_client_builds_with_the_configured_provider() {
        let client = configure(reqwest::Client::builder()).expect("configured").build();
        assert!(client.is_ok(), "{PROVIDER}: {client:?}");
    }
}

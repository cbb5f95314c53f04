//! The macro that gives each generated client its hand-written wrapper, so both crates share one definition.

/// Defines a client wrapper around a crate's generated `Client`:
///
/// * `$client`: the public client type, which dereferences to the generated `Client`, so every generated operation
///   (`client.send_email().body(..).send()`) is a method of it;
/// * `$api`: the marker type implementing [`ApiKind`](crate::ApiKind) with the token header and variable;
/// * the `ClientHooks` implementation that strips progenitor's `api-version` header and annotates responses
///   (see [`hooks`](crate::hooks)).
///
/// The invoking crate must have a private `generated` module produced by `cargo xtask codegen`.
#[macro_export]
#[allow(clippy::crate_in_macro_def)] // reason: `crate::generated` must name the invoking crate's generated module
macro_rules! define_client {
    (
        $(#[$meta:meta])*
        client: $client:ident,
        api: $api:ident,
        builder: $builder:ident,
        header: $header:literal,
        env: $env:literal $(,)?
    ) => {
        /// Marker for this API: its token header and token variable.
        #[derive(Debug, Clone, Copy)]
        pub struct $api;

        impl $crate::ApiKind for $api {
            const TOKEN_HEADER: &'static str = $header;
            const TOKEN_ENV: &'static str = $env;
            type Client = $client;
            fn assemble(base_url: ::std::string::String, http: ::reqwest::Client, state: $crate::ClientState) -> $client {
                $client { api: crate::generated::Client::new_with_client(&base_url, http, state) }
            }
        }

        #[doc = concat!("Configures a [`", stringify!($client), "`]: base URL, timeouts, user agent.")]
        pub type $builder = $crate::ClientBuilder<$api>;

        $(#[$meta])*
        #[derive(Clone)]
        pub struct $client {
            api: crate::generated::Client,
        }

        impl $client {
            #[doc = concat!("A client for `https://api.postmarkapp.com` authenticated by `", $header, "`.")]
            ///
            /// Fails only if the token is not a valid header value or the TLS backend cannot start.
            pub fn new(token: impl ::std::convert::Into<$crate::Token>) -> ::std::result::Result<Self, $crate::Error> {
                $builder::new(token).build()
            }

            #[doc = concat!("A client whose token comes from `", $env, "` and whose base URL comes from")]
            /// `POSTMARK_API_URL` when set (for example a local fake in tests).
            pub fn from_env() -> ::std::result::Result<Self, $crate::Error> {
                $builder::from_env()?.build()
            }

            #[doc = concat!("A builder whose token comes from `", $env, "` and whose base URL comes from")]
            /// `POSTMARK_API_URL` when set, to add retries, timeouts or a user agent before building.
            pub fn builder_from_env() -> ::std::result::Result<$builder, $crate::Error> {
                $builder::from_env()
            }

            /// A builder to set the base URL, timeouts, user agent and retry policy.
            pub fn builder(token: impl ::std::convert::Into<$crate::Token>) -> $builder {
                $builder::new(token)
            }

            /// The API address this client sends to.
            pub fn base_url(&self) -> &str {
                progenitor_client::ClientInfo::<$crate::ClientState>::baseurl(&self.api)
            }
        }

        impl ::std::ops::Deref for $client {
            type Target = crate::generated::Client;
            fn deref(&self) -> &Self::Target {
                &self.api
            }
        }

        impl ::std::fmt::Debug for $client {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.debug_struct(stringify!($client)).field("base_url", &self.base_url()).finish_non_exhaustive()
            }
        }

        impl progenitor_client::ClientHooks<$crate::ClientState> for crate::generated::Client {
            async fn pre<E>(
                &self,
                request: &mut ::reqwest::Request,
                _info: &progenitor_client::OperationInfo,
            ) -> ::std::result::Result<(), progenitor_client::Error<E>> {
                $crate::hooks::pre(request).map_err(progenitor_client::Error::Custom)
            }

            async fn exec(
                &self,
                request: ::reqwest::Request,
                info: &progenitor_client::OperationInfo,
            ) -> ::reqwest::Result<::reqwest::Response> {
                $crate::hooks::exec(
                    progenitor_client::ClientInfo::client(self),
                    request,
                    info,
                    progenitor_client::ClientInfo::inner(self),
                )
                .await
            }
        }
    };
}

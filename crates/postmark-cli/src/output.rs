//! How results are printed: JSON on stdout, pretty on a terminal (or with `--pretty`), one line otherwise.

use std::io::{IsTerminal as _, Write as _};

use serde::Serialize;

/// The printer shared by generated and hand-written commands.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    pretty: bool,
}

impl Output {
    /// Pretty when forced or when stdout is a terminal.
    pub fn new(force_pretty: bool) -> Self {
        Output { pretty: force_pretty || std::io::stdout().is_terminal() }
    }

    /// Prints one value as JSON.
    pub fn json<T: Serialize + ?Sized>(&self, value: &T) {
        let text = if self.pretty { serde_json::to_string_pretty(value) } else { serde_json::to_string(value) };
        let mut out = std::io::stdout().lock();
        // A closed pipe (`postmark … | head`) is not an error worth a panic.
        let _ = writeln!(out, "{}", text.unwrap_or_else(|e| format!("{{\"error\": \"cannot print: {e}\"}}")));
    }
}

macro_rules! cli_config {
    ($api:ident) => {
        impl crate::generated::$api::CliConfig for Output {
            fn success_item<T>(&self, value: &progenitor_client::ResponseValue<T>)
            where
                T: serde::Serialize + std::fmt::Debug,
            {
                self.json(&**value);
            }

            fn success_no_item(&self, _: &progenitor_client::ResponseValue<()>) {}

            // Errors are printed once, by `app::run`, with Postmark's ErrorCode and message.
            fn error<T>(&self, _: &progenitor_client::Error<T>)
            where
                T: serde::Serialize + std::fmt::Debug,
            {
            }

            fn list_start<T>(&self)
            where
                T: serde::Serialize + std::fmt::Debug,
            {
            }

            fn list_item<T>(&self, value: &T)
            where
                T: serde::Serialize + std::fmt::Debug,
            {
                self.json(value);
            }

            fn list_end_success<T>(&self)
            where
                T: serde::Serialize + std::fmt::Debug,
            {
            }

            fn list_end_error<T>(&self, _: &progenitor_client::Error<T>)
            where
                T: serde::Serialize + std::fmt::Debug,
            {
            }
        }
    };
}

cli_config!(server);
cli_config!(account);

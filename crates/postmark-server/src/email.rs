//! Hand-written constructors and setters for the send requests, so a first send reads naturally:
//! `SendEmailRequest::new(from, to).subject("Hi").text_body("Hello")`, optional strings from `&str`.
//!
//! The types stay the generated ones (these are extra inherent methods); their fields and typify builders still work.

use crate::Error;
use crate::attachments::validate_attachments;
use crate::types::{EmailAttachment, MessageHeader, SendEmailRequest, SendEmailWithTemplateRequest, TrackLinks};

/// Setters shared by both send requests: optional strings, tracking, metadata, headers, attachments.
macro_rules! send_setters {
    ($ty:ident { $($field:ident: $what:literal),* $(,)? }) => {
        impl $ty {
            $(
                #[doc = concat!("Sets ", $what, ".")]
                pub fn $field(mut self, value: impl Into<String>) -> Self {
                    self.$field = Some(value.into());
                    self
                }
            )*

            /// Turns open tracking on or off for this message.
            pub fn track_opens(mut self, on: bool) -> Self {
                self.track_opens = Some(on);
                self
            }

            /// Sets link tracking for this message.
            pub fn track_links(mut self, mode: TrackLinks) -> Self {
                self.track_links = Some(mode);
                self
            }

            /// Adds a metadata entry (Postmark keeps at most 10, keys up to 20 and values up to 80 characters).
            pub fn metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
                self.metadata.insert(key.into(), value.into());
                self
            }

            /// Adds a message header.
            pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
                self.headers.push(MessageHeader { name: name.into(), value: value.into() });
                self
            }

            /// Adds an attachment, e.g. from [`EmailAttachment::from_path`].
            pub fn attach(mut self, attachment: EmailAttachment) -> Self {
                self.attachments.push(attachment);
                self
            }

            /// Checks the attachments as Postmark will (forbidden extensions, 10 MB), without a request.
            pub fn validate_attachments(&self) -> Result<(), Error> {
                validate_attachments(&self.attachments)
            }
        }
    };
}

send_setters!(SendEmailRequest {
    subject: "the subject",
    text_body: "the plain-text body",
    html_body: "the HTML body",
    cc: "the comma-separated Cc addresses",
    bcc: "the comma-separated Bcc addresses",
    reply_to: "the Reply-To address",
    tag: "the tag",
    message_stream: "the message stream (default `outbound`)",
});

send_setters!(SendEmailWithTemplateRequest {
    cc: "the comma-separated Cc addresses",
    bcc: "the comma-separated Bcc addresses",
    reply_to: "the Reply-To address",
    tag: "the tag",
    message_stream: "the message stream (default `outbound`)",
});

impl SendEmailRequest {
    /// A message from `from` to `to` (comma-separated addresses, at most 50 with Cc and Bcc); add a body with
    /// [`text_body`](Self::text_body) or [`html_body`](Self::html_body).
    pub fn new(from: impl Into<String>, to: impl Into<String>) -> Self {
        SendEmailRequest {
            from: from.into(),
            to: to.into(),
            attachments: Vec::new(),
            bcc: None,
            cc: None,
            headers: Vec::new(),
            html_body: None,
            message_stream: None,
            metadata: Default::default(),
            reply_to: None,
            subject: None,
            tag: None,
            text_body: None,
            track_links: None,
            track_opens: None,
        }
    }
}

impl SendEmailWithTemplateRequest {
    fn empty(from: String, to: String) -> Self {
        SendEmailWithTemplateRequest {
            from,
            to,
            attachments: Vec::new(),
            bcc: None,
            cc: None,
            headers: Vec::new(),
            inline_css: None,
            message_stream: None,
            metadata: Default::default(),
            reply_to: None,
            tag: None,
            template_alias: None,
            template_id: None,
            template_model: Default::default(),
            track_links: None,
            track_opens: None,
        }
    }

    /// A message rendered from the template with this alias.
    pub fn with_alias(from: impl Into<String>, to: impl Into<String>, alias: impl Into<String>) -> Self {
        let mut m = Self::empty(from.into(), to.into());
        m.template_alias = Some(alias.into());
        m
    }

    /// A message rendered from the template with this ID.
    pub fn with_id(from: impl Into<String>, to: impl Into<String>, template_id: i64) -> Self {
        let mut m = Self::empty(from.into(), to.into());
        m.template_id = Some(template_id);
        m
    }

    /// Sets one template variable.
    pub fn model_value(mut self, key: impl Into<String>, value: impl Into<serde_json::Value>) -> Self {
        self.template_model.insert(key.into(), value.into());
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setters_fill_the_generated_fields() {
        let m = SendEmailRequest::new("a@example.com", "b@example.org")
            .subject("Hi")
            .text_body("Hello")
            .tag("welcome")
            .metadata("order", "42")
            .header("X-Ref", "7")
            .track_opens(true);
        let json = serde_json::to_value(&m).expect("json");
        assert_eq!(
            json,
            serde_json::json!({"From": "a@example.com", "To": "b@example.org", "Subject": "Hi", "TextBody": "Hello",
                "Tag": "welcome", "Metadata": {"order": "42"}, "Headers": [{"Name": "X-Ref", "Value": "7"}],
                "TrackOpens": true})
        );
        let t = SendEmailWithTemplateRequest::with_alias("a@example.com", "b@example.org", "welcome")
            .model_value("name", "Jane")
            .model_value("items", 3);
        let json = serde_json::to_value(&t).expect("json");
        assert_eq!(json["TemplateAlias"], "welcome");
        assert_eq!(json["TemplateModel"], serde_json::json!({"name": "Jane", "items": 3}));
        assert_eq!(SendEmailWithTemplateRequest::with_id("a@x.io", "b@x.io", 7).template_id, Some(7));
    }
}

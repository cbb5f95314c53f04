//! Postmark's `ErrorCode` values.

/// Declares [`ErrorCode`] from one table: variant, numeric code, short meaning.
macro_rules! error_codes {
    ($($(#[$attr:meta])* $variant:ident = $code:literal, $meaning:literal;)*) => {
        /// A Postmark `ErrorCode` (the numeric code in every error body), as documented by Postmark.
        ///
        /// Codes Postmark adds later decode as [`ErrorCode::Unknown`], so decoding never fails on a new code.
        /// Decisions (retry, inactive recipient) are keyed on these codes, never on the message text.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum ErrorCode {
            $($(#[$attr])* #[doc = $meaning] $variant,)*
            /// A code this crate does not know yet.
            Unknown(i64),
        }

        impl ErrorCode {
            /// The code for a number.
            pub const fn from_i64(code: i64) -> Self {
                match code {
                    $($code => Self::$variant,)*
                    other => Self::Unknown(other),
                }
            }

            /// The number Postmark sends.
            pub const fn as_i64(self) -> i64 {
                match self {
                    $(Self::$variant => $code,)*
                    Self::Unknown(other) => other,
                }
            }

            /// A short English meaning of the code (empty for unknown codes).
            pub const fn meaning(self) -> &'static str {
                match self {
                    $(Self::$variant => $meaning,)*
                    Self::Unknown(_) => "",
                }
            }
        }
    };
}

error_codes! {
    Ok = 0, "Success.";
    BadOrMissingApiToken = 10, "The API token header is missing or wrong.";
    MultipleErrors = 11, "Several errors; see the response's error list.";
    ResourceNotFound = 12, "The resource was not found.";
    InvalidPaginationKey = 13, "The pagination parameters are invalid.";
    BulkApiNotEnabled = 14, "The Bulk API is not enabled for this account.";
    Maintenance = 100, "The API is offline for maintenance.";
    InvalidEmailRequest = 300, "The email request is invalid (address, body, recipient count, ...).";
    SenderSignatureNotFound = 400, "The From address has no sender signature.";
    SenderSignatureNotConfirmed = 401, "The sender signature is not confirmed.";
    InvalidJson = 402, "The request body is not valid JSON.";
    IncompatibleJson = 403, "The JSON has invalid or incompatible fields.";
    NotAllowedToSend = 405, "The account may not send (for example, out of credits).";
    InactiveRecipient = 406, "A recipient is inactive (hard bounce, spam complaint or manual suppression).";
    JsonRequired = 409, "Accept or Content-Type is not application/json.";
    TooManyBatchMessages = 410, "More than 500 messages in a batch.";
    ForbiddenAttachmentType = 411, "An attachment has a forbidden file type.";
    AccountPendingApproval = 412, "The account is pending approval; recipients must share the From domain.";
    AccountMayNotSend = 413, "The account may not send.";
    RateLimitExceeded = 429, "Rate limit exceeded.";
    SenderSignatureQueryError = 500, "Sender signature query error.";
    SenderSignatureNotFoundById = 501, "No sender signature with that ID.";
    NoSenderSignatureData = 502, "No sender signature data was given.";
    PublicDomainNotAllowed = 503, "Public domains cannot be used for sender signatures.";
    SenderSignatureExists = 504, "The sender signature already exists.";
    DkimRenewalScheduled = 505, "A DKIM renewal is already scheduled.";
    SenderSignatureAlreadyConfirmed = 506, "The sender signature is already confirmed.";
    SenderSignatureNotOwned = 507, "The sender signature belongs to another account.";
    DomainNotFound = 510, "The domain was not found.";
    InvalidDomainFields = 511, "The domain request has invalid fields.";
    DomainExists = 512, "The domain already exists.";
    DomainNotOwned = 513, "The domain belongs to another account.";
    DomainNameRequired = 514, "A domain name is required.";
    DomainNameTooLong = 515, "The domain name is too long.";
    DomainNameInvalid = 516, "The domain name is invalid.";
    ServerQueryError = 600, "Server query error.";
    ServerNotFound = 601, "The server was not found.";
    DuplicateInboundDomain = 602, "The inbound domain is used by another server.";
    ServerNameExists = 603, "A server with that name exists.";
    NoDeleteAccess = 604, "Deleting servers is not enabled for this account.";
    CannotDeleteServer = 605, "The server cannot be deleted.";
    InvalidWebhookUrl = 606, "The webhook URL is invalid.";
    InvalidServerColor = 607, "The server color is invalid.";
    ServerNameMissing = 608, "The server name is missing.";
    NoServerData = 609, "No server data was given.";
    InvalidInboundMx = 610, "The inbound domain's MX record is invalid.";
    InvalidInboundSpamThreshold = 611, "InboundSpamThreshold is invalid.";
    MessagesQueryError = 700, "Messages query error.";
    MessageNotFound = 701, "The message does not exist.";
    CannotBypassMessage = 702, "The inbound message cannot be bypassed.";
    CannotRetryMessage = 703, "The inbound message cannot be retried.";
    TriggerQueryError = 800, "Trigger query error.";
    NoTriggerData = 809, "No trigger data was given.";
    StatsQueryError = 900, "Stats query error.";
    BouncesQueryError = 1000, "Bounces query error.";
    BounceNotFound = 1001, "The bounce was not found.";
    BounceIdRequired = 1002, "A bounce ID is required.";
    CannotActivateBounce = 1003, "The bounce cannot be activated.";
    TemplateQueryError = 1100, "Template query error.";
    TemplateNotFound = 1101, "The template was not found.";
    TemplateLimitReached = 1105, "The server has reached its template limit.";
    NoTemplateData = 1109, "No template data was given.";
    TemplateFieldMissing = 1120, "A required template field is missing.";
    TemplateFieldTooLarge = 1121, "A template field is too large.";
    TemplateFieldInvalid = 1122, "A template field is invalid.";
    TemplateFieldNotAllowed = 1123, "A template field is not allowed.";
    TemplateTypeMismatch = 1125, "The template type does not match.";
    LayoutInUse = 1130, "The layout is used by other templates.";
    LayoutPlaceholderMissing = 1131, "The layout lacks its content placeholder.";
    MessageStreamNotFound = 1226, "The message stream was not found.";
    MessageStreamNotOnServer = 1235, "The message stream does not exist on this server.";
    SendingNotSupportedOnStream = 1236, "Sending is not supported on this message stream.";
    InvalidDataRemovalRequest = 1300, "The data removal request is invalid.";
    InvalidDataRemovalId = 1301, "The data removal ID is invalid.";
    NoDataRemovalAccess = 1302, "Data removals are not enabled for this account.";
}

impl From<i64> for ErrorCode {
    fn from(code: i64) -> Self {
        Self::from_i64(code)
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.as_i64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_known_and_unknown_codes() {
        for n in [0, 10, 300, 406, 505, 510, 604, 1235, 1302] {
            let code = ErrorCode::from_i64(n);
            assert!(!matches!(code, ErrorCode::Unknown(_)), "{n} should be known");
            assert_eq!(code.as_i64(), n);
            assert!(!code.meaning().is_empty());
        }
        assert_eq!(ErrorCode::from_i64(4242), ErrorCode::Unknown(4242));
        assert_eq!(ErrorCode::from_i64(4242).as_i64(), 4242);
        assert_eq!(ErrorCode::from(406), ErrorCode::InactiveRecipient);
    }
}

//! The core's error: a code from the one table, a message for the client, and
//! structured details (the field at fault, limits, hints). Rendering happens at the
//! edge; 5xx causes are logged there and never sent to the client.

use maximin_types::ErrorCode;
use serde_json::{Map, Value};

#[derive(Debug, Clone, thiserror::Error)]
#[error("{code}: {message}")]
pub struct Error {
    pub code: ErrorCode,
    pub message: String,
    pub details: Map<String, Value>,
    /// Seconds the client should wait before retrying (rate limits, overload).
    pub retry_after: Option<u64>,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A detail key an error may carry to pick a more specific MiniMax-native
/// `base_resp.status_code` than its code's (e.g. 1042 for illegal characters).
pub const NATIVE_CODE: &str = "native_status_code";

impl Error {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Error {
            code,
            message: message.into(),
            details: Map::new(),
            retry_after: None,
        }
    }

    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.details.insert(key.to_owned(), value.into());
        self
    }

    /// A request that is wrong in one field.
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        Error::new(ErrorCode::InvalidRequest, message).with("field", field)
    }

    pub fn not_found(what: &str, id: &str) -> Self {
        Error::new(ErrorCode::NotFound, format!("No {what} with id '{id}'.")).with("id", id)
    }

    pub fn permission_denied(message: impl Into<String>) -> Self {
        Error::new(ErrorCode::PermissionDenied, message)
    }

    pub fn authentication(message: impl Into<String>) -> Self {
        Error::new(ErrorCode::AuthenticationFailed, message)
    }

    /// An internal failure. The cause goes to the log with the request id; the
    /// client only learns that something failed on our side.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(cause = %cause, "internal error");
        Error::new(
            ErrorCode::ServerError,
            "The server failed to handle this request; quote the request id when reporting it.",
        )
    }

    /// A part the server needs is out of reach for now (the shared rate
    /// limiter, say): `server_error`, answered 503 with `Retry-After`.
    pub fn unavailable(message: impl Into<String>, retry_after: u64) -> Self {
        let mut e = Error::new(ErrorCode::ServerError, message);
        e.retry_after = Some(retry_after.max(1));
        e
    }

    /// The HTTP status: the code's, but 503 for a server error the client
    /// is told to retry (`Retry-After`), which is an outage, not a fault.
    pub fn status(&self) -> u16 {
        match (self.code, self.retry_after) {
            (ErrorCode::ServerError, Some(_)) => 503,
            (code, _) => code.http_status(),
        }
    }

    pub fn is_server_side(&self) -> bool {
        self.status() >= 500
    }
}

//! Errors at the edge. Handlers and the request path return [`ApiError`]; it
//! becomes an empty response carrying the error, and the edge middleware renders
//! it in the shape of the surface the request came through, with the request id.

use std::sync::Arc;

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use maximin_core::Error;
use maximin_types::ErrorCode;
use serde_json::json;

#[derive(Debug)]
pub struct ApiError(pub Error);

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        ApiError(e)
    }
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError(Error::new(code, message))
    }
}

/// The error a response carries until the edge renders it.
#[derive(Debug, Clone)]
pub struct PendingError(pub Arc<Error>);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.0.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut resp = status.into_response();
        if let Some(secs) = self.0.retry_after {
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                resp.headers_mut().insert("retry-after", v);
            }
        }
        resp.extensions_mut().insert(PendingError(Arc::new(self.0)));
        resp
    }
}

/// The surfaces that render errors differently (DESIGN.md §1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Surface {
    /// Seed 002: `{"error":{"code","message","details"}}`.
    Platform,
    /// The MiniMax-native API (speech, voices, files, native text): HTTP 200
    /// with `{"base_resp":{"status_code","status_msg"}}`, as MiniMax's own
    /// clients expect (spec §0.4–0.5).
    Native,
    /// The OpenAI-compatible surface (`/openai/…`): real statuses and
    /// `{"error":{"message","type","param","code"}}`.
    OpenAi,
    /// The Anthropic-compatible surface (`/anthropic/…`): real statuses and
    /// `{"type":"error","error":{"type","message"}}`.
    Anthropic,
}

/// Set on a response by a handler whose route serves two surfaces (the
/// native `texts` shape of `/v1/embeddings`): errors render in this one.
#[derive(Debug, Clone, Copy)]
pub struct SurfaceOverride(pub Surface);

pub use maximin_core::error::NATIVE_CODE;

impl Surface {
    /// The surface of a request: the one its route declares in
    /// [`crate::table::ROUTES`], found by the template the router matched
    /// (`MatchedPath`); a request no route matched takes the surface of the
    /// route whose template is its path, else of its path's prefix
    /// ([`crate::table::UNMATCHED_PREFIXES`]), else the platform's. A
    /// response may still carry a [`SurfaceOverride`].
    pub fn of_request(matched: Option<&str>, path: &str) -> Surface {
        if let Some(s) = crate::table::surface_of_template(matched.unwrap_or(path)) {
            return s;
        }
        crate::table::UNMATCHED_PREFIXES
            .iter()
            .find(|(prefix, _)| path.starts_with(prefix))
            .map_or(Surface::Platform, |(_, s)| *s)
    }

    /// The schema of this surface's errors in the OpenAPI document.
    pub fn error_schema(self) -> &'static str {
        match self {
            Surface::Platform => "ErrorResponse",
            Surface::Native => "NativeErrorResponse",
            Surface::OpenAi => "OpenAiErrorResponse",
            Surface::Anthropic => "AnthropicErrorResponse",
        }
    }

    pub fn status(self, err: &Error) -> StatusCode {
        match self {
            Surface::Platform | Surface::OpenAi | Surface::Anthropic => {
                StatusCode::from_u16(err.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
            }
            Surface::Native => StatusCode::OK,
        }
    }
}

/// The native `base_resp` of an error: its status code, and a message that
/// names the field at fault.
pub fn native_base_resp(err: &Error) -> serde_json::Value {
    let code = err
        .details
        .get(NATIVE_CODE)
        .and_then(serde_json::Value::as_i64)
        .unwrap_or_else(|| err.code.native_status_code());
    let msg = match err.details.get("field").and_then(serde_json::Value::as_str) {
        Some(field) if !err.message.contains(field) => format!("{} ({field})", err.message),
        _ => err.message.clone(),
    };
    json!({ "status_code": code, "status_msg": msg })
}

pub fn render_body(surface: Surface, err: &Error, request_id: &str) -> serde_json::Value {
    match surface {
        Surface::Platform => json!({
            "error": {
                "code": err.code.as_str(),
                "message": err.message,
                "details": err.details,
            },
            "meta": { "request_id": request_id },
        }),
        Surface::Native => json!({
            "base_resp": native_base_resp(err),
            "trace_id": request_id,
        }),
        Surface::OpenAi => openai_body(err),
        Surface::Anthropic => anthropic_body(err, request_id),
    }
}

/// A message naming the field at fault, with our code in parentheses
/// (as MiniMax's compatible surfaces append theirs).
fn foreign_message(err: &Error) -> String {
    let mut msg = match err.details.get("field").and_then(serde_json::Value::as_str) {
        Some(field) if !err.message.contains(field) => format!("{} ({field})", err.message),
        _ => err.message.clone(),
    };
    msg.push_str(&format!(" ({})", err.code.as_str()));
    msg
}

/// OpenAI's error object.
pub fn openai_body(err: &Error) -> serde_json::Value {
    use maximin_types::ErrorCode as C;
    let kind = match err.code {
        C::InvalidRequest | C::IdempotencyConflict | C::PayloadTooLarge => "invalid_request_error",
        C::AuthenticationFailed => "authentication_error",
        C::PermissionDenied => "permission_error",
        C::NotFound | C::ModelNotFound => "not_found_error",
        C::RateLimitExceeded => "rate_limit_error",
        C::InsufficientCredits => "insufficient_quota",
        C::ServerError | C::UpstreamError | C::ModelUnavailable => "api_error",
    };
    json!({
        "error": {
            "message": foreign_message(err),
            "type": kind,
            "param": err.details.get("field").cloned().unwrap_or(serde_json::Value::Null),
            "code": err.code.as_str(),
        }
    })
}

/// Anthropic's error object.
pub fn anthropic_body(err: &Error, request_id: &str) -> serde_json::Value {
    use maximin_types::ErrorCode as C;
    let kind = match err.code {
        C::InvalidRequest | C::IdempotencyConflict => "invalid_request_error",
        C::PayloadTooLarge => "request_too_large",
        C::AuthenticationFailed => "authentication_error",
        C::PermissionDenied => "permission_error",
        C::InsufficientCredits => "billing_error",
        C::NotFound | C::ModelNotFound => "not_found_error",
        C::RateLimitExceeded => "rate_limit_error",
        C::ModelUnavailable => "overloaded_error",
        C::ServerError | C::UpstreamError => "api_error",
    };
    json!({
        "type": "error",
        "error": {"type": kind, "message": foreign_message(err)},
        "request_id": request_id,
    })
}

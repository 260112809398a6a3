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
        let status = StatusCode::from_u16(self.0.code.http_status())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
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
}

impl Surface {
    pub fn of_path(_path: &str) -> Surface {
        Surface::Platform
    }
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
    }
}

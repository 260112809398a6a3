//! What handlers extract and return: the request context, JSON bodies with
//! field-precise errors, and the seed 002 success envelope.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use maximin_core::{Caller, Error};
use maximin_types::{ErrorCode, TokenUsage};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::json;

use crate::error::ApiError;

/// Largest JSON body accepted (bytes).
pub const MAX_JSON_BODY: usize = 16 * 1024 * 1024;

/// The id of the request, set first thing by the edge.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// Model and token counts a handler reports for metering and `meta`.
#[derive(Debug, Clone, Default)]
pub struct UsageReport {
    pub model: Option<String>,
    pub usage: Option<TokenUsage>,
}

/// The per-request context handed to handlers.
pub struct Ctx {
    pub request_id: String,
    pub caller: Arc<Caller>,
}

impl<S: Send + Sync> FromRequestParts<S> for Ctx {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let request_id = parts
            .extensions
            .get::<RequestId>()
            .map(|r| r.0.clone())
            .unwrap_or_default();
        let caller = parts
            .extensions
            .get::<Arc<Caller>>()
            .cloned()
            .ok_or_else(|| ApiError(Error::internal("handler mounted without the request path")))?;
        Ok(Ctx { request_id, caller })
    }
}

impl Ctx {
    /// `200` with `{"data": …, "meta": {"request_id"}}`.
    pub fn ok<T: Serialize>(&self, data: T) -> Response {
        self.respond(StatusCode::OK, data, UsageReport::default())
    }

    pub fn created<T: Serialize>(&self, data: T) -> Response {
        self.respond(StatusCode::CREATED, data, UsageReport::default())
    }

    /// A success that names the model used and its token counts, in `meta` and
    /// for metering.
    pub fn respond<T: Serialize>(
        &self,
        status: StatusCode,
        data: T,
        report: UsageReport,
    ) -> Response {
        let mut meta = serde_json::Map::new();
        meta.insert("request_id".into(), json!(self.request_id));
        if let Some(m) = &report.model {
            meta.insert("model".into(), json!(m));
        }
        if let Some(u) = &report.usage {
            meta.insert("usage".into(), json!(u));
        }
        let body = json!({ "data": data, "meta": meta });
        let mut resp = (status, axum::Json(body)).into_response();
        resp.extensions_mut().insert(report);
        resp
    }
}

/// A JSON body. Unlike `axum::Json`, every failure is an `invalid_request` (or
/// `payload_too_large`) naming the field at fault.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, _: &S) -> Result<Self, Self::Rejection> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|ct| {
                let ct = ct
                    .split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase();
                ct == "application/json" || ct.ends_with("+json")
            })
            .unwrap_or(false);
        if !is_json {
            return Err(ApiError(Error::invalid(
                "Content-Type",
                "The body must be JSON, sent with 'Content-Type: application/json'.",
            )));
        }
        let bytes = read_body(req.into_body(), MAX_JSON_BODY).await?;
        parse_json(&bytes).map(ApiJson)
    }
}

pub async fn read_body(body: axum::body::Body, limit: usize) -> Result<Bytes, ApiError> {
    axum::body::to_bytes(body, limit).await.map_err(|_| {
        ApiError(
            Error::new(
                ErrorCode::PayloadTooLarge,
                format!("The request body is larger than {limit} bytes or could not be read."),
            )
            .with("limit_bytes", limit),
        )
    })
}

pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let syntax = inner.is_syntax() || inner.is_eof();
        let field = if syntax {
            "body".to_owned()
        } else if let Some(missing) = missing_field(&inner.to_string()) {
            // A missing field is reported at its parent's path.
            if path == "." {
                missing
            } else {
                format!("{path}.{missing}")
            }
        } else if path == "." {
            "body".to_owned()
        } else {
            path
        };
        let message = if syntax {
            format!(
                "The body is not valid JSON (line {}, column {}).",
                inner.line(),
                inner.column()
            )
        } else {
            format!(
                "Invalid value for '{field}': {}",
                strip_location(&inner.to_string())
            )
        };
        ApiError(Error::invalid(&field, message))
    })
}

/// [`parse_json`] of a body already read as JSON (surfaces that look at a
/// few fields before the shared request type).
pub fn parse_value<T: DeserializeOwned>(v: serde_json::Value) -> Result<T, ApiError> {
    let bytes = serde_json::to_vec(&v).map_err(|e| ApiError(Error::internal(e)))?;
    parse_json(&bytes)
}

fn missing_field(msg: &str) -> Option<String> {
    let rest = msg.strip_prefix("missing field `")?;
    rest.split('`').next().map(str::to_owned)
}

fn strip_location(msg: &str) -> &str {
    msg.split(" at line ").next().unwrap_or(msg)
}

/// Metering of a streamed response, whose token counts are known only when the
/// stream ends. The handler puts one in the response's extensions and fills
/// it in as the stream finishes; the request path arms it with the event; the
/// event is recorded when the last holder lets go (stream ended or client gone).
#[derive(Default)]
pub struct StreamMeter {
    report: std::sync::Mutex<UsageReport>,
    armed: std::sync::Mutex<Option<(maximin_core::store::UsageEvent, Arc<maximin_core::Platform>)>>,
    started: std::sync::OnceLock<std::time::Instant>,
}

impl StreamMeter {
    pub fn new() -> Arc<Self> {
        let m = StreamMeter::default();
        let _ = m.started.set(std::time::Instant::now());
        Arc::new(m)
    }

    pub fn report(&self, report: UsageReport) {
        *self.report.lock().unwrap_or_else(|e| e.into_inner()) = report;
    }

    pub fn arm(
        &self,
        event: maximin_core::store::UsageEvent,
        platform: Arc<maximin_core::Platform>,
    ) {
        *self.armed.lock().unwrap_or_else(|e| e.into_inner()) = Some((event, platform));
    }
}

impl Drop for StreamMeter {
    fn drop(&mut self) {
        let armed = self.armed.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some((mut event, platform)) = armed {
            let report = self
                .report
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            if let Some(u) = report.usage {
                event.prompt_tokens = u.prompt_tokens;
                event.completion_tokens = u.completion_tokens;
            }
            event.model = report.model.or(event.model);
            if let Some(started) = self.started.get() {
                event.latency_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
            }
            platform.record(event);
        }
    }
}

/// A server-sent event stream from batches of `(event name, data)` frames,
/// marked unbuffered for proxies, metered by `meter` when it ends.
pub fn sse_response<S>(batches: S, meter: Arc<StreamMeter>) -> Response
where
    S: futures_util::Stream<Item = Vec<(Option<String>, String)>> + Send + 'static,
{
    use axum::response::sse::{Event, KeepAlive, Sse};
    let events = futures_util::StreamExt::flat_map(batches, |frames| {
        futures_util::stream::iter(frames.into_iter().map(|(name, data)| {
            let e = Event::default().data(data);
            Ok::<_, std::convert::Infallible>(match name {
                Some(n) => e.event(n),
                None => e,
            })
        }))
    });
    let mut resp = Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response();
    resp.headers_mut().insert(
        "x-accel-buffering",
        axum::http::HeaderValue::from_static("no"),
    );
    resp.extensions_mut().insert(meter);
    resp
}

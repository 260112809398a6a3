//! Debug logging on the request path (issue 16): while an account's owner
//! has it on, each request's body and its response's body are kept,
//! sealed, by `Platform::keep_debug`. Only JSON and text bodies are kept
//! (at most `MAX_DEBUG_BODY` of each); others are described by type and
//! size. Streams are kept as they pass, written when they end. Outside a
//! window this module reads nothing.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderMap};
use axum::response::Response;
use futures_util::StreamExt;
use maximin_core::debuglog::{body_value, MAX_DEBUG_BODY};
use maximin_core::store::Account;
use maximin_core::Platform;
use serde_json::{json, Value};

use crate::ctx::is_json;
use crate::error::{render_body, PendingError, Surface};

/// The most of a request body read to keep it (a JSON body is bounded
/// below this by the routes themselves).
const MAX_READ: usize = 4 << 20;

fn content_type(h: &HeaderMap) -> String {
    h.get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned()
}

fn length(h: &HeaderMap) -> Option<usize> {
    h.get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

fn textual(ct: &str) -> bool {
    is_json(ct) || ct.trim_start().to_ascii_lowercase().starts_with("text/")
}

/// A body kept: its text (or base64) and its type.
fn kept(bytes: &[u8], total: usize, ct: &str) -> Value {
    let mut v = body_value(bytes, total);
    v["content_type"] = json!(ct);
    v
}

/// What is kept of a body that is not: its type and size.
fn described(ct: &str, bytes: Option<usize>) -> Value {
    json!({ "content_type": ct, "bytes": bytes, "kept": false })
}

/// Reads the request's body to keep it, and gives the request back whole.
pub async fn capture_request(req: Request) -> (Request, Value) {
    let ct = content_type(req.headers());
    let len = length(req.headers());
    if !textual(&ct) || len.is_none_or(|n| n > MAX_READ) {
        return (req, described(&ct, len));
    }
    let (parts, body) = req.into_parts();
    match axum::body::to_bytes(body, MAX_READ).await {
        Ok(bytes) => {
            let v = kept(&bytes, bytes.len(), &ct);
            (Request::from_parts(parts, Body::from(bytes)), v)
        }
        // Unreadable (the client went away): the handler sees an empty body.
        Err(_) => (
            Request::from_parts(parts, Body::empty()),
            described(&ct, len),
        ),
    }
}

/// Who the entry is for and where it came from.
pub struct Entry {
    pub platform: Arc<Platform>,
    pub account: Account,
    pub request_id: String,
    pub endpoint: String,
    pub surface: Surface,
    pub request: Value,
}

impl Entry {
    /// Keeps it before the answer goes out (so the client's next request
    /// sees it).
    async fn keep(self, status: u16, response: Value) {
        if let Err(e) = self
            .platform
            .keep_debug(
                &self.account,
                &self.request_id,
                &self.endpoint,
                status,
                self.request,
                response,
            )
            .await
        {
            tracing::warn!(code = %e.code, "keeping a debug log entry failed");
        }
    }

    /// Keeps it from a stream's end, off the body's poll.
    fn keep_later(self, status: u16, response: Value) {
        tokio::spawn(self.keep(status, response));
    }
}

/// Keeps the response with the request: whole when it is JSON or text,
/// as it streams when it is a stream.
pub async fn capture_response(entry: Entry, resp: Response) -> Response {
    let status = resp.status().as_u16();
    if let Some(p) = resp.extensions().get::<PendingError>() {
        let body = render_body(entry.surface, &p.0, &entry.request_id);
        let status = entry.surface.status(&p.0).as_u16();
        entry.keep(status, json!({ "json": body })).await;
        return resp;
    }
    let ct = content_type(resp.headers());
    if ct.starts_with("text/event-stream") {
        let (parts, body) = resp.into_parts();
        let mut tee = Tee {
            entry: Some(entry),
            status,
            ct,
            seen: Vec::new(),
            total: 0,
        };
        // The closure owns the tee: it is dropped, and keeps what passed,
        // when the stream ends or the client goes away.
        let stream = body.into_data_stream().map(move |chunk| {
            if let Ok(c) = &chunk {
                let room = MAX_DEBUG_BODY.saturating_sub(tee.seen.len());
                tee.seen.extend_from_slice(&c[..c.len().min(room)]);
                tee.total += c.len();
            }
            chunk
        });
        return Response::from_parts(parts, Body::from_stream(stream));
    }
    let len = length(resp.headers());
    if !textual(&ct) || len.is_some_and(|n| n > MAX_READ) {
        entry.keep(status, described(&ct, len)).await;
        return resp;
    }
    let (parts, body) = resp.into_parts();
    match axum::body::to_bytes(body, MAX_READ).await {
        Ok(bytes) => {
            entry.keep(status, kept(&bytes, bytes.len(), &ct)).await;
            Response::from_parts(parts, Body::from(bytes))
        }
        Err(_) => {
            entry.keep(status, described(&ct, len)).await;
            Response::from_parts(parts, Body::empty())
        }
    }
}

/// A stream's body as it passed (at most `MAX_DEBUG_BODY` of its `total`);
/// kept when the stream ends or is dropped.
struct Tee {
    entry: Option<Entry>,
    status: u16,
    ct: String,
    seen: Vec<u8>,
    total: usize,
}

impl Drop for Tee {
    fn drop(&mut self) {
        if let Some(entry) = self.entry.take() {
            entry.keep_later(self.status, kept(&self.seen, self.total, &self.ct));
        }
    }
}

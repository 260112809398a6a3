//! The shared request path, in one order for every authenticated route:
//! auth → scope and plan → rate limit → idempotency → handler → metering.
//! (The request id and error rendering come before and after, at the edge.)

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use maximin_core::idempotency::{Begin, StoredResponse};
use maximin_core::ratelimit::{limit_for, Decision};
use maximin_core::store::UsageEvent;
use maximin_core::{Caller, EndpointSpec, Error};

use crate::ctx::{read_body, RequestId, StreamMeter, UsageReport, MAX_JSON_BODY};
use crate::error::{ApiError, PendingError};
use crate::AppState;

/// State of the per-route middleware: the app and what the route requires.
#[derive(Clone)]
pub struct RouteCtx {
    pub app: AppState,
    pub spec: EndpointSpec,
}

/// Reads the key from `Authorization: Bearer …` or `x-api-key` (spec §0.2).
fn bearer(headers: &HeaderMap) -> Result<&str, Error> {
    if let Some(v) = headers.get(header::AUTHORIZATION) {
        let v = v.to_str().map_err(|_| malformed_header())?;
        let (scheme, token) = v.trim().split_once(' ').ok_or_else(malformed_header)?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(malformed_header());
        }
        return Ok(token.trim());
    }
    if let Some(v) = headers.get("x-api-key") {
        return v.to_str().map(str::trim).map_err(|_| malformed_header());
    }
    Err(Error::authentication(
        "No API key: send 'Authorization: Bearer mmx_live_…' (or an x-api-key header).",
    )
    .with("reason", "missing"))
}

fn malformed_header() -> Error {
    Error::authentication("The Authorization header must read 'Bearer <API key>'.")
        .with("reason", "malformed")
}

pub async fn request_path(State(rc): State<RouteCtx>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let platform = &rc.app.platform;
    let caller = match bearer(req.headers()) {
        Ok(token) => platform.authenticate(token).await,
        Err(e) => Err(e),
    };
    let caller = match caller {
        Ok(c) => c,
        Err(e) => return ApiError(e).into_response(),
    };
    let meta = RequestMeta::of(&req);

    let (decision, admitted) = authorize_and_limit(&rc, &caller).await;
    let mut resp = match admitted {
        Err(e) => ApiError(e).into_response(),
        Ok(()) => {
            let mut req = req;
            req.extensions_mut().insert(Arc::clone(&caller));
            run_idempotent(&rc, &caller, req, next).await
        }
    };
    if let Some(d) = decision {
        rate_headers(resp.headers_mut(), &d);
    }
    meter(&rc, &caller, &meta, &resp, started);
    resp
}

/// Scope and plan check, then the rate limit. A refused scope still reports
/// the key's limit state (peeked, not counted) so that every authenticated
/// response carries the headers.
async fn authorize_and_limit(
    rc: &RouteCtx,
    caller: &Caller,
) -> (Option<Decision>, Result<(), Error>) {
    let (bucket, limit) = limit_for(caller.account.plan, caller.account.limits, rc.spec.class);
    let bucket = format!("{}:{bucket}", caller.key.id);
    let now_ms =
        u64::try_from(rc.app.platform.clock.now().unix_timestamp_nanos() / 1_000_000).unwrap_or(0);
    let limiter = &rc.app.platform.limiter;
    if let Err(e) = caller.authorize(&rc.spec) {
        return (limiter.peek(&bucket, limit, now_ms).await.ok(), Err(e));
    }
    match limiter.hit(&bucket, limit, now_ms).await {
        Ok(d) if !d.allowed => {
            let mut e = Error::new(
                maximin_types::ErrorCode::RateLimitExceeded,
                format!(
                    "Rate limit of {} requests per minute reached for this key; retry in {} s.",
                    d.limit, d.retry_after
                ),
            )
            .with("limit", d.limit)
            .with("reset_at", d.reset_at);
            e.retry_after = Some(d.retry_after);
            (Some(d), Err(e))
        }
        Ok(d) => (Some(d), Ok(())),
        Err(e) => (None, Err(e)),
    }
}

fn rate_headers(h: &mut HeaderMap, d: &Decision) {
    h.insert("x-ratelimit-limit", HeaderValue::from(d.limit));
    h.insert("x-ratelimit-remaining", HeaderValue::from(d.remaining));
    h.insert("x-ratelimit-reset", HeaderValue::from(d.reset_at));
}

/// Runs the handler once per Idempotency-Key (POST and DELETE only).
async fn run_idempotent(rc: &RouteCtx, caller: &Caller, req: Request, next: Next) -> Response {
    let key = match req.headers().get("idempotency-key") {
        Some(k) if matches!(*req.method(), Method::POST | Method::DELETE) => k,
        _ => return next.run(req).await,
    };
    let key = match key.to_str() {
        Ok(k) => k.to_owned(),
        Err(_) => {
            return ApiError(Error::invalid(
                "Idempotency-Key",
                "Idempotency-Key must be visible ASCII characters.",
            ))
            .into_response()
        }
    };
    let request_id = req
        .extensions()
        .get::<RequestId>()
        .map(|r| r.0.clone())
        .unwrap_or_default();
    let (parts, body) = req.into_parts();
    let bytes = match read_body(body, MAX_JSON_BODY).await {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/")
        .to_owned();
    let begin = rc
        .app
        .platform
        .idempotency
        .begin(
            &caller.account.id,
            &key,
            parts.method.as_str(),
            &path,
            &bytes,
        )
        .await;
    match begin {
        Err(e) => ApiError(e).into_response(),
        Ok(Begin::Replay(stored)) => replay(stored),
        Ok(Begin::Execute(execution)) => {
            let resp = next
                .run(Request::from_parts(parts, Body::from(bytes)))
                .await;
            if is_stream(&resp) {
                // A stream cannot be replayed; let a retry run again.
                drop(execution);
                return resp;
            }
            let (mut parts, body) = resp.into_parts();
            let body = match axum::body::to_bytes(body, usize::MAX).await {
                Ok(b) => b,
                Err(e) => {
                    return ApiError(Error::internal(format!("reading a response: {e}")))
                        .into_response()
                }
            };
            // An error not yet rendered is stored as the edge will render it.
            let surface = parts
                .extensions
                .get::<crate::error::SurfaceOverride>()
                .map_or_else(|| crate::error::Surface::of_path(&path), |s| s.0);
            let stored = StoredResponse {
                status: match parts.extensions.get::<PendingError>() {
                    Some(p) => surface.status(&p.0).as_u16(),
                    None => parts.status.as_u16(),
                },
                content_type: match parts.extensions.get::<PendingError>() {
                    // Rendered as JSON below, as the edge renders it.
                    Some(_) => "application/json".to_owned(),
                    None => parts
                        .headers
                        .get(header::CONTENT_TYPE)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_owned(),
                },
                body: match parts.extensions.get::<PendingError>() {
                    Some(p) => {
                        serde_json::to_vec(&crate::error::render_body(surface, &p.0, &request_id))
                            .unwrap_or_default()
                    }
                    None => body.to_vec(),
                },
            };
            if let Err(e) = execution.complete(&stored).await {
                tracing::warn!(code = %e.code, "storing an idempotent response failed");
            }
            parts
                .headers
                .insert("idempotent-replayed", HeaderValue::from_static("false"));
            Response::from_parts(parts, Body::from(body))
        }
    }
}

fn is_stream(resp: &Response) -> bool {
    resp.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("text/event-stream"))
}

fn replay(stored: StoredResponse) -> Response {
    let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
    let mut resp = (status, stored.body).into_response();
    if let Ok(ct) = HeaderValue::from_str(&stored.content_type) {
        if !stored.content_type.is_empty() {
            resp.headers_mut().insert(header::CONTENT_TYPE, ct);
        }
    }
    resp.headers_mut()
        .insert("idempotent-replayed", HeaderValue::from_static("true"));
    resp.extensions_mut().insert(Replayed);
    resp
}

/// Marks a response sent again from the idempotency store (billed once).
#[derive(Debug, Clone, Copy)]
pub struct Replayed;

struct RequestMeta {
    request_id: String,
    method: String,
    endpoint: String,
    client_ip: Option<String>,
}

impl RequestMeta {
    fn of(req: &Request) -> Self {
        RequestMeta {
            request_id: req
                .extensions()
                .get::<RequestId>()
                .map(|r| r.0.clone())
                .unwrap_or_default(),
            method: req.method().to_string(),
            endpoint: req
                .extensions()
                .get::<MatchedPath>()
                .map(|p| p.as_str().to_owned())
                .unwrap_or_default(),
            client_ip: req
                .extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip().to_string()),
        }
    }
}

fn meter(rc: &RouteCtx, caller: &Caller, meta: &RequestMeta, resp: &Response, started: Instant) {
    let report = resp
        .extensions()
        .get::<UsageReport>()
        .cloned()
        .unwrap_or_default();
    let replayed = resp.extensions().get::<Replayed>().is_some();
    let usage = if replayed { None } else { report.usage };
    let event = UsageEvent {
        at: rc.app.platform.clock.now(),
        account_id: caller.account.id.clone(),
        key_id: caller.key.id.clone(),
        request_id: meta.request_id.clone(),
        method: meta.method.clone(),
        endpoint: meta.endpoint.clone(),
        status: resp.status().as_u16(),
        model: report.model,
        prompt_tokens: usage.map_or(0, |u| u.prompt_tokens),
        completion_tokens: usage.map_or(0, |u| u.completion_tokens),
        latency_us: u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
        error_code: resp
            .extensions()
            .get::<PendingError>()
            .map(|p| p.0.code.as_str().to_owned()),
        client_ip: meta.client_ip.clone(),
    };
    match resp.extensions().get::<Arc<StreamMeter>>() {
        // A stream: recorded with its token counts once it ends.
        Some(stream) => stream.arm(event, rc.app.platform.clone()),
        None => rc.app.platform.record(event),
    }
}

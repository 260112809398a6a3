//! The shared request path, in one order for every authenticated route:
//! auth → scope and plan → rate limit → idempotency → handler → metering.
//! (The request id and error rendering come before and after, at the edge.)
//! Units of work inside a request (WebSocket messages) go through the same
//! admission and metering, by [`Units`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use maximin_core::idempotency::{Begin, StoredResponse};
use maximin_core::ratelimit::Decision;
use maximin_core::store::{Charge, UsageEvent};
use maximin_core::{Caller, EndpointSpec, Error};

use crate::ctx::{read_body, RequestId, StreamMeter, UsageReport, MAX_JSON_BODY};
use crate::debuglog;
use crate::error::{ApiError, PendingError};
use crate::AppState;

/// State of the per-route middleware: the app and what the route requires.
#[derive(Clone)]
pub struct RouteCtx {
    pub app: AppState,
    pub spec: EndpointSpec,
    /// The route's surface, for the errors it stores for a replay.
    pub surface: crate::error::Surface,
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
    let meta = Arc::new(RequestMeta::of(&req));
    let cap = match max_cost(req.headers()) {
        Ok(cap) => cap,
        Err(e) => return ApiError(e).into_response(),
    };

    let admission = platform.admit(Arc::clone(&caller), &rc.spec).await;
    let (mut resp, caller) = match admission.result {
        Err(e) => (ApiError(e).into_response(), caller),
        Ok(admitted) => {
            // The request's own caller: its cap and its credit holds.
            let caller = platform.for_request(&admitted, cap);
            let mut req = req;
            req.extensions_mut().insert(Arc::clone(&caller));
            req.extensions_mut().insert(Units {
                spec: rc.spec,
                meta: Arc::clone(&meta),
                cap,
            });
            // The owner's debug logging: bodies kept, sealed, while it is on
            // (never a playground call's: the hub keeps no content).
            let playground = req
                .extensions()
                .get::<maximin_core::people::PlaygroundCall>()
                .is_some();
            let resp = if platform.debug_logging_on(&caller.account) && !playground {
                let (req, request) = debuglog::capture_request(req).await;
                let resp = run_idempotent(&rc, &caller, req, next).await;
                let entry = debuglog::Entry {
                    platform: Arc::clone(platform),
                    account: caller.account.clone(),
                    request_id: meta.request_id.clone(),
                    endpoint: meta.endpoint.clone(),
                    surface: rc.surface,
                    request,
                };
                debuglog::capture_response(entry, resp).await
            } else {
                run_idempotent(&rc, &caller, req, next).await
            };
            (resp, caller)
        }
    };
    if let Some(d) = admission.limit {
        rate_headers(resp.headers_mut(), &d);
    }
    if let Some(d) = caller.bill.as_ref().and_then(|b| b.token_decision()) {
        token_headers(resp.headers_mut(), &d);
    }
    if let Some(mut event) = meter(&rc, &caller, &meta, &resp, started) {
        // Settled before the client has the answer, so its next request
        // sees the counters as they are.
        if let Some(tokens) = event.charge.tokens.take() {
            let used = event.prompt_tokens + event.completion_tokens;
            platform.settle_tokens(&tokens, used).await;
        }
        platform.record(event);
    }
    resp
}

/// Tokens per minute (chat and embeddings): the tighter of the key's and
/// the account's counters as the request was admitted.
fn token_headers(h: &mut HeaderMap, d: &Decision) {
    h.insert("x-ratelimit-limit-tokens", HeaderValue::from(d.limit));
    h.insert(
        "x-ratelimit-remaining-tokens",
        HeaderValue::from(d.remaining),
    );
    h.insert("x-ratelimit-reset-tokens", HeaderValue::from(d.reset_at));
}

/// `X-Maximin-Max-Cost-Usd`: the most a request may cost, in US dollars;
/// micro-USD.
fn max_cost(headers: &HeaderMap) -> Result<Option<i64>, Error> {
    const NAME: &str = "X-Maximin-Max-Cost-Usd";
    let Some(v) = headers.get(NAME) else {
        return Ok(None);
    };
    v.to_str()
        .ok()
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|usd| usd.is_finite() && *usd >= 0.0 && *usd <= 1_000_000_000.0)
        .map(|usd| Some(maximin_core::billing::usd_to_micro(usd)))
        .ok_or_else(|| {
            Error::invalid(
                NAME,
                "X-Maximin-Max-Cost-Usd must be an amount of US dollars, 0 or more (such as 0.05).",
            )
        })
}

/// The money side of a usage event: whom it charges and the holds it
/// releases.
fn charge_of(caller: &Caller) -> Charge {
    Charge {
        cost_micro: 0,
        debit: !caller.key.test && !maximin_core::billing::invoiced(caller.account.plan),
        sandbox: caller.key.test,
        holds: caller
            .bill
            .as_ref()
            .map(|b| b.take_holds())
            .unwrap_or_default(),
        tokens: caller.bill.as_ref().and_then(|b| b.take_tokens()),
    }
}

fn rate_headers(h: &mut HeaderMap, d: &Decision) {
    h.insert("x-ratelimit-limit", HeaderValue::from(d.limit));
    h.insert("x-ratelimit-remaining", HeaderValue::from(d.remaining));
    h.insert("x-ratelimit-reset", HeaderValue::from(d.reset_at));
}

/// What the request path hands a handler whose connection carries units of
/// work of their own (WebSocket messages): the route's requirements and the
/// request's metadata, so that each unit is admitted, metered and logged as a
/// request would be, through the same [`Platform::admit_again`].
///
/// [`Platform::admit_again`]: maximin_core::Platform::admit_again
#[derive(Clone)]
pub struct Units {
    spec: EndpointSpec,
    meta: Arc<RequestMeta>,
    /// The connection's `X-Maximin-Max-Cost-Usd`, for each unit.
    cap: Option<i64>,
}

impl Units {
    /// Admits one unit of work of `caller`, recorded as method `unit` (such
    /// as `WS`): the key read again under the current auth epoch, scopes and
    /// plan, and, when `counted`, the rate limits shared with HTTP. A refused
    /// unit is metered and logged here, like a refused request.
    pub async fn admit(
        &self,
        app: &AppState,
        caller: &Caller,
        unit: &str,
        counted: bool,
    ) -> Result<Arc<Caller>, Error> {
        let started = Instant::now();
        let platform = &app.platform;
        let result = if counted {
            platform.admit_again(caller, &self.spec).await.result
        } else {
            platform.recheck(caller, &self.spec).await
        }
        .map(|now| platform.for_request(&now, self.cap));
        if let Err(e) = &result {
            self.finish(app, caller, unit, started, UsageReport::default(), Err(e));
        }
        result
    }

    /// Meters and logs one unit of work that ran: status 200 with what
    /// `report` counts, or its error's status and code (and no counts).
    pub fn finish(
        &self,
        app: &AppState,
        caller: &Caller,
        unit: &str,
        started: Instant,
        report: UsageReport,
        outcome: Result<(), &Error>,
    ) {
        let elapsed = started.elapsed();
        let (status, code) = match outcome {
            Ok(()) => (200, None),
            Err(e) => (e.status(), Some(e.code)),
        };
        app.metrics
            .observe(&self.meta.endpoint, unit, status, elapsed);
        tracing::info!(
            request_id = %self.meta.request_id,
            method = %unit,
            route = %self.meta.endpoint,
            status,
            latency_ms = elapsed.as_secs_f64() * 1000.0,
            code = code.map(|c| c.as_str()).unwrap_or(""),
            "unit"
        );
        let mut event = UsageEvent {
            at: app.platform.clock.now(),
            account_id: caller.account.id.clone(),
            key_id: caller.key.id.clone(),
            request_id: self.meta.request_id.clone(),
            method: unit.to_owned(),
            endpoint: self.meta.endpoint.clone(),
            status,
            model: report.model.clone(),
            prompt_tokens: 0,
            completion_tokens: 0,
            characters: 0,
            images: 0,
            media_ms: 0,
            latency_us: u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
            error_code: code.map(|c| c.as_str().to_owned()),
            client_ip: self.meta.client_ip.clone(),
            charge: charge_of(caller),
        };
        if code.is_none() {
            report.count_into(&mut event);
        }
        app.platform.record(event);
    }
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
                .map_or(rc.surface, |s| s.0);
            let stored = StoredResponse {
                status: match parts.extensions.get::<PendingError>() {
                    Some(p) => surface.status(&p.0).as_u16(),
                    None => parts.status.as_u16(),
                },
                // A pending error has no type yet: the edge renders it as JSON.
                content_type: match parts.extensions.get::<PendingError>() {
                    Some(_) => JSON.to_owned(),
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

const JSON: &str = "application/json";

/// The stored response again, with its content type. Records stored before
/// errors kept theirs have an empty type with a body: every such body is a
/// rendered error, i.e. JSON. An empty body goes without a type.
fn replay(stored: StoredResponse) -> Response {
    let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
    let ct = match stored.content_type.as_str() {
        "" if stored.body.is_empty() => None,
        "" => Some(JSON),
        ct => Some(ct),
    };
    let mut resp = (status, stored.body).into_response();
    resp.headers_mut().remove(header::CONTENT_TYPE);
    if let Some(ct) = ct {
        let ct = HeaderValue::from_str(ct).unwrap_or(HeaderValue::from_static(JSON));
        resp.headers_mut().insert(header::CONTENT_TYPE, ct);
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

/// The request's usage event, to record now; `None` for a stream, whose
/// event is recorded when it ends.
fn meter(
    rc: &RouteCtx,
    caller: &Caller,
    meta: &RequestMeta,
    resp: &Response,
    started: Instant,
) -> Option<UsageEvent> {
    let report = resp
        .extensions()
        .get::<UsageReport>()
        .cloned()
        .unwrap_or_default();
    let replayed = resp.extensions().get::<Replayed>().is_some();
    let mut event = UsageEvent {
        at: rc.app.platform.clock.now(),
        account_id: caller.account.id.clone(),
        key_id: caller.key.id.clone(),
        request_id: meta.request_id.clone(),
        method: meta.method.clone(),
        endpoint: meta.endpoint.clone(),
        status: resp.status().as_u16(),
        model: report.model.clone(),
        prompt_tokens: 0,
        completion_tokens: 0,
        characters: 0,
        images: 0,
        media_ms: 0,
        latency_us: u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
        error_code: resp
            .extensions()
            .get::<PendingError>()
            .map(|p| p.0.code.as_str().to_owned()),
        client_ip: meta.client_ip.clone(),
        charge: charge_of(caller),
    };
    // A replay did no work: the first response was metered.
    if !replayed {
        report.count_into(&mut event);
    }
    match resp.extensions().get::<Arc<StreamMeter>>() {
        // A stream: recorded (and its tokens settled) once it ends.
        Some(stream) => {
            stream.arm(event, rc.app.platform.clone());
            None
        }
        None => Some(event),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(content_type: &str, body: &[u8]) -> Response {
        replay(StoredResponse {
            status: 400,
            content_type: content_type.to_owned(),
            body: body.to_vec(),
        })
    }

    fn content_type(resp: &Response) -> Option<&str> {
        resp.headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
    }

    #[test]
    fn replays_carry_the_stored_type_and_old_error_records_read_as_json() {
        assert_eq!(
            content_type(&stored("audio/wav", b"RIFF")),
            Some("audio/wav")
        );
        // Stored before errors kept their type: a body is a rendered error.
        assert_eq!(content_type(&stored("", b"{}")), Some("application/json"));
        assert_eq!(content_type(&stored("", b"")), None);
    }
}

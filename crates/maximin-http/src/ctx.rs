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

/// The header that names the deployment that answered.
pub const UPSTREAM_HEADER: &str = "x-maximin-upstream";

/// Names the deployment that answered in the response's headers.
pub fn mark_deployment(resp: &mut Response, deployment: &str) {
    if let Ok(v) = axum::http::HeaderValue::from_str(deployment) {
        resp.headers_mut().insert(UPSTREAM_HEADER, v);
    }
}

/// The model a handler used and what it counts, for metering and `meta`:
/// tokens for text models, characters for speech.
#[derive(Debug, Clone, Default)]
pub struct UsageReport {
    pub model: Option<String>,
    pub usage: Option<TokenUsage>,
    /// Characters billed by a speech model (0 for text).
    pub characters: u64,
    /// Images made by an image model.
    pub images: u64,
    /// Milliseconds of video or music made.
    pub media_ms: u64,
}

impl UsageReport {
    /// What a speech request reports: the characters `model` billed.
    pub fn characters(model: String, characters: u64) -> Self {
        UsageReport {
            model: Some(model),
            usage: None,
            characters,
            ..UsageReport::default()
        }
    }

    /// Sets the event's counts to this report's.
    pub(crate) fn count_into(&self, event: &mut maximin_core::store::UsageEvent) {
        event.prompt_tokens = self.usage.map_or(0, |u| u.prompt_tokens);
        event.completion_tokens = self.usage.map_or(0, |u| u.completion_tokens);
        event.characters = self.characters;
        event.images = self.images;
        event.media_ms = self.media_ms;
    }
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

    /// [`Ctx::ok`] for `data` already rendered as JSON text (a cached list),
    /// written into the envelope as it is.
    pub fn ok_raw(&self, data: &str) -> Response {
        let id = serde_json::to_string(&self.request_id).unwrap_or_else(|_| "\"\"".into());
        let mut body = String::with_capacity(data.len() + id.len() + 40);
        body.push_str("{\"data\":");
        body.push_str(data);
        body.push_str(",\"meta\":{\"request_id\":");
        body.push_str(&id);
        body.push_str("}}");
        raw_json(StatusCode::OK, body)
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
        self.respond_from(status, data, report, None)
    }

    /// [`Ctx::respond`] for an answer a deployment gave: `meta.upstream`
    /// and the `X-Maximin-Upstream` header name it (never a key).
    pub fn respond_from<T: Serialize>(
        &self,
        status: StatusCode,
        data: T,
        report: UsageReport,
        deployment: Option<&str>,
    ) -> Response {
        let mut meta = serde_json::Map::new();
        meta.insert("request_id".into(), json!(self.request_id));
        if let Some(d) = deployment {
            meta.insert("upstream".into(), json!(d));
        }
        if let Some(m) = &report.model {
            meta.insert("model".into(), json!(m));
        }
        if let Some(u) = &report.usage {
            meta.insert("usage".into(), json!(u));
        }
        let body = json!({ "data": data, "meta": meta });
        let mut resp = (status, axum::Json(body)).into_response();
        resp.extensions_mut().insert(report);
        if let Some(d) = deployment {
            mark_deployment(&mut resp, d);
        }
        resp
    }
}

/// A JSON reply from text already rendered, metered as an empty report.
pub(crate) fn raw_json(status: StatusCode, body: String) -> Response {
    let mut resp = (status, [(header::CONTENT_TYPE, "application/json")], body).into_response();
    resp.extensions_mut().insert(UsageReport::default());
    resp
}

/// The JSON array `rendered` with `more`'s items after its own.
pub(crate) fn join_arrays<T: Serialize>(rendered: &str, more: &[T]) -> String {
    if more.is_empty() {
        return rendered.to_owned();
    }
    let more = serde_json::to_string(more).unwrap_or_else(|_| "[]".into());
    match (rendered.strip_suffix(']'), more.strip_prefix('[')) {
        (Some(head), Some(tail)) if head != "[" => format!("{head},{tail}"),
        _ => more,
    }
}

/// Whether a `Content-Type` names JSON (`application/json`, `…+json`).
pub(crate) fn is_json(ct: &str) -> bool {
    let ct = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    ct == "application/json" || ct.ends_with("+json")
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
            .is_some_and(is_json);
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

/// A query parameter's rule, checked before the query is read into its
/// type, so that every mistake names the parameter and what it takes.
#[derive(Debug, Clone, Copy)]
pub struct Param {
    pub name: &'static str,
    pub required: bool,
    pub kind: ParamKind,
}

#[derive(Debug, Clone, Copy)]
pub enum ParamKind {
    /// A whole number from `min` to `max`.
    Int { min: i64, max: i64 },
    /// An id: a whole number from 1.
    Id,
    /// Any text.
    Text,
}

impl Param {
    pub const fn int(name: &'static str, min: i64, max: i64) -> Self {
        Param {
            name,
            required: false,
            kind: ParamKind::Int { min, max },
        }
    }

    pub const fn id(name: &'static str) -> Self {
        Param {
            name,
            required: true,
            kind: ParamKind::Id,
        }
    }

    pub const fn text(name: &'static str) -> Self {
        Param {
            name,
            required: false,
            kind: ParamKind::Text,
        }
    }

    pub const fn required(self) -> Self {
        Param {
            required: true,
            ..self
        }
    }

    fn check(&self, value: &str) -> Result<(), Error> {
        let name = self.name;
        let (min, max, takes) = match self.kind {
            ParamKind::Text => return Ok(()),
            ParamKind::Int { min, max } => {
                (min, max, format!("a whole number from {min} to {max}"))
            }
            ParamKind::Id => (1, i64::MAX, "an id: a whole number from 1".to_owned()),
        };
        match value.parse::<i64>() {
            Ok(n) if (min..=max).contains(&n) => Ok(()),
            _ => Err(
                Error::invalid(name, format!("'{name}' must be {takes}, not '{value}'."))
                    .with("minimum", min)
                    .with("maximum", max),
            ),
        }
    }
}

/// The parameters a query type takes ([`ApiQuery`]).
pub trait QueryParams: DeserializeOwned {
    const PARAMS: &'static [Param];
}

/// Query parameters. Unlike `axum::extract::Query`, every mistake is an
/// `invalid_request` naming the parameter (`details.field`) and what it
/// takes (a number's range in the message and `details.minimum`/`maximum`):
/// each is checked against its [`Param`] first. A parameter given twice is
/// refused; ones the type does not know are ignored.
pub struct ApiQuery<T>(pub T);

impl<T: QueryParams, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let bad = |e: &dyn std::fmt::Display| {
            ApiError(Error::invalid(
                "query",
                format!("The query string could not be read: {e}."),
            ))
        };
        let axum::extract::Query(pairs) =
            axum::extract::Query::<Vec<(String, String)>>::try_from_uri(&parts.uri)
                .map_err(|e| bad(&e.body_text()))?;
        for p in T::PARAMS {
            let mut given = pairs.iter().filter(|(k, _)| k == p.name);
            match (given.next(), given.next()) {
                (Some(_), Some(_)) => {
                    return Err(ApiError(Error::invalid(
                        p.name,
                        format!("'{}' is given more than once.", p.name),
                    )))
                }
                (Some((_, v)), None) => p.check(v)?,
                (None, _) if p.required => {
                    return Err(ApiError(Error::invalid(
                        p.name,
                        format!("'{}' is required.", p.name),
                    )))
                }
                (None, _) => {}
            }
        }
        axum::extract::Query::<T>::try_from_uri(&parts.uri)
            .map(|axum::extract::Query(q)| ApiQuery(q))
            .map_err(|e| bad(&e.body_text()))
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

/// Every body is a JSON object: what else it is, in JSON's words, judged by
/// its first character (`None` for an object, or text that is not JSON).
fn not_an_object(bytes: &[u8]) -> Option<&'static str> {
    match bytes.iter().find(|b| !b.is_ascii_whitespace())? {
        b'{' => None,
        b'[' => Some("an array"),
        b'"' => Some("a string"),
        b't' | b'f' => Some("true or false"),
        b'n' => Some("null"),
        b'-' | b'0'..=b'9' => Some("a number"),
        _ => None,
    }
}

pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    let parsed = serde_path_to_error::deserialize(de);
    let syntax_error = matches!(&parsed, Err(e) if e.inner().is_syntax() || e.inner().is_eof());
    if let Some(kind) = not_an_object(bytes).filter(|_| !syntax_error) {
        return Err(ApiError(Error::invalid(
            "body",
            format!("The body must be a JSON object, not {kind}."),
        )));
    }
    parsed.map_err(|e| {
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
            plain_message(&field, strip_location(&inner.to_string()))
        };
        ApiError(Error::invalid(&field, message))
    })
}

/// serde's message about `field` in the API's words: JSON's names for
/// kinds of value and the range a number takes, never a Rust type's name.
fn plain_message(field: &str, msg: &str) -> String {
    let subject = match field {
        "body" => "The body".to_owned(),
        f => format!("'{f}'"),
    };
    if msg.starts_with("missing field `") {
        return format!("{subject} is required.");
    }
    for prefix in ["invalid type: ", "invalid value: ", "unknown variant "] {
        if let Some((got, want)) = msg
            .strip_prefix(prefix)
            .and_then(|rest| rest.split_once(", expected "))
        {
            return format!(
                "{subject} must be {}, not {}.",
                expected(want),
                got_value(got)
            );
        }
    }
    if let Some((n, want)) = msg
        .strip_prefix("invalid length ")
        .and_then(|rest| rest.split_once(", expected "))
    {
        return format!("{subject} must be {}; it has {n} items.", expected(want));
    }
    if let Some((got, want)) = msg
        .strip_prefix("unknown field ")
        .and_then(|rest| rest.split_once(", expected "))
    {
        return format!("{subject} has an unknown field {got}; the fields are {want}.");
    }
    if msg.contains("did not match any variant") {
        return format!("{subject} is not in any of the forms it takes.");
    }
    if names_a_type(msg) {
        return format!("{subject} has a value of the wrong kind.");
    }
    format!("Invalid value for {subject}: {msg}")
}

/// What serde says it expected, as the API describes it.
fn expected(want: &str) -> String {
    let whole = |min: i128, max: i128| format!("a whole number from {min} to {max}");
    match want {
        "a map" | "map" => "a JSON object".into(),
        w if w.starts_with("struct ") => "a JSON object".into(),
        "a sequence" | "sequence" => "a JSON array".into(),
        w if w.starts_with("tuple") => "a JSON array".into(),
        "a string" | "a borrowed string" | "string" | "a character" | "char" => "a string".into(),
        "a boolean" | "bool" => "true or false".into(),
        "u8" => whole(0, u8::MAX.into()),
        "u16" => whole(0, u16::MAX.into()),
        "u32" => whole(0, u32::MAX.into()),
        "u64" | "usize" => whole(0, u64::MAX.into()),
        "i8" => whole(i8::MIN.into(), i8::MAX.into()),
        "i16" => whole(i16::MIN.into(), i16::MAX.into()),
        "i32" => whole(i32::MIN.into(), i32::MAX.into()),
        "i64" | "isize" => whole(i64::MIN.into(), i64::MAX.into()),
        "f32" | "f64" => "a number".into(),
        w if w.contains("enum ") => "one of the values it takes".into(),
        "unit" | "option" => "null".into(),
        w if names_a_type(w) => "a value of another kind".into(),
        w => w.to_owned(),
    }
}

/// serde's description of the value it got, as JSON calls it.
fn got_value(got: &str) -> String {
    let quoted = |s: &str| s.split('`').nth(1).map(str::to_owned);
    match got {
        "sequence" => "an array".into(),
        "map" => "an object".into(),
        "unit" | "null" => "null".into(),
        g if g.starts_with("integer `") || g.starts_with("floating point `") => {
            quoted(g).unwrap_or_else(|| g.to_owned())
        }
        g if g.starts_with("boolean `") => quoted(g).unwrap_or_else(|| g.to_owned()),
        g if g.starts_with("string ") => format!("the string {}", &g["string ".len()..]),
        g => g.to_owned(),
    }
}

/// Whether `text` holds a Rust type's name (a CamelCase word), which a
/// client should never see.
fn names_a_type(text: &str) -> bool {
    text.split(|c: char| !c.is_ascii_alphanumeric()).any(|w| {
        let mut chars = w.chars();
        chars.next().is_some_and(|c| c.is_ascii_uppercase())
            && w.chars().any(|c| c.is_ascii_lowercase())
            && w.chars().skip(1).any(|c| c.is_ascii_uppercase())
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
            if report.usage.is_some() || report.characters > 0 {
                report.count_into(&mut event);
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

#[cfg(test)]
mod tests {
    #[test]
    fn a_rendered_array_takes_more_items() {
        assert_eq!(join_arrays::<u8>("[1,2]", &[]), "[1,2]");
        assert_eq!(join_arrays("[1,2]", &[3, 4]), "[1,2,3,4]");
        assert_eq!(join_arrays("[]", &[3]), "[3]");
        let joined: serde_json::Value =
            serde_json::from_str(&join_arrays(r#"[{"a":"]"}]"#, &["x"])).expect("json");
        assert_eq!(joined, serde_json::json!([{"a": "]"}, "x"]));
    }

    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[expect(dead_code, reason = "only parsed")]
    struct Body {
        model: String,
        n: Option<u32>,
        tags: Option<Vec<String>>,
    }

    fn message(body: &str) -> (String, String) {
        let e = parse_json::<Body>(body.as_bytes()).expect_err("refused").0;
        let field = e.details["field"].as_str().unwrap_or("").to_owned();
        (field, e.message)
    }

    #[test]
    fn body_errors_use_json_words_never_rust_names() {
        for (body, field, want) in [
            (
                "[]",
                "body",
                "The body must be a JSON object, not an array.",
            ),
            (
                "[1, 2]",
                "body",
                "The body must be a JSON object, not an array.",
            ),
            ("5", "body", "The body must be a JSON object, not a number."),
            ("{}", "model", "'model' is required."),
            (
                r#"{"model": 5}"#,
                "model",
                "'model' must be a string, not 5.",
            ),
            (
                r#"{"model": "m", "n": -1}"#,
                "n",
                "'n' must be a whole number from 0 to 4294967295, not -1.",
            ),
            (
                r#"{"model": "m", "tags": "a"}"#,
                "tags",
                "'tags' must be a JSON array, not the string \"a\".",
            ),
            (
                r#"{"model": "m", "tags": [true]}"#,
                "tags[0]",
                "'tags[0]' must be a string, not true.",
            ),
        ] {
            assert_eq!(message(body), (field.to_owned(), want.to_owned()), "{body}");
        }
        let (field, msg) = message("{nope");
        assert_eq!(field, "body");
        assert!(msg.starts_with("The body is not valid JSON"), "{msg}");
        assert!(names_a_type("expected struct ChatCompletionRequest"));
        assert!(!names_a_type("a string or an array of text parts"));
    }
}

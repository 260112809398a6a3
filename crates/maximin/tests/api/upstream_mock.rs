//! Test doubles for the providers maximin forwards to (issue 14): a
//! MiniMax-native server and an OpenAI-compatible one, each listening on
//! `127.0.0.1:0` on a thread and runtime of its own, with faults on demand.
//! They stand for what is outside the product, so they live in tests only.
//!
//! Replies are deterministic so a test can check what went through:
//! - chat: the content is `echo: ` + the last user message's text. With
//!   `tools` and `call_tool` in the last user message, one call to the first
//!   tool with arguments `{"echo": <last user text>}`, finish `tool_calls`.
//!   `prompt_tokens` = whitespace-separated words over all messages' text,
//!   `completion_tokens` = words in the reply (or in the arguments string).
//!   Streams cut the text (or the arguments) every 3 characters, so a
//!   placeholder such as `[EMAIL_1]` spans chunk boundaries.
//! - embeddings: [`vector_for`] each text (8 floats, unit length); tokens are words.
//! - speech: a 440 Hz sine tone of [`tone_ms`] milliseconds, encoded with
//!   `maximin-audio` (mp3, wav, flac, pcm).
//!
//! Routes. OpenAI: `POST /v1/chat/completions`, `POST /v1/embeddings`
//! (`input`), `POST /v1/audio/speech` (24 kHz). MiniMax (spec §1.1, §2, §3.1):
//! `POST /v1/text/chatcompletion_v2`, `POST /v1/embeddings` (`texts`, `type`),
//! `POST /v1/t2a_v2` (hex only). Both: `GET /v1/models` (an OpenAI model
//! list) and `GET /health` (200, no key needed, for active health checks).
//! A request the mock cannot read gets the kind's invalid-parameters error
//! (OpenAI: 400 error object; MiniMax: HTTP 200 with `base_resp` 2013).
//!
//! Order for every request: it is recorded, then [`Behaviour`] applies
//! (`/health` too, but a health check never uses up a `times`), then the key
//! ([`MockUpstream::expect_key`]), then the route.

use std::future::IntoFuture;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::Response;
use axum::Router;
use maximin_audio::{encode_whole, AudioSettings, Encoder, Format, Pcm};
use serde_json::{json, Value};
use tokio::sync::oneshot;

/// Which provider the mock plays.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MockKind {
    /// MiniMax's native API: business errors at HTTP 200 in `base_resp`.
    MiniMax,
    /// An OpenAI-compatible server: HTTP statuses and `{"error": {…}}`.
    OpenAi,
}

/// What the next requests get (set with [`MockUpstream::behave`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Behaviour {
    /// The deterministic replies described in the module docs.
    Normal,
    /// Answer HTTP `status` (429, 500, 503 …) in the kind's error shape
    /// (MiniMax: `base_resp` with the matching code, e.g. 429 → 1002), with
    /// `Retry-After: <secs>` when given, for the next `times` requests; then Normal.
    Fail {
        status: u16,
        retry_after: Option<u64>,
        times: usize,
    },
    /// A provider error code for the next `times` requests, then Normal.
    /// MiniMax: HTTP 200 with `base_resp.status_code = code` (the way MiniMax
    /// reports rate limits (1002), a bad key (1004), no balance (1008), bad
    /// parameters (2013)), also for `stream: true`. OpenAI: the status an
    /// OpenAI-compatible server gives for it (1002/1039 → 429
    /// `rate_limit_exceeded`, 1008 → 429 `insufficient_quota`, 1004/2049 →
    /// 401, 2013/1026/1027 → 400, 1001 → 504, others → 500).
    Code { code: i64, times: usize },
    /// Accept the connection, read the request and never answer.
    Hang,
    /// Streamed replies: the first `chunks` events of the normal stream (never
    /// its last, nor `[DONE]`), then the connection is cut. A reply that is not
    /// streamed gets half its body (under a `Content-Length` for the whole),
    /// then the cut. Until changed.
    DieMidStream { chunks: usize },
}

/// One request as the mock received it.
#[derive(Clone, Debug)]
pub struct Received {
    pub method: String,
    pub path: String,
    /// The query string without `?`, if any.
    pub query: Option<String>,
    /// Lower-cased names, in arrival order.
    pub headers: Vec<(String, String)>,
    /// The body as JSON; `Value::Null` when empty or not JSON.
    pub body: Value,
    /// When it arrived (for checking back-off between tries).
    pub at: Instant,
}

impl Received {
    /// The first value of a header (`name` in lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

struct Shared {
    kind: MockKind,
    behaviour: Mutex<Behaviour>,
    key: Mutex<Option<String>>,
    received: Mutex<Vec<Received>>,
    seq: AtomicU64,
}

/// A running mock upstream. Dropping it stops it too (without waiting).
pub struct MockUpstream {
    /// `http://127.0.0.1:PORT`, no trailing slash.
    pub url: String,
    pub kind: MockKind,
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    stopped: Option<oneshot::Receiver<()>>,
}

impl MockUpstream {
    /// Starts a mock on `127.0.0.1:0`; it accepts connections on return.
    pub async fn start(kind: MockKind) -> MockUpstream {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("mock bind");
        listener.set_nonblocking(true).expect("mock nonblocking");
        let addr = listener.local_addr().expect("mock addr");
        let shared = Arc::new(Shared {
            kind,
            behaviour: Mutex::new(Behaviour::Normal),
            key: Mutex::new(None),
            received: Mutex::new(Vec::new()),
            seq: AtomicU64::new(0),
        });
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let (stop, stop_rx) = oneshot::channel::<()>();
        let (stopped_tx, stopped) = oneshot::channel::<()>();
        std::thread::Builder::new()
            .name(format!("mock-upstream-{}", addr.port()))
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("mock runtime");
                rt.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                    tokio::select! {
                        _ = axum::serve(listener, app).into_future() => {}
                        _ = stop_rx => {}
                    }
                });
                // Dropping the runtime drops every connection task: open
                // connections are cut, hanging requests never answer.
                drop(rt);
                let _ = stopped_tx.send(());
            })
            .expect("mock thread");
        MockUpstream {
            url: format!("http://{addr}"),
            kind,
            shared,
            stop: Some(stop),
            stopped: Some(stopped),
        }
    }

    /// Every request so far, in arrival order (health checks included).
    pub fn received(&self) -> Vec<Received> {
        self.shared.received.lock().expect("mock state").clone()
    }

    /// How many requests arrived, not counting `GET /health`.
    pub fn hits(&self) -> usize {
        self.count(|r| !(r.method == "GET" && r.path == "/health"))
    }

    /// How many requests arrived on `path` (any method).
    pub fn hits_on(&self, path: &str) -> usize {
        self.count(|r| r.path == path)
    }

    fn count(&self, f: impl Fn(&Received) -> bool) -> usize {
        let received = self.shared.received.lock().expect("mock state");
        received.iter().filter(|r| f(r)).count()
    }

    /// What the next requests get.
    pub fn behave(&self, b: Behaviour) {
        *self.shared.behaviour.lock().expect("mock state") = b;
    }

    /// From now on a request without `Authorization: Bearer <key>` gets the
    /// kind's auth error: MiniMax HTTP 200 + `base_resp` 1004, OpenAI 401
    /// `invalid_api_key`. `GET /health` needs no key.
    pub fn expect_key(&self, key: &str) {
        *self.shared.key.lock().expect("mock state") = Some(key.to_owned());
    }

    /// Stops listening (new connections are refused) and cuts open ones: an
    /// upstream that dies.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(stopped) = self.stopped.take() {
            let _ = stopped.await;
        }
    }
}

impl Drop for MockUpstream {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// The deterministic embedding of `text`: 8 floats from an FNV-1a hash of
/// its bytes drawn through SplitMix64, scaled to unit length.
pub fn vector_for(text: &str) -> Vec<f32> {
    let mut state = text.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    let raw: Vec<f64> = (0..8)
        .map(|_| {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 31;
            (z >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
        })
        .collect();
    let norm = raw.iter().map(|x| x * x).sum::<f64>().sqrt().max(1e-12);
    raw.iter().map(|x| (x / norm) as f32).collect()
}

/// Milliseconds of tone the speech routes make for `text`: 60 per
/// character, at least 300 and at most 3000.
pub fn tone_ms(text: &str) -> u64 {
    (text.chars().count() as u64 * 60).clamp(300, 3000)
}

/// Whitespace-separated words, the mock's token count.
pub fn words(s: &str) -> usize {
    s.split_whitespace().count()
}

const CREATED: i64 = 1_700_000_000;

/// A reply before faults are applied to its body.
enum Reply {
    Json(StatusCode, Value),
    /// SSE `data:` payloads, in order.
    Sse(Vec<String>),
    Bytes(&'static str, Vec<u8>),
}

async fn handle(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, 64 << 20)
        .await
        .unwrap_or_default();
    let path = parts.uri.path().to_owned();
    let health = parts.method == Method::GET && path == "/health";
    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    shared.received.lock().expect("mock state").push(Received {
        method: parts.method.to_string(),
        path: path.clone(),
        query: parts.uri.query().map(str::to_owned),
        headers: parts
            .headers
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_ascii_lowercase(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: body.clone(),
        at: Instant::now(),
    });

    let kind = shared.kind;
    let mut die = None;
    let now = {
        let mut b = shared.behaviour.lock().expect("mock state");
        let now = b.clone();
        match &mut *b {
            Behaviour::Fail { times, .. } | Behaviour::Code { times, .. } if !health => {
                *times = times.saturating_sub(1);
                if *times == 0 {
                    *b = Behaviour::Normal;
                }
            }
            _ => {}
        }
        now
    };
    match now {
        Behaviour::Normal => {}
        Behaviour::Fail { times: 0, .. } | Behaviour::Code { times: 0, .. } => {}
        Behaviour::Fail {
            status,
            retry_after,
            ..
        } => return fail(kind, status, retry_after),
        Behaviour::Code { code, .. } => return error_code(kind, code),
        Behaviour::Hang => return std::future::pending().await,
        Behaviour::DieMidStream { chunks } => die = Some(chunks),
    }
    if health {
        return render(Reply::Json(StatusCode::OK, json!({"status": "ok"})), die);
    }

    // Download URLs stand for the provider's storage: no key there.
    let expected = shared
        .key
        .lock()
        .expect("mock state")
        .clone()
        .filter(|_| !path.starts_with("/download/"));
    if let Some(key) = expected {
        let given = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer ").or(v.strip_prefix("bearer ")));
        if given != Some(key.as_str()) {
            return match kind {
                MockKind::MiniMax => error_code(kind, 1004),
                MockKind::OpenAi => json_response(
                    StatusCode::UNAUTHORIZED,
                    openai_error(401, "Incorrect API key provided.", None),
                ),
            };
        }
    }

    let post = parts.method == Method::POST;
    let reply = match (kind, post, path.as_str()) {
        (MockKind::OpenAi, true, "/v1/chat/completions")
        | (MockKind::MiniMax, true, "/v1/text/chatcompletion_v2") => chat(&shared, &body),
        (_, true, "/v1/embeddings") => embeddings(kind, &body),
        (MockKind::OpenAi, true, "/v1/audio/speech") => openai_speech(&body),
        (MockKind::MiniMax, true, "/v1/t2a_v2") => t2a(&shared, &body),
        (MockKind::MiniMax, true, "/v1/image_generation") => image_generation(&body),
        (MockKind::MiniMax, true, "/v1/video_generation") => video_generation(&shared, &body),
        (MockKind::MiniMax, false, "/v1/query/video_generation") => {
            video_query(parts.uri.query().unwrap_or(""))
        }
        (MockKind::MiniMax, false, "/v1/files/retrieve") => {
            let host = parts
                .headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .unwrap_or("127.0.0.1");
            file_retrieve(host, parts.uri.query().unwrap_or(""))
        }
        (MockKind::MiniMax, false, p) if p.starts_with("/download/") => {
            Reply::Bytes("video/mp4", mock_video())
        }
        (MockKind::MiniMax, true, "/v1/music_generation") => music_generation(&body),
        (_, false, "/v1/models") if parts.method == Method::GET => Reply::Json(
            StatusCode::OK,
            json!({"object": "list", "data": [
                {"id": "mock-chat", "object": "model", "created": CREATED, "owned_by": "mock"},
                {"id": "mock-embed", "object": "model", "created": CREATED, "owned_by": "mock"},
                {"id": "mock-speech", "object": "model", "created": CREATED, "owned_by": "mock"},
            ]}),
        ),
        _ => Reply::Json(
            StatusCode::NOT_FOUND,
            match kind {
                MockKind::OpenAi => openai_error(
                    404,
                    &format!("Unknown request URL: {} {path}", parts.method),
                    None,
                ),
                MockKind::MiniMax => base_resp(1000, "404 page not found"),
            },
        ),
    };
    render(reply, die)
}

// ---------------------------------------------------------------- errors

fn base_resp(code: i64, msg: &str) -> Value {
    json!({"base_resp": {"status_code": code, "status_msg": msg}})
}

fn native_message(code: i64) -> &'static str {
    match code {
        1000 => "unknown error",
        1001 => "request timeout",
        1002 => "rate limit exceeded(RPM)",
        1004 => "login fail: Please carry the API secret key in the 'Authorization' field of the request header",
        1008 => "insufficient balance",
        1013 => "internal service error",
        1039 => "rate limit exceeded(TPM)",
        2013 => "invalid params",
        2049 => "invalid api key",
        _ => "error",
    }
}

fn openai_error(status: u16, message: &str, param: Option<&str>) -> Value {
    let (kind, code) = match status {
        401 => ("invalid_request_error", Some("invalid_api_key")),
        404 => ("invalid_request_error", Some("unknown_url")),
        429 => ("requests", Some("rate_limit_exceeded")),
        500..=599 => ("server_error", None),
        _ => ("invalid_request_error", None),
    };
    json!({"error": {"message": message, "type": kind, "param": param, "code": code}})
}

fn status_of(status: u16) -> StatusCode {
    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

fn fail(kind: MockKind, status: u16, retry_after: Option<u64>) -> Response {
    let body = match kind {
        MockKind::OpenAi => {
            openai_error(status, &format!("mock upstream failure ({status})"), None)
        }
        MockKind::MiniMax => {
            let code = match status {
                400 => 2013,
                401 | 403 => 1004,
                402 => 1008,
                408 | 504 => 1001,
                429 => 1002,
                _ => 1000,
            };
            base_resp(code, native_message(code))
        }
    };
    let mut resp = json_response(status_of(status), body);
    if let Some(secs) = retry_after {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    resp
}

fn error_code(kind: MockKind, code: i64) -> Response {
    let message = format!("{} ({code})", native_message(code));
    match kind {
        MockKind::MiniMax => json_response(StatusCode::OK, base_resp(code, native_message(code))),
        MockKind::OpenAi => {
            let (status, body) = match code {
                1002 | 1039 | 1041 | 2045 => (429, openai_error(429, &message, None)),
                1008 => (
                    429,
                    json!({"error": {"message": message, "type": "insufficient_quota", "param": null, "code": "insufficient_quota"}}),
                ),
                1004 | 2049 => (401, openai_error(401, &message, None)),
                1026 | 1027 | 2013 => (400, openai_error(400, &message, None)),
                1001 => (504, openai_error(504, &message, None)),
                _ => (500, openai_error(500, &message, None)),
            };
            json_response(status_of(status), body)
        }
    }
}

/// The kind's invalid-parameters reply.
fn invalid(kind: MockKind, param: &str, message: &str) -> Reply {
    match kind {
        MockKind::OpenAi => Reply::Json(
            StatusCode::BAD_REQUEST,
            openai_error(400, message, Some(param)),
        ),
        MockKind::MiniMax => Reply::Json(
            StatusCode::OK,
            base_resp(2013, &format!("invalid params, {message}")),
        ),
    }
}

// ---------------------------------------------------------------- rendering

fn json_response(status: StatusCode, body: Value) -> Response {
    let mut resp = Response::new(Body::from(body.to_string()));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// Pieces sent one by one (a millisecond apart, so a client reads them
/// separately); with `die`, the connection is cut after the last.
fn pieces_body(pieces: Vec<Bytes>, die: bool) -> Body {
    let stream = futures::stream::unfold(
        (pieces.into_iter(), false),
        move |(mut it, ended)| async move {
            if ended {
                return None;
            }
            match it.next() {
                Some(piece) => {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    Some((Ok(piece), (it, false)))
                }
                None if die => {
                    // Let hyper flush what was sent before the cut.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    Some((
                        Err(std::io::Error::other("mock upstream died mid-stream")),
                        (it, true),
                    ))
                }
                None => None,
            }
        },
    );
    Body::from_stream(stream)
}

fn render(reply: Reply, die: Option<usize>) -> Response {
    let (status, content_type, bytes) = match reply {
        Reply::Sse(events) => {
            let keep = die.map_or(events.len(), |n| n.min(events.len().saturating_sub(1)));
            let pieces = events
                .into_iter()
                .take(keep)
                .map(|e| Bytes::from(format!("data: {e}\n\n")))
                .collect();
            let mut resp = Response::new(pieces_body(pieces, die.is_some()));
            let h = resp.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/event-stream"),
            );
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            return resp;
        }
        Reply::Json(status, v) => (status, "application/json", v.to_string().into_bytes()),
        Reply::Bytes(ct, b) => (StatusCode::OK, ct, b),
    };
    let len = bytes.len();
    let body = match die {
        None => Body::from(bytes),
        Some(_) => {
            let half = Bytes::from(bytes).slice(..len / 2);
            pieces_body(vec![half], true)
        }
    };
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    resp
}

// ---------------------------------------------------------------- chat

/// A message's text: a string, or the `text` of its text parts joined by newlines.
fn text_of(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

/// `s` cut every 3 characters.
fn pieces_of(s: &str) -> Vec<String> {
    let chars: Vec<char> = s.chars().collect();
    chars.chunks(3).map(|c| c.iter().collect()).collect()
}

fn chat(shared: &Shared, body: &Value) -> Reply {
    let kind = shared.kind;
    let Some(model) = body.get("model").and_then(Value::as_str) else {
        return invalid(kind, "model", "'model' is required.");
    };
    let messages = match body.get("messages").and_then(Value::as_array) {
        Some(m) if !m.is_empty() => m,
        _ => return invalid(kind, "messages", "'messages' must be a non-empty array."),
    };
    let last_user = messages
        .iter()
        .rev()
        .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
        .map(|m| text_of(&m["content"]))
        .unwrap_or_default();
    let prompt_tokens: usize = messages
        .iter()
        .map(|m| words(&text_of(&m["content"])))
        .sum();
    let tool = body
        .get("tools")
        .and_then(Value::as_array)
        .and_then(|t| t.first())
        .and_then(|t| t["function"]["name"].as_str())
        .filter(|_| last_user.contains("call_tool"));
    let seq = shared.seq.fetch_add(1, Ordering::Relaxed) + 1;
    let id = format!("chatcmpl-mock-{seq}");
    let (content, call) = match tool {
        Some(name) => {
            let call_id = match kind {
                MockKind::OpenAi => format!("call_mock_{seq}"),
                MockKind::MiniMax => format!("call_function_{}_1", 1_000_000_000 + seq),
            };
            let arguments = json!({"echo": last_user}).to_string();
            (None, Some((call_id, name.to_owned(), arguments)))
        }
        None => (Some(format!("echo: {last_user}")), None),
    };
    let reply_text = content
        .clone()
        .unwrap_or_else(|| call.as_ref().map(|c| c.2.clone()).unwrap_or_default());
    let completion_tokens = words(&reply_text);
    let finish = if call.is_some() { "tool_calls" } else { "stop" };
    let usage = json!({
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    });
    let full_call = |c: &(String, String, String)| json!({"id": c.0, "type": "function", "index": 0, "function": {"name": c.1, "arguments": c.2}});
    let stream = body.get("stream").and_then(Value::as_bool).unwrap_or(false);
    match kind {
        MockKind::OpenAi => {
            let mut message = json!({"role": "assistant", "content": content});
            if let Some(c) = &call {
                message["tool_calls"] = json!([full_call(c)]);
            }
            if !stream {
                return Reply::Json(
                    StatusCode::OK,
                    json!({
                        "id": id, "object": "chat.completion", "created": CREATED, "model": model,
                        "choices": [{"index": 0, "message": message, "logprobs": null, "finish_reason": finish}],
                        "usage": usage,
                    }),
                );
            }
            let include_usage = body["stream_options"]["include_usage"].as_bool() == Some(true);
            let chunk = |delta: Value, finish: Option<&str>| {
                let mut c = json!({
                    "id": id, "object": "chat.completion.chunk", "created": CREATED, "model": model,
                    "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
                });
                if include_usage {
                    c["usage"] = Value::Null;
                }
                c.to_string()
            };
            let mut events = Vec::new();
            match &call {
                None => {
                    events.push(chunk(json!({"role": "assistant", "content": ""}), None));
                    for p in pieces_of(&reply_text) {
                        events.push(chunk(json!({"content": p}), None));
                    }
                }
                Some((call_id, name, arguments)) => {
                    events.push(chunk(
                        json!({"role": "assistant", "content": null, "tool_calls": [
                            {"index": 0, "id": call_id, "type": "function", "function": {"name": name, "arguments": ""}}
                        ]}),
                        None,
                    ));
                    for p in pieces_of(arguments) {
                        events.push(chunk(
                            json!({"tool_calls": [{"index": 0, "function": {"arguments": p}}]}),
                            None,
                        ));
                    }
                }
            }
            events.push(chunk(json!({}), Some(finish)));
            if include_usage {
                events.push(
                    json!({
                        "id": id, "object": "chat.completion.chunk", "created": CREATED, "model": model,
                        "choices": [], "usage": usage,
                    })
                    .to_string(),
                );
            }
            events.push("[DONE]".to_owned());
            Reply::Sse(events)
        }
        MockKind::MiniMax => {
            let sensitive = |mut v: Value| {
                v["input_sensitive"] = json!(false);
                v["output_sensitive"] = json!(false);
                v["input_sensitive_type"] = json!(0);
                v["output_sensitive_type"] = json!(0);
                v["output_sensitive_int"] = json!(0);
                v
            };
            let mut message = json!({
                "role": "assistant",
                "content": content.clone().unwrap_or_default(),
                "name": "MiniMax AI",
                "audio_content": "",
            });
            if let Some(c) = &call {
                message["tool_calls"] = json!([full_call(c)]);
            }
            let mut native_usage = usage.clone();
            native_usage["total_characters"] = json!(0);
            let whole = |status_msg: &str| {
                sensitive(json!({
                    "id": id, "object": "chat.completion", "created": CREATED, "model": model,
                    "choices": [{"finish_reason": finish, "index": 0, "message": message}],
                    "usage": native_usage,
                    "base_resp": {"status_code": 0, "status_msg": status_msg},
                }))
            };
            if !stream {
                return Reply::Json(StatusCode::OK, whole(""));
            }
            let chunk = |delta: Value, finish: Option<&str>| {
                sensitive(json!({
                    "id": id, "object": "chat.completion.chunk", "created": CREATED, "model": model,
                    "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
                }))
                .to_string()
            };
            let mut events: Vec<String> = content
                .as_deref()
                .map(pieces_of)
                .unwrap_or_default()
                .into_iter()
                .map(|p| chunk(json!({"role": "assistant", "content": p}), None))
                .collect();
            let mut last = json!({"role": "assistant", "content": ""});
            if let Some(c) = &call {
                last["tool_calls"] = json!([full_call(c)]);
            }
            events.push(chunk(last, Some(finish)));
            events.push(whole("success").to_string());
            events.push("[DONE]".to_owned());
            Reply::Sse(events)
        }
    }
}

// ---------------------------------------------------------------- embeddings

/// Standard base64 (with padding), for `encoding_format: "base64"`.
fn base64(bytes: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for c in bytes.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(c.get(1).copied().unwrap_or(0)) << 8)
            | u32::from(c.get(2).copied().unwrap_or(0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(char::from(T[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn strings(v: &Value) -> Option<Vec<String>> {
    match v {
        Value::String(s) => Some(vec![s.clone()]),
        Value::Array(a) if !a.is_empty() => {
            a.iter().map(|s| s.as_str().map(str::to_owned)).collect()
        }
        _ => None,
    }
}

fn embeddings(kind: MockKind, body: &Value) -> Reply {
    let Some(model) = body.get("model").and_then(Value::as_str) else {
        return invalid(kind, "model", "'model' is required.");
    };
    match kind {
        MockKind::OpenAi => {
            let Some(inputs) = body.get("input").and_then(strings) else {
                return invalid(
                    kind,
                    "input",
                    "'input' must be a string or a non-empty array of strings.",
                );
            };
            let base64_out = body["encoding_format"].as_str() == Some("base64");
            let data: Vec<Value> = inputs
                .iter()
                .enumerate()
                .map(|(i, text)| {
                    let v = vector_for(text);
                    let embedding = if base64_out {
                        let raw: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                        json!(base64(&raw))
                    } else {
                        json!(v)
                    };
                    json!({"object": "embedding", "index": i, "embedding": embedding})
                })
                .collect();
            let tokens: usize = inputs.iter().map(|t| words(t)).sum();
            Reply::Json(
                StatusCode::OK,
                json!({"object": "list", "data": data, "model": model,
                       "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}),
            )
        }
        MockKind::MiniMax => {
            let Some(texts) = body.get("texts").filter(|t| t.is_array()).and_then(strings) else {
                return invalid(
                    kind,
                    "texts",
                    "'texts' must be a non-empty array of strings.",
                );
            };
            if !matches!(body["type"].as_str(), Some("db" | "query")) {
                return invalid(kind, "type", "'type' must be db or query.");
            }
            let vectors: Vec<Vec<f32>> = texts.iter().map(|t| vector_for(t)).collect();
            let tokens: usize = texts.iter().map(|t| words(t)).sum();
            Reply::Json(
                StatusCode::OK,
                json!({"vectors": vectors, "total_tokens": tokens,
                       "base_resp": {"status_code": 0, "status_msg": "success"}}),
            )
        }
    }
}

// ---------------------------------------------------------------- speech

fn tone(text: &str, rate: u32) -> Vec<f32> {
    let n = (u64::from(rate) * tone_ms(text) / 1000) as usize;
    (0..n)
        .map(|i| 0.3 * (std::f32::consts::TAU * 440.0 * i as f32 / rate as f32).sin())
        .collect()
}

fn openai_speech(body: &Value) -> Reply {
    let kind = MockKind::OpenAi;
    if body.get("model").and_then(Value::as_str).is_none() {
        return invalid(kind, "model", "'model' is required.");
    }
    let Some(input) = body
        .get("input")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
    else {
        return invalid(kind, "input", "'input' is required.");
    };
    if body.get("voice").is_none_or(Value::is_null) {
        return invalid(kind, "voice", "'voice' is required.");
    }
    let (format, content_type) = match body["response_format"].as_str().unwrap_or("mp3") {
        "mp3" => (Format::Mp3, "audio/mpeg"),
        "wav" => (Format::Wav, "audio/wav"),
        "flac" => (Format::Flac, "audio/flac"),
        "pcm" => (Format::Pcm, "audio/pcm"),
        other => {
            return invalid(
                kind,
                "response_format",
                &format!("the mock encodes mp3, wav, flac or pcm, not {other:?}."),
            )
        }
    };
    let settings = AudioSettings {
        format,
        sample_rate: 24000,
        bitrate: 64000,
        channels: 1,
    };
    let audio =
        encode_whole(&settings, &Pcm::mono(tone(input, 24000), 24000)).expect("mock encode");
    Reply::Bytes(content_type, audio)
}

/// The mock's images: solid PNGs of the asked size, the colour from the seed.
fn image_generation(body: &Value) -> Reply {
    let kind = MockKind::MiniMax;
    if body.get("prompt").and_then(Value::as_str).is_none() {
        return invalid(kind, "prompt", "prompt is required");
    }
    let (w, h) = (
        body["width"].as_u64().unwrap_or(64) as u32,
        body["height"].as_u64().unwrap_or(64) as u32,
    );
    let seed = body["seed"].as_u64().unwrap_or(0);
    let n = body["n"].as_u64().unwrap_or(1);
    let images: Vec<String> = (0..n)
        .map(|i| {
            let c = ((seed + i) % 255) as u8;
            let mut out = Vec::new();
            {
                let mut e = png::Encoder::new(&mut out, w, h);
                e.set_color(png::ColorType::Rgb);
                e.set_depth(png::BitDepth::Eight);
                let mut wr = e.write_header().expect("png header");
                let px: Vec<u8> = (0..w * h).flat_map(|_| [c, 255 - c, 128]).collect();
                wr.write_image_data(&px).expect("png data");
            }
            base64::Engine::encode(&base64::engine::general_purpose::STANDARD, out)
        })
        .collect();
    Reply::Json(
        StatusCode::OK,
        json!({"id": "mock", "data": {"image_urls": null, "image_base64": images},
               "metadata": {"success_count": n, "failed_count": 0}, "base_resp": base_resp_ok()}),
    )
}

fn base_resp_ok() -> Value {
    json!({"status_code": 0, "status_msg": "success"})
}

/// A video task: its id carries the size asked, so the query can say it.
fn video_generation(shared: &Shared, body: &Value) -> Reply {
    let n = shared.seq.fetch_add(1, Ordering::Relaxed);
    let res = body["resolution"].as_str().unwrap_or("768P");
    Reply::Json(
        StatusCode::OK,
        json!({"task_id": format!("{}{n}", res.trim_end_matches('P')), "base_resp": base_resp_ok()}),
    )
}

fn video_query(query: &str) -> Reply {
    let id = query.strip_prefix("task_id=").unwrap_or("");
    Reply::Json(
        StatusCode::OK,
        json!({"task_id": id, "status": "Success", "file_id": format!("9{id}"),
               "video_width": 64, "video_height": 48, "base_resp": base_resp_ok()}),
    )
}

fn file_retrieve(host: &str, query: &str) -> Reply {
    let id = query.strip_prefix("file_id=").unwrap_or("");
    Reply::Json(
        StatusCode::OK,
        json!({"file": {"file_id": id, "bytes": 0, "created_at": CREATED, "filename": "output_aigc.mp4",
                        "purpose": "video_generation", "download_url": format!("http://{host}/download/{id}")},
               "base_resp": base_resp_ok()}),
    )
}

/// Two seconds of a 64×48 clip.
fn mock_video() -> Vec<u8> {
    maximin_video::sandbox_clip(64, 48, 2, 24, 1).expect("mock clip")
}

/// Music: a tone of one second per lyric line, hex, with `extra_info`.
fn music_generation(body: &Value) -> Reply {
    let lines = body["lyrics"]
        .as_str()
        .map_or(4, |l| l.lines().count().max(1));
    let rate = body["audio_setting"]["sample_rate"]
        .as_u64()
        .unwrap_or(44_100) as u32;
    let samples: Vec<f32> = (0..rate as usize * lines)
        .map(|i| 0.3 * (i as f32 * 440.0 * std::f32::consts::TAU / rate as f32).sin())
        .collect();
    let settings = AudioSettings {
        format: Format::Mp3,
        sample_rate: rate,
        bitrate: 128_000,
        channels: 1,
    };
    let mp3 = encode_whole(&settings, &Pcm::new(samples, rate, 1)).expect("mp3");
    Reply::Json(
        StatusCode::OK,
        json!({"data": {"audio": hex::encode(&mp3), "status": 2}, "trace_id": "mock",
               "extra_info": {"music_duration": lines * 1000, "music_sample_rate": rate, "music_channel": 1,
                              "bitrate": 128_000, "music_size": mp3.len()},
               "base_resp": base_resp_ok()}),
    )
}

fn t2a(shared: &Shared, body: &Value) -> Reply {
    let kind = MockKind::MiniMax;
    if body.get("model").and_then(Value::as_str).is_none() {
        return invalid(kind, "model", "model is required");
    }
    let Some(text) = body
        .get("text")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
    else {
        return invalid(kind, "text", "text is required");
    };
    let voice = body["voice_setting"]["voice_id"]
        .as_str()
        .is_some_and(|v| !v.is_empty());
    let mixed = body
        .get("timbre_weights")
        .or(body.get("timber_weights"))
        .is_some_and(Value::is_array);
    if !voice && !mixed {
        return invalid(kind, "voice_setting", "voice_setting.voice_id is required");
    }
    if body["output_format"].as_str().is_some_and(|f| f != "hex") {
        return invalid(kind, "output_format", "the mock answers hex only");
    }
    let a = &body["audio_setting"];
    let format = match a["format"].as_str().unwrap_or("mp3").parse::<Format>() {
        Ok(f) => f,
        Err(e) => return invalid(kind, "audio_setting.format", &e.to_string()),
    };
    let settings = AudioSettings {
        format,
        sample_rate: a["sample_rate"].as_u64().map_or(32000, |r| r as u32),
        bitrate: a["bitrate"].as_u64().map_or(128000, |r| r as u32),
        channels: a["channel"].as_u64().map_or(1, |c| c as u16),
    };
    if let Err(e) = settings.validate() {
        return invalid(kind, "audio_setting", &e.to_string());
    }
    let rate = settings.sample_rate;
    let samples = tone(text, rate);
    let seq = shared.seq.fetch_add(1, Ordering::Relaxed) + 1;
    let trace_id = format!("{seq:032x}");
    let stream = body["stream"].as_bool() == Some(true);
    let chunks: Vec<Vec<u8>> = if stream {
        // Pushed 100 ms at a time, as a streaming synthesiser would.
        let mut enc = Encoder::new(settings, rate).expect("mock encoder");
        let mut chunks: Vec<Vec<u8>> = samples
            .chunks((rate / 10) as usize)
            .map(|piece| enc.push(piece).expect("mock encode"))
            .filter(|c| !c.is_empty())
            .collect();
        let tail = enc.finish().expect("mock encode");
        if !tail.is_empty() {
            chunks.push(tail);
        }
        chunks
    } else {
        vec![encode_whole(&settings, &Pcm::mono(samples.clone(), rate)).expect("mock encode")]
    };
    let audio: Vec<u8> = chunks.concat();
    let extra_info = json!({
        "audio_length": samples.len() as u64 * 1000 / u64::from(rate),
        "audio_sample_rate": rate,
        "audio_size": audio.len(),
        "bitrate": settings.effective_bitrate(),
        "word_count": words(text),
        "invisible_character_ratio": 0,
        "usage_characters": text.chars().count(),
        "audio_format": format.as_str(),
        "audio_channel": settings.channels,
    });
    if !stream {
        return Reply::Json(
            StatusCode::OK,
            json!({
                "data": {"audio": hex::encode(&audio), "status": 2},
                "extra_info": extra_info,
                "trace_id": trace_id,
                "base_resp": {"status_code": 0, "status_msg": "success"},
            }),
        );
    }
    let aggregate = body["stream_options"]["exclude_aggregated_audio"].as_bool() != Some(true);
    let mut events: Vec<String> = chunks
        .iter()
        .map(|c| {
            json!({
                "data": {"audio": hex::encode(c), "status": 1},
                "trace_id": trace_id,
                "base_resp": {"status_code": 0, "status_msg": ""},
            })
            .to_string()
        })
        .collect();
    events.push(
        json!({
            "data": {"audio": if aggregate { hex::encode(&audio) } else { String::new() }, "status": 2},
            "extra_info": extra_info,
            "trace_id": trace_id,
            "base_resp": {"status_code": 0, "status_msg": "success"},
        })
        .to_string(),
    );
    Reply::Sse(events)
}

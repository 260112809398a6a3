//! `GET /ws/v1/t2a_v2`: MiniMax's WebSocket text to speech (spec §3.2).
//!
//! The server greets with `connected_success`; the client sends `task_start`
//! (model, voice and audio settings: everything of `POST /v1/t2a_v2` but the
//! text), gets `task_started`, then sends any number of `task_continue` with
//! text; each is synthesised sentence by sentence and sent back as
//! `task_continued` events of hex audio, the last one with `is_final: true`
//! and that text's `extra_info`. `task_finish` ends the task
//! (`task_finished`) and the connection. A fatal error is `task_failed` with
//! its `base_resp`, then the server closes with a WebSocket close code that
//! says why (1009 too big, 1002 broken protocol, 1008 refused, 1013 rate
//! limited, 1011 server error).
//!
//! Each task message is checked like a request of its own (see
//! [`Units`]): the key is read again under the current auth epoch, so a
//! revoked key's session ends at its next message (native 1004), and each
//! `task_continue` is one request for the rate limits shared with HTTP
//! (native 1002 past them) and one usage event with its characters. The
//! connection itself is the upgrade request, counted and metered once.

use std::time::{Duration, Instant};

use axum::extract::ws::{close_code, CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::response::Response;
use axum::Extension;
use maximin_core::Error;
use maximin_speech::{check_text, Plan, Synth, MAX_T2A_CHARS};
use maximin_types::speech::{BaseResp, T2aRequest};
use maximin_types::ErrorCode;
use serde_json::{json, Value};

use crate::ctx::{Ctx, StreamMeter, UsageReport};
use crate::error::native_base_resp;
use crate::pipeline::Units;
use crate::AppState;

/// A connection with no message from the client for this long is closed
/// (code 2201).
pub const IDLE: Duration = Duration::from_secs(120);

/// The largest message (and frame) a client may send: a `task_continue`'s
/// 10,000 characters fit even written as JSON escapes. A larger one fails
/// the task (`payload_too_large`) and closes the connection with 1009.
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024;

const IDLE_TIMEOUT: i64 = 2201;
const ILLEGAL_EVENT: i64 = 2202;
const EMPTY_TEXT: i64 = 2203;
const TEXT_TOO_LONG: i64 = 2204;

/// How units of work of this route appear in usage and logs (`method`).
const UNIT: &str = "WS";

/// How long the server waits for the client's close frame after its own.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

#[utoipa::path(get, path = "/ws/v1/t2a_v2", tag = "speech", security(("bearer" = [])),
    responses((status = 101, description = "WebSocket: `connected_success`, then `task_start` → `task_started`, `task_continue` → `task_continued` (hex audio; `is_final` on a text's last chunk), `task_finish` → `task_finished`; `task_failed` on a fatal error"),
              (status = 400, description = "`invalid_request`: not a WebSocket upgrade request")))]
pub async fn t2a_ws(
    State(app): State<AppState>,
    ctx: Ctx,
    Extension(units): Extension<Units>,
    ws: WebSocketUpgrade,
) -> Response {
    let meter = StreamMeter::new();
    let session_meter = meter.clone();
    let mut resp = ws
        .max_message_size(MAX_MESSAGE_BYTES)
        .max_frame_size(MAX_MESSAGE_BYTES)
        .on_upgrade(move |socket| async move {
            Session {
                app,
                ctx,
                units,
                socket,
                meter: session_meter,
                session_id: maximin_core::secrets::new_id("session"),
                model: None,
            }
            .run()
            .await;
        });
    resp.extensions_mut().insert(meter);
    resp
}

struct Session {
    app: AppState,
    ctx: Ctx,
    /// Admission and metering of each task message.
    units: Units,
    socket: WebSocket,
    meter: std::sync::Arc<StreamMeter>,
    session_id: String,
    model: Option<String>,
}

/// The `base_resp` of success.
fn ok() -> Value {
    serde_json::to_value(BaseResp::success()).unwrap_or(Value::Null)
}

/// What to do after a client message.
enum Next {
    Continue,
    /// Close the connection with this code and reason.
    Close(u16, String),
    /// The client closed or went away: nothing more to say.
    Gone,
}

/// The WebSocket close code for an error that fails the task.
fn close_code_of(code: ErrorCode) -> u16 {
    match code {
        ErrorCode::PayloadTooLarge => close_code::SIZE,
        ErrorCode::RateLimitExceeded => close_code::AGAIN,
        ErrorCode::ServerError | ErrorCode::UpstreamError | ErrorCode::ModelUnavailable => {
            close_code::ERROR
        }
        ErrorCode::InvalidRequest
        | ErrorCode::AuthenticationFailed
        | ErrorCode::PermissionDenied
        | ErrorCode::ModelNotFound
        | ErrorCode::InsufficientCredits
        | ErrorCode::IdempotencyConflict
        | ErrorCode::NotFound => close_code::POLICY,
    }
}

/// A close frame's reason: at most 123 bytes, cut at a character boundary.
fn close_reason(msg: &str) -> String {
    let mut end = msg.len().min(123);
    while !msg.is_char_boundary(end) {
        end -= 1;
    }
    msg[..end].to_owned()
}

/// The task failure for a message the WebSocket layer could not read, and
/// its close code; `None` when the connection is simply gone.
fn read_failure(e: axum::Error) -> Option<(Value, u16)> {
    use tungstenite::error::Error as Ws;
    let e = e.into_inner().downcast::<Ws>().ok()?;
    match *e {
        Ws::Capacity(_) => {
            let err = Error::new(
                ErrorCode::PayloadTooLarge,
                format!(
                    "A message is larger than {MAX_MESSAGE_BYTES} bytes: the connection is closed."
                ),
            )
            .with("max_bytes", MAX_MESSAGE_BYTES);
            Some((native_base_resp(&err), close_code::SIZE))
        }
        Ws::Utf8(_) => Some((
            json!({"status_code": ILLEGAL_EVENT, "status_msg": "A text frame is not valid UTF-8."}),
            close_code::INVALID,
        )),
        Ws::Protocol(p) => Some((
            json!({"status_code": ILLEGAL_EVENT, "status_msg": format!("The WebSocket frames break the protocol: {p}.")}),
            close_code::PROTOCOL,
        )),
        _ => None,
    }
}

impl Session {
    async fn run(mut self) {
        let hello = self.event("connected_success", ok());
        if self.send(hello).await.is_err() {
            return;
        }
        let mut task: Option<Plan> = None;
        let end = loop {
            let msg = match tokio::time::timeout(IDLE, self.socket.recv()).await {
                Err(_) => {
                    break self
                        .fail(
                            IDLE_TIMEOUT,
                            "No message for 120 seconds: the connection is closed.",
                            close_code::NORMAL,
                        )
                        .await;
                }
                Ok(None) => break Next::Gone,
                Ok(Some(Err(e))) => match read_failure(e) {
                    Some((base_resp, code)) => break self.failed(base_resp, code).await,
                    None => break Next::Gone,
                },
                Ok(Some(Ok(m))) => m,
            };
            let text = match msg {
                Message::Text(t) => t,
                Message::Close(_) => break Next::Gone,
                Message::Ping(_) | Message::Pong(_) => continue,
                Message::Binary(_) => {
                    break self
                        .fail(
                            ILLEGAL_EVENT,
                            "Messages are JSON text frames, not binary ones.",
                            close_code::UNSUPPORTED,
                        )
                        .await;
                }
            };
            let next = match serde_json::from_str::<Value>(text.as_str()) {
                Ok(v) if v.is_object() => self.on_message(v, &mut task).await,
                _ => {
                    self.fail(
                        ILLEGAL_EVENT,
                        "A message is not a JSON object.",
                        close_code::PROTOCOL,
                    )
                    .await
                }
            };
            if !matches!(next, Next::Continue) {
                break next;
            }
        };
        match end {
            Next::Close(code, reason) => {
                let frame = CloseFrame {
                    code,
                    reason: close_reason(&reason).into(),
                };
                if self.socket.send(Message::Close(Some(frame))).await.is_ok() {
                    // The client answers with its own close frame.
                    let _ = tokio::time::timeout(CLOSE_GRACE, async {
                        while let Some(Ok(m)) = self.socket.recv().await {
                            if matches!(m, Message::Close(_)) {
                                break;
                            }
                        }
                    })
                    .await;
                }
            }
            // Sends the reply to a client's close frame, if one is pending.
            Next::Gone | Next::Continue => {
                let _ = self.socket.send(Message::Close(None)).await;
            }
        }
        // The meter records the connection when the last handle goes; its
        // characters were metered with each task_continue.
        self.meter.report(UsageReport {
            model: self.model.clone(),
            ..UsageReport::default()
        });
    }

    /// Checks the key again before a task message (and, when `counted`,
    /// counts the message as a request): a refusal fails the task with the
    /// native code (1004 revoked, 1002 over the rate limit) and closes.
    async fn admit(&mut self, counted: bool) -> Result<(), Next> {
        match self
            .units
            .admit(&self.app, &self.ctx.caller, UNIT, counted)
            .await
        {
            Ok(caller) => {
                self.ctx.caller = caller;
                Ok(())
            }
            Err(e) => Err(self.failed_with(&e).await),
        }
    }

    async fn on_message(&mut self, v: Value, task: &mut Option<Plan>) -> Next {
        let event = v.get("event").and_then(Value::as_str).unwrap_or("");
        match (event, task.as_ref()) {
            ("task_start", None) => {
                if let Err(next) = self.admit(false).await {
                    return next;
                }
                match self.start(v).await {
                    Ok(plan) => {
                        *task = Some(plan);
                        let started = self.event("task_started", ok());
                        self.send_or_close(started).await
                    }
                    Err(e) => self.failed_with(&e).await,
                }
            }
            ("task_start", Some(_)) => {
                self.fail(
                    ILLEGAL_EVENT,
                    "The task has started already: send task_continue or task_finish.",
                    close_code::PROTOCOL,
                )
                .await
            }
            ("task_continue" | "task_finish", None) => {
                self.fail(
                    ILLEGAL_EVENT,
                    "Send task_start first and wait for task_started.",
                    close_code::PROTOCOL,
                )
                .await
            }
            ("task_continue", Some(plan)) => {
                let plan = plan.clone();
                let started = Instant::now();
                if let Err(next) = self.admit(true).await {
                    return next;
                }
                let text = v
                    .get("text")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned();
                let (next, outcome) = self.speak(plan, text).await;
                let chars = *outcome.as_ref().unwrap_or(&0);
                let report = UsageReport {
                    model: self.model.clone(),
                    usage: None,
                    characters: chars,
                    ..UsageReport::default()
                };
                self.units.finish(
                    &self.app,
                    &self.ctx.caller,
                    UNIT,
                    started,
                    report,
                    outcome.as_ref().map(|_| ()),
                );
                next
            }
            ("task_finish", Some(_)) => {
                if let Err(next) = self.admit(false).await {
                    return next;
                }
                let finished = self.event("task_finished", ok());
                match self.send(finished).await {
                    Ok(()) => Next::Close(close_code::NORMAL, "task finished".into()),
                    Err(_) => Next::Gone,
                }
            }
            _ => {
                let msg = if event.is_empty() {
                    "A message has no 'event'.".to_owned()
                } else {
                    format!(
                        "Unknown event '{event}': send task_start, task_continue or task_finish."
                    )
                };
                self.fail(ILLEGAL_EVENT, &msg, close_code::PROTOCOL).await
            }
        }
    }

    /// Checks a `task_start`: everything of a `POST /v1/t2a_v2` body but
    /// the text. Errors fail the task.
    async fn start(&mut self, mut v: Value) -> Result<Plan, Error> {
        if let Some(o) = v.as_object_mut() {
            o.remove("event");
            o.insert("text".into(), Value::String(String::new()));
            o.remove("stream");
        }
        let req: T2aRequest = serde_json::from_value(v).map_err(|e| {
            Error::new(
                ErrorCode::InvalidRequest,
                format!("task_start is not valid: {e}"),
            )
        })?;
        let plan = maximin_speech::plan(&self.app.platform, &self.ctx.caller, &req, None).await?;
        self.model = Some(plan.model().to_owned());
        Ok(plan)
    }

    /// Synthesises one `task_continue`'s text, sending each sentence as soon
    /// as it is encoded. Also says how the unit ended, for metering: its
    /// characters (0 when the client left before the end), or the error.
    async fn speak(&mut self, plan: Plan, text: String) -> (Next, Result<u64, Error>) {
        if text.trim().is_empty() {
            return self
                .skip(EMPTY_TEXT, "The text is empty: nothing was synthesised.")
                .await;
        }
        let chars = text.chars().count();
        if chars > MAX_T2A_CHARS {
            let msg = format!("The text has {chars} characters; at most {MAX_T2A_CHARS} per task_continue: it was skipped.");
            return self.skip(TEXT_TOO_LONG, &msg).await;
        }
        let ratio = match check_text(&text) {
            Ok(r) => r,
            Err(e) => return (self.failed_with(&e).await, Err(e)),
        };
        if let Err(e) =
            maximin_speech::reserve(&self.app.platform, &self.ctx.caller, &plan, &text).await
        {
            return (self.failed_with(&e).await, Err(e));
        }
        let used = plan.used_voices();
        let mut synth = Synth::new(plan.with_text(text, ratio));
        if let Err(e) = synth.start(&self.app.platform).await {
            return (self.failed_with(&e).await, Err(e));
        }
        while let Some(bytes) = synth.next().await {
            match bytes {
                Ok(b) if b.is_empty() => {}
                Ok(b) => {
                    let chunk = self.continued(Some(&b), None, false);
                    if let Next::Gone = self.send_or_close(chunk).await {
                        return (Next::Gone, Ok(0));
                    }
                }
                Err(e) => return (self.failed_with(&e).await, Err(e)),
            }
        }
        match synth.finish() {
            Ok((tail, info, chars)) => {
                used.mark(&self.app.platform).await;
                let info = serde_json::to_value(info).unwrap_or(Value::Null);
                let last =
                    self.continued((!tail.is_empty()).then_some(&tail[..]), Some(info), true);
                (self.send_or_close(last).await, Ok(chars))
            }
            Err(e) => (self.failed_with(&e).await, Err(e)),
        }
    }

    /// A `task_continue` that was skipped: a final `task_continued` with no
    /// audio and the reason; the task goes on.
    async fn skip(&mut self, code: i64, msg: &str) -> (Next, Result<u64, Error>) {
        let mut ev = self.event(
            "task_continued",
            json!({"status_code": code, "status_msg": msg}),
        );
        ev["data"] = Value::Null;
        ev["is_final"] = Value::Bool(true);
        let err = Error::new(ErrorCode::InvalidRequest, msg).with("field", "text");
        (self.send_or_close(ev).await, Err(err))
    }

    fn continued(&self, audio: Option<&[u8]>, info: Option<Value>, last: bool) -> Value {
        let mut ev = self.event("task_continued", ok());
        ev["data"] = match audio {
            Some(a) => json!({"audio": hex::encode(a)}),
            None => Value::Null,
        };
        ev["extra_info"] = info.unwrap_or(Value::Null);
        ev["is_final"] = Value::Bool(last);
        ev
    }

    fn event(&self, event: &str, base_resp: Value) -> Value {
        json!({
            "session_id": self.session_id,
            "event": event,
            "trace_id": self.ctx.request_id,
            "base_resp": base_resp,
        })
    }

    /// `task_failed` with this `base_resp`; the connection then closes with
    /// `close` and the status message as the reason.
    async fn failed(&mut self, base_resp: Value, close: u16) -> Next {
        let reason = base_resp
            .get("status_msg")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let failed = self.event("task_failed", base_resp);
        match self.send(failed).await {
            Ok(()) => Next::Close(close, reason),
            Err(_) => Next::Gone,
        }
    }

    /// `task_failed` for an error: its native code, and the close code for
    /// its kind.
    async fn failed_with(&mut self, e: &Error) -> Next {
        self.failed(native_base_resp(e), close_code_of(e.code))
            .await
    }

    async fn fail(&mut self, code: i64, msg: &str, close: u16) -> Next {
        self.failed(json!({"status_code": code, "status_msg": msg}), close)
            .await
    }

    async fn send(&mut self, v: Value) -> Result<(), axum::Error> {
        self.socket.send(Message::Text(v.to_string().into())).await
    }

    async fn send_or_close(&mut self, v: Value) -> Next {
        match self.send(v).await {
            Ok(()) => Next::Continue,
            Err(_) => Next::Gone,
        }
    }
}

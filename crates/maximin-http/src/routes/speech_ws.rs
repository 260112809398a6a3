//! `GET /ws/v1/t2a_v2`: MiniMax's WebSocket text to speech (spec §3.2).
//!
//! The server greets with `connected_success`; the client sends `task_start`
//! (model, voice and audio settings: everything of `POST /v1/t2a_v2` but the
//! text), gets `task_started`, then sends any number of `task_continue` with
//! text; each is synthesised sentence by sentence and sent back as
//! `task_continued` events of hex audio, the last one with `is_final: true`
//! and that text's `extra_info`. `task_finish` ends the task
//! (`task_finished`) and the connection. A fatal error is `task_failed` with
//! its `base_resp`, then the server closes. Usage (characters) is metered for
//! the whole connection when it ends.

use std::time::Duration;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::response::Response;
use maximin_types::speech::{BaseResp, T2aRequest};
use serde_json::{json, Value};

use crate::ctx::{Ctx, StreamMeter, UsageReport};
use crate::error::native_base_resp;
use crate::routes::speech::{
    check_text, mark_used, own_voices, plan_voice, usage, voice_ids, OwnVoices, Plan, Synth,
    MAX_T2A_CHARS,
};
use crate::AppState;

/// A connection with no message from the client for this long is closed
/// (code 2201).
pub const IDLE: Duration = Duration::from_secs(120);

const IDLE_TIMEOUT: i64 = 2201;
const ILLEGAL_EVENT: i64 = 2202;
const EMPTY_TEXT: i64 = 2203;
const TEXT_TOO_LONG: i64 = 2204;

#[utoipa::path(get, path = "/ws/v1/t2a_v2", tag = "speech", security(("bearer" = [])),
    responses((status = 101, description = "WebSocket: `connected_success`, then `task_start` → `task_started`, `task_continue` → `task_continued` (hex audio; `is_final` on a text's last chunk), `task_finish` → `task_finished`; `task_failed` on a fatal error"),
              (status = 400, description = "`invalid_request`: not a WebSocket upgrade request")))]
pub async fn t2a_ws(State(app): State<AppState>, ctx: Ctx, ws: WebSocketUpgrade) -> Response {
    let meter = StreamMeter::new();
    let session_meter = meter.clone();
    let mut resp = ws.on_upgrade(move |socket| async move {
        Session {
            app,
            ctx,
            socket,
            meter: session_meter,
            session_id: maximin_core::secrets::new_id("session"),
            chars: 0,
            model: None,
            own: OwnVoices::new(),
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
    socket: WebSocket,
    meter: std::sync::Arc<StreamMeter>,
    session_id: String,
    chars: u64,
    model: Option<String>,
    /// The caller's own voices the task uses.
    own: OwnVoices,
}

/// The `base_resp` of success.
fn ok() -> Value {
    serde_json::to_value(BaseResp::success()).unwrap_or(Value::Null)
}

/// What to do after a client message.
enum Next {
    Continue,
    Close,
}

impl Session {
    async fn run(mut self) {
        let hello = self.event("connected_success", ok());
        if self.send(hello).await.is_err() {
            return;
        }
        let mut task: Option<Plan> = None;
        loop {
            let msg = match tokio::time::timeout(IDLE, self.socket.recv()).await {
                Err(_) => {
                    self.fail(
                        IDLE_TIMEOUT,
                        "No message for 120 seconds: the connection is closed.",
                    )
                    .await;
                    break;
                }
                Ok(None) | Ok(Some(Err(_))) => break,
                Ok(Some(Ok(m))) => m,
            };
            let text = match msg {
                Message::Text(t) => t,
                Message::Close(_) => break,
                Message::Ping(_) | Message::Pong(_) => continue,
                Message::Binary(_) => {
                    self.fail(ILLEGAL_EVENT, "Messages are JSON text frames.")
                        .await;
                    break;
                }
            };
            let next = match serde_json::from_str::<Value>(text.as_str()) {
                Ok(v) if v.is_object() => self.on_message(v, &mut task).await,
                _ => {
                    self.fail(ILLEGAL_EVENT, "A message is not a JSON object.")
                        .await
                }
            };
            if matches!(next, Next::Close) {
                break;
            }
        }
        let _ = self.socket.send(Message::Close(None)).await;
        // The meter records the connection's usage when the last handle goes.
        self.meter.report(UsageReport {
            model: self.model.clone(),
            usage: Some(usage(self.chars)),
        });
    }

    async fn on_message(&mut self, v: Value, task: &mut Option<Plan>) -> Next {
        let event = v.get("event").and_then(Value::as_str).unwrap_or("");
        match (event, task.as_ref()) {
            ("task_start", None) => match self.start(v).await {
                Ok(plan) => {
                    *task = Some(plan);
                    let started = self.event("task_started", ok());
                    self.send_or_close(started).await
                }
                Err(base_resp) => self.failed(base_resp).await,
            },
            ("task_start", Some(_)) => {
                self.fail(
                    ILLEGAL_EVENT,
                    "The task has started already: send task_continue or task_finish.",
                )
                .await
            }
            ("task_continue" | "task_finish", None) => {
                self.fail(
                    ILLEGAL_EVENT,
                    "Send task_start first and wait for task_started.",
                )
                .await
            }
            ("task_continue", Some(plan)) => {
                let plan = plan.clone();
                let text = v
                    .get("text")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned();
                self.speak(plan, text).await
            }
            ("task_finish", Some(_)) => {
                let finished = self.event("task_finished", ok());
                let _ = self.send(finished).await;
                Next::Close
            }
            _ => {
                let msg = if event.is_empty() {
                    "A message has no 'event'.".to_owned()
                } else {
                    format!(
                        "Unknown event '{event}': send task_start, task_continue or task_finish."
                    )
                };
                self.fail(ILLEGAL_EVENT, &msg).await
            }
        }
    }

    /// Checks a `task_start`: everything of a `POST /v1/t2a_v2` body but
    /// the text. Errors are the `base_resp` of `task_failed`.
    async fn start(&mut self, mut v: Value) -> Result<Plan, Value> {
        if let Some(o) = v.as_object_mut() {
            o.remove("event");
            o.insert("text".into(), Value::String(String::new()));
            o.remove("stream");
        }
        let req: T2aRequest = serde_json::from_value(v).map_err(
            |e| json!({"status_code": 2013, "status_msg": format!("task_start is not valid: {e}")}),
        )?;
        let p = &self.app.platform;
        self.own = own_voices(p, &self.ctx.caller.account.id, voice_ids(&req))
            .await
            .map_err(|e| native_base_resp(&e.0))?;
        let (plan, model) = plan_voice(p, &self.ctx.caller, &self.own, &req, None)
            .await
            .map_err(|e| native_base_resp(&e.0))?;
        self.model = Some(model);
        Ok(plan)
    }

    /// Synthesises one `task_continue`'s text, sending each sentence as soon
    /// as it is encoded.
    async fn speak(&mut self, plan: Plan, text: String) -> Next {
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
            Err(e) => {
                return self.failed(native_base_resp(&e.0)).await;
            }
        };
        let mut synth = Synth::new(plan.with_text(text, ratio));
        while let Some(bytes) = synth.next().await {
            match bytes {
                Ok(b) if b.is_empty() => {}
                Ok(b) => {
                    let chunk = self.continued(Some(&b), None, false);
                    if let Next::Close = self.send_or_close(chunk).await {
                        return Next::Close;
                    }
                }
                Err(e) => {
                    return self.failed(native_base_resp(&e)).await;
                }
            }
        }
        match synth.finish() {
            Ok((tail, info, chars)) => {
                self.chars += chars;
                mark_used(&self.app.platform, &self.ctx.caller.account.id, &self.own).await;
                self.meter.report(UsageReport {
                    model: self.model.clone(),
                    usage: Some(usage(self.chars)),
                });
                let info = serde_json::to_value(info).unwrap_or(Value::Null);
                let last =
                    self.continued((!tail.is_empty()).then_some(&tail[..]), Some(info), true);
                self.send_or_close(last).await
            }
            Err(e) => self.failed(native_base_resp(&e)).await,
        }
    }

    /// A `task_continue` that was skipped: a final `task_continued` with no
    /// audio and the reason; the task goes on.
    async fn skip(&mut self, code: i64, msg: &str) -> Next {
        let mut ev = self.event(
            "task_continued",
            json!({"status_code": code, "status_msg": msg}),
        );
        ev["data"] = Value::Null;
        ev["is_final"] = Value::Bool(true);
        self.send_or_close(ev).await
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

    /// `task_failed` with this `base_resp`; the connection closes after it.
    async fn failed(&mut self, base_resp: Value) -> Next {
        let failed = self.event("task_failed", base_resp);
        let _ = self.send(failed).await;
        Next::Close
    }

    async fn fail(&mut self, code: i64, msg: &str) -> Next {
        self.failed(json!({"status_code": code, "status_msg": msg}))
            .await
    }

    async fn send(&mut self, v: Value) -> Result<(), axum::Error> {
        self.socket.send(Message::Text(v.to_string().into())).await
    }

    async fn send_or_close(&mut self, v: Value) -> Next {
        match self.send(v).await {
            Ok(()) => Next::Continue,
            Err(_) => Next::Close,
        }
    }
}

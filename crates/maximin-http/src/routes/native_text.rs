//! MiniMax-native text (spec §1.1, §2): `POST /v1/text/chatcompletion_v2`
//! and the `texts`/`type` shape of `POST /v1/embeddings`, with `base_resp`
//! (business errors at HTTP 200), over the same chat and embeddings core.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maximin_core::engines::{ChatEvent, ChatOutput};
use maximin_core::{secrets, Error};
use maximin_types::inference::ChatCompletionRequest;
use maximin_types::TokenUsage;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::ctx::{mark_deployment, ApiJson, Ctx, StreamMeter, UsageReport};
use crate::error::{ApiError, Surface, SurfaceOverride};
use crate::routes::inference::{
    broken_report, indexed_calls, run_embeddings, start_chat, ChatEvents,
};
use crate::AppState;

fn base_ok(msg: &str) -> Value {
    json!({"status_code": 0, "status_msg": msg})
}

fn usage_json(u: TokenUsage) -> Value {
    json!({
        "total_tokens": u.prompt_tokens + u.completion_tokens,
        "total_characters": 0,
        "prompt_tokens": u.prompt_tokens,
        "completion_tokens": u.completion_tokens,
    })
}

fn message_json(out: &ChatOutput) -> Value {
    let mut m = json!({
        "role": "assistant",
        "content": out.message.content.clone().unwrap_or_default(),
        "name": "MiniMax AI",
        "audio_content": "",
    });
    if let Some(calls) = &out.message.tool_calls {
        m["tool_calls"] = json!(indexed_calls(calls));
    }
    m
}

const SENSITIVE: [(&str, i64); 5] = [
    ("input_sensitive", 0),
    ("output_sensitive", 0),
    ("input_sensitive_type", 0),
    ("output_sensitive_type", 0),
    ("output_sensitive_int", 0),
];

fn with_sensitive(mut v: Value) -> Value {
    for (k, n) in SENSITIVE {
        v[k] = if k.ends_with("_sensitive") {
            json!(false)
        } else {
            json!(n)
        };
    }
    v
}

#[utoipa::path(post, path = "/v1/text/chatcompletion_v2", tag = "text", security(("bearer" = [])),
    request_body = crate::openapi::NativeChatRequest,
    responses((status = 200, description = "A `chat.completion` with `base_resp`; with `stream: true`, `chat.completion.chunk` events, then the whole completion with `usage` and `base_resp`, then `[DONE]`",
                   content((crate::openapi::NativeChatCompletion = "application/json"), (crate::openapi::ServerSentEvent = "text/event-stream"))),
              (status = 402), (status = 404, description = "`model_not_found`"), (status = 503)))]
pub async fn chatcompletion_v2(
    State(app): State<AppState>,
    ctx: Ctx,
    ApiJson(body): ApiJson<Value>,
) -> Result<Response, ApiError> {
    match &body["tool_choice"] {
        Value::Null => {}
        Value::String(s) if s == "none" || s == "auto" => {}
        _ => {
            return Err(Error::invalid(
                "tool_choice",
                "'tool_choice' is \"none\" or \"auto\" on this API.",
            )
            .into())
        }
    }
    let req: ChatCompletionRequest = crate::ctx::parse_value(body)?;
    let mut run = start_chat(&app, &ctx, &req).await?;
    let spec = run.spec.clone();
    let id = secrets::new_id("chatcmpl");
    let created = app.platform.clock.now().unix_timestamp();
    if req.stream {
        let deployment = run.deployment.clone();
        let mut resp = stream(run.into_events(), id, created, spec.id.clone());
        mark_deployment(&mut resp, &deployment);
        return Ok(resp);
    }
    let out = run.finish().await?;
    let body = with_sensitive(json!({
        "id": id,
        "choices": [{"finish_reason": out.finish_reason, "index": 0, "message": message_json(&out)}],
        "created": created,
        "model": spec.id,
        "object": "chat.completion",
        "usage": usage_json(out.usage),
        "base_resp": base_ok(""),
    }));
    let mut resp = (StatusCode::OK, axum::Json(body)).into_response();
    resp.extensions_mut().insert(UsageReport {
        model: Some(spec.id.clone()),
        usage: Some(out.usage),
        characters: 0,
        ..UsageReport::default()
    });
    mark_deployment(&mut resp, &run.deployment);
    Ok(resp)
}

/// Chunks as decoded; then the whole completion (MiniMax's aggregate final
/// event) with usage and `base_resp`, whatever `stream_options` says; then
/// `[DONE]`.
fn stream(events: ChatEvents, id: String, created: i64, model: String) -> Response {
    let meter = StreamMeter::new();
    struct St {
        events: ChatEvents,
        meter: std::sync::Arc<StreamMeter>,
        id: String,
        created: i64,
        model: String,
        done: bool,
    }
    let st = St {
        events,
        meter: meter.clone(),
        id,
        created,
        model,
        done: false,
    };
    let frames = futures_util::stream::unfold(st, |mut st| async move {
        if st.done {
            return None;
        }
        let chunk = |st: &St, delta: Value, finish: Option<&str>| {
            with_sensitive(json!({
                "id": st.id, "object": "chat.completion.chunk", "created": st.created, "model": st.model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }))
            .to_string()
        };
        let mut out = Vec::new();
        match st.events.recv().await {
            Some(ChatEvent::Delta(text)) => {
                // Left here, the request is metered for what it was sent.
                st.meter
                    .report(broken_report(&st.model, st.events.delivered()));
                out.push(chunk(
                    &st,
                    json!({"role": "assistant", "content": text}),
                    None,
                ));
            }
            Some(ChatEvent::Done(done)) => {
                st.done = true;
                st.meter.report(UsageReport {
                    model: Some(st.model.clone()),
                    usage: Some(done.usage),
                    characters: 0,
                    ..UsageReport::default()
                });
                let mut delta = json!({"role": "assistant", "content": ""});
                if let Some(calls) = message_json(&done).get("tool_calls") {
                    delta["tool_calls"] = calls.clone();
                }
                out.push(chunk(&st, delta, Some(&done.finish_reason)));
                out.push(
                    with_sensitive(json!({
                        "id": st.id, "object": "chat.completion", "created": st.created, "model": st.model,
                        "choices": [{"finish_reason": done.finish_reason, "index": 0, "message": message_json(&done)}],
                        "usage": usage_json(done.usage),
                        "base_resp": base_ok("success"),
                    }))
                    .to_string(),
                );
                out.push("[DONE]".to_owned());
            }
            Some(ChatEvent::Failed(e)) => {
                st.done = true;
                out.push(json!({"base_resp": crate::error::native_base_resp(&e)}).to_string());
            }
            Some(ChatEvent::Broken { error, delivered }) => {
                st.done = true;
                st.meter.report(broken_report(&st.model, delivered));
                out.push(json!({"base_resp": crate::error::native_base_resp(&error)}).to_string());
            }
            None => {
                st.done = true;
                out.push("[DONE]".to_owned());
            }
        }
        Some((out.into_iter().map(|f| (None, f)).collect::<Vec<_>>(), st))
    });
    crate::ctx::sse_response(frames, meter)
}

#[derive(Deserialize)]
struct NativeEmbeddings {
    model: String,
    texts: Vec<String>,
    #[serde(rename = "type")]
    kind: String,
}

/// `POST /v1/embeddings` with `texts` and `type` (spec §2): `{vectors,
/// total_tokens, base_resp}`; errors as `base_resp`.
pub(crate) async fn embeddings(app: AppState, ctx: Ctx, body: Value) -> Response {
    let result = async {
        let req: NativeEmbeddings = crate::ctx::parse_value(body)?;
        if req.kind != "db" && req.kind != "query" {
            return Err(ApiError(Error::invalid(
                "type",
                "'type' is db (texts to store) or query (search queries).",
            )));
        }
        let run = run_embeddings(&app, &ctx, &req.model, ("texts", &req.texts), true).await?;
        let (spec, out) = (&run.spec, &run.output);
        let usage = TokenUsage {
            prompt_tokens: out.prompt_tokens,
            completion_tokens: 0,
        };
        let mut resp = axum::Json(json!({
            "vectors": out.vectors,
            "total_tokens": out.prompt_tokens,
            "base_resp": base_ok("success"),
        }))
        .into_response();
        resp.extensions_mut().insert(UsageReport {
            model: Some(spec.id.clone()),
            usage: Some(usage),
            characters: 0,
            ..UsageReport::default()
        });
        mark_deployment(&mut resp, &run.deployment);
        Ok::<_, ApiError>(resp)
    }
    .await;
    match result {
        Ok(r) => r,
        Err(e) => {
            let mut r = e.into_response();
            r.extensions_mut().insert(SurfaceOverride(Surface::Native));
            r
        }
    }
}

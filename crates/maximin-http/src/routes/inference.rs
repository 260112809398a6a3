//! `POST /v1/chat/completions` and `POST /v1/embeddings` (seed 002 shapes).
//! The handler validates, resolves the model for the caller, and hands the
//! request to the engine the catalog routes the model to.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use maximin_core::clock::iso8601;
use maximin_core::engines::ChatEvent;
use maximin_core::inference::{ChatRun, EmbedRun};
use maximin_core::secrets;
use maximin_types::inference::{
    ChatChoice, ChatCompletion, ChatCompletionRequest, Embedding, EmbeddingInput,
    EmbeddingsRequest, EmbeddingsResponse,
};
use maximin_types::TokenUsage;
use serde_json::json;

use crate::ctx::{mark_deployment, ApiJson, Ctx, StreamMeter, UsageReport};
use crate::error::ApiError;
use crate::AppState;

pub use maximin_core::inference::{validate_chat, MAX_EMBEDDING_INPUTS};

/// The shared start of every chat surface: the core's routed answer.
pub(crate) async fn start_chat(
    app: &AppState,
    ctx: &Ctx,
    req: &ChatCompletionRequest,
) -> Result<ChatRun, ApiError> {
    Ok(app.platform.start_chat(&ctx.caller, req).await?)
}

/// Tool calls as streamed deltas carry them: with their `index`.
pub(crate) fn indexed_calls(
    calls: &[maximin_types::inference::ToolCall],
) -> Vec<serde_json::Value> {
    calls
        .iter()
        .enumerate()
        .map(|(i, c)| json!({"index": i, "id": c.id, "type": c.kind, "function": c.function}))
        .collect()
}

pub(crate) use maximin_core::inference::ChatEvents;

/// The shared start of every embeddings surface: the core's routed call.
pub(crate) async fn run_embeddings(
    app: &AppState,
    ctx: &Ctx,
    model: &str,
    input: (&str, &[String]),
    truncate: bool,
) -> Result<EmbedRun, ApiError> {
    Ok(app
        .platform
        .embed(&ctx.caller, model, input, truncate)
        .await?)
}

/// The usage a broken stream is metered for: what was delivered.
pub(crate) fn broken_report(model: &str, delivered: TokenUsage) -> UsageReport {
    UsageReport {
        model: Some(model.to_owned()),
        usage: Some(delivered),
        characters: 0,
        ..UsageReport::default()
    }
}

/// Generate the next assistant message.
#[utoipa::path(post, path = "/v1/chat/completions", tag = "inference", security(("bearer" = [])),
    request_body = ChatCompletionRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes a retry return the first response")),
    responses((status = 200, description = "`data` is the completion; with `stream: true`, `chat.completion.chunk` events (the last with `finish_reason`, `usage` and `meta`), then `[DONE]`",
                   content((crate::openapi::ChatCompletionResponse = "application/json"), (crate::openapi::ServerSentEvent = "text/event-stream"))),
              (status = 402), (status = 404, description = "`model_not_found`"), (status = 503)))]
pub async fn create_chat_completion(
    State(app): State<AppState>,
    ctx: Ctx,
    ApiJson(req): ApiJson<ChatCompletionRequest>,
) -> Result<Response, ApiError> {
    let mut run = start_chat(&app, &ctx, &req).await?;
    let p = &app.platform;
    let spec = run.spec.clone();
    let id = secrets::new_id("chatcmpl");
    let created = iso8601(p.clock.now());
    if req.stream {
        let deployment = run.deployment.clone();
        let mut resp = stream_chat(
            ctx,
            run.into_events(),
            id,
            created,
            spec.id.clone(),
            &deployment,
        );
        mark_deployment(&mut resp, &deployment);
        return Ok(resp);
    }
    let out = run.finish().await?;
    let usage = out.usage;
    let completion = ChatCompletion {
        id,
        object: "chat.completion".into(),
        created,
        model: spec.id.clone(),
        choices: vec![ChatChoice {
            index: 0,
            message: out.message,
            finish_reason: out.finish_reason,
        }],
        usage,
    };
    Ok(ctx.respond_from(
        StatusCode::OK,
        completion,
        UsageReport {
            model: Some(spec.id.clone()),
            usage: Some(usage),
            characters: 0,
            ..UsageReport::default()
        },
        Some(&run.deployment),
    ))
}

/// Server-sent events: one `chat.completion.chunk` per decoded delta as soon as
/// it is decoded, a last chunk with `finish_reason` and `usage`, then `[DONE]`.
fn stream_chat(
    ctx: Ctx,
    events: ChatEvents,
    id: String,
    created: String,
    model: String,
    deployment: &str,
) -> Response {
    let meter = StreamMeter::new();
    let chunk = {
        let (id, created, model) = (id.clone(), created.clone(), model.clone());
        move |delta: serde_json::Value, finish: Option<&str>| {
            json!({
                "id": id, "object": "chat.completion.chunk", "created": created, "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            })
        }
    };
    struct State<F> {
        events: ChatEvents,
        chunk: F,
        meter: std::sync::Arc<StreamMeter>,
        model: String,
        deployment: String,
        request_id: String,
        first: bool,
        done: bool,
    }
    let state = State {
        events,
        chunk,
        meter: meter.clone(),
        model,
        deployment: deployment.to_owned(),
        request_id: ctx.request_id.clone(),
        first: true,
        done: false,
    };
    let stream = futures_util::stream::unfold(state, |mut st| async move {
        if st.done {
            return None;
        }
        let frames: Vec<String> = match st.events.recv().await {
            Some(ChatEvent::Delta(text)) => {
                // Left here, the request is metered for what it was sent.
                st.meter
                    .report(broken_report(&st.model, st.events.delivered()));
                let delta = if st.first {
                    json!({"role": "assistant", "content": text})
                } else {
                    json!({"content": text})
                };
                st.first = false;
                vec![(st.chunk)(delta, None).to_string()]
            }
            Some(ChatEvent::Done(out)) => {
                st.done = true;
                st.meter.report(UsageReport {
                    model: Some(st.model.clone()),
                    usage: Some(out.usage),
                    characters: 0,
                    ..UsageReport::default()
                });
                let mut frames = Vec::new();
                if let Some(calls) = &out.message.tool_calls {
                    let calls = indexed_calls(calls);
                    frames.push(
                        (st.chunk)(json!({"role": "assistant", "tool_calls": calls}), None)
                            .to_string(),
                    );
                }
                let mut last = (st.chunk)(json!({}), Some(out.finish_reason.as_str()));
                last["usage"] = json!(out.usage);
                last["meta"] = json!({"request_id": st.request_id, "model": st.model,
                                      "usage": out.usage, "upstream": st.deployment});
                frames.push(last.to_string());
                frames.push("[DONE]".to_owned());
                frames
            }
            Some(ChatEvent::Failed(e)) => {
                st.done = true;
                vec![
                    json!({"error": {"code": e.code.as_str(), "message": e.message, "details": e.details},
                           "meta": {"request_id": st.request_id}})
                    .to_string(),
                    "[DONE]".to_owned(),
                ]
            }
            Some(ChatEvent::Broken {
                error: e,
                delivered,
            }) => {
                st.done = true;
                st.meter.report(broken_report(&st.model, delivered));
                vec![
                    json!({"error": {"code": e.code.as_str(), "message": e.message, "details": e.details},
                           "meta": {"request_id": st.request_id}})
                    .to_string(),
                    "[DONE]".to_owned(),
                ]
            }
            None => {
                st.done = true;
                vec!["[DONE]".to_owned()]
            }
        };
        Some((
            frames.into_iter().map(|f| (None, f)).collect::<Vec<_>>(),
            st,
        ))
    });
    crate::ctx::sse_response(stream, meter)
}

/// Embed a batch of texts.
#[utoipa::path(post, path = "/v1/embeddings", tag = "inference", security(("bearer" = [])),
    request_body = crate::openapi::EmbeddingsBody,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes a retry return the first response")),
    responses((status = 200, description = "With `input`: `data` holds the vectors. With `texts` (MiniMax's shape): `{vectors, total_tokens, base_resp}`, and its errors are HTTP 200 with a non-zero `base_resp.status_code`", body = crate::openapi::EmbeddingsReply),
              (status = 402), (status = 404, description = "`model_not_found`"), (status = 503)))]
pub async fn create_embeddings(
    State(app): State<AppState>,
    ctx: Ctx,
    ApiJson(body): ApiJson<serde_json::Value>,
) -> Result<Response, ApiError> {
    // MiniMax's native shape (`texts`, `type`) on the same path.
    if body.get("texts").is_some() && body.get("input").is_none() {
        return Ok(crate::routes::native_text::embeddings(app, ctx, body).await);
    }
    let req: EmbeddingsRequest = crate::ctx::parse_value(body)?;
    let inputs = match req.input {
        EmbeddingInput::One(s) => vec![s],
        EmbeddingInput::Many(v) => v,
    };
    let run = run_embeddings(&app, &ctx, &req.model, ("input", &inputs), req.truncate).await?;
    let (spec, out) = (&run.spec, run.output);
    let usage = TokenUsage {
        prompt_tokens: out.prompt_tokens,
        completion_tokens: 0,
    };
    let body = EmbeddingsResponse {
        object: "list".into(),
        model: spec.id.clone(),
        embeddings: out
            .vectors
            .into_iter()
            .enumerate()
            .map(|(i, embedding)| Embedding {
                index: u32::try_from(i).unwrap_or(u32::MAX),
                embedding,
            })
            .collect(),
    };
    Ok(ctx.respond_from(
        StatusCode::OK,
        body,
        UsageReport {
            model: Some(spec.id.clone()),
            usage: Some(usage),
            characters: 0,
            ..UsageReport::default()
        },
        Some(&run.deployment),
    ))
}

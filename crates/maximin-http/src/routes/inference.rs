//! `POST /v1/chat/completions` and `POST /v1/embeddings` (seed 002 shapes).
//! The handler validates, resolves the model for the caller, and hands the
//! request to the engine the catalog routes the model to.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use maximin_core::catalog::ModelSpec;
use maximin_core::clock::iso8601;
use maximin_core::engines::ChatEvent;
use maximin_core::{secrets, Error};
use maximin_types::inference::{
    ChatChoice, ChatCompletion, ChatCompletionRequest, Embedding, EmbeddingInput,
    EmbeddingsRequest, EmbeddingsResponse, Role,
};
use maximin_types::{ErrorCode, Modality, TokenUsage};
use serde_json::json;

use crate::ctx::{ApiJson, Ctx, StreamMeter, UsageReport};
use crate::error::ApiError;
use crate::AppState;

/// Most inputs one embeddings request may carry (seed 002).
pub const MAX_EMBEDDING_INPUTS: usize = 2048;

fn modality_mismatch(spec: &ModelSpec, wanted: Modality) -> Error {
    Error::invalid(
        "model",
        format!(
            "'{}' is a {} model; this endpoint needs a {wanted} model.",
            spec.id, spec.modality
        ),
    )
}

fn engine_missing(spec: &ModelSpec) -> Error {
    Error::new(
        ErrorCode::ModelUnavailable,
        format!(
            "No engine serves '{}' ({}) in this install.",
            spec.id, spec.engine
        ),
    )
    .with("model", spec.id.as_str())
}

pub fn validate_chat(req: &ChatCompletionRequest) -> Result<(), Error> {
    if req.messages.is_empty() {
        return Err(Error::invalid(
            "messages",
            "'messages' must hold at least one message.",
        ));
    }
    for (i, m) in req.messages.iter().enumerate() {
        if m.role == Role::Tool && m.tool_call_id.as_deref().unwrap_or("").is_empty() {
            return Err(Error::invalid(
                &format!("messages[{i}].tool_call_id"),
                "A 'tool' message needs the 'tool_call_id' of the call it answers.",
            ));
        }
        if m.content.is_none() && m.tool_calls.as_ref().is_none_or(|c| c.is_empty()) {
            return Err(Error::invalid(
                &format!("messages[{i}].content"),
                "A message needs 'content' (or, from the assistant, 'tool_calls').",
            ));
        }
    }
    if let Some(t) = req.temperature {
        if !(0.0..=2.0).contains(&t) {
            return Err(Error::invalid(
                "temperature",
                "'temperature' must be between 0 and 2.",
            ));
        }
    }
    if let Some(p) = req.top_p {
        if !(p > 0.0 && p <= 1.0) {
            return Err(Error::invalid(
                "top_p",
                "'top_p' must be greater than 0 and at most 1.",
            ));
        }
    }
    if req.max_tokens == Some(0) {
        return Err(Error::invalid(
            "max_tokens",
            "'max_tokens' must be at least 1.",
        ));
    }
    if let Some(stop) = &req.stop {
        let stops = stop.to_vec();
        if stops.len() > 4 || stops.iter().any(|s| s.is_empty()) {
            return Err(Error::invalid(
                "stop",
                "'stop' takes up to 4 non-empty strings.",
            ));
        }
        // As in messages: the engines take text without NUL.
        if stops.iter().any(|s| s.contains('\0')) {
            return Err(Error::invalid(
                "stop",
                "'stop' strings may not contain NUL characters.",
            ));
        }
    }
    if let Some(rf) = &req.response_format {
        match rf.get("type").and_then(|t| t.as_str()) {
            Some("text") | Some("json_object") => {}
            Some("json_schema") => {
                if !rf["json_schema"]["schema"].is_object() {
                    return Err(Error::invalid(
                        "response_format.json_schema.schema",
                        "'response_format.json_schema.schema' must be a JSON schema object.",
                    ));
                }
            }
            _ => {
                return Err(Error::invalid(
                    "response_format",
                    "'response_format.type' is text, json_object or json_schema.",
                ))
            }
        }
    }
    for (i, t) in req.tools.iter().enumerate() {
        if t.kind != "function" || t.function.name.is_empty() {
            return Err(Error::invalid(
                &format!("tools[{i}]"),
                "Each tool must be {\"type\":\"function\",\"function\":{\"name\":…}}.",
            ));
        }
    }
    Ok(())
}

/// The shared start of every chat surface: checks, the caller's model, its
/// engine; the engine's event stream.
pub(crate) async fn start_chat(
    app: &AppState,
    ctx: &Ctx,
    req: &ChatCompletionRequest,
) -> Result<(ModelSpec, ChatEvents), ApiError> {
    validate_chat(req)?;
    let p = &app.platform;
    let spec = p.model_for(&ctx.caller, &req.model)?;
    if spec.modality != Modality::Text {
        return Err(modality_mismatch(spec, Modality::Text).into());
    }
    let engine = p
        .engines
        .chat
        .get(&spec.engine)
        .ok_or_else(|| engine_missing(spec))?;
    let weights = spec.weights_path(&p.installed.models_dir);
    let events = engine.start(spec, weights.as_deref(), req).await?;
    Ok((spec.clone(), events))
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

pub(crate) type ChatEvents = tokio::sync::mpsc::UnboundedReceiver<ChatEvent>;

/// Waits for the whole reply.
pub(crate) async fn finish_chat(
    events: &mut ChatEvents,
) -> Result<maximin_core::engines::ChatOutput, ApiError> {
    loop {
        match events.recv().await {
            Some(ChatEvent::Delta(_)) => {}
            Some(ChatEvent::Done(out)) => return Ok(out),
            Some(ChatEvent::Failed(e)) => return Err(e.into()),
            None => return Err(Error::internal("the engine stopped without finishing").into()),
        }
    }
}

/// The shared start of every embeddings surface: checks, the caller's model,
/// its engine; the vectors in input order and the prompt tokens.
pub(crate) async fn run_embeddings(
    app: &AppState,
    ctx: &Ctx,
    model: &str,
    (field, inputs): (&str, &[String]),
    truncate: bool,
) -> Result<(ModelSpec, maximin_core::engines::EmbedOutput), ApiError> {
    if inputs.is_empty() || inputs.len() > MAX_EMBEDDING_INPUTS {
        return Err(ApiError(
            Error::invalid(
                field,
                format!("'{field}' takes 1 to {MAX_EMBEDDING_INPUTS} strings."),
            )
            .with("limit", MAX_EMBEDDING_INPUTS),
        ));
    }
    let p = &app.platform;
    let spec = p.model_for(&ctx.caller, model)?;
    if spec.modality != Modality::Embeddings {
        return Err(modality_mismatch(spec, Modality::Embeddings).into());
    }
    let engine = p
        .engines
        .embed
        .get(&spec.engine)
        .ok_or_else(|| engine_missing(spec))?;
    let weights = spec.weights_path(&p.installed.models_dir);
    let out = engine
        .embed(spec, weights.as_deref(), inputs, truncate)
        .await?;
    Ok((spec.clone(), out))
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
    let (spec, mut events) = start_chat(&app, &ctx, &req).await?;
    let p = &app.platform;
    let spec = &spec;
    let id = secrets::new_id("chatcmpl");
    let created = iso8601(p.clock.now());
    if req.stream {
        return Ok(stream_chat(ctx, events, id, created, spec.id.clone()));
    }
    let out = finish_chat(&mut events).await?;
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
    Ok(ctx.respond(
        StatusCode::OK,
        completion,
        UsageReport {
            model: Some(spec.id.clone()),
            usage: Some(usage),
            characters: 0,
        },
    ))
}

/// Server-sent events: one `chat.completion.chunk` per decoded delta as soon as
/// it is decoded, a last chunk with `finish_reason` and `usage`, then `[DONE]`.
fn stream_chat(
    ctx: Ctx,
    events: tokio::sync::mpsc::UnboundedReceiver<ChatEvent>,
    id: String,
    created: String,
    model: String,
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
        events: tokio::sync::mpsc::UnboundedReceiver<ChatEvent>,
        chunk: F,
        meter: std::sync::Arc<StreamMeter>,
        model: String,
        request_id: String,
        first: bool,
        done: bool,
    }
    let state = State {
        events,
        chunk,
        meter: meter.clone(),
        model,
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
                last["meta"] =
                    json!({"request_id": st.request_id, "model": st.model, "usage": out.usage});
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
    let (spec, out) =
        run_embeddings(&app, &ctx, &req.model, ("input", &inputs), req.truncate).await?;
    let spec = &spec;
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
    Ok(ctx.respond(
        StatusCode::OK,
        body,
        UsageReport {
            model: Some(spec.id.clone()),
            usage: Some(usage),
            characters: 0,
        },
    ))
}

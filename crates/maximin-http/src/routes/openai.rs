//! The OpenAI-compatible surface under `/openai/v1`: chat completions,
//! embeddings, models and speech in OpenAI's shapes, over the same core as
//! every other surface (the request path, the catalog, the engines, the
//! meter). Errors are OpenAI's `{"error":{"message","type","param","code"}}`
//! with real HTTP statuses (rendered at the edge, `Surface::OpenAi`).

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use maximin_core::engines::{ChatEvent, ChatOutput};
use maximin_core::{secrets, Error};
use maximin_types::inference::{ChatCompletionRequest, EmbeddingInput};
use maximin_types::{Modality, TokenUsage};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::ctx::{mark_deployment, ApiJson, Ctx, StreamMeter, UsageReport};
use crate::error::ApiError;
use crate::routes::inference::{
    broken_report, indexed_calls, run_embeddings, start_chat, ChatEvents,
};
use crate::AppState;

fn json_response(body: Value, report: UsageReport) -> Response {
    let mut resp = (StatusCode::OK, axum::Json(body)).into_response();
    resp.extensions_mut().insert(report);
    resp
}

fn usage_json(u: TokenUsage) -> Value {
    json!({
        "prompt_tokens": u.prompt_tokens,
        "completion_tokens": u.completion_tokens,
        "total_tokens": u.prompt_tokens + u.completion_tokens,
    })
}

/// What OpenAI's chat body has beyond the shared request.
#[derive(Deserialize, Default)]
struct OpenAiExtras {
    #[serde(default)]
    n: Option<u32>,
    #[serde(default)]
    logprobs: Option<bool>,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
}

#[derive(Deserialize, Default)]
struct StreamOptions {
    #[serde(default)]
    include_usage: bool,
}

fn message_json(out: &ChatOutput) -> Value {
    let mut m = json!({
        "role": "assistant",
        "content": out.message.content,
        "refusal": null,
    });
    if let Some(calls) = &out.message.tool_calls {
        m["tool_calls"] = json!(calls
            .iter()
            .map(|c| json!({"id": c.id, "type": c.kind, "function": c.function}))
            .collect::<Vec<_>>());
    }
    m
}

#[utoipa::path(post, path = "/openai/v1/chat/completions", tag = "openai", security(("bearer" = [])),
    request_body = crate::openapi::OpenAiChatRequest,
    responses((status = 200, description = "An OpenAI `chat.completion`; with `stream: true`, `chat.completion.chunk` events, then `[DONE]`",
                   content((crate::openapi::OpenAiChatCompletion = "application/json"), (crate::openapi::ServerSentEvent = "text/event-stream"))),
              (status = 402), (status = 404, description = "`model_not_found`"), (status = 503)))]
pub async fn chat_completions(
    State(app): State<AppState>,
    ctx: Ctx,
    ApiJson(body): ApiJson<Value>,
) -> Result<Response, ApiError> {
    let extras: OpenAiExtras = serde_json::from_value(body.clone()).unwrap_or_default();
    if extras.n.is_some_and(|n| n != 1) {
        return Err(Error::invalid("n", "Only n = 1 is supported: one choice per request.").into());
    }
    if extras.logprobs == Some(true) {
        return Err(Error::invalid(
            "logprobs",
            "Log probabilities are not available from this server's engines.",
        )
        .into());
    }
    let req: ChatCompletionRequest = crate::ctx::parse_value(body)?;
    let mut run = start_chat(&app, &ctx, &req).await?;
    let spec = run.spec.clone();
    let id = secrets::new_id("chatcmpl");
    let created = app.platform.clock.now().unix_timestamp();
    if req.stream {
        let include_usage = extras.stream_options.is_some_and(|o| o.include_usage);
        let deployment = run.deployment.clone();
        let mut resp = stream(
            run.into_events(),
            id,
            created,
            spec.id.clone(),
            include_usage,
        );
        mark_deployment(&mut resp, &deployment);
        return Ok(resp);
    }
    let out = run.finish().await?;
    let body = json!({
        "id": id,
        "object": "chat.completion",
        "created": created,
        "model": spec.id,
        "choices": [{
            "index": 0,
            "message": message_json(&out),
            "finish_reason": out.finish_reason,
            "logprobs": null,
        }],
        "usage": usage_json(out.usage),
    });
    let mut resp = json_response(
        body,
        UsageReport {
            model: Some(spec.id.clone()),
            usage: Some(out.usage),
            characters: 0,
            ..UsageReport::default()
        },
    );
    mark_deployment(&mut resp, &run.deployment);
    Ok(resp)
}

/// `chat.completion.chunk` events: the role first, the text as decoded, tool
/// calls whole, the finish reason, the usage (with `include_usage`), `[DONE]`.
fn stream(
    events: ChatEvents,
    id: String,
    created: i64,
    model: String,
    include_usage: bool,
) -> Response {
    let meter = StreamMeter::new();
    let chunk = {
        let (id, model) = (id.clone(), model.clone());
        move |choices: Value| {
            json!({
                "id": id, "object": "chat.completion.chunk", "created": created,
                "model": model, "choices": choices,
            })
        }
    };
    struct St<F> {
        events: ChatEvents,
        chunk: F,
        meter: std::sync::Arc<StreamMeter>,
        model: String,
        first: bool,
        done: bool,
        include_usage: bool,
    }
    let st = St {
        events,
        chunk,
        meter: meter.clone(),
        model,
        first: true,
        done: false,
        include_usage,
    };
    let frames = futures_util::stream::unfold(st, |mut st| async move {
        if st.done {
            return None;
        }
        let mut frames: Vec<String> = Vec::new();
        if st.first {
            st.first = false;
            frames.push(
                (st.chunk)(json!([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": null, "logprobs": null}]))
                    .to_string(),
            );
        }
        match st.events.recv().await {
            Some(ChatEvent::Delta(text)) => {
                // Left here, the request is metered for what it was sent.
                st.meter
                    .report(broken_report(&st.model, st.events.delivered()));
                frames.push(
                    (st.chunk)(json!([{"index": 0, "delta": {"content": text}, "finish_reason": null, "logprobs": null}]))
                        .to_string(),
                )
            }
            Some(ChatEvent::Done(out)) => {
                st.done = true;
                st.meter.report(UsageReport {
                    model: Some(st.model.clone()),
                    usage: Some(out.usage),
                    characters: 0,
                    ..UsageReport::default()
                });
                if let Some(calls) = &out.message.tool_calls {
                    let calls = indexed_calls(calls);
                    frames.push(
                        (st.chunk)(json!([{"index": 0, "delta": {"tool_calls": calls}, "finish_reason": null, "logprobs": null}]))
                            .to_string(),
                    );
                }
                frames.push(
                    (st.chunk)(json!([{"index": 0, "delta": {}, "finish_reason": out.finish_reason, "logprobs": null}]))
                        .to_string(),
                );
                if st.include_usage {
                    let mut last = (st.chunk)(json!([]));
                    last["usage"] = usage_json(out.usage);
                    frames.push(last.to_string());
                }
                frames.push("[DONE]".to_owned());
            }
            Some(ChatEvent::Failed(e)) => {
                st.done = true;
                frames.push(crate::error::openai_body(&e).to_string());
                frames.push("[DONE]".to_owned());
            }
            Some(ChatEvent::Broken { error, delivered }) => {
                st.done = true;
                st.meter.report(broken_report(&st.model, delivered));
                frames.push(crate::error::openai_body(&error).to_string());
                frames.push("[DONE]".to_owned());
            }
            None => {
                st.done = true;
                frames.push("[DONE]".to_owned());
            }
        }
        Some((
            frames.into_iter().map(|f| (None, f)).collect::<Vec<_>>(),
            st,
        ))
    });
    crate::ctx::sse_response(frames, meter)
}

#[derive(Deserialize)]
struct EmbeddingsBody {
    model: String,
    input: EmbeddingInput,
    #[serde(default)]
    encoding_format: Option<String>,
    #[serde(default)]
    dimensions: Option<usize>,
}

#[utoipa::path(post, path = "/openai/v1/embeddings", tag = "openai", security(("bearer" = [])),
    request_body = crate::openapi::OpenAiEmbeddingsRequest,
    responses((status = 200, description = "The vectors, in input order", body = crate::openapi::OpenAiEmbeddingsResponse),
              (status = 402), (status = 404, description = "`model_not_found`"), (status = 503)))]
pub async fn embeddings(
    State(app): State<AppState>,
    ctx: Ctx,
    ApiJson(body): ApiJson<Value>,
) -> Result<Response, ApiError> {
    let req: EmbeddingsBody = crate::ctx::parse_value(body)?;
    let base64 = match req.encoding_format.as_deref() {
        None | Some("float") => false,
        Some("base64") => true,
        Some(_) => {
            return Err(
                Error::invalid("encoding_format", "'encoding_format' is float or base64.").into(),
            )
        }
    };
    let inputs = match req.input {
        EmbeddingInput::One(s) => vec![s],
        EmbeddingInput::Many(v) => v,
    };
    let run = run_embeddings(&app, &ctx, &req.model, ("input", &inputs), true).await?;
    let (spec, out) = (&run.spec, &run.output);
    if let Some(d) = req.dimensions {
        let native = out.vectors.first().map_or(0, Vec::len);
        if d != native {
            return Err(Error::invalid(
                "dimensions",
                format!(
                    "'{}' makes {native}-dimensional vectors and cannot shorten them; leave 'dimensions' out or send {native}.",
                    spec.id
                ),
            )
            .into());
        }
    }
    let data: Vec<Value> = out
        .vectors
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let embedding = if base64 {
                let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                json!(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                json!(v)
            };
            json!({"object": "embedding", "index": i, "embedding": embedding})
        })
        .collect();
    let usage = TokenUsage {
        prompt_tokens: out.prompt_tokens,
        completion_tokens: 0,
    };
    let mut resp = json_response(
        json!({
            "object": "list",
            "data": data,
            "model": spec.id,
            "usage": {"prompt_tokens": usage.prompt_tokens, "total_tokens": usage.prompt_tokens},
        }),
        UsageReport {
            model: Some(spec.id.clone()),
            usage: Some(usage),
            characters: 0,
            ..UsageReport::default()
        },
    );
    mark_deployment(&mut resp, &run.deployment);
    Ok(resp)
}

#[utoipa::path(get, path = "/openai/v1/models", tag = "openai", security(("bearer" = [])),
    responses((status = 200, description = "The models this install serves", body = crate::openapi::OpenAiModelList)))]
pub async fn list_models(State(app): State<AppState>, ctx: Ctx) -> Result<Response, ApiError> {
    let p = &app.platform;
    let listed = p.catalog_listing();
    let mine: Vec<Value> = p
        .fine_tuned_models(&ctx.caller.account.id)
        .await?
        .iter()
        .filter(|m| p.fine_tuned_view(m).is_some_and(|v| v.available))
        .map(|m| json!({"id": m.id, "object": "model", "created": 0, "owned_by": ctx.caller.account.id}))
        .collect();
    let data = crate::ctx::join_arrays(&listed.openai, &mine);
    let mut body = String::with_capacity(data.len() + 32);
    body.push_str("{\"object\":\"list\",\"data\":");
    body.push_str(&data);
    body.push('}');
    Ok(crate::ctx::raw_json(StatusCode::OK, body))
}

#[derive(Deserialize)]
struct SpeechBody {
    model: String,
    input: String,
    voice: Value,
    #[serde(default)]
    response_format: Option<String>,
    #[serde(default)]
    speed: Option<f32>,
}

/// OpenAI's model names for speech, as local ones.
fn speech_model(name: &str) -> &str {
    match name {
        "tts-1" | "tts-1-hd" | "gpt-4o-mini-tts" | "gpt-4o-tts" => "speech-2.8-hd",
        other => other,
    }
}

/// OpenAI's voice names, as MiniMax voice ids of the same gender.
fn speech_voice(name: &str) -> &str {
    match name {
        "alloy" | "nova" | "shimmer" | "coral" | "sage" | "marin" => "English_Graceful_Lady",
        "echo" | "fable" | "onyx" | "ash" | "ballad" | "verse" | "cedar" => {
            "English_Trustworth_Man"
        }
        other => other,
    }
}

#[utoipa::path(post, path = "/openai/v1/audio/speech", tag = "openai", security(("bearer" = [])),
    request_body = crate::openapi::OpenAiSpeechRequest,
    responses((status = 200, description = "The audio bytes (24 kHz)", content(("audio/mpeg"), ("audio/flac"), ("audio/wav"), ("audio/pcm"))),
              (status = 402), (status = 404, description = "`model_not_found`"), (status = 503)))]
pub async fn audio_speech(
    State(app): State<AppState>,
    ctx: Ctx,
    ApiJson(body): ApiJson<Value>,
) -> Result<Response, ApiError> {
    let req: SpeechBody = crate::ctx::parse_value(body)?;
    let voice = match &req.voice {
        Value::String(s) => s.clone(),
        Value::Object(o) => o
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        _ => String::new(),
    };
    if voice.is_empty() {
        return Err(Error::invalid("voice", "'voice' is required.").into());
    }
    let format = req.response_format.as_deref().unwrap_or("mp3");
    let (format, content_type) = match format {
        "mp3" => ("mp3", "audio/mpeg"),
        "flac" => ("flac", "audio/flac"),
        "wav" => ("wav", "audio/wav"),
        "pcm" => ("pcm", "audio/pcm"),
        other => {
            return Err(Error::invalid(
                "response_format",
                format!("'response_format' {other} is not available; use mp3, flac, wav or pcm."),
            )
            .into())
        }
    };
    let speed = req.speed.unwrap_or(1.0);
    if !(0.25..=4.0).contains(&speed) {
        return Err(Error::invalid("speed", "'speed' must be between 0.25 and 4.").into());
    }
    // OpenAI's pcm is 24 kHz; so are the other formats here.
    let t2a = json!({
        "model": speech_model(&req.model),
        "text": req.input,
        "voice_setting": {"voice_id": speech_voice(&voice), "speed": speed.clamp(0.5, 2.0)},
        "audio_setting": {"format": format, "sample_rate": 24000},
    });
    let t2a: maximin_types::speech::T2aRequest = crate::ctx::parse_value(t2a)?;
    let p = &app.platform;
    let spec = p.model_for(&ctx.caller, &t2a.model)?;
    if spec.modality != Modality::Speech {
        return Err(Error::invalid(
            "model",
            format!(
                "'{}' is not a speech model; use tts-1 or speech-2.8-hd.",
                spec.id
            ),
        )
        .into());
    }
    let spoken = maximin_speech::speak_whole(p, &ctx.caller, &t2a).await?;
    let mut resp = (StatusCode::OK, spoken.whole.audio).into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp.extensions_mut()
        .insert(UsageReport::characters(spoken.model, spoken.whole.chars));
    mark_deployment(&mut resp, &spoken.deployment);
    Ok(resp)
}

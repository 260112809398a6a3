//! The Anthropic-compatible surface: `POST /anthropic/v1/messages`, its
//! request and response shapes and its streaming event sequence, over the
//! same chat core as every surface. Keys come as `x-api-key` (the Anthropic
//! SDK's way) or `Authorization: Bearer`; `anthropic-version` is accepted.
//! Errors are Anthropic's `{"type":"error","error":{"type","message"}}`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maximin_core::engines::{ChatEvent, ChatOutput};
use maximin_core::{secrets, Error};
use maximin_types::inference::{
    ChatCompletionRequest, ChatMessage, FunctionCall, FunctionDef, Role, Stop, Tool, ToolCall,
    TOKEN_COUNT,
};
use serde_json::{json, Value};

use crate::ctx::mark_deployment;
use crate::ctx::{ApiJson, Ctx, StreamMeter, UsageReport};
use crate::error::ApiError;
use crate::routes::inference::{broken_report, start_chat, ChatEvents};
use crate::AppState;

fn invalid(field: &str, msg: impl Into<String>) -> ApiError {
    Error::invalid(field, msg).into()
}

/// Text of a `content` that is a string or an array of text blocks.
fn text_of(v: &Value, field: &str) -> Result<String, ApiError> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Array(blocks) => {
            let mut out = Vec::new();
            for (i, b) in blocks.iter().enumerate() {
                match b["type"].as_str() {
                    Some("text") => out.push(b["text"].as_str().unwrap_or_default().to_owned()),
                    other => {
                        return Err(invalid(
                            &format!("{field}[{i}].type"),
                            format!(
                                "Blocks of type {} are not supported here; send text.",
                                other.unwrap_or("(none)")
                            ),
                        ))
                    }
                }
            }
            Ok(out.join("\n"))
        }
        Value::Null => Ok(String::new()),
        _ => Err(invalid(
            field,
            "must be a string or an array of text blocks",
        )),
    }
}

/// An Anthropic request as the shared chat request.
fn to_chat(body: &Value) -> Result<ChatCompletionRequest, ApiError> {
    if !body.is_object() {
        return Err(invalid("body", "The body must be a JSON object."));
    }
    let model = body["model"]
        .as_str()
        .filter(|m| !m.is_empty())
        .ok_or_else(|| invalid("model", "'model' is required."))?;
    let max_tokens = match &body["max_tokens"] {
        Value::Null => {
            return Err(invalid(
                "max_tokens",
                format!("'max_tokens' is required: {TOKEN_COUNT}."),
            ))
        }
        v => v
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .filter(|n| *n > 0)
            .ok_or_else(|| {
                invalid(
                    "max_tokens",
                    format!("'max_tokens' must be {TOKEN_COUNT}, not {v}."),
                )
            })?,
    };
    let mut messages = Vec::new();
    let msg = |role, content: Option<String>| ChatMessage {
        role,
        content,
        name: None,
        tool_calls: None,
        tool_call_id: None,
    };
    if !body["system"].is_null() {
        messages.push(msg(Role::System, Some(text_of(&body["system"], "system")?)));
    }
    let list = body["messages"]
        .as_array()
        .ok_or_else(|| invalid("messages", "'messages' is required: an array."))?;
    for (i, m) in list.iter().enumerate() {
        let field = format!("messages[{i}]");
        let role = match m["role"].as_str() {
            Some("user") => Role::User,
            Some("assistant") => Role::Assistant,
            _ => {
                return Err(invalid(
                    &format!("{field}.role"),
                    "'role' is user or assistant (the system prompt goes in 'system').",
                ))
            }
        };
        let content = &m["content"];
        let blocks: Vec<Value> = match content {
            Value::String(s) => vec![json!({"type": "text", "text": s})],
            Value::Array(b) => b.clone(),
            _ => {
                return Err(invalid(
                    &format!("{field}.content"),
                    "'content' is a string or an array of blocks.",
                ))
            }
        };
        let mut text = Vec::new();
        let mut calls = Vec::new();
        for (j, b) in blocks.iter().enumerate() {
            let bf = format!("{field}.content[{j}]");
            match b["type"].as_str() {
                Some("text") => text.push(b["text"].as_str().unwrap_or_default().to_owned()),
                Some("tool_use") if role == Role::Assistant => calls.push(ToolCall {
                    id: b["id"].as_str().unwrap_or_default().to_owned(),
                    kind: "function".into(),
                    function: FunctionCall {
                        name: b["name"].as_str().unwrap_or_default().to_owned(),
                        arguments: b["input"].to_string(),
                    },
                }),
                Some("tool_result") if role == Role::User => {
                    let id = b["tool_use_id"].as_str().unwrap_or_default();
                    if id.is_empty() {
                        return Err(invalid(
                            &format!("{bf}.tool_use_id"),
                            "'tool_use_id' is required.",
                        ));
                    }
                    let mut result = text_of(&b["content"], &format!("{bf}.content"))?;
                    if b["is_error"].as_bool() == Some(true) {
                        result = format!("Error: {result}");
                    }
                    messages.push(ChatMessage {
                        role: Role::Tool,
                        content: Some(result),
                        name: None,
                        tool_calls: None,
                        tool_call_id: Some(id.to_owned()),
                    });
                }
                other => {
                    return Err(invalid(
                        &format!("{bf}.type"),
                        format!(
                            "Blocks of type {} are not supported in a {} message.",
                            other.unwrap_or("(none)"),
                            m["role"].as_str().unwrap_or("")
                        ),
                    ))
                }
            }
        }
        if !text.is_empty() || !calls.is_empty() {
            messages.push(ChatMessage {
                role,
                content: (!text.is_empty()).then(|| text.join("\n")),
                name: None,
                tool_calls: (!calls.is_empty()).then_some(calls),
                tool_call_id: None,
            });
        }
    }
    let mut tools = Vec::new();
    if let Some(list) = body["tools"].as_array() {
        for (i, t) in list.iter().enumerate() {
            let name = t["name"]
                .as_str()
                .filter(|n| !n.is_empty())
                .ok_or_else(|| invalid(&format!("tools[{i}].name"), "Each tool needs a 'name'."))?;
            tools.push(Tool {
                kind: "function".into(),
                function: FunctionDef {
                    name: name.to_owned(),
                    description: t["description"].as_str().map(str::to_owned),
                    parameters: Some(t["input_schema"].clone()).filter(|s| !s.is_null()),
                },
            });
        }
    }
    let tool_choice = match body["tool_choice"]["type"].as_str() {
        None => None,
        Some("auto") => Some(json!("auto")),
        Some("any") => Some(json!("required")),
        Some("none") => Some(json!("none")),
        Some("tool") => {
            Some(json!({"type": "function", "function": {"name": body["tool_choice"]["name"]}}))
        }
        Some(_) => {
            return Err(invalid(
                "tool_choice.type",
                "'tool_choice.type' is auto, any, tool or none.",
            ))
        }
    };
    let stop =
        match &body["stop_sequences"] {
            Value::Null => None,
            Value::Array(list) => {
                let mut stops = Vec::new();
                for (i, x) in list.iter().enumerate() {
                    match x.as_str() {
                        Some(s) if !s.is_empty() && !s.contains('\0') => stops.push(s.to_owned()),
                        _ => return Err(invalid(
                            &format!("stop_sequences[{i}]"),
                            "Each stop sequence must be a non-empty string without NUL characters.",
                        )),
                    }
                }
                Some(Stop::Many(stops))
            }
            _ => {
                return Err(invalid(
                    "stop_sequences",
                    "'stop_sequences' must be an array of strings.",
                ))
            }
        };
    let number = |k: &str| body[k].as_f64().map(|v| v as f32);
    Ok(ChatCompletionRequest {
        model: model.to_owned(),
        messages,
        stream: body["stream"].as_bool().unwrap_or(false),
        temperature: number("temperature"),
        top_p: number("top_p"),
        max_tokens: Some(max_tokens),
        stop,
        seed: None,
        tools,
        tool_choice,
        response_format: None,
    })
}

fn stop_reason(finish: &str) -> &'static str {
    match finish {
        "length" => "max_tokens",
        "tool_calls" => "tool_use",
        _ => "end_turn",
    }
}

fn content_blocks(out: &ChatOutput) -> Vec<Value> {
    let mut blocks = Vec::new();
    if let Some(t) = out.message.content.as_deref().filter(|t| !t.is_empty()) {
        blocks.push(json!({"type": "text", "text": t}));
    }
    for c in out.message.tool_calls.iter().flatten() {
        let input: Value = serde_json::from_str(&c.function.arguments).unwrap_or(json!({}));
        blocks
            .push(json!({"type": "tool_use", "id": c.id, "name": c.function.name, "input": input}));
    }
    blocks
}

#[utoipa::path(post, path = "/anthropic/v1/messages", tag = "anthropic", security(("bearer" = [])),
    request_body = crate::openapi::AnthropicMessagesRequest,
    responses((status = 200, description = "An Anthropic `message`; with `stream: true`, its event sequence (message_start, ping, content_block_start/delta/stop, message_delta, message_stop)",
                   content((crate::openapi::AnthropicMessage = "application/json"), (crate::openapi::ServerSentEvent = "text/event-stream"))),
              (status = 402), (status = 404, description = "`model_not_found`"), (status = 503)))]
pub async fn messages(
    State(app): State<AppState>,
    ctx: Ctx,
    ApiJson(body): ApiJson<Value>,
) -> Result<Response, ApiError> {
    let req = to_chat(&body)?;
    let mut run = start_chat(&app, &ctx, &req).await?;
    let spec = run.spec.clone();
    let id = secrets::new_id("msg");
    if req.stream {
        let deployment = run.deployment.clone();
        let mut resp = stream(run.into_events(), id, spec.id.clone());
        mark_deployment(&mut resp, &deployment);
        return Ok(resp);
    }
    let out = run.finish().await?;
    let body = json!({
        "id": id,
        "type": "message",
        "role": "assistant",
        "model": spec.id,
        "content": content_blocks(&out),
        "stop_reason": stop_reason(&out.finish_reason),
        "stop_sequence": null,
        "usage": {"input_tokens": out.usage.prompt_tokens, "output_tokens": out.usage.completion_tokens},
    });
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

/// Anthropic's event sequence. Text streams as `text_delta`s in block 0 as
/// it is decoded; tool calls follow as `tool_use` blocks with their input as
/// one `input_json_delta`.
fn stream(events: ChatEvents, id: String, model: String) -> Response {
    let meter = StreamMeter::new();
    struct St {
        events: ChatEvents,
        meter: std::sync::Arc<StreamMeter>,
        id: String,
        model: String,
        started: bool,
        text_open: bool,
        done: bool,
    }
    let st = St {
        events,
        meter: meter.clone(),
        id,
        model,
        started: false,
        text_open: false,
        done: false,
    };
    let ev = |name: &str, data: Value| (name.to_owned(), data.to_string());
    let frames = futures_util::stream::unfold(st, move |mut st| async move {
        if st.done {
            return None;
        }
        let mut out: Vec<(String, String)> = Vec::new();
        if !st.started {
            st.started = true;
            out.push(ev(
                "message_start",
                json!({"type": "message_start", "message": {
                    "id": st.id, "type": "message", "role": "assistant", "model": st.model,
                    "content": [], "stop_reason": null, "stop_sequence": null,
                    "usage": {"input_tokens": 0, "output_tokens": 0},
                }}),
            ));
            out.push(ev("ping", json!({"type": "ping"})));
        }
        match st.events.recv().await {
            Some(ChatEvent::Delta(text)) => {
                // Left here, the request is metered for what it was sent.
                st.meter
                    .report(broken_report(&st.model, st.events.delivered()));
                if !st.text_open {
                    st.text_open = true;
                    out.push(ev(
                        "content_block_start",
                        json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
                    ));
                }
                out.push(ev(
                    "content_block_delta",
                    json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}}),
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
                let mut index = 0;
                if st.text_open {
                    out.push(ev(
                        "content_block_stop",
                        json!({"type": "content_block_stop", "index": 0}),
                    ));
                    index = 1;
                }
                for c in done.message.tool_calls.iter().flatten() {
                    out.push(ev(
                        "content_block_start",
                        json!({"type": "content_block_start", "index": index,
                               "content_block": {"type": "tool_use", "id": c.id, "name": c.function.name, "input": {}}}),
                    ));
                    out.push(ev(
                        "content_block_delta",
                        json!({"type": "content_block_delta", "index": index,
                               "delta": {"type": "input_json_delta", "partial_json": c.function.arguments}}),
                    ));
                    out.push(ev(
                        "content_block_stop",
                        json!({"type": "content_block_stop", "index": index}),
                    ));
                    index += 1;
                }
                out.push(ev(
                    "message_delta",
                    json!({"type": "message_delta",
                           "delta": {"stop_reason": stop_reason(&done.finish_reason), "stop_sequence": null},
                           "usage": {"input_tokens": done.usage.prompt_tokens, "output_tokens": done.usage.completion_tokens}}),
                ));
                out.push(ev("message_stop", json!({"type": "message_stop"})));
            }
            Some(ChatEvent::Failed(e)) => {
                st.done = true;
                out.push((
                    "error".to_owned(),
                    crate::error::anthropic_body(&e, &st.id).to_string(),
                ));
            }
            Some(ChatEvent::Broken { error, delivered }) => {
                st.done = true;
                st.meter.report(broken_report(&st.model, delivered));
                out.push((
                    "error".to_owned(),
                    crate::error::anthropic_body(&error, &st.id).to_string(),
                ));
            }
            None => {
                st.done = true;
                out.push(ev(
                    "error",
                    crate::error::anthropic_body(
                        &Error::internal("the engine stopped without finishing"),
                        &st.id,
                    ),
                ));
            }
        }
        Some((
            out.into_iter()
                .map(|(name, data)| (Some(name), data))
                .collect::<Vec<_>>(),
            st,
        ))
    });
    crate::ctx::sse_response(frames, meter)
}

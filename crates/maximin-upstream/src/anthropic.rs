//! Anthropic's Messages API as a chat provider: the chat-completions
//! request translated (system prompt to `system`, tool calls to `tool_use`
//! blocks, tool results to `tool_result` blocks in a user turn, stop
//! sequences, tool choice; JSON mode as an instruction, Anthropic having
//! none), and its answers and stream events translated back.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use maximin_core::catalog::ModelSpec;
use maximin_core::engines::{ChatEvent, ChatOutput, ChatProvider, ChatStream};
use maximin_core::{Error, Result};
use maximin_types::inference::{ChatCompletionRequest, ChatMessage, FunctionCall, Role, ToolCall};
use maximin_types::{ErrorCode, TokenUsage};
use serde_json::{json, Value};

use crate::openai::{pump, Step};
use crate::{broke, Client};

pub struct Anthropic {
    client: Arc<Client>,
}

impl Anthropic {
    pub fn new(client: Arc<Client>) -> Self {
        Anthropic { client }
    }
}

/// Tokens asked for when the request sets no `max_tokens` (Anthropic
/// requires one).
const DEFAULT_MAX_TOKENS: u32 = 4096;

/// Appends a turn, merging it into the previous one of the same role
/// (Anthropic wants user and assistant turns to alternate).
fn push_turn(turns: &mut Vec<Value>, role: &str, blocks: Vec<Value>) {
    if let Some(last) = turns.last_mut() {
        if last["role"] == role {
            if let Some(content) = last["content"].as_array_mut() {
                content.extend(blocks);
                return;
            }
        }
    }
    turns.push(json!({"role": role, "content": blocks}));
}

pub fn messages_body(model: &str, req: &ChatCompletionRequest, context: u32) -> Value {
    let mut system: Vec<String> = Vec::new();
    let mut turns: Vec<Value> = Vec::new();
    for m in &req.messages {
        let text = m.content.clone().unwrap_or_default();
        match m.role {
            Role::System => system.push(text),
            Role::User => push_turn(
                &mut turns,
                "user",
                vec![json!({"type": "text", "text": text})],
            ),
            Role::Assistant => {
                let mut blocks = Vec::new();
                if !text.is_empty() {
                    blocks.push(json!({"type": "text", "text": text}));
                }
                for c in m.tool_calls.iter().flatten() {
                    let input: Value =
                        serde_json::from_str(&c.function.arguments).unwrap_or_else(|_| json!({}));
                    blocks.push(json!({"type": "tool_use", "id": c.id, "name": c.function.name, "input": input}));
                }
                push_turn(&mut turns, "assistant", blocks);
            }
            Role::Tool => push_turn(
                &mut turns,
                "user",
                vec![json!({
                    "type": "tool_result",
                    "tool_use_id": m.tool_call_id.clone().unwrap_or_default(),
                    "content": text,
                })],
            ),
        }
    }
    if let Some(schema) = req.json_schema() {
        system.push(format!(
            "Answer with one JSON value only, no prose and no code fence, matching this JSON schema: {schema}"
        ));
    }
    let max_tokens = req
        .max_tokens
        .unwrap_or(DEFAULT_MAX_TOKENS.min(context.max(1)));
    let mut body = json!({
        "model": model,
        "messages": turns,
        "max_tokens": max_tokens,
        "stream": req.stream,
    });
    let o = body.as_object_mut().expect("object");
    if !system.is_empty() {
        o.insert("system".into(), json!(system.join("\n\n")));
    }
    if let Some(t) = req.temperature {
        // Anthropic's range is 0–1.
        o.insert("temperature".into(), json!(t.min(1.0)));
    }
    if let Some(p) = req.top_p {
        o.insert("top_p".into(), json!(p));
    }
    if let Some(stop) = &req.stop {
        o.insert("stop_sequences".into(), json!(stop.to_vec()));
    }
    if !req.tools.is_empty() {
        let tools: Vec<Value> = req
            .tools
            .iter()
            .map(|t| {
                let mut tool = json!({
                    "name": t.function.name,
                    "input_schema": t.function.parameters.clone().unwrap_or_else(|| json!({"type": "object"})),
                });
                if let Some(d) = &t.function.description {
                    tool["description"] = json!(d);
                }
                tool
            })
            .collect();
        o.insert("tools".into(), json!(tools));
        let choice = match &req.tool_choice {
            Some(Value::String(s)) if s == "none" => Some(json!({"type": "none"})),
            Some(Value::String(s)) if s == "required" => Some(json!({"type": "any"})),
            Some(Value::Object(c)) => c
                .get("function")
                .and_then(|f| f.get("name"))
                .map(|n| json!({"type": "tool", "name": n})),
            _ => None,
        };
        if let Some(choice) = choice {
            o.insert("tool_choice".into(), choice);
        }
    }
    body
}

fn finish_reason(stop: &str) -> &'static str {
    match stop {
        "max_tokens" => "length",
        "tool_use" => "tool_calls",
        _ => "stop",
    }
}

fn assistant(text: String, calls: Vec<ToolCall>) -> ChatMessage {
    let has_calls = !calls.is_empty();
    ChatMessage {
        role: Role::Assistant,
        content: if text.is_empty() && has_calls {
            None
        } else {
            Some(text)
        },
        name: None,
        tool_calls: has_calls.then_some(calls),
        tool_call_id: None,
    }
}

pub fn parse_message(v: &Value) -> Result<ChatOutput> {
    let blocks = v["content"].as_array().ok_or_else(|| {
        Error::new(
            ErrorCode::UpstreamError,
            "The upstream's answer has no content blocks.",
        )
        .with("reason", "malformed")
    })?;
    let mut text = String::new();
    let mut calls = Vec::new();
    for b in blocks {
        match b["type"].as_str() {
            Some("text") => text.push_str(b["text"].as_str().unwrap_or("")),
            Some("tool_use") => calls.push(ToolCall {
                id: b["id"].as_str().unwrap_or("").to_owned(),
                kind: "function".into(),
                function: FunctionCall {
                    name: b["name"].as_str().unwrap_or("").to_owned(),
                    arguments: b["input"].to_string(),
                },
            }),
            _ => {}
        }
    }
    Ok(ChatOutput {
        message: assistant(text, calls),
        finish_reason: finish_reason(v["stop_reason"].as_str().unwrap_or("end_turn")).to_owned(),
        usage: TokenUsage {
            prompt_tokens: v["usage"]["input_tokens"].as_u64().unwrap_or(0),
            completion_tokens: v["usage"]["output_tokens"].as_u64().unwrap_or(0),
        },
    })
}

/// A Messages stream read so far.
#[derive(Default)]
struct StreamState {
    text: String,
    /// Tool-use blocks by block index: id, name, input JSON as it arrives.
    calls: BTreeMap<u64, (String, String, String)>,
    stop: Option<String>,
    usage: TokenUsage,
}

impl StreamState {
    fn event(&mut self, v: &Value) -> Option<String> {
        match v["type"].as_str() {
            Some("message_start") => {
                let u = &v["message"]["usage"];
                self.usage.prompt_tokens = u["input_tokens"].as_u64().unwrap_or(0);
                self.usage.completion_tokens = u["output_tokens"].as_u64().unwrap_or(0);
                None
            }
            Some("content_block_start") => {
                let b = &v["content_block"];
                if b["type"] == "tool_use" {
                    let i = v["index"].as_u64().unwrap_or(0);
                    self.calls.insert(
                        i,
                        (
                            b["id"].as_str().unwrap_or("").to_owned(),
                            b["name"].as_str().unwrap_or("").to_owned(),
                            String::new(),
                        ),
                    );
                }
                None
            }
            Some("content_block_delta") => {
                let d = &v["delta"];
                match d["type"].as_str() {
                    Some("text_delta") => {
                        let t = d["text"].as_str().unwrap_or("");
                        self.text.push_str(t);
                        (!t.is_empty()).then(|| t.to_owned())
                    }
                    Some("input_json_delta") => {
                        let i = v["index"].as_u64().unwrap_or(0);
                        if let Some(c) = self.calls.get_mut(&i) {
                            c.2.push_str(d["partial_json"].as_str().unwrap_or(""));
                        }
                        None
                    }
                    _ => None,
                }
            }
            Some("message_delta") => {
                if let Some(s) = v["delta"]["stop_reason"].as_str() {
                    self.stop = Some(s.to_owned());
                }
                if let Some(n) = v["usage"]["output_tokens"].as_u64() {
                    self.usage.completion_tokens = n;
                }
                if let Some(n) = v["usage"]["input_tokens"].as_u64() {
                    self.usage.prompt_tokens = self.usage.prompt_tokens.max(n);
                }
                None
            }
            _ => None,
        }
    }

    fn output(self) -> ChatOutput {
        let calls = self
            .calls
            .into_values()
            .map(|(id, name, input)| ToolCall {
                id,
                kind: "function".into(),
                function: FunctionCall {
                    name,
                    arguments: if input.is_empty() { "{}".into() } else { input },
                },
            })
            .collect();
        ChatOutput {
            message: assistant(self.text, calls),
            finish_reason: finish_reason(self.stop.as_deref().unwrap_or("end_turn")).to_owned(),
            usage: self.usage,
        }
    }
}

#[async_trait]
impl ChatProvider for Anthropic {
    async fn start(
        &self,
        model: &ModelSpec,
        _weights: Option<&Path>,
        req: &ChatCompletionRequest,
    ) -> Result<ChatStream> {
        let name = model.upstream_model.as_deref().unwrap_or(&model.id);
        let body = messages_body(name, req, model.context_window);
        let res = self.client.post("/v1/messages", &body).await?;
        if !req.stream {
            let v: Value = res.json().await.map_err(|e| self.client.transport(e))?;
            return Ok(ChatStream::once(ChatEvent::Done(parse_message(&v)?)));
        }
        let upstream = self.client.name.clone();
        let mut state = Some(StreamState::default());
        Ok(pump(upstream.clone(), res, move |event| {
            let Some(st) = state.as_mut() else {
                return Step::Go(vec![]);
            };
            let Ok(v) = serde_json::from_str::<Value>(&event.data) else {
                return Step::Fail(broke(&upstream, "it sent an event that is not JSON"));
            };
            match v["type"].as_str() {
                Some("message_stop") => {
                    let st = state.take().unwrap_or_default();
                    Step::Done(ChatEvent::Done(st.output()))
                }
                Some("error") => {
                    let msg = v["error"]["message"].as_str().unwrap_or("an error event");
                    Step::Fail(broke(&upstream, &msg.chars().take(200).collect::<String>()))
                }
                _ => Step::Go(st.event(&v).map(ChatEvent::Delta).into_iter().collect()),
            }
        }))
    }
}

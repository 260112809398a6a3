//! OpenAI-compatible servers and the MiniMax cloud's native text API: the
//! same chat-completions shape, MiniMax adding `base_resp` (errors at HTTP
//! 200) and a final aggregate event to its streams.

use std::collections::{BTreeMap, VecDeque};
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use futures_util::StreamExt;
use maximin_core::catalog::ModelSpec;
use maximin_core::engines::{
    ChatEvent, ChatOutput, ChatProvider, ChatStream, EmbedOutput, EmbedProvider,
};
use maximin_core::{Error, Result};
use maximin_types::inference::{ChatCompletionRequest, ChatMessage, FunctionCall, Role, ToolCall};
use maximin_types::{ErrorCode, TokenUsage};
use serde_json::{json, Value};

use crate::sse::SseParser;
use crate::{broke, Client};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    OpenAi,
    MiniMax,
}

pub struct OpenAi {
    client: Arc<Client>,
    wire: Wire,
}

impl OpenAi {
    pub fn new(client: Arc<Client>, wire: Wire) -> Self {
        OpenAi { client, wire }
    }

    fn chat_path(&self) -> &'static str {
        match self.wire {
            Wire::OpenAi => "/chat/completions",
            Wire::MiniMax => "/v1/text/chatcompletion_v2",
        }
    }

    /// A MiniMax `base_resp` that is not success, as an error.
    fn check_base_resp(&self, v: &Value) -> Result<()> {
        if self.wire != Wire::MiniMax {
            return Ok(());
        }
        match v["base_resp"]["status_code"].as_i64() {
            None | Some(0) => Ok(()),
            Some(code) => Err(self
                .client
                .base_resp_error(code, v["base_resp"]["status_msg"].as_str().unwrap_or(""))),
        }
    }
}

/// The request body: the chat-completions shape with the provider's model
/// name, null fields left out.
pub fn chat_body(model: &str, req: &ChatCompletionRequest, wire: Wire) -> Value {
    let messages: Vec<Value> = req.messages.iter().map(message_json).collect();
    let mut body = json!({"model": model, "messages": messages, "stream": req.stream});
    let o = body.as_object_mut().expect("object");
    if let Some(t) = req.temperature {
        o.insert("temperature".into(), json!(t));
    }
    if let Some(p) = req.top_p {
        o.insert("top_p".into(), json!(p));
    }
    if let Some(n) = req.max_tokens {
        o.insert("max_tokens".into(), json!(n));
    }
    if let Some(stop) = &req.stop {
        o.insert("stop".into(), json!(stop.to_vec()));
    }
    if let Some(seed) = req.seed {
        o.insert("seed".into(), json!(seed));
    }
    if !req.tools.is_empty() {
        o.insert("tools".into(), json!(req.tools));
        if let Some(choice) = &req.tool_choice {
            let choice = match (wire, choice) {
                // MiniMax's native API takes only "none" and "auto".
                (Wire::MiniMax, Value::String(s)) if s == "none" => json!("none"),
                (Wire::MiniMax, _) => json!("auto"),
                (Wire::OpenAi, c) => c.clone(),
            };
            o.insert("tool_choice".into(), choice);
        }
    }
    if let Some(rf) = &req.response_format {
        o.insert("response_format".into(), rf.clone());
    }
    if req.stream {
        o.insert("stream_options".into(), json!({"include_usage": true}));
    }
    body
}

fn message_json(m: &ChatMessage) -> Value {
    let mut v = json!({"role": m.role, "content": m.content});
    if let Some(name) = &m.name {
        v["name"] = json!(name);
    }
    if let Some(calls) = &m.tool_calls {
        v["tool_calls"] = json!(calls);
    }
    if let Some(id) = &m.tool_call_id {
        v["tool_call_id"] = json!(id);
    }
    v
}

fn usage_of(v: &Value) -> Option<TokenUsage> {
    let u = v.get("usage")?;
    Some(TokenUsage {
        prompt_tokens: u["prompt_tokens"].as_u64()?,
        completion_tokens: u["completion_tokens"].as_u64().unwrap_or(0),
    })
}

fn calls_of(v: &Value) -> Option<Vec<ToolCall>> {
    let calls: Vec<ToolCall> = v
        .as_array()?
        .iter()
        .filter_map(|c| {
            Some(ToolCall {
                id: c["id"].as_str()?.to_owned(),
                kind: "function".into(),
                function: FunctionCall {
                    name: c["function"]["name"].as_str()?.to_owned(),
                    arguments: match &c["function"]["arguments"] {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    },
                },
            })
        })
        .collect();
    (!calls.is_empty()).then_some(calls)
}

/// A whole (non-streamed) answer.
pub fn parse_completion(v: &Value) -> Result<ChatOutput> {
    let choice = &v["choices"][0];
    let msg = &choice["message"];
    if !msg.is_object() {
        return Err(Error::new(
            ErrorCode::UpstreamError,
            "The upstream's answer has no choices[0].message.",
        )
        .with("reason", "malformed"));
    }
    let tool_calls = calls_of(&msg["tool_calls"]);
    let content = msg["content"].as_str().map(str::to_owned);
    Ok(ChatOutput {
        message: ChatMessage {
            role: Role::Assistant,
            content: if content.as_deref() == Some("") && tool_calls.is_some() {
                None
            } else {
                content.or_else(|| tool_calls.is_none().then(String::new))
            },
            name: None,
            tool_calls,
            tool_call_id: None,
        },
        finish_reason: choice["finish_reason"]
            .as_str()
            .unwrap_or("stop")
            .to_owned(),
        usage: usage_of(v).unwrap_or_default(),
    })
}

/// What a streamed answer has delivered so far.
#[derive(Default)]
pub struct StreamState {
    pub text: String,
    pub deltas: u64,
    pub calls: BTreeMap<u64, (String, String, String)>,
    pub finish: Option<String>,
    pub usage: Option<TokenUsage>,
}

impl StreamState {
    /// Reads one chunk; returns the text delta it carries.
    pub fn chunk(&mut self, v: &Value) -> Option<String> {
        if let Some(u) = usage_of(v) {
            self.usage = Some(u);
        }
        // MiniMax's aggregate last event repeats the whole message.
        if v["object"] == "chat.completion" {
            if let Some(f) = v["choices"][0]["finish_reason"].as_str() {
                self.finish.get_or_insert_with(|| f.to_owned());
            }
            return None;
        }
        let choice = &v["choices"][0];
        if let Some(f) = choice["finish_reason"].as_str() {
            self.finish = Some(f.to_owned());
        }
        let delta = &choice["delta"];
        if let Some(calls) = delta["tool_calls"].as_array() {
            for (n, c) in calls.iter().enumerate() {
                let index = c["index"].as_u64().unwrap_or(n as u64);
                let entry = self.calls.entry(index).or_default();
                if let Some(id) = c["id"].as_str() {
                    entry.0 = id.to_owned();
                }
                if let Some(name) = c["function"]["name"].as_str() {
                    entry.1.push_str(name);
                }
                match &c["function"]["arguments"] {
                    Value::String(s) => entry.2.push_str(s),
                    Value::Null => {}
                    other => entry.2.push_str(&other.to_string()),
                }
            }
        }
        match delta["content"].as_str() {
            Some(text) if !text.is_empty() => {
                self.text.push_str(text);
                self.deltas += 1;
                Some(text.to_owned())
            }
            _ => None,
        }
    }

    pub fn output(self) -> ChatOutput {
        let calls: Vec<ToolCall> = self
            .calls
            .into_values()
            .map(|(id, name, arguments)| ToolCall {
                id,
                kind: "function".into(),
                function: FunctionCall { name, arguments },
            })
            .collect();
        let has_calls = !calls.is_empty();
        ChatOutput {
            message: ChatMessage {
                role: Role::Assistant,
                content: if self.text.is_empty() && has_calls {
                    None
                } else {
                    Some(self.text)
                },
                name: None,
                tool_calls: has_calls.then_some(calls),
                tool_call_id: None,
            },
            finish_reason: self.finish.unwrap_or_else(|| "stop".into()),
            usage: self.usage.unwrap_or(TokenUsage {
                prompt_tokens: 0,
                completion_tokens: self.deltas,
            }),
        }
    }
}

/// An SSE body as chat events, parsed as the reader polls: until the answer
/// ends or the body breaks. Dropping it closes the upstream connection.
pub(crate) fn pump<F>(name: String, res: reqwest::Response, on_event: F) -> ChatStream
where
    F: FnMut(&crate::sse::SseEvent) -> Step + Send + 'static,
{
    struct St<B, F> {
        name: String,
        body: B,
        parser: SseParser,
        on_event: F,
        queue: VecDeque<ChatEvent>,
        ended: bool,
        body_done: bool,
    }
    let st = St {
        name,
        body: Box::pin(res.bytes_stream()),
        parser: SseParser::default(),
        on_event,
        queue: VecDeque::new(),
        ended: false,
        body_done: false,
    };
    let events = futures_util::stream::unfold(st, |mut st| async move {
        loop {
            if let Some(e) = st.queue.pop_front() {
                return Some((e, st));
            }
            if st.ended {
                return None;
            }
            let events = if st.body_done {
                Vec::new()
            } else {
                match st.body.next().await {
                    Some(Ok(bytes)) => st.parser.push(&bytes),
                    Some(Err(_)) => {
                        st.ended = true;
                        let e = broke(&st.name, "the connection failed mid-stream");
                        return Some((e, st));
                    }
                    None => {
                        st.body_done = true;
                        st.parser.finish().into_iter().collect()
                    }
                }
            };
            for event in &events {
                match (st.on_event)(event) {
                    Step::Go(events) => st.queue.extend(events),
                    Step::Done(last) | Step::Fail(last) => {
                        st.queue.push_back(last);
                        st.ended = true;
                        break;
                    }
                }
            }
            if st.body_done && !st.ended {
                st.ended = true;
                st.queue
                    .push_back(broke(&st.name, "the stream ended before the answer did"));
            }
        }
    });
    ChatStream::Stream(Box::pin(events))
}

/// What one SSE event leads to: events to pass on, the last one, or the
/// failure that ends the stream.
pub(crate) enum Step {
    Go(Vec<ChatEvent>),
    Done(ChatEvent),
    Fail(ChatEvent),
}

#[async_trait]
impl ChatProvider for OpenAi {
    async fn start(
        &self,
        model: &ModelSpec,
        _weights: Option<&Path>,
        req: &ChatCompletionRequest,
    ) -> Result<ChatStream> {
        let name = model.upstream_model.as_deref().unwrap_or(&model.id);
        let body = chat_body(name, req, self.wire);
        let res = self.client.post(self.chat_path(), &body).await?;
        if !req.stream {
            let v: Value = res.json().await.map_err(|e| self.client.transport(e))?;
            self.check_base_resp(&v)?;
            return Ok(ChatStream::once(ChatEvent::Done(parse_completion(&v)?)));
        }
        let me = OpenAi {
            client: self.client.clone(),
            wire: self.wire,
        };
        let mut state = Some(StreamState::default());
        let upstream = me.client.name.clone();
        Ok(pump(upstream.clone(), res, move |event| {
            let Some(st) = state.as_mut() else {
                return Step::Go(vec![]);
            };
            if event.data == "[DONE]" {
                let st = state.take().unwrap_or_default();
                return Step::Done(ChatEvent::Done(st.output()));
            }
            let v: Value = match serde_json::from_str(&event.data) {
                Ok(v) => v,
                Err(_) => return Step::Fail(broke(&upstream, "it sent an event that is not JSON")),
            };
            if let Some(e) = v.get("error").filter(|e| !e.is_null()) {
                let msg = e["message"].as_str().unwrap_or("an error event");
                return Step::Fail(broke(&upstream, &msg.chars().take(200).collect::<String>()));
            }
            if let Err(e) = me.check_base_resp(&v) {
                return Step::Fail(ChatEvent::Failed(e));
            }
            let delta = st.chunk(&v);
            // MiniMax ends with its aggregate event (no [DONE] promised).
            if me.wire == Wire::MiniMax && v["object"] == "chat.completion" {
                let st = state.take().unwrap_or_default();
                return Step::Done(ChatEvent::Done(st.output()));
            }
            Step::Go(delta.map(ChatEvent::Delta).into_iter().collect())
        }))
    }
}

#[async_trait]
impl EmbedProvider for OpenAi {
    async fn embed(
        &self,
        model: &ModelSpec,
        _weights: Option<&Path>,
        inputs: &[String],
        _truncate: bool,
    ) -> Result<EmbedOutput> {
        let name = model.upstream_model.as_deref().unwrap_or(&model.id);
        let (path, body) = match self.wire {
            Wire::OpenAi => ("/embeddings", json!({"model": name, "input": inputs})),
            Wire::MiniMax => (
                "/v1/embeddings",
                json!({"model": name, "texts": inputs, "type": "db"}),
            ),
        };
        let res = self.client.post(path, &body).await?;
        let v: Value = res.json().await.map_err(|e| self.client.transport(e))?;
        self.check_base_resp(&v)?;
        let malformed = || {
            Error::new(
                ErrorCode::UpstreamError,
                format!(
                    "The upstream '{}' answered embeddings in an unexpected shape.",
                    self.client.name
                ),
            )
            .with("reason", "malformed")
        };
        let vector = |v: &Value| -> Option<Vec<f32>> {
            v.as_array()?
                .iter()
                .map(|x| x.as_f64().map(|f| f as f32))
                .collect()
        };
        let (vectors, tokens) = match self.wire {
            Wire::OpenAi => {
                let mut data: Vec<&Value> =
                    v["data"].as_array().ok_or_else(malformed)?.iter().collect();
                data.sort_by_key(|d| d["index"].as_u64().unwrap_or(0));
                let vectors: Option<Vec<Vec<f32>>> =
                    data.iter().map(|d| vector(&d["embedding"])).collect();
                (vectors, v["usage"]["prompt_tokens"].as_u64())
            }
            Wire::MiniMax => {
                let vectors: Option<Vec<Vec<f32>>> = v["vectors"]
                    .as_array()
                    .ok_or_else(malformed)?
                    .iter()
                    .map(vector)
                    .collect();
                (vectors, v["total_tokens"].as_u64())
            }
        };
        let vectors = vectors.ok_or_else(malformed)?;
        if vectors.len() != inputs.len() {
            return Err(malformed());
        }
        Ok(EmbedOutput {
            vectors,
            prompt_tokens: tokens.unwrap_or(0),
        })
    }
}

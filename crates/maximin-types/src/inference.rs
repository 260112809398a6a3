//! Request and response bodies of the seed 002 inference endpoints.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::TokenUsage;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// `developer` (OpenAI's newer name) is read as `system`.
    #[serde(alias = "developer")]
    System,
    User,
    Assistant,
    Tool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ChatMessage {
    pub role: Role,
    /// Text of the message; may be absent on an assistant turn that only
    /// calls tools. An array of `{"type":"text","text":…}` parts is read as
    /// their text, joined.
    #[serde(default, deserialize_with = "text_or_parts")]
    pub content: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCall>>,
    /// On a `tool` message: the id of the call it answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
}

/// `content` as a string, or as OpenAI's array of content parts (text only).
fn text_or_parts<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    use serde::de::Error as _;
    let v = Option::<serde_json::Value>::deserialize(d)?;
    match v {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(s)) => Ok(Some(s)),
        Some(serde_json::Value::Array(parts)) => {
            let mut out = Vec::new();
            for p in parts {
                match (
                    p.get("type").and_then(|t| t.as_str()),
                    p.get("text").and_then(|t| t.as_str()),
                ) {
                    (Some("text"), Some(t)) => out.push(t.to_owned()),
                    (kind, _) => {
                        return Err(D::Error::custom(format!(
                            "content parts of type {} are not supported; send text",
                            kind.unwrap_or("(none)")
                        )))
                    }
                }
            }
            Ok(Some(out.join("\n")))
        }
        Some(_) => Err(D::Error::custom(
            "content must be a string or an array of text parts",
        )),
    }
}

/// What `max_tokens` takes, in the words of the error that refuses the rest.
pub const TOKEN_COUNT: &str = "a whole number from 1 to 4294967295";

/// `max_tokens`: absent, null, or a count of at least one token.
fn token_count<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    use serde::de::{Error as _, Unexpected};
    use serde_json::Value;
    let v = Option::<Value>::deserialize(d)?;
    let n = match v {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Number(n)) => n,
        Some(other) => {
            let got = match &other {
                Value::Bool(b) => Unexpected::Bool(*b),
                Value::String(s) => Unexpected::Str(s),
                Value::Array(_) => Unexpected::Seq,
                _ => Unexpected::Map,
            };
            return Err(D::Error::invalid_type(got, &TOKEN_COUNT));
        }
    };
    if let Some(c) = n
        .as_u64()
        .and_then(|c| u32::try_from(c).ok())
        .filter(|c| *c > 0)
    {
        return Ok(Some(c));
    }
    let got = match (n.as_u64(), n.as_i64()) {
        (Some(u), _) => Unexpected::Unsigned(u),
        (None, Some(i)) => Unexpected::Signed(i),
        _ => Unexpected::Float(n.as_f64().unwrap_or(f64::NAN)),
    };
    Err(D::Error::invalid_value(got, &TOKEN_COUNT))
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ToolCall {
    pub id: String,
    #[serde(rename = "type", default = "function_type")]
    pub kind: String,
    pub function: FunctionCall,
}

fn function_type() -> String {
    "function".into()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FunctionCall {
    pub name: String,
    /// JSON text of the arguments.
    pub arguments: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Tool {
    #[serde(rename = "type", default = "function_type")]
    pub kind: String,
    pub function: FunctionDef,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FunctionDef {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    /// JSON Schema of the arguments.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub parameters: Option<serde_json::Value>,
}

/// `stop`: one string or several.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum Stop {
    One(String),
    Many(Vec<String>),
}

impl Stop {
    pub fn to_vec(&self) -> Vec<String> {
        match self {
            Stop::One(s) => vec![s.clone()],
            Stop::Many(v) => v.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"model": "minimax-chat-v2", "messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 16}))]
pub struct ChatCompletionRequest {
    /// A catalog id or alias, e.g. `minimax-chat-v2`.
    pub model: String,
    #[schema(min_items = 1)]
    pub messages: Vec<ChatMessage>,
    #[serde(default)]
    pub stream: bool,
    #[serde(default)]
    #[schema(minimum = 0.0, maximum = 2.0)]
    pub temperature: Option<f32>,
    #[serde(default)]
    #[schema(exclusive_minimum = 0.0, maximum = 1.0)]
    pub top_p: Option<f32>,
    /// `max_completion_tokens` is read as the same; 1 to 4294967295.
    #[serde(
        default,
        alias = "max_completion_tokens",
        deserialize_with = "token_count"
    )]
    #[schema(minimum = 1)]
    pub max_tokens: Option<u32>,
    #[serde(default)]
    pub stop: Option<Stop>,
    #[serde(default)]
    pub seed: Option<u64>,
    #[serde(default)]
    pub tools: Vec<Tool>,
    /// `"auto"`, `"none"`, `"required"` or `{"type":"function","function":{"name":…}}`.
    #[serde(default)]
    pub tool_choice: Option<serde_json::Value>,
    /// `{"type":"text"}`, `{"type":"json_object"}` or
    /// `{"type":"json_schema","json_schema":{"name","schema"}}`: the reply is
    /// constrained to JSON (of that schema).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub response_format: Option<serde_json::Value>,
}

impl ChatCompletionRequest {
    /// The JSON schema the reply must follow, when `response_format` asks
    /// for JSON (`{"type":"object"}` for `json_object`).
    pub fn json_schema(&self) -> Option<serde_json::Value> {
        let rf = self.response_format.as_ref()?;
        match rf.get("type").and_then(|t| t.as_str()) {
            Some("json_object") => Some(serde_json::json!({"type": "object"})),
            Some("json_schema") => rf
                .get("json_schema")
                .and_then(|j| j.get("schema"))
                .cloned()
                .or_else(|| Some(serde_json::json!({"type": "object"}))),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ChatChoice {
    pub index: u32,
    pub message: ChatMessage,
    pub finish_reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ChatCompletion {
    pub id: String,
    pub object: String,
    pub created: String,
    pub model: String,
    pub choices: Vec<ChatChoice>,
    pub usage: TokenUsage,
}

/// `input`: one string or a batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum EmbeddingInput {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"model": "minimax-embed-v1", "input": ["a cat", "a dog"]}))]
pub struct EmbeddingsRequest {
    pub model: String,
    pub input: EmbeddingInput,
    /// `true` (default) truncates inputs longer than the model's window; `false`
    /// refuses them.
    #[serde(default = "yes")]
    pub truncate: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Embedding {
    pub index: u32,
    pub embedding: Vec<f32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct EmbeddingsResponse {
    pub object: String,
    pub model: String,
    pub embeddings: Vec<Embedding>,
}

//! Schemas of the compatibility surfaces: OpenAI's (`/openai/v1`) and
//! Anthropic's (`/anthropic/v1`) bodies and error objects, as far as
//! maximin reads and writes them. The handlers read these bodies as JSON
//! and translate them; these types exist for the document.

use maximin_types::inference::{ChatCompletionRequest, EmbeddingInput, FunctionCall};
use serde::Serialize;
use utoipa::ToSchema;

/// OpenAI's error object.
#[derive(Serialize, ToSchema)]
pub struct OpenAiError {
    /// The message, naming the field at fault, with maximin's code in parentheses.
    pub message: String,
    /// `invalid_request_error`, `authentication_error`, `permission_error`,
    /// `not_found_error`, `rate_limit_error`, `insufficient_quota` or `api_error`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The field at fault, or null.
    pub param: Option<String>,
    /// maximin's error code (`invalid_request`, …).
    pub code: String,
}

#[derive(Serialize, ToSchema)]
pub struct OpenAiErrorResponse {
    pub error: OpenAiError,
}

/// Anthropic's error object.
#[derive(Serialize, ToSchema)]
pub struct AnthropicError {
    /// `invalid_request_error`, `request_too_large`, `authentication_error`,
    /// `permission_error`, `billing_error`, `not_found_error`,
    /// `rate_limit_error`, `overloaded_error` or `api_error`.
    #[serde(rename = "type")]
    pub kind: String,
    pub message: String,
}

#[derive(Serialize, ToSchema)]
pub struct AnthropicErrorResponse {
    /// Always `error`.
    #[serde(rename = "type")]
    pub kind: String,
    pub error: AnthropicError,
    pub request_id: String,
}

#[derive(Serialize, ToSchema)]
pub struct OpenAiStreamOptions {
    /// A last chunk with `usage` and no choices.
    pub include_usage: Option<bool>,
}

/// OpenAI's chat body: the shared request and what OpenAI adds.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"model": "minimax-chat-v2", "messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 16, "stream": true, "stream_options": {"include_usage": true}}))]
pub struct OpenAiChatRequest {
    #[serde(flatten)]
    pub request: ChatCompletionRequest,
    /// Only 1.
    pub n: Option<u32>,
    /// Only false.
    pub logprobs: Option<bool>,
    pub stream_options: Option<OpenAiStreamOptions>,
}

#[derive(Serialize, ToSchema)]
pub struct OpenAiToolCall {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub function: FunctionCall,
}

#[derive(Serialize, ToSchema)]
pub struct OpenAiMessage {
    pub role: String,
    pub content: Option<String>,
    pub refusal: Option<String>,
    pub tool_calls: Option<Vec<OpenAiToolCall>>,
}

#[derive(Serialize, ToSchema)]
pub struct OpenAiChoice {
    pub index: u32,
    pub message: OpenAiMessage,
    pub finish_reason: String,
    #[schema(value_type = Option<Object>)]
    pub logprobs: Option<serde_json::Value>,
}

#[derive(Serialize, ToSchema)]
pub struct OpenAiUsage {
    pub prompt_tokens: u64,
    pub completion_tokens: Option<u64>,
    pub total_tokens: u64,
}

/// A `chat.completion`. Streamed: `chat.completion.chunk` events, then `[DONE]`.
#[derive(Serialize, ToSchema)]
pub struct OpenAiChatCompletion {
    pub id: String,
    pub object: String,
    /// Unix seconds.
    pub created: i64,
    pub model: String,
    pub choices: Vec<OpenAiChoice>,
    pub usage: OpenAiUsage,
}

#[derive(Serialize, ToSchema)]
#[schema(example = json!({"model": "minimax-embed-v1", "input": "a cat", "encoding_format": "base64"}))]
pub struct OpenAiEmbeddingsRequest {
    pub model: String,
    /// A string or up to 2,048 of them.
    pub input: EmbeddingInput,
    /// `float` (default) or `base64` (little-endian f32).
    pub encoding_format: Option<String>,
    /// Only the model's own dimension.
    pub dimensions: Option<u32>,
}

/// A vector as numbers, or as base64 of little-endian f32s.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum OpenAiVector {
    Float(Vec<f32>),
    Base64(String),
}

#[derive(Serialize, ToSchema)]
pub struct OpenAiEmbedding {
    pub object: String,
    pub index: u32,
    pub embedding: OpenAiVector,
}

#[derive(Serialize, ToSchema)]
pub struct OpenAiEmbeddingsResponse {
    pub object: String,
    pub data: Vec<OpenAiEmbedding>,
    pub model: String,
    pub usage: OpenAiUsage,
}

#[derive(Serialize, ToSchema)]
pub struct OpenAiModel {
    pub id: String,
    pub object: String,
    pub created: i64,
    pub owned_by: String,
}

/// The models this install serves now.
#[derive(Serialize, ToSchema)]
pub struct OpenAiModelList {
    pub object: String,
    pub data: Vec<OpenAiModel>,
}

#[derive(Serialize, ToSchema)]
pub struct VoiceRef {
    pub id: String,
}

/// A voice name, or `{"id": …}`.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum OpenAiVoice {
    Name(String),
    Ref(VoiceRef),
}

#[derive(Serialize, ToSchema)]
#[schema(example = json!({"model": "tts-1", "input": "Hello there.", "voice": "alloy", "response_format": "wav"}))]
pub struct OpenAiSpeechRequest {
    /// tts-1, tts-1-hd, gpt-4o-mini-tts, gpt-4o-tts or a speech-* id.
    pub model: String,
    /// Up to 10,000 characters.
    #[schema(min_length = 1, max_length = 10000)]
    pub input: String,
    /// OpenAI's names (alloy, echo, …) or any voice id of /v1/get_voice.
    pub voice: OpenAiVoice,
    /// mp3 (default), flac, wav or pcm (24 kHz s16le).
    pub response_format: Option<String>,
    /// 0.25 to 4 (synthesis clamps to 0.5–2).
    #[schema(minimum = 0.25, maximum = 4.0)]
    pub speed: Option<f32>,
}

/// A string, or an array of content blocks (`text`; `tool_use` in
/// assistant turns; `tool_result` in user turns).
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum AnthropicContent {
    Text(String),
    #[schema(value_type = Vec<Object>)]
    Blocks(Vec<serde_json::Value>),
}

#[derive(Serialize, ToSchema)]
pub struct AnthropicMessageParam {
    /// `user` or `assistant`.
    pub role: String,
    pub content: AnthropicContent,
}

#[derive(Serialize, ToSchema)]
pub struct AnthropicTool {
    pub name: String,
    pub description: Option<String>,
    /// JSON Schema of the input.
    #[schema(value_type = Option<Object>)]
    pub input_schema: Option<serde_json::Value>,
}

#[derive(Serialize, ToSchema)]
pub struct AnthropicToolChoice {
    /// `auto`, `any`, `tool` or `none`.
    #[serde(rename = "type")]
    pub kind: String,
    /// With `tool`.
    pub name: Option<String>,
}

/// Anthropic's Messages body.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"model": "minimax-chat-v2", "max_tokens": 16, "system": "Be brief.", "messages": [{"role": "user", "content": "Say hello."}]}))]
pub struct AnthropicMessagesRequest {
    pub model: String,
    #[schema(minimum = 1)]
    pub max_tokens: u32,
    #[schema(min_items = 1)]
    pub messages: Vec<AnthropicMessageParam>,
    pub system: Option<AnthropicContent>,
    pub tools: Option<Vec<AnthropicTool>>,
    pub tool_choice: Option<AnthropicToolChoice>,
    pub stop_sequences: Option<Vec<String>>,
    #[schema(minimum = 0.0, maximum = 2.0)]
    pub temperature: Option<f64>,
    #[schema(exclusive_minimum = 0.0, maximum = 1.0)]
    pub top_p: Option<f64>,
    pub stream: Option<bool>,
}

#[derive(Serialize, ToSchema)]
pub struct AnthropicContentBlock {
    /// `text` or `tool_use`.
    #[serde(rename = "type")]
    pub kind: String,
    pub text: Option<String>,
    pub id: Option<String>,
    pub name: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub input: Option<serde_json::Value>,
}

#[derive(Serialize, ToSchema)]
pub struct AnthropicUsage {
    pub input_tokens: u64,
    pub output_tokens: u64,
}

/// An Anthropic `message`. Streamed: message_start, ping,
/// content_block_start/delta/stop, message_delta, message_stop.
#[derive(Serialize, ToSchema)]
pub struct AnthropicMessage {
    pub id: String,
    /// `message`.
    #[serde(rename = "type")]
    pub kind: String,
    pub role: String,
    pub model: String,
    pub content: Vec<AnthropicContentBlock>,
    /// `end_turn`, `max_tokens` or `tool_use`.
    pub stop_reason: String,
    pub stop_sequence: Option<String>,
    pub usage: AnthropicUsage,
}

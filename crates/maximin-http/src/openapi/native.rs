//! Schemas of the MiniMax-native surface (spec §1–§11) that its handlers
//! build as JSON: files, async speech, voices, native text. Every native
//! response carries `base_resp`; an error is HTTP 200 with only
//! `base_resp` (non-zero `status_code`) and `trace_id`.

use maximin_types::inference::{ChatMessage, EmbeddingInput, Tool};
use maximin_types::speech::{
    AudioSetting, BaseResp, PronunciationDict, T2aExtraInfo, TimbreWeight, VoiceSetting,
};
use serde::Serialize;
use utoipa::ToSchema;

use super::platform::EmbeddingsResponseEnvelope;

/// A native error: HTTP 200, `base_resp.status_code` not 0 (1000 server
/// error, 1002 rate limit, 1004 authentication, 1008 insufficient balance,
/// 1033 upstream, 1042 illegal characters, 2013 invalid request, 2039 voice
/// id taken, 2048 prompt audio too long, 2061 permission or model, 20132
/// bad clip or voice), `status_msg` naming the field at fault.
#[derive(Serialize, ToSchema)]
pub struct NativeErrorResponse {
    pub base_resp: BaseResp,
    /// The request id.
    pub trace_id: String,
}

/// A file of the native file API.
#[derive(Serialize, ToSchema)]
pub struct FileObject {
    pub file_id: i64,
    pub bytes: u64,
    /// Unix seconds.
    pub created_at: i64,
    pub filename: String,
    pub purpose: String,
    /// `retrieve` only: a link that works without a key for 9 hours.
    pub download_url: Option<String>,
}

/// `POST /v1/files/upload` (multipart/form-data).
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"purpose": "t2a_async_input", "file": "A text to read aloud."}))]
pub struct FileUploadForm {
    /// voice_clone, prompt_audio, t2a_async_input, retrieval, assistants or fine-tune.
    pub purpose: String,
    /// The file; its content decides its kind (at most 512 MB).
    #[schema(value_type = String, format = Binary)]
    pub file: Vec<u8>,
}

#[derive(Serialize, ToSchema)]
pub struct FileResponse {
    pub file: FileObject,
    pub base_resp: BaseResp,
}

#[derive(Serialize, ToSchema)]
pub struct FileListResponse {
    pub files: Vec<FileObject>,
    pub base_resp: BaseResp,
}

#[derive(Serialize, ToSchema)]
pub struct FileDeleteResponse {
    pub file_id: i64,
    pub base_resp: BaseResp,
}

/// One line of a subtitle file (`subtitle_enable`), times in milliseconds.
#[derive(Serialize, ToSchema)]
pub struct SubtitleLine {
    pub text: String,
    pub time_begin: f64,
    pub time_end: f64,
}

/// `POST /v1/t2a_async_v2`: `text` or `text_file_id` (a txt or zip upload
/// with purpose `t2a_async_input`), up to 1,000,000 characters.
#[derive(ToSchema)]
#[schema(example = json!({"model": "speech-2.8-turbo", "text": "A longer text, read aloud later.", "voice_setting": {"voice_id": "English_Graceful_Lady"}}))]
pub struct T2aAsyncRequest {
    pub model: String,
    pub text: Option<String>,
    /// A number or a string of digits.
    pub text_file_id: Option<i64>,
    pub voice_setting: Option<VoiceSetting>,
    pub audio_setting: Option<AudioSetting>,
    pub pronunciation_dict: Option<PronunciationDict>,
    pub timbre_weights: Option<Vec<TimbreWeight>>,
    pub language_boost: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct T2aAsyncResponse {
    pub task_id: i64,
    pub task_token: String,
    /// The output file, reserved now and written when the task succeeds.
    pub file_id: Option<i64>,
    pub usage_characters: u64,
    pub base_resp: BaseResp,
}

/// Why a task failed.
#[derive(Serialize, ToSchema)]
pub struct TaskError {
    pub code: Option<String>,
    pub message: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct T2aAsyncQueryResponse {
    pub task_id: i64,
    /// `Processing`, `Success`, `Failed` or `Expired` (the output was deleted).
    pub status: String,
    pub file_id: Option<i64>,
    /// On success: lengths and counts of the output.
    #[schema(value_type = Option<Object>)]
    pub extra_info: Option<serde_json::Value>,
    /// On failure.
    pub error: Option<TaskError>,
    pub base_resp: BaseResp,
}

#[derive(Serialize, ToSchema)]
pub struct VoiceDesignResponse {
    pub voice_id: String,
    /// Hex of an mp3.
    pub trial_audio: String,
    pub base_resp: BaseResp,
}

#[derive(Serialize, ToSchema)]
pub struct VoiceCloneResponse {
    pub input_sensitive: bool,
    pub input_sensitive_type: i64,
    /// A link to the preview (with `text` and `model`), else `""`.
    pub demo_audio: String,
    pub extra_info: Option<T2aExtraInfo>,
    pub base_resp: BaseResp,
}

#[derive(Serialize, ToSchema)]
pub struct DeleteVoiceResponse {
    pub voice_id: String,
    /// Unix seconds, as a string.
    pub created_time: String,
    pub base_resp: BaseResp,
}

/// `POST /v1/text/chatcompletion_v2`.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"model": "minimax-chat-v2", "messages": [{"role": "user", "content": "Say hello."}], "max_completion_tokens": 16}))]
pub struct NativeChatRequest {
    pub model: String,
    #[schema(min_items = 1)]
    pub messages: Vec<ChatMessage>,
    pub stream: Option<bool>,
    /// `max_tokens` is read as the same (send one of them).
    #[schema(minimum = 1)]
    pub max_completion_tokens: Option<u32>,
    #[schema(minimum = 0.0, maximum = 2.0)]
    pub temperature: Option<f32>,
    #[schema(exclusive_minimum = 0.0, maximum = 1.0)]
    pub top_p: Option<f32>,
    pub tools: Option<Vec<Tool>>,
    /// `none` or `auto`.
    pub tool_choice: Option<String>,
    /// `{"type":"json_schema","json_schema":{"name","schema"}}` and the like.
    #[schema(value_type = Option<Object>)]
    pub response_format: Option<serde_json::Value>,
    /// Accepted; the last event always carries the usage.
    #[schema(value_type = Option<Object>)]
    pub stream_options: Option<serde_json::Value>,
}

#[derive(Serialize, ToSchema)]
pub struct NativeToolCall {
    pub index: u32,
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub function: maximin_types::inference::FunctionCall,
}

#[derive(Serialize, ToSchema)]
pub struct NativeChatMessage {
    pub role: String,
    pub content: String,
    pub name: String,
    pub audio_content: String,
    pub tool_calls: Option<Vec<NativeToolCall>>,
}

#[derive(Serialize, ToSchema)]
pub struct NativeChatChoice {
    pub finish_reason: String,
    pub index: u32,
    pub message: NativeChatMessage,
}

#[derive(Serialize, ToSchema)]
pub struct NativeChatUsage {
    pub total_tokens: u64,
    pub total_characters: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
}

/// A native chat completion; streamed, the last event before `[DONE]` is
/// this whole object and the ones before are `chat.completion.chunk`s.
#[derive(Serialize, ToSchema)]
pub struct NativeChatCompletion {
    pub id: String,
    pub object: String,
    /// Unix seconds.
    pub created: i64,
    pub model: String,
    pub choices: Vec<NativeChatChoice>,
    pub usage: NativeChatUsage,
    pub input_sensitive: bool,
    pub output_sensitive: bool,
    pub input_sensitive_type: i64,
    pub output_sensitive_type: i64,
    pub output_sensitive_int: i64,
    pub base_resp: BaseResp,
}

/// `POST /v1/embeddings` in MiniMax's shape.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"model": "embo-01", "texts": ["a cat"], "type": "db"}))]
pub struct NativeEmbeddingsRequest {
    pub model: String,
    pub texts: Vec<String>,
    /// `db` (texts to store) or `query` (search queries).
    #[serde(rename = "type")]
    pub kind: String,
}

#[derive(Serialize, ToSchema)]
pub struct NativeEmbeddingsResponse {
    pub vectors: Vec<Vec<f32>>,
    pub total_tokens: u64,
    pub base_resp: BaseResp,
}

/// `POST /v1/embeddings` in the seed 002 shape.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"model": "minimax-embed-v1", "input": ["a cat", "a dog"]}))]
pub struct PlatformEmbeddingsRequest {
    pub model: String,
    pub input: EmbeddingInput,
    /// `true` (default) truncates inputs longer than the model's window; `false` refuses them.
    pub truncate: Option<bool>,
}

/// The body decides the shape of `POST /v1/embeddings`: `input` is seed
/// 002's, `texts` (without `input`) MiniMax's.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum EmbeddingsBody {
    Platform(PlatformEmbeddingsRequest),
    Native(NativeEmbeddingsRequest),
}

/// The seed 002 envelope for an `input` body; MiniMax's reply, or its
/// error at HTTP 200, for a `texts` body.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum EmbeddingsReply {
    Platform(EmbeddingsResponseEnvelope),
    Native(NativeEmbeddingsResponse),
    NativeError(NativeErrorResponse),
}

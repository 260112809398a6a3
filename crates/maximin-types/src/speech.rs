//! Wire types of the MiniMax-native speech API (`/v1/t2a_v2`, seed 003 and
//! spec §3): field names exactly as MiniMax clients send and read them.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `POST /v1/t2a_v2`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[schema(example = json!({"model": "speech-2.8-turbo", "text": "Hello there.", "voice_setting": {"voice_id": "English_Graceful_Lady"}}))]
pub struct T2aRequest {
    /// `speech-2.8-hd`, `speech-2.8-turbo`, … (an `*-hd` id speaks with neural
    /// voices where the language has one, a `*-turbo` id with espeak-ng).
    pub model: String,
    /// At most 10,000 characters. `<#x#>` inserts a pause of x seconds.
    pub text: String,
    #[serde(default)]
    pub stream: bool,
    #[serde(default)]
    pub stream_options: Option<StreamOptions>,
    #[serde(default)]
    pub voice_setting: Option<VoiceSetting>,
    #[serde(default)]
    pub audio_setting: Option<AudioSetting>,
    #[serde(default)]
    pub pronunciation_dict: Option<PronunciationDict>,
    /// Mixes up to 4 voices by weight (`timber_weights` is accepted too).
    #[serde(default, alias = "timber_weights")]
    pub timbre_weights: Option<Vec<TimbreWeight>>,
    #[serde(default)]
    pub language_boost: Option<String>,
    #[serde(default)]
    pub subtitle_enable: bool,
    /// `hex` (default) or `url`.
    #[serde(default)]
    pub output_format: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
pub struct StreamOptions {
    /// Leave the whole audio out of the final frame.
    #[serde(default)]
    pub exclude_aggregated_audio: bool,
}

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
pub struct VoiceSetting {
    #[serde(default)]
    pub voice_id: String,
    /// 0.5–2.0, default 1.
    #[serde(default)]
    pub speed: Option<f32>,
    /// (0, 10], default 1.
    #[serde(default)]
    pub vol: Option<f32>,
    /// −12–12 semitones, default 0.
    #[serde(default)]
    pub pitch: Option<f32>,
    /// happy, sad, angry, fearful, disgusted, surprised, calm, fluent, whisper.
    #[serde(default)]
    pub emotion: Option<String>,
    #[serde(default, alias = "english_normalization")]
    pub text_normalization: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
pub struct AudioSetting {
    /// 8000, 16000, 22050, 24000, 32000 (default), 44100.
    #[serde(default, alias = "audio_sample_rate")]
    pub sample_rate: Option<u32>,
    /// MP3 only: 32000, 64000, 128000 (default), 256000.
    #[serde(default)]
    pub bitrate: Option<u32>,
    /// mp3 (default), pcm, flac, wav (not when streaming).
    #[serde(default)]
    pub format: Option<String>,
    /// 1 (default) or 2.
    #[serde(default)]
    pub channel: Option<u16>,
}

/// `{"tone": ["original/replacement", …]}`.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
pub struct PronunciationDict {
    #[serde(default)]
    pub tone: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct TimbreWeight {
    pub voice_id: String,
    /// 1–100.
    pub weight: u32,
}

/// `base_resp` of every native response.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BaseResp {
    pub status_code: i64,
    pub status_msg: String,
}

impl BaseResp {
    pub fn success() -> Self {
        BaseResp {
            status_code: 0,
            status_msg: "success".into(),
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct T2aData {
    /// Hex of the audio bytes, or a URL with `output_format: url`.
    pub audio: String,
    /// 1 while streaming, 2 when done.
    pub status: u8,
    /// With `output_format: url`: the same URL as `audio` (some clients read this name).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audio_url: Option<String>,
    /// With `subtitle_enable`: URL of a JSON array of `{text, time_begin, time_end}` (ms).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subtitle_file: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct T2aExtraInfo {
    /// Milliseconds.
    pub audio_length: u64,
    pub audio_sample_rate: u32,
    /// Bytes.
    pub audio_size: u64,
    pub bitrate: u32,
    pub word_count: u64,
    pub invisible_character_ratio: f64,
    pub usage_characters: u64,
    pub audio_format: String,
    pub audio_channel: u16,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct T2aResponse {
    pub data: Option<T2aData>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extra_info: Option<T2aExtraInfo>,
    pub trace_id: String,
    pub base_resp: BaseResp,
}

/// `POST /v1/get_voice`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[schema(example = json!({"voice_type": "all"}))]
pub struct GetVoiceRequest {
    /// `system`, `voice_cloning`, `voice_generation` or `all`.
    pub voice_type: String,
}

/// One voice of `POST /v1/get_voice`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct VoiceEntry {
    pub voice_id: String,
    /// System voices only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub voice_name: Option<String>,
    pub description: Vec<String>,
    /// `yyyy-mm-dd` (`1970-01-01` for system voices).
    pub created_time: String,
}

/// The voices of the types asked for; the other arrays are absent.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct GetVoiceResponse {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system_voice: Option<Vec<VoiceEntry>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub voice_cloning: Option<Vec<VoiceEntry>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub voice_generation: Option<Vec<VoiceEntry>>,
    pub base_resp: BaseResp,
}

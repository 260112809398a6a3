//! In-process audio for maximin's speech APIs; no external programs.
//!
//! - [`Pcm`]: interleaved `f32` samples with a rate and a channel count, and the
//!   small operations the speech paths need (duration, down-mix, resampling,
//!   gain, level).
//! - [`resample`]: a windowed-sinc resampler that keeps its state across calls, so
//!   a stream resampled chunk by chunk equals the same audio resampled at once.
//! - [`Format`], [`AudioSettings`]: the MiniMax T2A `audio_setting` values this
//!   crate serves, and their validation (errors name the wire field).
//! - [`Encoder`]: streaming encoder (mono in, any supported rate); every
//!   [`Encoder::push`] returns the bytes ready now, and all of them plus
//!   [`Encoder::finish`] form one valid file. [`encode_whole`] writes a whole
//!   clip with exact sizes.
//! - [`decode`]: MP3, WAV, FLAC, AAC/M4A and Ogg Vorbis to [`Pcm`] (symphonia),
//!   the container found from the bytes, never from a name.
//! - [`analysis`]: pitch track (YIN) and [`analysis::VoiceStats`] for voice
//!   profiles.

pub mod analysis;
mod decode;
mod encode;
mod flac;
mod pcm;
pub mod resample;
mod settings;
mod wav;

pub use decode::decode;
pub use encode::{encode_whole, Encoder, WholeEnd};
pub use pcm::Pcm;
pub use settings::{
    mp3_bitrate_for, AudioSettings, Format, ALLOWED_BITRATES, ALLOWED_CHANNELS,
    ALLOWED_SAMPLE_RATES,
};

/// Everything that can go wrong in this crate.
#[derive(Debug, thiserror::Error)]
pub enum AudioError {
    /// A request value outside what the API accepts; `field` is the wire path
    /// (`audio_setting.sample_rate`, …) so the HTTP layer can name it.
    #[error("invalid {field}: {message}")]
    InvalidSetting {
        field: &'static str,
        message: String,
    },
    /// The encoder library refused or failed (not the caller's fault).
    #[error("audio encoding failed: {0}")]
    Encode(String),
    /// The bytes are not audio this crate can read, or are damaged.
    #[error("could not decode audio: {0}")]
    Decode(String),
}

impl AudioError {
    /// The wire field an [`AudioError::InvalidSetting`] is about.
    pub fn field(&self) -> Option<&'static str> {
        match self {
            AudioError::InvalidSetting { field, .. } => Some(field),
            _ => None,
        }
    }
}

pub type Result<T, E = AudioError> = std::result::Result<T, E>;

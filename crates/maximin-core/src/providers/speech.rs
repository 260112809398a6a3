//! The speech provider: one text, one voice and its settings in; audio out,
//! either as samples (a local engine's, which the speech service encodes)
//! or as bytes already encoded in the format the job asks for (an
//! upstream's, passed through as they are), and the characters billed.
//!
//! A provider is reached by the catalog's `engine` name in
//! [`Engines::speech`](crate::engines::Engines::speech): a local engine's
//! name (`piper`, `espeak-ng`: [`SpeechEngine`](crate::engines::SpeechEngine)s
//! behind a wrapper that schedules their sentences) or `upstream:NAME`.

use async_trait::async_trait;
use tokio::sync::mpsc;

use crate::catalog::ModelSpec;
use crate::engines::{EngineVoice, Gender, Prosody, SpeechAudio};
use crate::{speech, Error, Result};

/// How many events a provider sends ahead of its listener: the channel's
/// capacity, so a slow listener (a client reading a stream) holds the
/// synthesis back instead of letting audio pile up.
pub const EVENTS_AHEAD: usize = 4;

/// The voice a job speaks with, as the speech service resolved it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SpeechVoice {
    /// The provider's own id of it: a local engine's voice (`en_US-joe-medium`,
    /// `en-us+f3`), or the voice id an upstream knows (MiniMax's
    /// `male-qn-qingse`, OpenAI's `alloy`).
    pub id: String,
    /// Lower-case language tag (`en-us`, `cmn`); empty when unknown.
    pub language: String,
    pub gender: Option<Gender>,
    /// For an upstream: the voices to mix by weight, as the client named
    /// them (MiniMax's `timbre_weights`); empty otherwise (a local mix is
    /// already in the job's prosody).
    pub mix: Vec<(String, u32)>,
}

/// How to speak, as the request put it (an upstream takes these as they are;
/// a local engine reads [`SpeechJob::prosody`]).
#[derive(Debug, Clone, PartialEq)]
pub struct VoiceSettings {
    /// Speaking-rate factor, 0.5–2.
    pub speed: f32,
    /// Loudness factor, (0, 10].
    pub volume: f32,
    /// Pitch shift in whole semitones, −12–12.
    pub pitch: f32,
    /// One of [`speech::EMOTIONS`].
    pub emotion: Option<String>,
}

impl Default for VoiceSettings {
    fn default() -> Self {
        VoiceSettings {
            speed: 1.0,
            volume: 1.0,
            pitch: 0.0,
            emotion: None,
        }
    }
}

/// The audio a job asks for: the T2A `audio_setting` values, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioOutput {
    /// `mp3`, `pcm` (16-bit little-endian), `flac` or `wav`.
    pub format: String,
    /// Hz.
    pub sample_rate: u32,
    /// MP3 bits per second.
    pub bitrate: u32,
    pub channels: u16,
}

/// T2A's defaults: mono mp3, 32 kHz, 128 kbit/s.
impl Default for AudioOutput {
    fn default() -> Self {
        AudioOutput {
            format: "mp3".into(),
            sample_rate: 32_000,
            bitrate: 128_000,
            channels: 1,
        }
    }
}

/// What a provider is asked to speak.
#[derive(Debug, Clone, Default)]
pub struct SpeechJob {
    /// The text as the client sent it: `<#x#>` marks a pause of x seconds;
    /// illegal (control) characters are still in it.
    pub text: String,
    /// Pronunciation rules, `(original, replacement)`, applied in order.
    pub pronunciation: Vec<(String, String)>,
    /// The request's `language_boost` as sent (`English`, `auto`, …).
    pub language_boost: Option<String>,
    pub voice: SpeechVoice,
    pub settings: VoiceSettings,
    /// The settings as a local engine applies them: speed, pitch and
    /// emotion, and an account's own voice's offsets (volume and energy are
    /// a gain the service applies to samples).
    pub prosody: Prosody,
    pub output: AudioOutput,
    /// Whether the audio leaves whole (one file, sizes exact) rather than as
    /// a stream (which a listener plays while it arrives: the first audio
    /// matters most).
    pub whole: bool,
}

impl SpeechJob {
    /// The text as it is spoken: illegal characters removed, then the
    /// pronunciation rules applied.
    pub fn spoken_text(&self) -> String {
        let mut text = speech::clean(&self.text);
        for (from, to) in &self.pronunciation {
            text = text.replace(from.as_str(), to);
        }
        text
    }

    /// The characters the job bills by MiniMax's rule
    /// ([`speech::usage_characters`]).
    pub fn billed_characters(&self) -> u64 {
        speech::usage_characters(&self.text)
    }
}

/// What a provider reports, in order, ending with exactly one `Done` or
/// `Failed`. A job's audio is either samples (`Audio`, with `Pause` and
/// `Sentence` marks) or encoded bytes (`Encoded`), never both.
#[derive(Debug, Clone)]
pub enum SpeechEvent {
    /// Mono samples, the next of the audio. One rate throughout a job.
    Audio(SpeechAudio),
    /// Silence of this many seconds.
    Pause(f32),
    /// The sentence whose audio came since the last `Sentence` or `Pause`
    /// ends here: its text, for subtitles.
    Sentence(String),
    /// The next bytes of the audio, encoded in the job's
    /// [`AudioOutput`] (format and sample rate) as they are to be delivered:
    /// a provider that cannot give that format sends samples instead.
    Encoded(Vec<u8>),
    Done(SpeechDone),
    Failed(Error),
}

/// The end of a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpeechDone {
    /// Characters billed: the provider's own count, or
    /// [`SpeechJob::billed_characters`].
    pub characters: u64,
    /// The audio's length in milliseconds, when the provider knows it (an
    /// upstream's encoded audio); for samples the service counts them.
    pub audio_ms: Option<u64>,
}

/// A speech provider: a local engine (wrapped) or an upstream.
#[async_trait]
pub trait SpeechProvider: Send + Sync + 'static {
    /// The voices it offers under their own ids (the service picks among
    /// them by language and gender). An upstream may list none: the voice
    /// ids clients send go to it as they are.
    fn voices(&self) -> Vec<EngineVoice> {
        Vec::new()
    }

    /// Looks again for voices and libraries installed since it was built.
    fn refresh(&self) {}

    /// Starts speaking `job` with `model`: an error refuses the job before
    /// any audio (a voice it cannot speak, an upstream that refused),
    /// otherwise the events arrive on the receiver (at most
    /// [`EVENTS_AHEAD`] ahead of the listener). Dropping the receiver
    /// cancels the work.
    async fn start(&self, model: &ModelSpec, job: SpeechJob)
        -> Result<mpsc::Receiver<SpeechEvent>>;
}

/// The channel a provider sends a job's events on.
pub fn events() -> (mpsc::Sender<SpeechEvent>, mpsc::Receiver<SpeechEvent>) {
    mpsc::channel(EVENTS_AHEAD)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spoken_text_is_cleaned_then_rewritten_and_the_sent_text_billed() {
        let rules = [("Tom", "Thomas"), ("read", "red")];
        let j = SpeechJob {
            text: "Tom\u{7} read it. Tom!".into(),
            pronunciation: rules.map(|(a, b)| (a.to_owned(), b.to_owned())).to_vec(),
            ..SpeechJob::default()
        };
        assert_eq!(j.spoken_text(), "Thomas red it. Thomas!");
        // Billed as sent: every character but whitespace and control ones.
        assert_eq!(j.billed_characters(), 14);
    }
}

//! The speech use-cases, for every surface that speaks (`/v1/t2a_v2` whole
//! and streamed, its WebSocket, async tasks, OpenAI's `audio/speech`, voice
//! previews). Surfaces parse their wire shapes into a
//! [`T2aRequest`](maximin_types::speech::T2aRequest) and render what comes
//! back; everything between is here.
//!
//! - [`plan`]: a request checked and resolved into a [`Plan`]: the model →
//!   its speech provider, the voice id → a provider voice (an account's own
//!   voices and `timbre_weights` mixes as parameters over a local voice), the
//!   settings, the output format.
//! - [`Synth`]: the plan's audio from its provider, piece by piece: samples
//!   encoded (or encoded bytes passed through), sentences timed for
//!   [`subtitles`], `extra_info` and the characters billed at the end.
//! - [`LocalSpeech`]: the provider over a local engine, which schedules its
//!   sentences (the first of a stream alone, the rest side by side).
//! - [`Outputs`]: audio and subtitle files behind signed links;
//!   [`voices`]: the system voice list, voice design and cloning helpers;
//!   [`task`]: the async speech task and its handler.

pub mod local;
pub mod output;
pub mod plan;
pub mod subtitles;
pub mod synth;
mod tar;
pub mod task;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
#[cfg(test)]
mod upstream_tests;
pub mod voice;
pub mod voices;

pub use local::LocalSpeech;
pub use output::Outputs;
pub use plan::{
    check_text, check_text_within, plan, plan_with, reserve, Plan, UsedVoices, MAX_T2A_CHARS,
};
pub use subtitles::Subtitle;
pub use synth::{speak_whole, Spoken, Synth, Whole};
pub use task::task_handlers;
pub use voice::{is_system_voice, own_voices, voice_ids, OwnVoices, ESPEAK_PREFIX};

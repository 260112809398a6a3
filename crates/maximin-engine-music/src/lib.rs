//! Local music with no weights: a **rule-based composer** whose arrangement
//! is rendered by **FluidLite** (FluidSynth's lightweight fork) with a
//! General MIDI soundfont (Debian's `fluid-soundfont-gm`), and a sung line
//! made from words the caller's speech engine speaks. It is not a neural
//! model: nothing here was trained, and it sounds like what it is — a
//! General MIDI band playing a generated tune, with a pitch-corrected
//! speaking voice on top.
//!
//! - [`compose`]: the prompt is read for genre (pop, rock, metal, jazz,
//!   blues, folk, country, electronic/EDM, hip hop, R&B, lo-fi, classical,
//!   ambient, reggae, funk), mood (happy, sad, calm, energetic, dark,
//!   romantic), tempo (an explicit "120 bpm" or words like "slow"), key
//!   ("in D minor"; minor for sad or dark moods) and instruments named
//!   (General MIDI programs). The form follows the lyrics' tags (`[Intro]`,
//!   `[Verse]`, `[Pre Chorus]`, `[Chorus]`, `[Bridge]`, `[Outro]`…) or a
//!   default form for instrumentals; chords come from the genre's
//!   progressions; the melody puts chord tones on strong beats and steps
//!   between; bass and drums follow genre patterns on channel 10 (0-based 9).
//!   Lyric lines are split into syllables (rules for Latin script, one per
//!   character for CJK), one per melody note. The same request (seed
//!   included) always gives the same arrangement.
//! - [`Synth`]: the soundfont loaded once; [`render`] feeds the note events
//!   in time order and renders blocks in memory (no MIDI file, nothing on
//!   disk), asks the caller's `sing` callback for each distinct word, cuts
//!   words into syllables, moves each to its note's pitch and length
//!   (TD-PSOLA), ducks the instruments a little under the voice and
//!   normalises the mix.
//!
//! Licences: FluidLite is LGPL-2.1-or-later (built from the `fluidlite-sys`
//! crate's bundled source); the FluidR3_GM soundfont is MIT.

mod compose;
mod lyrics;
mod midi;
mod render;
mod rng;
mod style;
mod synth;
mod theory;
mod vocal;

pub use compose::{
    compose, Arrangement, Note, Section, Style, SungNote, Track, DEFAULT_INSTRUMENTAL_S,
    DRUM_CHANNEL, MAX_SECONDS, MIN_SECONDS, TAIL_S,
};
pub use lyrics::SectionKind;
pub use render::{render, Song, SpokenWord, MAX_RATE, MIN_RATE};
pub use style::{Genre, Instrument, Mood, Role};
pub use synth::{Synth, DEBIAN_SOUNDFONT, SOUNDFONT_PACKAGE, SYNTH_RATE};
pub use theory::{Chord, Key, Mode, Quality};

use std::path::PathBuf;

/// What to compose.
#[derive(Debug, Clone, PartialEq)]
pub struct SongRequest {
    /// Free text: genre, mood, tempo, key, instruments.
    pub prompt: String,
    /// Lines, with section tags such as `[Verse]` or `[Chorus]` on lines of
    /// their own.
    pub lyrics: Option<String>,
    /// No sung line: the melody instrument plays the tune instead.
    pub instrumental: bool,
    pub seed: u64,
    /// The rate the caller will render at (kept for the caller; [`render`]
    /// takes the rate it renders at).
    pub sample_rate: u32,
    /// Length wanted. Without lyrics the song lasts exactly this (clamped to
    /// [`MIN_SECONDS`]..=[`MAX_SECONDS`]); with lyrics it is a ceiling (lines
    /// that do not fit are left out) and shorter songs are padded with
    /// instrumental bars. `None`: the lyrics' length, or
    /// [`DEFAULT_INSTRUMENTAL_S`].
    pub target_seconds: Option<f32>,
}

impl Default for SongRequest {
    fn default() -> Self {
        Self {
            prompt: String::new(),
            lyrics: None,
            instrumental: false,
            seed: 0,
            sample_rate: 44_100,
            target_seconds: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MusicError {
    #[error(
        "no soundfont at {}: install the Debian package `fluid-soundfont-gm` \
         (apt-get install fluid-soundfont-gm), which provides {}",
        path.display(),
        DEBIAN_SOUNDFONT
    )]
    SoundfontMissing { path: PathBuf },
    #[error("the soundfont {} could not be loaded: {reason}", path.display())]
    SoundfontLoad { path: PathBuf, reason: String },
    #[error("synthesiser: {0}")]
    Synth(String),
    #[error("sample rate {0} Hz is outside 8000..=192000")]
    InvalidSampleRate(u32),
    #[error("cancelled")]
    Cancelled,
}

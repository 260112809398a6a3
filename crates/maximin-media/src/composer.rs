//! The local music engine (feature `music`): `maximin-engine-music`'s
//! rule-based composer (the prompt's genre, mood, tempo and instruments, the
//! lyrics' sections) rendered by FluidLite with Debian's General MIDI
//! soundfont, the lyrics sung by a local speech engine (its words spoken
//! monotone, then moved onto the melody's pitches and timing), encoded as
//! `audio_setting` asks. No weights, and not a neural model.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use maximin_audio::{AudioSettings, Format, Pcm};
use maximin_core::catalog::ModelSpec;
use maximin_core::engines::{Prosody, SpeechEngine};
use maximin_core::providers::media::{Music, MusicJob, MusicProvider, Work};
use maximin_core::{Error, Result};
use maximin_engine_music::{compose, render, MusicError, SongRequest, Synth};
use maximin_types::ErrorCode;
use tokio::sync::Semaphore;

/// The engine's catalog name.
pub const ENGINE: &str = "composer";

/// Songs composed and rendered here.
pub struct Composer {
    /// The soundfont to load.
    soundfont: std::path::PathBuf,
    /// The synthesiser, made on the first song: reading Debian's 141 MB
    /// soundfont takes about 300 ms, which a start should not wait for.
    synth: tokio::sync::OnceCell<Arc<Synth>>,
    /// Sings the lyrics: a local speech engine and its voice id.
    voice: Option<(Arc<dyn SpeechEngine>, String)>,
    running: Arc<Semaphore>,
}

impl Composer {
    /// The composer with the soundfont (Debian's `fluid-soundfont-gm` unless
    /// `path`), which must be there; it is read on the first song.
    pub fn load(
        soundfont: Option<std::path::PathBuf>,
        voice: Option<(Arc<dyn SpeechEngine>, String)>,
    ) -> std::result::Result<Self, String> {
        let path = soundfont
            .or_else(Synth::default_soundfont)
            .unwrap_or_else(|| maximin_engine_music::DEBIAN_SOUNDFONT.into());
        if !path.is_file() {
            return Err(MusicError::SoundfontMissing { path }.to_string());
        }
        Ok(Composer {
            soundfont: path,
            synth: tokio::sync::OnceCell::new(),
            voice,
            running: Arc::new(Semaphore::new(1)),
        })
    }

    /// The synthesiser, loaded on first use (on the blocking pool).
    async fn synth(&self) -> Result<Arc<Synth>> {
        self.synth
            .get_or_try_init(|| async {
                let path = self.soundfont.clone();
                let synth = tokio::task::spawn_blocking(move || Synth::load(&path))
                    .await
                    .map_err(Error::internal)?
                    .map_err(music_error)?;
                Ok(Arc::new(synth))
            })
            .await
            .cloned()
    }
}

fn music_error(e: MusicError) -> Error {
    match e {
        MusicError::Cancelled => Error::internal("the song was cancelled"),
        MusicError::InvalidSampleRate(r) => Error::invalid(
            "audio_setting.sample_rate",
            format!("The composer cannot render at {r} Hz."),
        ),
        other => Error::new(ErrorCode::ServerError, other.to_string()),
    }
}

#[async_trait]
impl MusicProvider for Composer {
    async fn generate(&self, _model: &ModelSpec, job: &MusicJob, work: &Work) -> Result<Music> {
        let _turn = self
            .running
            .clone()
            .acquire_owned()
            .await
            .map_err(Error::internal)?;
        let req = SongRequest {
            prompt: job.prompt.clone(),
            lyrics: job.lyrics.clone(),
            instrumental: job.instrumental,
            seed: job.seed,
            sample_rate: job.output.sample_rate,
            ..SongRequest::default()
        };
        let arr = compose(&req);
        // The words, spoken first (monotone suits singing); the renderer
        // moves them onto the notes.
        let mut spoken: HashMap<String, (Vec<f32>, u32)> = HashMap::new();
        if let (Some((engine, voice)), false) = (&self.voice, job.instrumental) {
            let words = arr.words();
            let prosody = Prosody {
                rate: 1.0,
                pitch: 0.0,
                range: 0.0,
            };
            let audio = engine.synthesize_all(voice, &words, prosody).await;
            for (w, a) in words.into_iter().zip(audio) {
                if let Ok(a) = a {
                    spoken.insert(w, (a.samples, a.sample_rate));
                }
            }
        }
        let synth = self.synth().await?;
        let output = job.output.clone();
        let work = work.clone();
        tokio::task::spawn_blocking(move || {
            let rate = output.sample_rate;
            let mut sing = |w: &str| spoken.get(w).cloned();
            let mut progress = |p: f32| work.progress((p.clamp(0.0, 1.0) * 1000.0) as u64, 1000);
            let flag = work.cancel_flag();
            let song =
                render(&synth, &arr, rate, &mut sing, &mut progress, &flag).map_err(music_error)?;
            let format: Format = output
                .format
                .parse()
                .map_err(|_| Error::invalid("audio_setting.format", "unknown format"))?;
            let settings = AudioSettings {
                format,
                sample_rate: rate,
                bitrate: output.bitrate,
                channels: output.channels,
            };
            let pcm = Pcm::new(song.samples, song.sample_rate, song.channels);
            let frames = pcm.samples.len() as u64 / u64::from(pcm.channels.max(1));
            let bytes = maximin_audio::encode_whole(&settings, &pcm).map_err(Error::internal)?;
            Ok(Music {
                bytes,
                format: output.format.clone(),
                duration_ms: frames * 1000 / u64::from(pcm.sample_rate.max(1)),
                sample_rate: rate,
                channels: output.channels,
                bitrate: settings.effective_bitrate(),
            })
        })
        .await
        .map_err(Error::internal)?
    }
}

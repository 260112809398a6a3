//! A speech provider for tests (feature `testing`): it answers as an
//! upstream does, with audio already encoded in the job's format (a short
//! tone, a real file of that format) sent in a few chunks, its own count of
//! characters and the audio's length; it keeps the jobs it was given.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use maximin_audio::{encode_whole, AudioSettings, Pcm};
use maximin_core::catalog::{Catalog, Installed, ModelSpec};
use maximin_core::engines::Engines;
use maximin_core::providers::speech::{
    self, AudioOutput, SpeechDone, SpeechEvent, SpeechJob, SpeechProvider,
};
use maximin_core::{Error, NewKey, Platform, Result};
use maximin_types::{Modality, Plan, Scope};
use serde_json::json;
use tokio::sync::mpsc::Receiver;

/// The catalog model an upstream serves in [`upstream_install`].
pub const CLOUD_MODEL: &str = "cloud-speech";

/// What a platform needs to serve [`CLOUD_MODEL`] from `upstream:cloud`:
/// the catalog with it, the engines with `provider` (none: the upstream is
/// configured but nothing speaks for it), the upstream configured.
pub fn upstream_install(
    provider: Option<Arc<dyn SpeechProvider>>,
) -> Result<(Catalog, Engines, Installed)> {
    let model: ModelSpec = serde_json::from_value(json!({
        "id": CLOUD_MODEL, "modality": "speech", "context_window": 10000,
        "engine": "upstream:cloud",
    }))
    .map_err(Error::internal)?;
    let catalog = Catalog::with_overrides(vec![model]).map_err(Error::internal)?;
    let mut engines = Engines::default();
    if let Some(provider) = provider {
        engines.speech.insert("upstream:cloud".into(), provider);
    }
    let installed = Installed {
        upstreams: ["cloud".to_owned()].into(),
        ..Installed::default()
    };
    Ok((catalog, engines, installed))
}

/// A pay-as-you-go account with a key for speech: the account id and the
/// key's secret.
pub async fn speech_key(p: &Platform, email: &str) -> Result<(String, String)> {
    let account = p.create_account(email, Plan::Payg, None, false).await?;
    let key = p
        .create_key(
            &account.id,
            NewKey {
                name: "speech".into(),
                test: false,
                scopes: vec![Scope::Modality(Modality::Speech)],
                models: Vec::new(),
                ..NewKey::default()
            },
        )
        .await?;
    Ok((account.id, key.secret))
}

/// The length of the audio it speaks, whatever the text.
pub const CANNED_MS: u64 = 500;

/// An upstream stand-in: encoded audio, canned.
pub struct CannedUpstream {
    /// Characters it reports as billed.
    pub characters: u64,
    jobs: Mutex<Vec<SpeechJob>>,
}

impl CannedUpstream {
    pub fn new(characters: u64) -> Self {
        CannedUpstream {
            characters,
            jobs: Mutex::new(Vec::new()),
        }
    }

    /// The jobs it was given, in order.
    pub fn jobs(&self) -> Vec<SpeechJob> {
        self.jobs.lock().map(|j| j.clone()).unwrap_or_default()
    }

    /// The audio it sends for a job: [`CANNED_MS`] of a 220 Hz tone, one
    /// whole file in the asked format and rate.
    pub fn audio_for(output: &AudioOutput) -> Result<Vec<u8>> {
        let settings = AudioSettings {
            format: output
                .format
                .parse()
                .map_err(|e| Error::internal(format!("canned audio: {e}")))?,
            sample_rate: output.sample_rate,
            bitrate: output.bitrate,
            channels: output.channels,
        };
        let rate = output.sample_rate;
        let n = (u64::from(rate) * CANNED_MS / 1000) as usize;
        let tone = (0..n)
            .map(|i| 0.3 * (std::f32::consts::TAU * 220.0 * i as f32 / rate as f32).sin())
            .collect();
        encode_whole(&settings, &Pcm::mono(tone, rate))
            .map_err(|e| Error::internal(format!("canned audio: {e}")))
    }
}

#[async_trait]
impl SpeechProvider for CannedUpstream {
    async fn start(&self, _model: &ModelSpec, job: SpeechJob) -> Result<Receiver<SpeechEvent>> {
        let audio = CannedUpstream::audio_for(&job.output)?;
        if let Ok(mut jobs) = self.jobs.lock() {
            jobs.push(job);
        }
        let (tx, rx) = speech::events();
        let characters = self.characters;
        tokio::spawn(async move {
            // Three chunks, as a stream would bring them.
            for chunk in audio.chunks(audio.len().div_ceil(3).max(1)) {
                if tx.send(SpeechEvent::Encoded(chunk.to_vec())).await.is_err() {
                    return;
                }
            }
            let done = SpeechDone {
                characters,
                audio_ms: Some(CANNED_MS),
            };
            let _ = tx.send(SpeechEvent::Done(done)).await;
        });
        Ok(rx)
    }
}

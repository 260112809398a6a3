//! Piper VITS voices as a maximin speech engine (`piper`).
//!
//! A voice is an `.onnx` model with its `.onnx.json` config (sample rate,
//! espeak-ng voice, inference scales, phoneme id map), found under the data
//! dir's `models/`. Text becomes IPA through espeak-ng, IPA becomes ids through
//! the voice's map (`^ _ (p _)* $`), and ONNX Runtime turns ids into samples.
//! ONNX Runtime is loaded at run time from a `libonnxruntime.so` (the one the
//! PyPI `onnxruntime` wheel ships, provisioned by `maximin models pull`);
//! without it the engine offers no voices and says why.
//!
//! Sessions run on the blocking pool. A voice exported by Piper is cut in
//! two ([`onnx::split`]): the encoder (ids to latent frames: text encoder,
//! durations, flow) and the HiFi-GAN decoder (frames to samples), which
//! decodes any stretch of frames on its own given a few frames of context.
//! That gives three ways to speak:
//!
//! - A streamed response's first sentence: encoded on all threads, its first
//!   half second decoded on all threads and sent at once, the rest decoded in
//!   parts side by side ([`SpeechEngine::synthesize_streamed`]).
//! - One text whole: encoded on all threads, decoded in parts side by side.
//! - Several texts: single-threaded sessions take the next waiting text as
//!   soon as they are free, one text each, start to end.
//!
//! Single-threaded sessions run the model with its 1-D convolutions as 2-D
//! ones ([`onnx::conv2d`]), whose blocked kernels are faster on one thread.
//! A voice that is not cut that way runs whole, on the same schedule.

mod arena;
mod idle;
mod nets;
pub mod onnx;
mod voices;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, RwLock};

use async_trait::async_trait;
use maximin_core::engines::{EngineVoice, Prosody, SpeechAudio, SpeechEngine};
use maximin_core::{Error, Result};
use maximin_engine_espeak::EspeakEngine;
use ort::environment::Environment;

use idle::{Activity, Busy};
use nets::{
    blocking, decode, frames_of, lock, narrow_nets, outcome, parts, side_by_side, speak, wide_net,
    Frames, Pending, Shared, FIRST_FRAMES,
};
use voices::known_gender;
pub use voices::{
    find_voices, phoneme_ids, AudioConfig, EspeakConfig, InferenceConfig, LanguageConfig,
    VoiceConfig,
};

pub const ENGINE_NAME: &str = "piper";

/// A voice found on disk, with its sessions once loaded.
struct Voice {
    info: EngineVoice,
    model: PathBuf,
    config: VoiceConfig,
    /// On every thread: first audio, and encoding one text.
    wide: Mutex<Option<Shared>>,
    /// Single-threaded, one per thread: side-by-side runs.
    narrow: Mutex<Vec<Shared>>,
    /// The encoder's weights, one copy for all its sessions.
    weights: Mutex<Option<Weights>>,
}

/// Initializers handed to sessions by name instead of each session's own.
type Weights = Arc<Vec<(String, Arc<ort::value::DynValue>)>>;

/// Tensors of at least this many values are shared (weights); smaller ones
/// (shapes, axes) stay in the graph for ONNX Runtime to fold.
const SHARED_MIN_VALUES: usize = 16_384;

/// One text made ready for a run: ids and scales, and the rate its samples
/// are declared at.
struct Ready {
    ids: Vec<i64>,
    scales: Vec<f32>,
    multi: bool,
    sample_rate: u32,
}

pub struct PiperEngine {
    /// Where voices are looked for.
    models_dir: PathBuf,
    /// The ONNX Runtime library.
    onnxruntime: Option<PathBuf>,
    /// The runtime and the voices found, looked for again by `refresh`.
    found: RwLock<Found>,
    espeak: EspeakEngine,
    threads: usize,
    /// Requests being spoken: the arena shrinks once speech is idle.
    activity: Arc<Activity>,
}

/// What a look at the models directory found.
struct Found {
    env: Option<Arc<Environment>>,
    /// Why there are no voices, when ONNX Runtime could not be loaded.
    unavailable: Option<String>,
    voices: HashMap<String, Arc<Voice>>,
}

impl PiperEngine {
    /// Loads ONNX Runtime from `onnxruntime` (when given and present) and
    /// indexes the voices under `models_dir`. Never fails: without the runtime
    /// or voices it offers none, and `unavailable` says why. [`refresh`]
    /// looks again (voices and the runtime pulled while the server runs).
    ///
    /// [`refresh`]: SpeechEngine::refresh
    pub fn new(
        models_dir: &Path,
        onnxruntime: Option<&Path>,
        espeak: EspeakEngine,
        threads: usize,
    ) -> PiperEngine {
        let threads = if threads == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            threads
        };
        let found = look(models_dir, onnxruntime, &HashMap::new());
        PiperEngine {
            models_dir: models_dir.to_path_buf(),
            onnxruntime: onnxruntime.map(Path::to_path_buf),
            found: RwLock::new(found),
            espeak,
            threads,
            activity: Arc::default(),
        }
    }

    fn busy(&self, voice: &Arc<Voice>) -> Busy {
        self.activity.begun.fetch_add(1, Ordering::AcqRel);
        self.activity.inflight.fetch_add(1, Ordering::AcqRel);
        Busy {
            activity: self.activity.clone(),
            voice: voice.clone(),
        }
    }

    /// Why there are no voices, when ONNX Runtime could not be loaded.
    pub fn unavailable(&self) -> Option<String> {
        self.found().unavailable.clone()
    }

    fn found(&self) -> std::sync::RwLockReadGuard<'_, Found> {
        self.found.read().unwrap_or_else(|p| p.into_inner())
    }

    fn env(&self) -> Result<Arc<Environment>> {
        self.found()
            .env
            .clone()
            .ok_or_else(|| Error::internal("ONNX Runtime is not loaded"))
    }

    /// The voice's net on every thread, loaded on first use (on the
    /// blocking pool: loading takes hundreds of milliseconds).
    async fn wide(&self, voice: &Arc<Voice>) -> Result<Shared> {
        let (env, voice, threads) = (self.env()?, voice.clone(), self.threads);
        blocking(move || wide_net(&env, &voice, threads)).await
    }

    /// `n` of the voice's single-threaded nets, loaded on first use.
    async fn narrow(&self, voice: &Arc<Voice>, n: usize) -> Result<Vec<Shared>> {
        let (env, voice) = (self.env()?, voice.clone());
        blocking(move || narrow_nets(&env, &voice, n)).await
    }

    /// Samples of `z`'s frames `range`, in parts side by side on the
    /// single-threaded nets (one part when there is one thread), in order.
    async fn decode_parts(
        &self,
        voice: &Arc<Voice>,
        z: Arc<Frames>,
        range: std::ops::Range<usize>,
    ) -> Result<Vec<Pending<Vec<f32>>>> {
        let nets = if self.threads > 1 {
            self.narrow(voice, self.threads).await?
        } else {
            vec![self.wide(voice).await?]
        };
        Ok(side_by_side(
            nets,
            parts(range, self.threads),
            move |net, r| decode(net, &z, r),
        ))
    }

    fn voice(&self, voice_id: &str) -> Result<Arc<Voice>> {
        let found = self.found();
        found.voices.get(voice_id).cloned().ok_or_else(|| {
            Error::invalid(
                "voice_id",
                match &found.unavailable {
                    Some(why) => format!("Piper voice '{voice_id}' is not available: {why}."),
                    None => format!("No Piper voice '{voice_id}' is installed."),
                },
            )
        })
    }

    /// Phonemizes `text` for `voice`; `None` when there is nothing to say.
    async fn ready(&self, voice: &Voice, text: &str, prosody: Prosody) -> Result<Option<Ready>> {
        let clauses = self
            .espeak
            .phonemize(&voice.config.espeak.voice, text)
            .await?;
        let ids = phoneme_ids(&clauses, &voice.config.phoneme_id_map);
        if ids.len() <= 3 {
            return Ok(None);
        }
        // Pitch: synthesise longer by the pitch factor and declare the samples
        // that much faster; played back (resampled) at the declared rate, the
        // duration is the requested one and the pitch is shifted.
        let pitch_factor = 2f32.powf(prosody.pitch.clamp(-12.0, 12.0) / 12.0);
        let inf = &voice.config.inference;
        Ok(Some(Ready {
            ids,
            scales: vec![
                (inf.noise_scale * prosody.range).clamp(0.0, 1.5),
                inf.length_scale * pitch_factor / prosody.rate.clamp(0.25, 4.0),
                inf.noise_w,
            ],
            multi: voice.config.num_speakers > 1,
            sample_rate: (voice.config.audio.sample_rate as f32 * pitch_factor).round() as u32,
        }))
    }
}

/// Loads the runtime (once per process) and indexes the voices under
/// `models_dir`; voices already `known` keep their loaded nets.
fn look(
    models_dir: &Path,
    onnxruntime: Option<&Path>,
    known: &HashMap<String, Arc<Voice>>,
) -> Found {
    let (env, unavailable) = match onnxruntime {
        None => (
            None,
            Some("no ONNX Runtime library is installed".to_owned()),
        ),
        Some(lib) if !lib.is_file() => (
            None,
            Some(format!("ONNX Runtime library {} is missing", lib.display())),
        ),
        Some(lib) => match load_runtime(lib) {
            Ok(env) => (Some(env), None),
            Err(e) => (None, Some(e)),
        },
    };
    let mut voices = HashMap::new();
    if env.is_some() {
        for (model, config) in find_voices(models_dir) {
            let id = model
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or_default()
                .to_owned();
            if let Some(voice) = known.get(&id).filter(|v| v.model == model) {
                voices.insert(id, voice.clone());
                continue;
            }
            let language = config
                .language
                .as_ref()
                .map(|l| l.code.replace('_', "-").to_ascii_lowercase())
                .unwrap_or_else(|| config.espeak.voice.to_ascii_lowercase());
            let dataset = config
                .dataset
                .clone()
                .unwrap_or_else(|| id.split('-').nth(1).unwrap_or_default().to_owned());
            let info = EngineVoice {
                id: id.clone(),
                name: format!("{dataset} ({language}, Piper)"),
                language,
                gender: known_gender(&dataset),
            };
            voices.insert(
                id,
                Arc::new(Voice {
                    info,
                    model,
                    config,
                    wide: Mutex::new(None),
                    narrow: Mutex::new(Vec::new()),
                    weights: Mutex::new(None),
                }),
            );
        }
    }
    Found {
        env,
        unavailable,
        voices,
    }
}

/// ONNX Runtime, loaded once per process (it allows one environment): a
/// second engine shares the first one's.
fn load_runtime(lib: &Path) -> std::result::Result<Arc<Environment>, String> {
    static RUNTIME: Mutex<Option<Arc<Environment>>> = Mutex::new(None);
    let mut slot = RUNTIME
        .lock()
        .map_err(|_| "ONNX Runtime lock poisoned".to_owned())?;
    if let Some(env) = slot.as_ref() {
        return Ok(env.clone());
    }
    let builder = ort::init_from(lib)
        .map_err(|e| format!("loading ONNX Runtime from {}: {e}", lib.display()))?;
    let env = builder
        .with_name("maximin")
        .build()
        .map_err(|e| format!("starting ONNX Runtime: {e}"))?;
    arena::register(&env);
    let env = Arc::new(env);
    *slot = Some(env.clone());
    Ok(env)
}

impl PiperEngine {
    /// Nothing to say: no samples, at the voice's rate.
    fn silence(voice: &Voice) -> SpeechAudio {
        SpeechAudio {
            samples: Vec::new(),
            sample_rate: voice.config.audio.sample_rate,
        }
    }

    /// The text run on every thread: its frames (with the net to decode
    /// their first stretch on), or, for a voice that runs whole, its samples.
    async fn encode_wide(&self, voice: &Arc<Voice>, ready: Ready) -> Result<Encoded> {
        let wide = self.wide(voice).await?;
        blocking(move || {
            let mut net = lock(&wide)?;
            if net.dec.is_none() {
                return speak(&mut net, &ready).map(Encoded::Whole);
            }
            let z = frames_of(&mut net, &ready)?;
            drop(net);
            Ok(Encoded::Frames(wide, Arc::new(z)))
        })
        .await
    }
}

enum Encoded {
    Frames(Shared, Arc<Frames>),
    Whole(Vec<f32>),
}

#[async_trait]
impl SpeechEngine for PiperEngine {
    fn voices(&self) -> Vec<EngineVoice> {
        let mut v: Vec<_> = self
            .found()
            .voices
            .values()
            .map(|v| v.info.clone())
            .collect();
        v.sort_by(|a, b| a.id.cmp(&b.id));
        v
    }

    fn refresh(&self) {
        // Looked up outside the lock: loading the runtime takes a while, and
        // speech goes on meanwhile with what was found before.
        let known = self.found().voices.clone();
        let again = look(&self.models_dir, self.onnxruntime.as_deref(), &known);
        *self.found.write().unwrap_or_else(|p| p.into_inner()) = again;
    }

    /// Encoded on every thread, decoded in parts side by side.
    async fn synthesize(
        &self,
        voice_id: &str,
        text: &str,
        prosody: Prosody,
    ) -> Result<SpeechAudio> {
        let voice = self.voice(voice_id)?;
        let _busy = self.busy(&voice);
        let Some(ready) = self.ready(&voice, text, prosody).await? else {
            return Ok(Self::silence(&voice));
        };
        let rate = ready.sample_rate;
        let samples = match self.encode_wide(&voice, ready).await? {
            Encoded::Whole(samples) => samples,
            Encoded::Frames(_, z) => {
                let len = z.len;
                let mut samples = Vec::new();
                for part in self.decode_parts(&voice, z, 0..len).await? {
                    samples.extend(outcome(part).await?);
                }
                samples
            }
        };
        Ok(SpeechAudio {
            samples,
            sample_rate: rate,
        })
    }

    /// Encoded on every thread; the first [`FIRST_FRAMES`] decoded on every
    /// thread and sent; the rest decoded in parts side by side, each sent
    /// as soon as it and those before it are done.
    async fn synthesize_streamed(
        &self,
        voice_id: &str,
        text: &str,
        prosody: Prosody,
        pieces: tokio::sync::mpsc::Sender<SpeechAudio>,
    ) -> Result<()> {
        let voice = self.voice(voice_id)?;
        let _busy = self.busy(&voice);
        let Some(ready) = self.ready(&voice, text, prosody).await? else {
            let _ = pieces.send(Self::silence(&voice)).await;
            return Ok(());
        };
        let rate = ready.sample_rate;
        let piece = |samples| SpeechAudio {
            samples,
            sample_rate: rate,
        };
        let (wide, z) = match self.encode_wide(&voice, ready).await? {
            Encoded::Whole(samples) => {
                let _ = pieces.send(piece(samples)).await;
                return Ok(());
            }
            Encoded::Frames(wide, z) => (wide, z),
        };
        let first = FIRST_FRAMES.min(z.len);
        let head = {
            let z = z.clone();
            blocking(move || decode(&mut *lock(&wide)?, &z, 0..first)).await?
        };
        if pieces.send(piece(head)).await.is_err() || first == z.len {
            return Ok(());
        }
        let len = z.len;
        for part in self.decode_parts(&voice, z, first..len).await? {
            if pieces.send(piece(outcome(part).await?)).await.is_err() {
                break;
            }
        }
        Ok(())
    }

    fn side_by_side(&self) -> usize {
        self.threads
    }

    /// Texts side by side on single-threaded nets, one text each.
    async fn synthesize_all(
        &self,
        voice_id: &str,
        texts: &[String],
        prosody: Prosody,
    ) -> Vec<Result<SpeechAudio>> {
        if texts.len() < 2 || self.threads < 2 {
            let mut out = Vec::with_capacity(texts.len());
            for text in texts {
                out.push(self.synthesize(voice_id, text, prosody).await);
            }
            return out;
        }
        let nets = match self.voice(voice_id) {
            Ok(v) => self
                .narrow(&v, texts.len().min(self.threads))
                .await
                .map(|n| (v, n)),
            Err(e) => Err(e),
        };
        let (voice, nets) = match nets {
            Ok(p) => p,
            Err(e) => return texts.iter().map(|_| Err(e.clone())).collect(),
        };
        let _busy = self.busy(&voice);
        // Phonemized first (quick); then each net takes the next waiting
        // text, longest first: the batch is returned whole, so the order is
        // free, and short texts last leave no core waiting long at the end.
        let mut out: Vec<Option<Result<SpeechAudio>>> = Vec::with_capacity(texts.len());
        let mut jobs = Vec::new();
        for (i, text) in texts.iter().enumerate() {
            match self.ready(&voice, text, prosody).await {
                Ok(Some(r)) => {
                    jobs.push((i, r));
                    out.push(None);
                }
                Ok(None) => out.push(Some(Ok(Self::silence(&voice)))),
                Err(e) => out.push(Some(Err(e))),
            }
        }
        jobs.sort_by_key(|(_, r)| std::cmp::Reverse(r.ids.len()));
        let order: Vec<usize> = jobs.iter().map(|(i, _)| *i).collect();
        let pending = side_by_side(nets, jobs, move |net, (_, ready): (usize, Ready)| {
            let sample_rate = ready.sample_rate;
            speak(net, &ready).map(|samples| SpeechAudio {
                samples,
                sample_rate,
            })
        });
        let mut waiting: Vec<Option<Pending<SpeechAudio>>> = out.iter().map(|_| None).collect();
        for (i, p) in order.into_iter().zip(pending) {
            waiting[i] = Some(p);
        }
        let mut results = Vec::with_capacity(out.len());
        for (slot, p) in out.into_iter().zip(waiting) {
            results.push(match (slot, p) {
                (Some(done), _) => done,
                (None, Some(p)) => outcome(p).await,
                (None, None) => Err(Error::internal("a piper run was lost")),
            });
        }
        results
    }
}

#[cfg(test)]
mod tests {
    //! The real voice from `MAXIMIN_TEST_MODELS` (scripts/provision-models).
    use super::*;
    use crate::idle::{shrink, IDLE_SHRINK};
    use crate::nets::MAX_PART_FRAMES;

    fn engine(threads: usize) -> PiperEngine {
        let root = std::env::var_os("MAXIMIN_TEST_MODELS")
            .expect("MAXIMIN_TEST_MODELS: a data dir provisioned by scripts/provision-models");
        let models = PathBuf::from(root).join("models");
        let lib = models.join("onnxruntime").join("libonnxruntime.so");
        let e = PiperEngine::new(
            &models,
            Some(&lib),
            EspeakEngine::shared().expect("espeak"),
            threads,
        );
        assert!(e.unavailable().is_none(), "{:?}", e.unavailable());
        e
    }

    const VOICE: &str = "en_US-joe-medium";

    /// Without noise the frames are the same every run.
    async fn quiet(e: &PiperEngine, text: &str) -> (Arc<Voice>, Ready) {
        let voice = e.voice(VOICE).expect("voice");
        let mut ready = e
            .ready(&voice, text, Prosody::default())
            .await
            .expect("phonemes")
            .expect("something to say");
        ready.scales = vec![0.0, 1.0, 0.0];
        (voice, ready)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn parts_decoded_side_by_side_are_the_whole_decoded_at_once() {
        let e = engine(2);
        let text = "A sentence long enough to be decoded in several parts, \
                    side by side, on single threaded sessions of the voice.";
        let (voice, ready) = quiet(&e, text).await;
        let Encoded::Frames(wide, z) = e.encode_wide(&voice, ready).await.expect("encoded") else {
            panic!("Piper's own export is cut before its decoder");
        };
        assert!(z.len > FIRST_FRAMES + MAX_PART_FRAMES, "{} frames", z.len);
        // Whole, on the wide net's 1-D decoder.
        let len = z.len;
        let whole = decode_now(&wide, &z, 0..len).await;
        assert_eq!(whole.len() % len, 0);
        // In parts (more than there are threads: at most MAX_PART_FRAMES
        // each, and a short first stretch), on the 2-D decoders.
        let mut joined = decode_now(&wide, &z, 0..FIRST_FRAMES).await;
        let pending = e
            .decode_parts(&voice, z.clone(), FIRST_FRAMES..len)
            .await
            .expect("parts");
        assert!(pending.len() >= 2, "{} parts", pending.len());
        for p in pending {
            joined.extend(outcome(p).await.expect("part"));
        }
        assert_eq!(joined.len(), whole.len());
        let worst = whole
            .iter()
            .zip(&joined)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        let loud = whole.iter().fold(0f32, |m, x| m.max(x.abs()));
        assert!(loud > 0.1, "audible: {loud}");
        assert!(worst < 1e-4, "parts differ from the whole by {worst}");

        // With too little context, the seams show: the test can tell.
        let set_context = |c| {
            let mut net = lock(&wide).expect("net");
            let dec = net.dec.as_mut().expect("decoder");
            std::mem::replace(&mut dec.context, c)
        };
        let context = set_context(2);
        let mut seamed = Vec::new();
        for r in parts(0..len, 4) {
            seamed.extend(decode_now(&wide, &z, r).await);
        }
        set_context(context);
        let worst = whole
            .iter()
            .zip(&seamed)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(worst > 1e-3, "seams too small to see: {worst}");
    }

    async fn decode_now(net: &Shared, z: &Arc<Frames>, range: std::ops::Range<usize>) -> Vec<f32> {
        let (net, z) = (net.clone(), z.clone());
        blocking(move || decode(&mut *lock(&net)?, &z, range))
            .await
            .expect("decoded")
    }

    /// The arena shrinks once speech has been idle for [`IDLE_SHRINK`], not
    /// while requests follow each other closely; the shrinking run works on
    /// the voice's own nets (the shortest input it gives is a valid one),
    /// and speech goes on after it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_arena_shrinks_when_speech_is_idle() {
        let e = engine(2);
        assert!(arena::shared(), "no shared arena: nothing would shrink");
        let voice = e.voice(VOICE).expect("voice");
        shrink(&voice).expect("nothing loaded: nothing to shrink");
        let text = "A sentence to load the voice.";
        let shrunk = || e.activity.shrunk.load(Ordering::Acquire);
        // Two requests back to back, then idle: one shrink, after the second.
        for _ in 0..2 {
            let spoken = e
                .synthesize(VOICE, text, Prosody::default())
                .await
                .expect("speech");
            assert!(!spoken.samples.is_empty());
            assert_eq!(shrunk(), 0, "shrunk while requests follow closely");
        }
        assert_eq!(e.activity.inflight.load(Ordering::Acquire), 0);
        tokio::time::sleep(IDLE_SHRINK * 2).await;
        assert_eq!(shrunk(), 1, "idle, but the arena was not shrunk once");
        let again = e
            .synthesize(VOICE, text, Prosody::default())
            .await
            .expect("speech after shrinking");
        assert!(!again.samples.is_empty());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn texts_spoken_side_by_side_come_back_in_their_places() {
        let e = engine(2);
        // Run longest first, returned in the order given.
        let texts: Vec<String> = [
            "Yes.",
            "This one is by far the longest of the texts in the batch, by a wide margin.",
            "",
            "A middling sentence here.",
        ]
        .map(String::from)
        .to_vec();
        let out = e.synthesize_all(VOICE, &texts, Prosody::default()).await;
        let secs: Vec<f32> = out
            .into_iter()
            .map(|r| r.expect("spoken").samples.len() as f32 / 22_050.0)
            .collect();
        assert_eq!(secs[2], 0.0, "nothing to say: {secs:?}");
        assert!(
            secs[0] > 0.2 && secs[0] < secs[3] && secs[3] < secs[1],
            "{secs:?}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_streamed_sentence_comes_in_pieces_the_first_one_short() {
        let e = engine(2);
        let text = "The first piece of this sentence is sent long before the rest of it is ready.";
        let (tx, mut rx) = tokio::sync::mpsc::channel(8);
        let speak = e.synthesize_streamed(VOICE, text, Prosody::default(), tx);
        let (done, pieces) = tokio::join!(speak, async move {
            let mut pieces = Vec::new();
            while let Some(p) = rx.recv().await {
                pieces.push(p);
            }
            pieces
        });
        done.expect("spoken");
        assert!(pieces.len() >= 2, "{} pieces", pieces.len());
        assert!(pieces.iter().all(|p| p.sample_rate == 22_050));
        // FIRST_FRAMES frames of 256 samples.
        assert_eq!(pieces[0].samples.len(), FIRST_FRAMES * 256);
        let secs = pieces.iter().map(|p| p.samples.len()).sum::<usize>() as f32 / 22_050.0;
        assert!((3.0..9.0).contains(&secs), "{secs} s");

        // A listener who leaves stops the work without an error.
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        drop(rx);
        e.synthesize_streamed(VOICE, text, Prosody::default(), tx)
            .await
            .expect("no error when nobody listens");
    }
}

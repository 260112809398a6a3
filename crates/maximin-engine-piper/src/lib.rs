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
//! Sessions run on the blocking pool. A voice has one session with the
//! configured number of intra-op threads, for a text on its own (a request's
//! first sentence: the first audio), and, loaded when first needed, one
//! single-threaded session per thread, which speak the following sentences
//! side by side: a VITS run scales poorly over threads (on 2 cores one thread
//! takes 223 ms for a sentence that two take 162 ms for), so two sentences at
//! once on one thread each come out about 1.45 times as fast.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use maximin_core::engines::{EngineVoice, Gender, Prosody, SpeechAudio, SpeechEngine};
use maximin_core::{Error, Result};
use maximin_engine_espeak::{Clause, EspeakEngine};
use ort::environment::Environment;
use ort::session::Session;
use ort::value::Tensor;
use serde::Deserialize;
use unicode_normalization::UnicodeNormalization;

pub const ENGINE_NAME: &str = "piper";

/// The parts of a Piper voice config this engine reads.
#[derive(Debug, Clone, Deserialize)]
pub struct VoiceConfig {
    pub audio: AudioConfig,
    pub espeak: EspeakConfig,
    #[serde(default)]
    pub inference: InferenceConfig,
    pub phoneme_id_map: HashMap<String, Vec<i64>>,
    #[serde(default)]
    pub num_speakers: u32,
    #[serde(default)]
    pub language: Option<LanguageConfig>,
    #[serde(default)]
    pub dataset: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct AudioConfig {
    pub sample_rate: u32,
}

#[derive(Debug, Clone, Deserialize)]
pub struct EspeakConfig {
    pub voice: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct InferenceConfig {
    pub noise_scale: f32,
    pub length_scale: f32,
    pub noise_w: f32,
}

impl Default for InferenceConfig {
    fn default() -> Self {
        InferenceConfig {
            noise_scale: 0.667,
            length_scale: 1.0,
            noise_w: 0.8,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct LanguageConfig {
    pub code: String,
}

struct Voice {
    info: EngineVoice,
    model: PathBuf,
    config: VoiceConfig,
    session: Mutex<Option<Arc<Mutex<Session>>>>,
    /// Single-threaded sessions for side-by-side runs.
    narrow: Mutex<Vec<Arc<Mutex<Session>>>>,
}

/// One text made ready for a run: ids and scales, and the rate its samples
/// are declared at.
struct Ready {
    ids: Vec<i64>,
    scales: Vec<f32>,
    multi: bool,
    sample_rate: u32,
}

pub struct PiperEngine {
    env: Option<Arc<Environment>>,
    /// Why there are no voices, when ONNX Runtime could not be loaded.
    unavailable: Option<String>,
    voices: HashMap<String, Arc<Voice>>,
    espeak: EspeakEngine,
    threads: usize,
}

/// A voice's gender as its name or dataset tells, for the well-known Piper voices.
fn known_gender(dataset: &str) -> Option<Gender> {
    const FEMALE: &[&str] = &[
        "amy",
        "kathleen",
        "kristin",
        "lessac",
        "ljspeech",
        "hfc_female",
        "jenny_dioco",
        "alba",
        "cori",
        "siwis",
        "eva_k",
        "kerstin",
        "ramona",
        "paola",
        "natia",
        "berta",
        "irina",
    ];
    const MALE: &[&str] = &[
        "joe",
        "ryan",
        "john",
        "kusal",
        "danny",
        "bryce",
        "norman",
        "hfc_male",
        "alan",
        "northern_english_male",
        "thorsten",
        "gilles",
        "riccardo",
        "carlfm",
        "davefx",
        "pavoque",
        "denis",
        "dmitri",
        "ruslan",
    ];
    let d = dataset.to_ascii_lowercase();
    if FEMALE.contains(&d.as_str()) {
        Some(Gender::Female)
    } else if MALE.contains(&d.as_str()) {
        Some(Gender::Male)
    } else {
        None
    }
}

/// Finds `*.onnx` files with a sibling `*.onnx.json` one level under `models_dir`.
pub fn find_voices(models_dir: &Path) -> Vec<(PathBuf, VoiceConfig)> {
    let mut out = Vec::new();
    let Ok(dirs) = std::fs::read_dir(models_dir) else {
        return out;
    };
    for dir in dirs.flatten() {
        let Ok(files) = std::fs::read_dir(dir.path()) else {
            continue;
        };
        for f in files.flatten() {
            let path = f.path();
            if path.extension().and_then(|e| e.to_str()) != Some("onnx") {
                continue;
            }
            let mut cfg_path = path.clone().into_os_string();
            cfg_path.push(".json");
            let Ok(text) = std::fs::read_to_string(&cfg_path) else {
                continue;
            };
            match serde_json::from_str::<VoiceConfig>(&text) {
                Ok(cfg) => out.push((path, cfg)),
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "not a Piper voice config")
                }
            }
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

impl PiperEngine {
    /// Loads ONNX Runtime from `onnxruntime` (when given and present) and
    /// indexes the voices under `models_dir`. Never fails: without the runtime
    /// or voices it offers none, and `unavailable` says why.
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
                Ok(env) => (Some(Arc::new(env)), None),
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
                        session: Mutex::new(None),
                        narrow: Mutex::new(Vec::new()),
                    }),
                );
            }
        }
        if let Some(why) = &unavailable {
            tracing::warn!(reason = %why, "Piper voices are unavailable");
        }
        PiperEngine {
            env,
            unavailable,
            voices,
            espeak,
            threads,
        }
    }

    pub fn unavailable(&self) -> Option<&str> {
        self.unavailable.as_deref()
    }

    fn env(&self) -> Result<Arc<Environment>> {
        self.env
            .clone()
            .ok_or_else(|| Error::internal("ONNX Runtime is not loaded"))
    }

    /// Runs `get` (which may load sessions: hundreds of milliseconds) on the
    /// blocking pool, not on the async runtime.
    async fn sessions<T: Send + 'static>(
        &self,
        voice: &Arc<Voice>,
        get: impl FnOnce(&Environment, &Voice) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let env = self.env()?;
        let voice = voice.clone();
        tokio::task::spawn_blocking(move || get(&env, &voice))
            .await
            .map_err(|e| Error::internal(format!("piper task: {e}")))?
    }

    fn voice(&self, voice_id: &str) -> Result<Arc<Voice>> {
        self.voices.get(voice_id).cloned().ok_or_else(|| {
            Error::invalid(
                "voice_id",
                match &self.unavailable {
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

fn wide_session(env: &Environment, voice: &Voice, threads: usize) -> Result<Arc<Mutex<Session>>> {
    let mut slot = voice
        .session
        .lock()
        .map_err(|_| Error::internal("piper session lock poisoned"))?;
    if let Some(s) = slot.as_ref() {
        return Ok(s.clone());
    }
    let s = Arc::new(Mutex::new(load_session(env, voice, threads)?));
    *slot = Some(s.clone());
    Ok(s)
}

fn narrow_sessions(env: &Environment, voice: &Voice, n: usize) -> Result<Vec<Arc<Mutex<Session>>>> {
    let mut pool = voice
        .narrow
        .lock()
        .map_err(|_| Error::internal("piper session lock poisoned"))?;
    while pool.len() < n {
        pool.push(Arc::new(Mutex::new(load_session(env, voice, 1)?)));
    }
    Ok(pool[..n].to_vec())
}

fn load_session(env: &Environment, voice: &Voice, threads: usize) -> Result<Session> {
    let started = std::time::Instant::now();
    let load = |e: &dyn std::fmt::Display| {
        Error::internal(format!("loading {}: {e}", voice.model.display()))
    };
    let builder = Session::builder(env).map_err(|e| load(&e))?;
    let mut builder = builder.with_intra_threads(threads).map_err(|e| load(&e))?;
    let session = builder
        .commit_from_file(&voice.model)
        .map_err(|e| load(&e))?;
    tracing::info!(voice = %voice.info.id, threads, ms = started.elapsed().as_millis() as u64, "Piper voice loaded");
    Ok(session)
}

/// One VITS run on the blocking pool.
async fn run(session: Arc<Mutex<Session>>, ready: Ready) -> Result<SpeechAudio> {
    let (task, sample_rate) = start(session, ready);
    finish(task, sample_rate).await
}

type Run = tokio::task::JoinHandle<Result<Vec<f32>>>;

/// Starts a run on the blocking pool; returns it and its samples' rate.
fn start(session: Arc<Mutex<Session>>, ready: Ready) -> (Run, u32) {
    let sample_rate = ready.sample_rate;
    let task = tokio::task::spawn_blocking(move || run_now(&session, ready));
    (task, sample_rate)
}

/// One VITS run on this thread.
fn run_now(session: &Mutex<Session>, ready: Ready) -> Result<Vec<f32>> {
    let Ready {
        ids, scales, multi, ..
    } = ready;
    let n = ids.len();
    let fail = |e: ort::Error| Error::internal(format!("piper inference: {e}"));
    let input = Tensor::from_array(([1usize, n], ids)).map_err(fail)?;
    let lengths = Tensor::from_array(([1usize], vec![n as i64])).map_err(fail)?;
    let scales = Tensor::from_array(([3usize], scales)).map_err(fail)?;
    let mut session = session
        .lock()
        .map_err(|_| Error::internal("piper session poisoned"))?;
    let mut inputs = vec![
        ("input", ort::session::SessionInputValue::from(input)),
        ("input_lengths", lengths.into()),
        ("scales", scales.into()),
    ];
    if multi {
        let sid = Tensor::from_array(([1usize], vec![0i64])).map_err(fail)?;
        inputs.push(("sid", sid.into()));
    }
    let outputs = session.run(inputs).map_err(fail)?;
    let (_, value) = outputs
        .into_iter()
        .next()
        .ok_or_else(|| Error::internal("piper model gave no output"))?;
    let (_, audio) = value.try_extract_tensor::<f32>().map_err(fail)?;
    Ok(audio.to_vec())
}

async fn finish(task: Run, sample_rate: u32) -> Result<SpeechAudio> {
    let samples = task
        .await
        .map_err(|e| Error::internal(format!("piper task: {e}")))??;
    Ok(SpeechAudio {
        samples,
        sample_rate,
    })
}

fn load_runtime(lib: &Path) -> std::result::Result<Environment, String> {
    let builder = ort::init_from(lib)
        .map_err(|e| format!("loading ONNX Runtime from {}: {e}", lib.display()))?;
    builder
        .with_name("maximin")
        .build()
        .map_err(|e| format!("starting ONNX Runtime: {e}"))
}

/// IPA clauses to the voice's ids: `^ _ (p _)* $`, punctuation kept, a space
/// after each clause but the last. Codepoints the voice does not know are
/// skipped, as Piper does.
pub fn phoneme_ids(clauses: &[Clause], map: &HashMap<String, Vec<i64>>) -> Vec<i64> {
    let id = |s: &str| map.get(s).cloned().unwrap_or_default();
    let pad = id("_");
    let mut ids = id("^");
    ids.extend(&pad);
    let push = |c: char, ids: &mut Vec<i64>| {
        let mut buf = [0u8; 4];
        if let Some(v) = map.get(c.encode_utf8(&mut buf) as &str) {
            ids.extend(v);
            ids.extend(&pad);
        }
    };
    for (i, clause) in clauses.iter().enumerate() {
        for c in clause.phonemes.nfd() {
            push(c, &mut ids);
        }
        if let Some(t) = clause.terminator {
            push(t, &mut ids);
        }
        if i + 1 < clauses.len() {
            push(' ', &mut ids);
        }
    }
    ids.extend(id("$"));
    ids
}

#[async_trait]
impl SpeechEngine for PiperEngine {
    fn voices(&self) -> Vec<EngineVoice> {
        let mut v: Vec<_> = self.voices.values().map(|v| v.info.clone()).collect();
        v.sort_by(|a, b| a.id.cmp(&b.id));
        v
    }

    async fn synthesize(
        &self,
        voice_id: &str,
        text: &str,
        prosody: Prosody,
    ) -> Result<SpeechAudio> {
        let voice = self.voice(voice_id)?;
        let Some(ready) = self.ready(&voice, text, prosody).await? else {
            return Ok(SpeechAudio {
                samples: Vec::new(),
                sample_rate: voice.config.audio.sample_rate,
            });
        };
        let threads = self.threads;
        let session = self
            .sessions(&voice, move |env, v| wide_session(env, v, threads))
            .await?;
        run(session, ready).await
    }

    fn side_by_side(&self) -> usize {
        self.threads
    }

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
        let n = texts.len().min(self.threads);
        let pool = match self.voice(voice_id) {
            Ok(v) => self
                .sessions(&v, move |env, v| narrow_sessions(env, v, n))
                .await
                .map(|s| (v, s)),
            Err(e) => Err(e),
        };
        let (voice, sessions) = match pool {
            Ok(p) => p,
            Err(e) => return texts.iter().map(|_| Err(e.clone())).collect(),
        };
        // The texts are phonemized (quick), then each single-threaded
        // session takes the next waiting text as soon as it is free, so no
        // core waits for a longer sentence on the other one.
        let rate = voice.config.audio.sample_rate;
        let mut queue = std::collections::VecDeque::new();
        let mut out: Vec<Option<Result<SpeechAudio>>> = Vec::with_capacity(texts.len());
        for (i, text) in texts.iter().enumerate() {
            match self.ready(&voice, text, prosody).await {
                Ok(Some(r)) => {
                    queue.push_back((i, r));
                    out.push(None);
                }
                Ok(None) => out.push(Some(Ok(SpeechAudio {
                    samples: Vec::new(),
                    sample_rate: rate,
                }))),
                Err(e) => out.push(Some(Err(e))),
            }
        }
        let queue = Arc::new(Mutex::new(queue));
        let workers: Vec<_> = sessions
            .into_iter()
            .map(|session| {
                let queue = queue.clone();
                tokio::task::spawn_blocking(move || {
                    let mut done = Vec::new();
                    loop {
                        let next = queue.lock().ok().and_then(|mut q| q.pop_front());
                        let Some((i, ready)) = next else {
                            return done;
                        };
                        let sample_rate = ready.sample_rate;
                        done.push((
                            i,
                            run_now(&session, ready).map(|samples| SpeechAudio {
                                samples,
                                sample_rate,
                            }),
                        ));
                    }
                })
            })
            .collect();
        for w in workers {
            match w.await {
                Ok(done) => {
                    for (i, r) in done {
                        out[i] = Some(r);
                    }
                }
                Err(e) => tracing::error!(error = %e, "a piper worker failed"),
            }
        }
        out.into_iter()
            .map(|r| r.unwrap_or_else(|| Err(Error::internal("a piper run was lost"))))
            .collect()
    }
}

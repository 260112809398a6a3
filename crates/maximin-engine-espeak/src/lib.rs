//! espeak-ng as a maximin speech engine (`espeak-ng`): formant synthesis in
//! every language and variant the installed espeak-ng data has, and IPA
//! phonemes for the Piper voices.
//!
//! libespeak-ng keeps global state, so one dedicated thread owns it for the
//! whole process ([`EspeakEngine::shared`]); requests reach it over a channel
//! and never run on the async runtime's workers.

mod ffi;

use std::cell::RefCell;
use std::ffi::{c_char, c_int, c_short, c_void, CStr, CString};
use std::sync::mpsc;
use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use maximin_core::engines::{EngineVoice, Gender, Prosody, SpeechAudio, SpeechEngine};
use maximin_core::{Error, Result};
use tokio::sync::oneshot;

pub const ENGINE_NAME: &str = "espeak-ng";

/// espeak-ng's nominal rate in words per minute, and its limits.
const RATE_NORMAL: f32 = 175.0;
const RATE_MIN: f32 = 80.0;
const RATE_MAX: f32 = 450.0;
/// espeak-ng's pitch parameter runs 0–100 around 50; about 50 steps make an octave.
const PITCH_STEPS_PER_SEMITONE: f32 = 50.0 / 12.0;

/// One clause of phonemes, as `espeak_TextToPhonemes` returns it, with the
/// punctuation that ended it in the text (`.`, `,`, `?`, …) when there was one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clause {
    pub phonemes: String,
    pub terminator: Option<char>,
}

enum Job {
    Synth {
        voice: String,
        text: String,
        prosody: Prosody,
        reply: oneshot::Sender<Result<SpeechAudio>>,
    },
    Phonemes {
        voice: String,
        text: String,
        reply: oneshot::Sender<Result<Vec<Clause>>>,
    },
}

struct Inner {
    jobs: std::sync::Mutex<mpsc::Sender<Job>>,
    voices: Vec<EngineVoice>,
    variants: Vec<EngineVoice>,
}

/// The process's espeak-ng. Cheap to clone.
#[derive(Clone)]
pub struct EspeakEngine {
    inner: Arc<Inner>,
}

impl EspeakEngine {
    /// Starts espeak-ng on its thread the first time; later calls share it.
    /// Fails when the library cannot find its data (`espeak-ng-data`).
    pub fn shared() -> Result<EspeakEngine> {
        static ENGINE: OnceLock<Result<EspeakEngine>> = OnceLock::new();
        ENGINE.get_or_init(EspeakEngine::start).clone()
    }

    fn start() -> Result<EspeakEngine> {
        let (jobs, rx) = mpsc::channel();
        let (ready_tx, ready_rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("espeak-ng".into())
            .spawn(move || worker(rx, ready_tx))
            .map_err(|e| Error::internal(format!("espeak-ng thread: {e}")))?;
        let (sample_rate, voices, variants) = ready_rx
            .recv()
            .map_err(|_| Error::internal("espeak-ng thread ended while starting"))??;
        tracing::info!(
            voices = voices.len(),
            variants = variants.len(),
            sample_rate,
            "espeak-ng ready"
        );
        Ok(EspeakEngine {
            inner: Arc::new(Inner {
                jobs: std::sync::Mutex::new(jobs),
                voices,
                variants,
            }),
        })
    }

    /// Voice variants (`f1`…`f5`, `m1`…, `klatt`, …); a voice id
    /// `LANGUAGE+VARIANT` speaks the language with the variant's timbre.
    pub fn variants(&self) -> &[EngineVoice] {
        &self.inner.variants
    }

    fn send(&self, job: Job) -> Result<()> {
        self.inner
            .jobs
            .lock()
            .map_err(|_| Error::internal("espeak-ng channel poisoned"))?
            .send(job)
            .map_err(|_| Error::internal("the espeak-ng thread has stopped"))
    }

    /// IPA phonemes of `text` in `voice`'s language, clause by clause.
    pub async fn phonemize(&self, voice: &str, text: &str) -> Result<Vec<Clause>> {
        let (reply, rx) = oneshot::channel();
        self.send(Job::Phonemes {
            voice: voice.to_owned(),
            text: text.to_owned(),
            reply,
        })?;
        rx.await
            .map_err(|_| Error::internal("the espeak-ng thread dropped a request"))?
    }
}

#[async_trait]
impl SpeechEngine for EspeakEngine {
    fn voices(&self) -> Vec<EngineVoice> {
        self.inner.voices.clone()
    }

    async fn synthesize(&self, voice: &str, text: &str, prosody: Prosody) -> Result<SpeechAudio> {
        let (reply, rx) = oneshot::channel();
        self.send(Job::Synth {
            voice: voice.to_owned(),
            text: text.to_owned(),
            prosody,
            reply,
        })?;
        rx.await
            .map_err(|_| Error::internal("the espeak-ng thread dropped a request"))?
    }
}

type Ready = Result<(u32, Vec<EngineVoice>, Vec<EngineVoice>)>;

fn worker(jobs: mpsc::Receiver<Job>, ready: mpsc::Sender<Ready>) {
    #[allow(unsafe_code)]
    // SAFETY: called once, on the thread that makes every later call.
    let rate = unsafe {
        ffi::espeak_Initialize(
            ffi::AUDIO_OUTPUT_SYNCHRONOUS,
            200,
            std::ptr::null(),
            ffi::INITIALIZE_DONT_EXIT,
        )
    };
    if rate <= 0 {
        let _ = ready.send(Err(Error::internal(
            "espeak-ng did not initialise: is its data installed (Debian: espeak-ng-data)?",
        )));
        return;
    }
    #[allow(unsafe_code)]
    // SAFETY: `on_audio` matches t_espeak_callback and only reads what it is given.
    unsafe {
        ffi::espeak_SetSynthCallback(Some(on_audio));
    }
    let voices = list_voices(None);
    let variants = list_voices(Some("variant"));
    let sample_rate = u32::try_from(rate).unwrap_or(22_050);
    if ready.send(Ok((sample_rate, voices, variants))).is_err() {
        return;
    }
    for job in jobs {
        match job {
            Job::Synth {
                voice,
                text,
                prosody,
                reply,
            } => {
                let _ = reply.send(synth(&voice, &text, prosody, sample_rate));
            }
            Job::Phonemes { voice, text, reply } => {
                let _ = reply.send(phonemes(&voice, &text));
            }
        }
    }
}

thread_local! {
    /// Samples of the synthesis in progress on the espeak-ng thread.
    static AUDIO: RefCell<Vec<i16>> = const { RefCell::new(Vec::new()) };
}

#[allow(unsafe_code)]
unsafe extern "C" fn on_audio(wav: *mut c_short, n: c_int, _events: *mut ffi::Event) -> c_int {
    if !wav.is_null() && n > 0 {
        // SAFETY: espeak-ng hands over `n` samples at `wav` for this call.
        let samples = unsafe { std::slice::from_raw_parts(wav, n as usize) };
        AUDIO.with(|a| a.borrow_mut().extend_from_slice(samples));
    }
    0
}

fn cstring(field: &str, s: &str) -> Result<CString> {
    CString::new(s).map_err(|_| Error::invalid(field, "The text contains a NUL character."))
}

fn set_voice(voice: &str) -> Result<()> {
    let name = cstring("voice_id", voice)?;
    #[allow(unsafe_code)]
    // SAFETY: a NUL-terminated string that outlives the call.
    let rc = unsafe { ffi::espeak_SetVoiceByName(name.as_ptr()) };
    if rc != ffi::EE_OK {
        return Err(Error::invalid(
            "voice_id",
            format!("espeak-ng has no voice '{voice}'."),
        ));
    }
    Ok(())
}

fn set(param: c_int, value: f32) {
    #[allow(unsafe_code)]
    // SAFETY: plain integers.
    unsafe {
        ffi::espeak_SetParameter(param, value.round() as c_int, 0);
    }
}

fn synth(voice: &str, text: &str, prosody: Prosody, sample_rate: u32) -> Result<SpeechAudio> {
    set_voice(voice)?;
    set(
        ffi::RATE,
        (RATE_NORMAL * prosody.rate).clamp(RATE_MIN, RATE_MAX),
    );
    set(
        ffi::PITCH,
        (50.0 + prosody.pitch * PITCH_STEPS_PER_SEMITONE).clamp(0.0, 100.0),
    );
    set(ffi::RANGE, (50.0 * prosody.range).clamp(0.0, 100.0));
    set(ffi::VOLUME, 100.0);
    let c_text = cstring("text", text)?;
    AUDIO.with(|a| a.borrow_mut().clear());
    #[allow(unsafe_code)]
    // SAFETY: the text is NUL-terminated and lives until espeak_Synth returns,
    // which in synchronous mode is after the last callback.
    let rc = unsafe {
        ffi::espeak_Synth(
            c_text.as_ptr().cast::<c_void>(),
            text.len() + 1,
            0,
            ffi::POS_CHARACTER,
            0,
            ffi::CHARS_UTF8 | ffi::ENDPAUSE,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
        )
    };
    let samples = AUDIO.with(|a| std::mem::take(&mut *a.borrow_mut()));
    if rc != ffi::EE_OK {
        return Err(Error::internal(format!(
            "espeak-ng synthesis failed ({rc})"
        )));
    }
    Ok(SpeechAudio {
        samples: samples.iter().map(|&s| f32::from(s) / 32768.0).collect(),
        sample_rate,
    })
}

fn phonemes(voice: &str, text: &str) -> Result<Vec<Clause>> {
    set_voice(voice)?;
    let mut clauses = Vec::new();
    for (part, terminator) in split_clauses(text) {
        let ipa = clause_ipa(part)?;
        if !ipa.is_empty() || terminator.is_some() {
            clauses.push(Clause {
                phonemes: ipa,
                terminator,
            });
        }
    }
    Ok(clauses)
}

/// Splits text at clause punctuation followed by a space or the end (so
/// "3.50" stays whole), returning each clause without its punctuation and the
/// punctuation that ended it.
pub fn split_clauses(text: &str) -> Vec<(&str, Option<char>)> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut iter = text.char_indices().peekable();
    while let Some((i, c)) = iter.next() {
        let next = iter.peek().map(|(_, n)| *n);
        let wide = !c.is_ascii();
        if is_clause_punctuation(c) && (wide || next.is_none_or(char::is_whitespace)) {
            out.push((&text[start..i], Some(c)));
            start = i + c.len_utf8();
        }
    }
    if !text[start..].trim().is_empty() {
        out.push((&text[start..], None));
    }
    out
}

/// IPA for one clause: espeak-ng may still cut it (it stops at its own clause
/// ends); the pieces are joined with spaces.
fn clause_ipa(part: &str) -> Result<String> {
    let c_text = cstring("text", part)?;
    let mut ptr = c_text.as_ptr().cast::<c_void>();
    let mut pieces: Vec<String> = Vec::new();
    while !ptr.is_null() {
        #[allow(unsafe_code)]
        // SAFETY: `ptr` points into `c_text` (NUL-terminated, alive here);
        // espeak-ng advances it or sets it to null at the end.
        let ipa = unsafe {
            let out =
                ffi::espeak_TextToPhonemes(&mut ptr, ffi::CHARS_UTF8 as c_int, ffi::PHONEMES_IPA);
            if out.is_null() {
                String::new()
            } else {
                CStr::from_ptr(out).to_string_lossy().into_owned()
            }
        };
        let ipa = ipa.trim();
        if !ipa.is_empty() {
            pieces.push(ipa.to_owned());
        }
    }
    Ok(pieces.join(" "))
}

fn is_clause_punctuation(c: char) -> bool {
    matches!(
        c,
        '.' | ',' | '?' | '!' | ';' | ':' | '。' | '，' | '？' | '！' | '；' | '：' | '…'
    )
}

/// `espeak_ListVoices`: every voice, or with `Some("variant")` every variant.
fn list_voices(languages: Option<&str>) -> Vec<EngineVoice> {
    let lang = languages.and_then(|l| CString::new(l).ok());
    let mut spec = ffi::Voice {
        name: std::ptr::null(),
        languages: lang.as_ref().map_or(std::ptr::null(), |l| l.as_ptr()),
        identifier: std::ptr::null(),
        gender: 0,
        age: 0,
        variant: 0,
        xx1: 0,
        score: 0,
        spare: std::ptr::null_mut(),
    };
    let mut out = Vec::new();
    #[allow(unsafe_code)]
    // SAFETY: espeak_ListVoices returns a NULL-terminated array of voices it
    // owns, valid until the next call; everything is copied out here.
    unsafe {
        let list = ffi::espeak_ListVoices(if lang.is_some() {
            &mut spec
        } else {
            std::ptr::null_mut()
        });
        if list.is_null() {
            return out;
        }
        let mut i = 0;
        loop {
            let v = *list.add(i);
            if v.is_null() {
                break;
            }
            i += 1;
            let v = &*v;
            let text = |p: *const c_char| {
                if p.is_null() {
                    String::new()
                } else {
                    CStr::from_ptr(p).to_string_lossy().into_owned()
                }
            };
            // `languages`: a priority byte, then the language, NUL; the first counts.
            let language = if v.languages.is_null() {
                String::new()
            } else {
                text(v.languages.add(1))
            };
            let identifier = text(v.identifier);
            // The voice file's name is what espeak_SetVoiceByName takes:
            // "gmw/en-US" → "en-us", "roa/fr" → "fr", variants "!v/f3" → "f3".
            let id = identifier
                .rsplit('/')
                .next()
                .unwrap_or_default()
                .to_ascii_lowercase();
            if id.is_empty() {
                continue;
            }
            out.push(EngineVoice {
                id,
                name: text(v.name),
                language: language.to_ascii_lowercase(),
                gender: match v.gender {
                    1 => Some(Gender::Male),
                    2 => Some(Gender::Female),
                    _ => None,
                },
            });
        }
    }
    out.sort_by(|a, b| a.id.cmp(&b.id));
    out.dedup_by(|a, b| a.id == b.id);
    out
}

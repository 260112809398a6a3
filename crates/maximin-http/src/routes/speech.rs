//! `POST /v1/t2a_v2`: MiniMax-native text to speech, whole or streamed as
//! server-sent events sentence by sentence, on the local speech engines.
//!
//! The model picks the engine (`*-hd` → Piper where the language has a
//! neural voice, else espeak-ng; `*-turbo` → espeak-ng); the voice id picks
//! the language and gender; speed, pitch and emotion become prosody; volume
//! a gain. Each sentence is synthesised, encoded and (when streaming) sent
//! before the next one starts.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use maximin_audio::{AudioSettings, Encoder, Format, WholeEnd};
use maximin_core::engines::{EngineVoice, Gender, Prosody, SpeechAudio, SpeechEngine};
use maximin_core::speech::{self, Piece};
use maximin_core::voices::{self, VoiceProfile};
use maximin_core::{Error, Platform};
use maximin_types::speech::{
    BaseResp, T2aData, T2aExtraInfo, T2aRequest, T2aResponse, VoiceSetting,
};
use maximin_types::Modality;
use serde_json::json;

use crate::ctx::{ApiJson, Ctx, StreamMeter, UsageReport};
use crate::error::{ApiError, NATIVE_CODE};
use crate::AppState;

/// Most characters one synchronous request may carry (seed 003).
pub const MAX_T2A_CHARS: usize = 10_000;

/// Prefix of espeak-ng voice ids in the voice list: `espeak_en-us`, `espeak_fr+f2`.
pub const ESPEAK_PREFIX: &str = "espeak_";

const PIPER: &str = "piper";
const ESPEAK: &str = "espeak-ng";

fn invalid(field: &str, msg: impl Into<String>) -> ApiError {
    Error::invalid(field, msg).into()
}

/// What a request asks for, checked and resolved.
#[derive(Clone)]
pub(crate) struct Plan {
    engine: Arc<dyn SpeechEngine>,
    voice: String,
    prosody: Prosody,
    gain: f32,
    settings: AudioSettings,
    text: String,
    illegal_ratio: f64,
    replacements: Vec<(String, String)>,
    /// A cloned speaker's median pitch, to shift the engine voice to.
    target_f0: Option<f32>,
    /// The pitch offset the voice's profile put into `prosody`.
    profile_pitch: f32,
}

fn check_voice_setting(vs: &VoiceSetting) -> Result<(Prosody, f32), ApiError> {
    let speed = vs.speed.unwrap_or(1.0);
    if !(0.5..=2.0).contains(&speed) {
        return Err(invalid(
            "voice_setting.speed",
            "'voice_setting.speed' must be between 0.5 and 2.",
        ));
    }
    let vol = vs.vol.unwrap_or(1.0);
    if !(vol > 0.0 && vol <= 10.0) {
        return Err(invalid(
            "voice_setting.vol",
            "'voice_setting.vol' must be greater than 0 and at most 10.",
        ));
    }
    let pitch = vs.pitch.unwrap_or(0.0);
    if !(-12.0..=12.0).contains(&pitch) || pitch.fract() != 0.0 {
        return Err(invalid(
            "voice_setting.pitch",
            "'voice_setting.pitch' must be a whole number of semitones between -12 and 12.",
        ));
    }
    let mut prosody = Prosody {
        rate: speed,
        pitch,
        range: 1.0,
    };
    let mut gain = vol;
    if let Some(e) = vs.emotion.as_deref() {
        let (p, g) = speech::emotion_prosody(e).ok_or_else(|| {
            invalid(
                "voice_setting.emotion",
                format!(
                    "'voice_setting.emotion' must be one of {}.",
                    speech::EMOTIONS.join(", ")
                ),
            )
        })?;
        prosody.rate *= p.rate;
        prosody.pitch = (prosody.pitch + p.pitch).clamp(-12.0, 12.0);
        prosody.range *= p.range;
        gain *= g;
    }
    Ok((prosody, gain))
}

fn audio_settings(req: &T2aRequest) -> Result<AudioSettings, ApiError> {
    let a = req.audio_setting.clone().unwrap_or_default();
    let mut s = AudioSettings::default();
    if let Some(f) = a.format.as_deref() {
        s.format = f.parse::<Format>().map_err(|_| {
            invalid(
                "audio_setting.format",
                "'audio_setting.format' must be mp3, pcm, flac or wav.",
            )
        })?;
    }
    if let Some(r) = a.sample_rate {
        s.sample_rate = r;
    }
    if let Some(b) = a.bitrate {
        s.bitrate = b;
    }
    if let Some(c) = a.channel {
        s.channels = c;
    }
    s.validate()
        .map_err(|e| invalid(e.field().unwrap_or("audio_setting"), e.to_string()))?;
    if req.stream && s.format == Format::Wav {
        return Err(invalid(
            "audio_setting.format",
            "wav is only available without streaming; stream mp3, pcm or flac.",
        ));
    }
    Ok(s)
}

/// `voice_id` to a language, a gender and, when the id names one, an
/// engine's own voice.
struct Wanted {
    language: String,
    gender: Option<Gender>,
    piper: Option<String>,
    espeak: Option<String>,
    /// Parameters over the engine voice (an account's own voice, a mix).
    profile: VoiceProfile,
}

/// The caller's own (designed or cloned) voices a request names, by id.
pub(crate) type OwnVoices = HashMap<String, VoiceProfile>;

/// Whether an id names a system voice (which an account's voice may not shadow).
pub(crate) fn is_system_voice(p: &Platform, voice_id: &str) -> bool {
    wanted_voice(p, &OwnVoices::new(), voice_id).is_ok()
}

/// Loads the caller's live voices among `ids` (the others are left to the
/// system voices, or to the unknown-voice error).
pub(crate) async fn own_voices<'a>(
    p: &Platform,
    account_id: &str,
    ids: impl IntoIterator<Item = &'a str>,
) -> Result<OwnVoices, ApiError> {
    let now = p.clock.now();
    let mut out = OwnVoices::new();
    for id in ids {
        if id.is_empty() || out.contains_key(id) || is_system_voice(p, id) {
            continue;
        }
        if let Some(v) = p.store.voice(account_id, id).await? {
            if voices::is_live(&v, now) {
                let profile: VoiceProfile = serde_json::from_str(&v.profile)
                    .map_err(|e| Error::internal(format!("voice profile: {e}")))?;
                out.insert(id.to_owned(), profile);
            }
        }
    }
    Ok(out)
}

/// The voice ids a request names.
pub(crate) fn voice_ids(req: &T2aRequest) -> Vec<&str> {
    let mut ids: Vec<&str> = req
        .voice_setting
        .as_ref()
        .map(|v| v.voice_id.as_str())
        .into_iter()
        .collect();
    if let Some(w) = &req.timbre_weights {
        ids.extend(w.iter().map(|w| w.voice_id.as_str()));
    }
    ids
}

/// Marks the caller's voices used by a real synthesis (they no longer expire).
pub(crate) async fn mark_used(p: &Platform, account_id: &str, own: &OwnVoices) {
    let now = p.clock.now();
    for id in own.keys() {
        if let Err(e) = p.store.mark_voice_used(account_id, id, now).await {
            tracing::warn!(code = %e.code, "marking a voice used failed");
        }
    }
}

fn wanted_voice(p: &Platform, own: &OwnVoices, voice_id: &str) -> Result<Wanted, ApiError> {
    if let Some(profile) = own.get(voice_id) {
        return Ok(Wanted {
            language: profile.language.clone(),
            gender: profile.gender(),
            piper: None,
            espeak: None,
            profile: profile.clone(),
        });
    }
    if let Some(id) = voice_id.strip_prefix(ESPEAK_PREFIX) {
        let espeak = p.engines.speech.get(ESPEAK);
        let base = id.split('+').next().unwrap_or(id);
        let voice = espeak.and_then(|e| e.voices().into_iter().find(|v| v.id == base));
        let Some(voice) = voice else {
            return Err(unknown_voice(voice_id));
        };
        return Ok(Wanted {
            profile: VoiceProfile::neutral(&voice.language, None),
            language: voice.language,
            gender: None,
            piper: None,
            espeak: Some(id.to_owned()),
        });
    }
    if let Some(piper) = p.engines.speech.get(PIPER) {
        if let Some(v) = piper.voices().into_iter().find(|v| v.id == voice_id) {
            return Ok(Wanted {
                profile: VoiceProfile::neutral(&v.language, v.gender),
                language: v.language,
                gender: v.gender,
                piper: Some(v.id),
                espeak: None,
            });
        }
    }
    if let Some(kind) = speech::minimax_voice_kind(voice_id) {
        return Ok(Wanted {
            profile: VoiceProfile::neutral(kind.language, Some(kind.gender)),
            language: kind.language.to_owned(),
            gender: Some(kind.gender),
            piper: None,
            espeak: None,
        });
    }
    Err(unknown_voice(voice_id))
}

fn unknown_voice(voice_id: &str) -> ApiError {
    Error::invalid(
        "voice_setting.voice_id",
        format!("No voice '{voice_id}'; POST /v1/get_voice lists the voices you can use."),
    )
    .with(NATIVE_CODE, 20132)
    .into()
}

/// The espeak-ng voice for a language and gender: the language's voice, with
/// a female variant when a female voice is wanted.
fn espeak_voice(voices: &[EngineVoice], language: &str, gender: Option<Gender>) -> Option<String> {
    let v = speech::best_voice(voices, language, None)?;
    Some(match gender {
        Some(Gender::Female) => format!("{}+f3", v.id),
        _ => v.id.clone(),
    })
}

/// Checks one text to speak: not empty, at most [`MAX_T2A_CHARS`], at most
/// 10% illegal characters. Returns that ratio.
pub(crate) fn check_text(text: &str) -> Result<f64, ApiError> {
    check_text_within(text, MAX_T2A_CHARS, " (use /v1/t2a_async_v2 for long text)")
}

/// [`check_text`] with another limit; `hint` follows the over-long message.
pub(crate) fn check_text_within(text: &str, max: usize, hint: &str) -> Result<f64, ApiError> {
    let chars = text.chars().count();
    if text.trim().is_empty() {
        return Err(invalid("text", "'text' is empty."));
    }
    if chars > max {
        return Err(Error::invalid(
            "text",
            format!("'text' has {chars} characters; at most {max} are allowed{hint}."),
        )
        .with("limit", max)
        .into());
    }
    let ratio = speech::illegal_ratio(text);
    if ratio > speech::MAX_ILLEGAL_RATIO {
        return Err(Error::invalid(
            "text",
            format!(
                "{:.1}% of the text are illegal (control) characters; at most 10% are allowed.",
                ratio * 100.0
            ),
        )
        .with(NATIVE_CODE, 1042)
        .with("invisible_character_ratio", ratio)
        .into());
    }
    Ok(ratio)
}

impl Plan {
    pub(crate) fn settings(&self) -> &AudioSettings {
        &self.settings
    }

    /// Shifts a cloned voice to its speaker's pitch, measured against the
    /// engine voice (the profile's offset stays when it cannot be measured).
    async fn calibrate(&mut self) {
        let Some(target) = self.target_f0.take() else {
            return;
        };
        if let Some(base) = voice_pitch(&self.engine, &self.voice).await {
            let shift = 12.0 * (target / base).log2();
            self.prosody.pitch =
                (self.prosody.pitch - self.profile_pitch + shift).clamp(-12.0, 12.0);
            self.profile_pitch = shift;
        }
    }

    /// This plan for `text`, whose illegal-character ratio is `ratio`.
    pub(crate) fn with_text(mut self, text: String, ratio: f64) -> Plan {
        self.text = text;
        self.illegal_ratio = ratio;
        self
    }
}

/// A request checked and resolved: model, `text` (checked right after the
/// model, so that errors come in the order of the fields; `None` leaves the
/// plan without text, as the WebSocket protocol sends it later, piece by
/// piece), output format, audio settings, voice, prosody, pronunciation rules.
fn plan_sync(
    p: &Platform,
    caller: &maximin_core::Caller,
    own: &OwnVoices,
    req: &T2aRequest,
    text: Option<&str>,
) -> Result<(Plan, String), ApiError> {
    let spec = p.model_for(caller, &req.model)?;
    if spec.modality != Modality::Speech {
        return Err(invalid(
            "model",
            format!(
                "'{}' is a {} model; /v1/t2a_v2 needs a speech model such as speech-2.8-hd.",
                spec.id, spec.modality
            ),
        ));
    }
    let ratio = match text {
        Some(t) => check_text(t)?,
        None => 0.0,
    };
    match req.output_format.as_deref() {
        None | Some("hex") => {}
        Some("url") if req.stream => {
            return Err(invalid(
                "output_format",
                "'output_format' url is only available without streaming.",
            ))
        }
        Some("url") => {}
        Some(_) => {
            return Err(invalid(
                "output_format",
                "'output_format' must be hex or url.",
            ))
        }
    }
    let settings = audio_settings(req)?;

    // The voice: voice_setting.voice_id, or timbre_weights mixed: the
    // heaviest voice's language, gender and engine voice, every voice's
    // parameters weighed together.
    let vs = req.voice_setting.clone().unwrap_or_default();
    let mut wanted = None;
    if let Some(weights) = req.timbre_weights.as_ref().filter(|w| !w.is_empty()) {
        if weights.len() > 4 {
            return Err(invalid(
                "timbre_weights",
                "'timbre_weights' mixes at most 4 voices.",
            ));
        }
        let mut parts = Vec::new();
        for (i, w) in weights.iter().enumerate() {
            if !(1..=100).contains(&w.weight) {
                return Err(invalid(
                    &format!("timbre_weights[{i}].weight"),
                    "Each weight must be between 1 and 100.",
                ));
            }
            let one = wanted_voice(p, own, &w.voice_id).map_err(|_| {
                ApiError::from(
                    Error::invalid(
                        &format!("timbre_weights[{i}].voice_id"),
                        format!("No voice '{}'.", w.voice_id),
                    )
                    .with(NATIVE_CODE, 20132),
                )
            })?;
            parts.push((one, w.weight));
        }
        if vs.voice_id.is_empty() {
            let profiles: Vec<_> = parts.iter().map(|(w, n)| (w.profile.clone(), *n)).collect();
            let mixed = VoiceProfile::mix(&profiles);
            let heaviest = parts.into_iter().max_by_key(|(_, n)| *n).map(|(w, _)| w);
            if let (Some(mut h), Some(m)) = (heaviest, mixed) {
                h.profile = m;
                wanted = Some(h);
            }
        }
    }
    let mut wanted = match wanted {
        Some(w) => w,
        None if vs.voice_id.is_empty() => {
            return Err(invalid(
                "voice_setting.voice_id",
                "'voice_setting.voice_id' is required (or 'timbre_weights').",
            ))
        }
        None => wanted_voice(p, own, &vs.voice_id)?,
    };
    let (prosody, gain) = check_voice_setting(&vs)?;
    let (prosody, gain) = wanted.profile.apply(prosody, gain);
    if let Some(boost) = req
        .language_boost
        .as_deref()
        .filter(|b| *b != "auto" && !b.is_empty())
    {
        let tag = speech::language_boost_tag(boost).ok_or_else(|| {
            invalid(
                "language_boost",
                format!("'language_boost' '{boost}' is not a language MiniMax lists."),
            )
        })?;
        if !speech::same_language(&wanted.language, tag) {
            wanted.language = tag.to_owned();
            wanted.piper = None;
            wanted.espeak = None;
        }
    }

    // The engine: neural for *-hd where the language has a voice.
    let engines = &p.engines.speech;
    let mut chosen: Option<(Arc<dyn SpeechEngine>, String)> = None;
    if spec.engine == PIPER {
        if let Some(piper) = engines.get(PIPER) {
            let voices = piper.voices();
            let v = match &wanted.piper {
                Some(id) => Some(id.clone()),
                None => speech::best_voice(&voices, &wanted.language, wanted.gender)
                    .map(|v| v.id.clone()),
            };
            if let Some(v) = v {
                chosen = Some((piper.clone(), v));
            }
        }
    }
    if chosen.is_none() {
        let espeak = engines.get(ESPEAK).ok_or_else(|| {
            ApiError::from(
                Error::new(
                    maximin_types::ErrorCode::ModelUnavailable,
                    format!(
                        "No speech engine in this build can speak '{}' for '{}'.",
                        wanted.language, spec.id
                    ),
                )
                .with("model", spec.id.as_str()),
            )
        })?;
        let v = match &wanted.espeak {
            Some(id) => Some(id.clone()),
            None => espeak_voice(&espeak.voices(), &wanted.language, wanted.gender),
        };
        let v = v.ok_or_else(|| {
            invalid(
                "voice_setting.voice_id",
                format!("No installed voice speaks '{}'.", wanted.language),
            )
        })?;
        chosen = Some((espeak.clone(), v));
    }
    let Some((engine, voice)) = chosen else {
        return Err(Error::internal("no speech engine chosen").into());
    };

    let mut replacements = Vec::new();
    if let Some(dict) = &req.pronunciation_dict {
        for (i, rule) in dict.tone.iter().enumerate() {
            let Some((from, to)) = rule.split_once('/') else {
                return Err(invalid(
                    &format!("pronunciation_dict.tone[{i}]"),
                    "Each rule is 'original/replacement'.",
                ));
            };
            if from.is_empty() {
                return Err(invalid(
                    &format!("pronunciation_dict.tone[{i}]"),
                    "A rule's original text is empty.",
                ));
            }
            replacements.push((from.to_owned(), to.to_owned()));
        }
    }
    Ok((
        Plan {
            engine,
            voice,
            prosody,
            gain,
            settings,
            text: text.unwrap_or_default().to_owned(),
            illegal_ratio: ratio,
            replacements,
            target_f0: wanted.profile.f0_hz,
            profile_pitch: wanted.profile.pitch,
        },
        spec.id.clone(),
    ))
}

/// [`plan_sync`], with a cloned voice's pitch set from a measurement of
/// the engine voice that speaks it.
pub(crate) async fn plan_voice(
    p: &Platform,
    caller: &maximin_core::Caller,
    own: &OwnVoices,
    req: &T2aRequest,
    text: Option<&str>,
) -> Result<(Plan, String), ApiError> {
    let (mut plan, model) = plan_sync(p, caller, own, req, text)?;
    plan.calibrate().await;
    Ok((plan, model))
}

/// The median pitch of an engine voice, measured once on a reference
/// sentence and remembered.
async fn voice_pitch(engine: &Arc<dyn SpeechEngine>, voice: &str) -> Option<f32> {
    static CACHE: std::sync::OnceLock<std::sync::Mutex<HashMap<String, f32>>> =
        std::sync::OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let key = format!("{:p}/{voice}", Arc::as_ptr(engine).cast::<()>());
    if let Some(hz) = cache.lock().ok().and_then(|c| c.get(&key).copied()) {
        return Some(hz);
    }
    let neutral = Prosody {
        rate: 1.0,
        pitch: 0.0,
        range: 1.0,
    };
    let audio = engine
        .synthesize(
            voice,
            "This sentence measures how high the voice is. One, two, three, four.",
            neutral,
        )
        .await
        .ok()?;
    let pcm = maximin_audio::Pcm::mono(audio.samples, audio.sample_rate);
    let stats = tokio::task::spawn_blocking(move || maximin_audio::analysis::voice_stats(&pcm))
        .await
        .ok()?;
    let hz = stats.f0_median_hz?;
    if let Ok(mut c) = cache.lock() {
        c.insert(key, hz);
    }
    Some(hz)
}

/// Synthesises piece by piece; each call returns the encoded bytes of one
/// sentence (or pause), and `finish` the rest and the totals.
pub(crate) struct Synth {
    plan: Plan,
    pieces: std::collections::VecDeque<Piece>,
    /// Audio of sentences spoken side by side (with their text), waiting their turn.
    spoken: std::collections::VecDeque<(String, Result<SpeechAudio, Error>)>,
    /// Whether the first sentence has been synthesised: when streaming it
    /// is spoken on its own, with every thread (it is the first audio).
    spoke: bool,
    /// Whether the audio leaves whole (its head is rewritten with exact
    /// sizes at the end) rather than streamed.
    whole: bool,
    encoder: Option<Encoder>,
    /// Pause seconds met before the first audio (the encoder's input rate is
    /// known only then).
    pending_silence: f32,
    samples_in: u64,
    input_rate: u32,
    bytes: u64,
    /// Sentence timings so far (for subtitles).
    subtitles: Vec<Subtitle>,
    /// The first sentence of a streamed response, arriving in pieces.
    streaming: Option<Streaming>,
}

/// A sentence the engine sends in pieces ([`SpeechEngine::synthesize_streamed`]).
struct Streaming {
    text: String,
    /// Where its audio starts, in samples (known with its first piece).
    begin: Option<u64>,
    pieces: tokio::sync::mpsc::Receiver<SpeechAudio>,
    task: tokio::task::JoinHandle<Result<(), Error>>,
}

/// A whole synthesis (see [`Synth::whole_audio`]).
pub(crate) struct Whole {
    pub audio: Vec<u8>,
    pub subtitles: Vec<Subtitle>,
    pub info: T2aExtraInfo,
    pub chars: u64,
}

/// One subtitle segment: at most [`SUBTITLE_CHARS`] characters of a
/// sentence and when they are spoken, in milliseconds.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct Subtitle {
    pub text: String,
    pub time_begin: f64,
    pub time_end: f64,
}

/// Longest subtitle segment (MiniMax: sentence aligned, at most 50 characters).
pub(crate) const SUBTITLE_CHARS: usize = 50;

/// A sentence's segments: cut at word boundaries into pieces of at most
/// [`SUBTITLE_CHARS`], its time shared by characters.
pub(crate) fn subtitle_segments(text: &str, begin_ms: f64, end_ms: f64) -> Vec<Subtitle> {
    let text = text.trim();
    let mut parts: Vec<String> = Vec::new();
    let mut cur = String::new();
    for word in text.split_inclusive(char::is_whitespace) {
        let wlen = word.chars().count();
        if !cur.is_empty() && cur.chars().count() + wlen > SUBTITLE_CHARS {
            parts.push(std::mem::take(&mut cur));
        }
        if wlen > SUBTITLE_CHARS {
            // A "word" longer than a segment (text without spaces, e.g. Chinese).
            let chars: Vec<char> = word.chars().collect();
            for c in chars.chunks(SUBTITLE_CHARS) {
                parts.push(c.iter().collect());
            }
            continue;
        }
        cur.push_str(word);
    }
    if !cur.trim().is_empty() {
        parts.push(cur);
    }
    let total: usize = parts
        .iter()
        .map(|p| p.chars().count())
        .sum::<usize>()
        .max(1);
    let span = (end_ms - begin_ms).max(0.0);
    let mut at = begin_ms;
    let mut done = 0usize;
    parts
        .into_iter()
        .filter(|p| !p.trim().is_empty())
        .map(|p| {
            done += p.chars().count();
            let end = begin_ms + span * done as f64 / total as f64;
            let s = Subtitle {
                text: p.trim().to_owned(),
                time_begin: (at * 10.0).round() / 10.0,
                time_end: (end * 10.0).round() / 10.0,
            };
            at = end;
            s
        })
        .collect()
}

impl Synth {
    /// A synthesiser whose first sentence comes out first, on its own
    /// (streamed responses: the first audio as soon as possible).
    pub(crate) fn new(plan: Plan) -> Self {
        Synth::with_first(plan, true)
    }

    /// A synthesiser for a whole response: no audio leaves before the
    /// end, so the first sentence joins the others side by side.
    pub(crate) fn whole(plan: Plan) -> Self {
        Synth::with_first(plan, false)
    }

    fn with_first(plan: Plan, first_alone: bool) -> Self {
        let mut text = speech::clean(&plan.text);
        for (from, to) in &plan.replacements {
            text = text.replace(from.as_str(), to);
        }
        let pieces = speech::pieces(&text).into();
        Synth {
            plan,
            pieces,
            spoken: std::collections::VecDeque::new(),
            spoke: !first_alone,
            whole: !first_alone,
            encoder: None,
            pending_silence: 0.0,
            samples_in: 0,
            input_rate: 0,
            bytes: 0,
            subtitles: Vec::new(),
            streaming: None,
        }
    }

    /// Every piece at once: the whole file, its subtitles, extra_info and
    /// billed characters.
    pub(crate) async fn whole_audio(mut self) -> Result<Whole, Error> {
        let mut audio = Vec::new();
        while let Some(bytes) = self.next().await {
            audio.extend(bytes?);
        }
        let subtitles = std::mem::take(&mut self.subtitles);
        let (end, info, chars) = self.finish_whole()?;
        end.apply(&mut audio);
        Ok(Whole {
            audio,
            subtitles,
            info,
            chars,
        })
    }

    /// Sentence timings of what has been synthesised so far.
    pub(crate) fn subtitles(&self) -> &[Subtitle] {
        &self.subtitles
    }

    /// The next piece's bytes; `None` when every piece is done.
    ///
    /// The first sentence of a streamed response is spoken on its own, and
    /// comes out in pieces as the engine finishes them (it is the first
    /// audio); after it, runs of sentences are handed to the engine
    /// together, which speaks as many side by side as it can
    /// ([`SpeechEngine::side_by_side`]), and come out one by one, in order.
    pub(crate) async fn next(&mut self) -> Option<Result<Vec<u8>, Error>> {
        loop {
            if let Some(mut s) = self.streaming.take() {
                if let Some(audio) = s.pieces.recv().await {
                    let played = self.play(audio);
                    if let Ok((_, begin)) = &played {
                        s.begin.get_or_insert(*begin);
                        self.streaming = Some(s);
                    }
                    return Some(played.map(|(bytes, _)| bytes));
                }
                match s.task.await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => return Some(Err(e)),
                    Err(e) => return Some(Err(Error::internal(format!("speech task: {e}")))),
                }
                let begin = s.begin.unwrap_or(self.samples_in);
                self.note(&s.text, begin);
                continue;
            }
            if let Some((text, audio)) = self.spoken.pop_front() {
                return Some(audio.and_then(|a| self.take(&text, a)));
            }
            let piece = self.pieces.pop_front()?;
            let text = match piece {
                Piece::Pause(secs) => return Some(self.pause(secs)),
                Piece::Text(text) => text,
            };
            let (engine, voice, prosody) = (
                self.plan.engine.clone(),
                self.plan.voice.clone(),
                self.plan.prosody,
            );
            if !self.spoke {
                self.spoke = true;
                let (tx, pieces) = tokio::sync::mpsc::channel(4);
                let said = text.clone();
                let task = tokio::spawn(async move {
                    engine.synthesize_streamed(&voice, &said, prosody, tx).await
                });
                self.streaming = Some(Streaming {
                    text,
                    begin: None,
                    pieces,
                    task,
                });
                continue;
            }
            // Up to four texts per engine thread at a time: enough that the
            // threads stay busy, few enough that streamed chunks keep
            // coming well ahead of playback (runs are ~20x real time).
            let width = engine.side_by_side();
            let batch = if width > 1 { width * 4 } else { 1 };
            let mut texts = vec![text];
            while texts.len() < batch {
                let Some(Piece::Text(_)) = self.pieces.front() else {
                    break;
                };
                if let Some(Piece::Text(t)) = self.pieces.pop_front() {
                    texts.push(t);
                }
            }
            let results = if texts.len() == 1 {
                vec![engine.synthesize(&voice, &texts[0], prosody).await]
            } else {
                engine.synthesize_all(&voice, &texts, prosody).await
            };
            let mut results = texts.into_iter().zip(results);
            let Some((text, first)) = results.next() else {
                return Some(Err(Error::internal("the speech engine returned no audio")));
            };
            self.spoken.extend(results);
            return Some(first.and_then(|a| self.take(&text, a)));
        }
    }

    fn pause(&mut self, secs: f32) -> Result<Vec<u8>, Error> {
        if self.encoder.is_none() {
            self.pending_silence += secs;
            return Ok(Vec::new());
        }
        let n = (secs * self.input_rate as f32) as usize;
        self.feed(self.input_rate, &vec![0.0; n])
    }

    /// One sentence's samples, at the request's volume, encoded; its timing noted.
    fn take(&mut self, text: &str, audio: SpeechAudio) -> Result<Vec<u8>, Error> {
        let (bytes, begin) = self.play(audio)?;
        self.note(text, begin);
        Ok(bytes)
    }

    /// Samples at the request's volume, encoded; and the sample they start at.
    fn play(&mut self, mut audio: SpeechAudio) -> Result<(Vec<u8>, u64), Error> {
        if self.plan.gain != 1.0 {
            for s in &mut audio.samples {
                *s = (*s * self.plan.gain).clamp(-1.0, 1.0);
            }
        }
        let out = self.feed(audio.sample_rate, &audio.samples)?;
        Ok((out, self.samples_in - audio.samples.len() as u64))
    }

    /// The subtitles of `text`, spoken from sample `begin` to what has been fed.
    fn note(&mut self, text: &str, begin: u64) {
        let rate = f64::from(self.input_rate.max(1));
        let end = self.samples_in as f64 * 1000.0 / rate;
        let begin = begin as f64 * 1000.0 / rate;
        self.subtitles.extend(subtitle_segments(text, begin, end));
    }

    /// Encodes samples at `rate`. The encoder is made on first use (an
    /// engine's rate is known only then), led by the pauses met before.
    fn feed(&mut self, rate: u32, samples: &[f32]) -> Result<Vec<u8>, Error> {
        let mut out = Vec::new();
        match self.encoder.as_mut() {
            None => {
                let enc = match self.whole {
                    true => Encoder::whole(self.plan.settings, rate),
                    false => Encoder::new(self.plan.settings, rate),
                };
                let mut enc = enc.map_err(audio_error)?;
                let n = (self.pending_silence * rate as f32) as usize;
                out = enc.push(&vec![0.0; n]).map_err(audio_error)?;
                self.samples_in += n as u64;
                self.input_rate = rate;
                self.encoder = Some(enc);
            }
            // One voice and one prosody per request: an engine keeps its rate.
            Some(_) if rate != self.input_rate => {
                return Err(Error::internal(format!(
                    "speech engine changed its sample rate mid-request ({} → {rate})",
                    self.input_rate
                )))
            }
            Some(_) => {}
        }
        if let Some(enc) = self.encoder.as_mut() {
            out.extend(enc.push(samples).map_err(audio_error)?);
        }
        self.samples_in += samples.len() as u64;
        self.bytes += out.len() as u64;
        Ok(out)
    }

    /// The encoder's tail and the extra_info of the whole audio, for a
    /// streamed synthesis (its WAV or FLAC header keeps the length open).
    pub(crate) fn finish(self) -> Result<(Vec<u8>, T2aExtraInfo, u64), Error> {
        debug_assert!(!self.whole, "a whole synthesis ends with finish_whole");
        let (end, info, chars) = self.finish_whole()?;
        Ok((end.tail, info, chars))
    }

    /// The end of a whole synthesis ([`Synth::whole`]): the tail, and the head
    /// with exact sizes (WAV sizes, FLAC sample count, MP3 Info frame) that
    /// replaces the start of the audio; with the extra_info.
    pub(crate) fn finish_whole(mut self) -> Result<(WholeEnd, T2aExtraInfo, u64), Error> {
        // Nothing spoken (only pauses): the silence at the output rate.
        let mut tail = if self.encoder.is_none() {
            self.feed(self.plan.settings.sample_rate, &[])?
        } else {
            Vec::new()
        };
        let mut head = Vec::new();
        if let Some(enc) = self.encoder.take() {
            let end = enc.finish_whole().map_err(audio_error)?;
            self.bytes += end.tail.len() as u64;
            tail.extend(end.tail);
            head = end.head;
        }
        let (tail, info, chars) = self.info_with(tail);
        Ok((WholeEnd { tail, head }, info, chars))
    }

    fn info_with(&self, tail: Vec<u8>) -> (Vec<u8>, T2aExtraInfo, u64) {
        let s = &self.plan.settings;
        let ms = if self.input_rate == 0 {
            0
        } else {
            self.samples_in * 1000 / u64::from(self.input_rate)
        };
        let chars = speech::usage_characters(&self.plan.text);
        (
            tail,
            T2aExtraInfo {
                audio_length: ms,
                audio_sample_rate: s.sample_rate,
                audio_size: self.bytes,
                bitrate: if s.format == Format::Mp3 {
                    s.effective_bitrate()
                } else {
                    0
                },
                word_count: speech::word_count(&self.plan.text),
                invisible_character_ratio: (self.plan.illegal_ratio * 1e4).round() / 1e4,
                usage_characters: chars,
                audio_format: s.format.as_str().to_owned(),
                audio_channel: s.channels,
            },
            chars,
        )
    }
}

fn audio_error(e: maximin_audio::AudioError) -> Error {
    match e.field() {
        Some(f) => Error::invalid(f, e.to_string()),
        None => Error::internal(format!("audio encoding: {e}")),
    }
}

fn native(ctx: &Ctx, body: T2aResponse, report: UsageReport) -> Response {
    let mut resp = axum::Json(body).into_response();
    if let Ok(v) = axum::http::HeaderValue::from_str(&ctx.request_id) {
        resp.headers_mut().insert("trace-id", v);
    }
    resp.extensions_mut().insert(report);
    resp
}

#[utoipa::path(post, path = "/v1/t2a_v2", tag = "speech", security(("bearer" = [])),
    request_body = T2aRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes a retry return the first response")),
    responses((status = 200, description = "`data.audio` is hex of the audio (or a link, with `output_format: url`); with `stream: true`, server-sent events of the same shape (`status` 1 per piece, 2 at the end with `extra_info`).",
                   content((T2aResponse = "application/json"), (crate::openapi::ServerSentEvent = "text/event-stream"))),
              (status = 402), (status = 404, description = "`model_not_found`"), (status = 503)))]
pub async fn t2a_v2(
    State(app): State<AppState>,
    ctx: Ctx,
    headers: axum::http::HeaderMap,
    ApiJson(req): ApiJson<T2aRequest>,
) -> Result<Response, ApiError> {
    let p = &app.platform;
    let account = ctx.caller.account.id.clone();
    let own = own_voices(p, &account, voice_ids(&req)).await?;
    let (plan, model) = plan_voice(p, &ctx.caller, &own, &req, Some(&req.text)).await?;
    let format = plan.settings.format;
    let links = Links {
        app: app.clone(),
        base: crate::routes::files::base_url(&app, &headers),
        account: account.clone(),
    };
    if req.stream {
        let exclude = req
            .stream_options
            .as_ref()
            .is_some_and(|o| o.exclude_aggregated_audio);
        return Ok(stream(
            ctx,
            Synth::new(plan),
            model,
            exclude,
            (links, req.subtitle_enable),
            own,
        ));
    }
    let Whole {
        audio,
        subtitles,
        info,
        chars,
    } = Synth::whole(plan).whole_audio().await?;
    mark_used(p, &account, &own).await;
    let subtitle_file = match req.subtitle_enable {
        true => Some(links.subtitles(&subtitles).await?),
        false => None,
    };
    let (audio, audio_url) = if req.output_format.as_deref() == Some("url") {
        let url = links.put(format.as_str(), format.as_str(), &audio).await?;
        (url.clone(), Some(url))
    } else {
        (hex::encode(&audio), None)
    };
    let body = T2aResponse {
        data: Some(T2aData {
            audio,
            status: 2,
            audio_url,
            subtitle_file,
        }),
        extra_info: Some(info),
        trace_id: ctx.request_id.clone(),
        base_resp: BaseResp::success(),
    };
    Ok(native(&ctx, body, UsageReport::characters(model, chars)))
}

/// A whole request's audio, for surfaces that return bytes (OpenAI's
/// `audio/speech`): the caller's own voices, the plan, the synthesis; own
/// voices are marked used. Returns the audio, billed characters and model.
pub(crate) async fn synthesize_request(
    p: &Platform,
    caller: &maximin_core::Caller,
    req: &T2aRequest,
) -> Result<(Vec<u8>, u64, String), ApiError> {
    let own = own_voices(p, &caller.account.id, voice_ids(req)).await?;
    let (plan, model) = plan_voice(p, caller, &own, req, Some(&req.text)).await?;
    let whole = Synth::whole(plan).whole_audio().await?;
    mark_used(p, &caller.account.id, &own).await;
    Ok((whole.audio, whole.chars, model))
}

/// Speaks `text` with `voice_id` (a voice being made: it is in `own`) as
/// mp3: the trial audio of voice design and the demo of voice cloning.
/// Returns the audio, its extra_info, the billed characters and the model.
pub(crate) async fn preview(
    p: &Platform,
    caller: &maximin_core::Caller,
    own: &OwnVoices,
    model: &str,
    text: &str,
    voice_id: &str,
) -> Result<(Vec<u8>, T2aExtraInfo, u64, String), ApiError> {
    let req: T2aRequest = serde_json::from_value(json!({
        "model": model,
        "text": text,
        "voice_setting": {"voice_id": voice_id},
        "audio_setting": {"format": "mp3"},
    }))
    .map_err(Error::internal)?;
    let (plan, model) = plan_voice(p, caller, own, &req, Some(text)).await?;
    let whole = Synth::whole(plan).whole_audio().await?;
    Ok((whole.audio, whole.info, whole.chars, model))
}

/// How long `url` outputs and subtitle files stay (spec §0.8: 24 hours).
const OUTPUT_TTL: time::Duration = time::Duration::hours(24);

/// Stores a request's outputs as files and links to them.
#[derive(Clone)]
struct Links {
    app: AppState,
    base: String,
    account: String,
}

impl Links {
    async fn put(&self, kind: &str, ext: &str, data: &[u8]) -> Result<String, Error> {
        let files = &self.app.platform.files;
        let expires = self.app.platform.clock.now() + OUTPUT_TTL;
        let name = format!("speech.{ext}");
        let rec = files
            .write_output(
                &maximin_core::files::Output {
                    account_id: &self.account,
                    purpose: "t2a_output",
                    filename: &name,
                    kind,
                    id: None,
                    expires_at: Some(expires),
                },
                data,
            )
            .await?;
        files.record(&rec).await?;
        Ok(files.link(&self.base, &rec, OUTPUT_TTL))
    }

    async fn subtitles(&self, subs: &[Subtitle]) -> Result<String, Error> {
        let json = serde_json::to_vec(subs).map_err(Error::internal)?;
        self.put("json", "subtitle.json", &json).await
    }
}

/// Most audio bytes in one streamed frame (a multiple of every sample size,
/// so PCM frames hold whole samples): ~0.25 s of 32 kHz PCM, ~1 s of mp3.
const STREAM_CHUNK: usize = 16 * 1024;

/// SSE: each sentence as soon as it is encoded, in frames of at most [`STREAM_CHUNK`] bytes (`status` 1), then a
/// final frame (`status` 2) with `extra_info` and, unless excluded, the whole
/// audio. No `[DONE]`: MiniMax clients parse every `data:` line as JSON.
fn stream(
    ctx: Ctx,
    synth: Synth,
    model: String,
    exclude_aggregated: bool,
    (links, subtitles): (Links, bool),
    own: OwnVoices,
) -> Response {
    let meter = StreamMeter::new();
    struct St {
        synth: Option<Synth>,
        all: Vec<u8>,
        trace: String,
        model: String,
        meter: Arc<StreamMeter>,
        exclude: bool,
        links: Links,
        subtitles: bool,
        own: OwnVoices,
    }
    let st = St {
        synth: Some(synth),
        all: Vec::new(),
        trace: ctx.request_id.clone(),
        model,
        meter: meter.clone(),
        exclude: exclude_aggregated,
        links,
        subtitles,
        own,
    };
    let frames = futures_util::stream::unfold(st, |mut st| async move {
        let synth = st.synth.as_mut()?;
        loop {
            match synth.next().await {
                Some(Ok(bytes)) if bytes.is_empty() => continue,
                Some(Ok(bytes)) => {
                    st.all.extend(&bytes);
                    // A sentence's audio in frames of at most STREAM_CHUNK
                    // bytes: a client holds playable audio once the first
                    // small frame is in, not the whole sentence's.
                    let frames = bytes
                        .chunks(STREAM_CHUNK)
                        .map(|c| {
                            json!({
                                "data": {"audio": hex::encode(c), "status": 1},
                                "trace_id": st.trace,
                                "base_resp": {"status_code": 0, "status_msg": ""},
                            })
                            .to_string()
                        })
                        .collect();
                    return Some((frames, st));
                }
                Some(Err(e)) => {
                    st.synth = None;
                    let frame = json!({
                        "data": null,
                        "trace_id": st.trace,
                        "base_resp": crate::error::native_base_resp(&e),
                    });
                    return Some((vec![frame.to_string()], st));
                }
                None => break,
            }
        }
        let synth = st.synth.take()?;
        let subs = synth.subtitles().to_vec();
        let frame = match synth.finish() {
            Ok((tail, info, chars)) => {
                mark_used(&st.links.app.platform, &st.links.account, &st.own).await;
                let subtitle_file = match st.subtitles {
                    true => match st.links.subtitles(&subs).await {
                        Ok(url) => Some(url),
                        Err(e) => {
                            return Some((
                                vec![json!({
                                    "data": null,
                                    "trace_id": st.trace,
                                    "base_resp": crate::error::native_base_resp(&e),
                                })
                                .to_string()],
                                st,
                            ))
                        }
                    },
                    false => None,
                };
                st.all.extend(&tail);
                st.meter
                    .report(UsageReport::characters(st.model.clone(), chars));
                // The encoder's tail (the last MP3 frames, FLAC's end) is part
                // of the stream: send it as its own chunk before the summary.
                let mut frames = Vec::new();
                if !tail.is_empty() {
                    frames.push(json!({
                        "data": {"audio": hex::encode(&tail), "status": 1},
                        "trace_id": st.trace,
                        "base_resp": {"status_code": 0, "status_msg": ""},
                    }));
                }
                let mut data = json!({
                    "audio": if st.exclude { String::new() } else { hex::encode(&st.all) },
                    "status": 2,
                });
                if let Some(url) = subtitle_file {
                    data["subtitle_file"] = json!(url);
                }
                frames.push(json!({
                    "data": data,
                    "extra_info": info,
                    "trace_id": st.trace,
                    "base_resp": {"status_code": 0, "status_msg": "success"},
                }));
                frames.into_iter().map(|f| f.to_string()).collect()
            }
            Err(e) => vec![json!({
                "data": null,
                "trace_id": st.trace,
                "base_resp": crate::error::native_base_resp(&e),
            })
            .to_string()],
        };
        Some((frame, st))
    });
    let frames = futures_util::StreamExt::map(frames, |fs: Vec<String>| {
        fs.into_iter().map(|f| (None, f)).collect()
    });
    let mut resp = crate::ctx::sse_response(frames, meter);
    if let Ok(v) = axum::http::HeaderValue::from_str(&ctx.request_id) {
        resp.headers_mut().insert("trace-id", v);
    }
    resp
}

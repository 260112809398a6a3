//! A speech request checked and resolved into a [`Plan`]: the model and the
//! provider that serves it, the text, the output (format and audio
//! settings), the voice and how to speak (prosody, volume), and the
//! pronunciation rules. Errors name the request's fields, in the order the
//! fields come.

use std::collections::HashMap;
use std::sync::Arc;

use maximin_audio::{AudioSettings, Format};
use maximin_core::catalog::ModelSpec;
use maximin_core::engines::Prosody;
use maximin_core::error::NATIVE_CODE;
use maximin_core::pii::PiiMode;
use maximin_core::providers::speech::{
    AudioOutput, SpeechEvent, SpeechJob, SpeechProvider, VoiceSettings,
};
use maximin_core::routing::Policy;
use maximin_core::{speech, Caller, Error, Platform, Result};
use maximin_types::speech::{T2aRequest, VoiceSetting};
use maximin_types::Modality;

use crate::voice::{self, OwnVoices};

/// Most characters one synchronous request may carry (seed 003).
pub const MAX_T2A_CHARS: usize = 10_000;

/// What a request asks for, checked and resolved.
#[derive(Clone)]
pub struct Plan {
    pub(crate) provider: Arc<dyn SpeechProvider>,
    /// PII protection of the text before the provider gets it.
    pub(crate) pii: PiiMode,
    pub(crate) model: ModelSpec,
    /// The job without its text until [`Plan::with_text`].
    pub(crate) job: SpeechJob,
    /// Volume (and a voice's energy) as a factor on samples.
    pub(crate) gain: f32,
    pub(crate) settings: AudioSettings,
    pub(crate) illegal_ratio: f64,
    /// For a model served by upstreams or deployments: the catalog model and
    /// the caller's policy, which the synthesis routes with (retries,
    /// failover, fallbacks). `None`: the plan's own local engine speaks.
    pub(crate) routed: Option<(ModelSpec, Policy)>,
    /// A cloned speaker's median pitch, to shift the engine voice to.
    target_f0: Option<f32>,
    /// The pitch offset the voice's profile put into the prosody.
    profile_pitch: f32,
    used: UsedVoices,
}

/// The caller's own voices a plan speaks with; a real synthesis marks them
/// used (they no longer expire).
#[derive(Clone, Default)]
pub struct UsedVoices {
    account: String,
    ids: Vec<String>,
}

impl UsedVoices {
    pub async fn mark(&self, p: &Platform) {
        let now = p.clock.now();
        for id in &self.ids {
            if let Err(e) = p.store.mark_voice_used(&self.account, id, now).await {
                tracing::warn!(code = %e.code, "marking a voice used failed");
            }
        }
    }
}

impl Plan {
    /// The catalog id of the model that speaks.
    pub fn model(&self) -> &str {
        &self.model.id
    }

    pub fn settings(&self) -> &AudioSettings {
        &self.settings
    }

    /// The caller's own voices this plan speaks with.
    pub fn used_voices(&self) -> UsedVoices {
        self.used.clone()
    }

    /// This plan for `text`, whose illegal-character ratio is `ratio`.
    pub fn with_text(mut self, text: String, ratio: f64) -> Plan {
        self.job.text = text;
        self.illegal_ratio = ratio;
        self
    }

    /// Shifts a cloned voice to its speaker's pitch, measured against the
    /// engine voice (the profile's offset stays when it cannot be measured).
    async fn calibrate(&mut self) {
        let Some(target) = self.target_f0.take() else {
            return;
        };
        if let Some(base) = voice_pitch(self).await {
            let shift = 12.0 * (target / base).log2();
            self.job.prosody.pitch =
                (self.job.prosody.pitch - self.profile_pitch + shift).clamp(-12.0, 12.0);
            self.profile_pitch = shift;
        }
    }
}

/// Sets aside the cost of speaking `text` with the plan's model (its
/// billed characters) before the synthesis starts: refused with
/// `insufficient_credits` when the request's cap, the key's budget or the
/// account's balance does not cover it.
pub async fn reserve(p: &Platform, caller: &Caller, plan: &Plan, text: &str) -> Result<()> {
    let estimate = maximin_core::billing::Quantities {
        characters: maximin_core::speech::usage_characters(text),
        ..Default::default()
    };
    p.reserve(caller, &plan.model, estimate).await
}

/// Checks a request and resolves it: the caller's own voices it names are
/// loaded (and marked used by the synthesis), a cloned voice's pitch is set
/// from a measurement of the engine voice that speaks it. `text` is checked
/// right after the model; `None` leaves the plan without text (the
/// WebSocket protocol and tasks give it later, [`Plan::with_text`]).
pub async fn plan(
    p: &Platform,
    caller: &Caller,
    req: &T2aRequest,
    text: Option<&str>,
) -> Result<Plan> {
    let own = voice::own_voices(p, &caller.account.id, voice::voice_ids(req)).await?;
    let mut plan = plan_with(p, caller, &own, req, text).await?;
    plan.used = UsedVoices {
        account: caller.account.id.clone(),
        ids: own.into_keys().collect(),
    };
    Ok(plan)
}

/// [`plan`] with the caller's own voices given (a voice being made, for its
/// preview), which the synthesis does not mark used.
pub async fn plan_with(
    p: &Platform,
    caller: &Caller,
    own: &OwnVoices,
    req: &T2aRequest,
    text: Option<&str>,
) -> Result<Plan> {
    let spec = p.model_for(caller, &req.model)?;
    if spec.modality != Modality::Speech {
        return Err(Error::invalid(
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
            return Err(Error::invalid(
                "output_format",
                "'output_format' url is only available without streaming.",
            ))
        }
        Some("url") => {}
        Some(_) => {
            return Err(Error::invalid(
                "output_format",
                "'output_format' must be hex or url.",
            ))
        }
    }
    let settings = audio_settings(req)?;

    let vs = req.voice_setting.clone().unwrap_or_default();
    let mut wanted = voice::wanted(p, spec, own, req, &vs)?;
    let (prosody, gain, asked) = check_voice_setting(&vs)?;
    let (prosody, gain) = wanted.profile.apply(prosody, gain);
    voice::boost_language(&mut wanted, req.language_boost.as_deref())?;
    let policy = p.policy(caller);
    let (provider, voice, target) = voice::provider_for(p, spec, &wanted, &policy)?;
    // Content bound for an upstream (or, when the account asks, a local
    // engine) is protected by the account's PII mode.
    let pii = if target.upstream().is_some() || policy.pii_local {
        policy.pii
    } else {
        PiiMode::Off
    };
    // An upstream takes the volume as asked; the gain is for local samples.
    let gain = if spec.upstream().is_some() { 1.0 } else { gain };
    let routed = (spec.upstream().is_some() || !spec.deployments.is_empty())
        .then(|| (spec.clone(), policy.clone()));
    let pronunciation = pronunciation(req)?;
    let mut plan = Plan {
        provider,
        pii,
        model: target,
        job: SpeechJob {
            text: text.unwrap_or_default().to_owned(),
            pronunciation,
            language_boost: req.language_boost.clone(),
            voice,
            settings: asked,
            prosody,
            output: AudioOutput {
                format: settings.format.as_str().to_owned(),
                sample_rate: settings.sample_rate,
                bitrate: settings.bitrate,
                channels: settings.channels,
            },
            whole: true,
        },
        gain,
        settings,
        illegal_ratio: ratio,
        routed,
        target_f0: wanted.profile.f0_hz,
        profile_pitch: wanted.profile.pitch,
        used: UsedVoices::default(),
    };
    plan.calibrate().await;
    Ok(plan)
}

/// `voice_setting` checked: as asked, and as prosody and a gain.
fn check_voice_setting(vs: &VoiceSetting) -> Result<(Prosody, f32, VoiceSettings)> {
    let speed = vs.speed.unwrap_or(1.0);
    if !(0.5..=2.0).contains(&speed) {
        return Err(Error::invalid(
            "voice_setting.speed",
            "'voice_setting.speed' must be between 0.5 and 2.",
        ));
    }
    let vol = vs.vol.unwrap_or(1.0);
    if !(vol > 0.0 && vol <= 10.0) {
        return Err(Error::invalid(
            "voice_setting.vol",
            "'voice_setting.vol' must be greater than 0 and at most 10.",
        ));
    }
    let pitch = vs.pitch.unwrap_or(0.0);
    if !(-12.0..=12.0).contains(&pitch) || pitch.fract() != 0.0 {
        return Err(Error::invalid(
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
            Error::invalid(
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
    let asked = VoiceSettings {
        speed,
        volume: vol,
        pitch,
        emotion: vs.emotion.clone(),
    };
    Ok((prosody, gain, asked))
}

fn audio_settings(req: &T2aRequest) -> Result<AudioSettings> {
    let a = req.audio_setting.clone().unwrap_or_default();
    let mut s = AudioSettings::default();
    if let Some(f) = a.format.as_deref() {
        s.format = f.parse::<Format>().map_err(|_| {
            Error::invalid(
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
        .map_err(|e| Error::invalid(e.field().unwrap_or("audio_setting"), e.to_string()))?;
    if req.stream && s.format == Format::Wav {
        return Err(Error::invalid(
            "audio_setting.format",
            "wav is only available without streaming; stream mp3, pcm or flac.",
        ));
    }
    Ok(s)
}

/// `pronunciation_dict.tone`: `original/replacement` rules.
fn pronunciation(req: &T2aRequest) -> Result<Vec<(String, String)>> {
    let mut rules = Vec::new();
    if let Some(dict) = &req.pronunciation_dict {
        for (i, rule) in dict.tone.iter().enumerate() {
            let field = format!("pronunciation_dict.tone[{i}]");
            let Some((from, to)) = rule.split_once('/') else {
                return Err(Error::invalid(
                    &field,
                    "Each rule is 'original/replacement'.",
                ));
            };
            if from.is_empty() {
                return Err(Error::invalid(&field, "A rule's original text is empty."));
            }
            rules.push((from.to_owned(), to.to_owned()));
        }
    }
    Ok(rules)
}

/// Checks one text to speak: not empty, at most [`MAX_T2A_CHARS`], at most
/// 10% illegal characters. Returns that ratio.
pub fn check_text(text: &str) -> Result<f64> {
    check_text_within(text, MAX_T2A_CHARS, " (use /v1/t2a_async_v2 for long text)")
}

/// [`check_text`] with another limit; `hint` follows the over-long message.
pub fn check_text_within(text: &str, max: usize, hint: &str) -> Result<f64> {
    let chars = text.chars().count();
    if text.trim().is_empty() {
        return Err(Error::invalid("text", "'text' is empty."));
    }
    if chars > max {
        return Err(Error::invalid(
            "text",
            format!("'text' has {chars} characters; at most {max} are allowed{hint}."),
        )
        .with("limit", max));
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
        .with("invisible_character_ratio", ratio));
    }
    Ok(ratio)
}

/// The median pitch of a plan's voice, measured once on a reference
/// sentence and remembered (per provider and voice).
async fn voice_pitch(plan: &Plan) -> Option<f32> {
    static CACHE: std::sync::OnceLock<std::sync::Mutex<HashMap<String, f32>>> =
        std::sync::OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let key = format!(
        "{:p}/{}",
        Arc::as_ptr(&plan.provider).cast::<()>(),
        plan.job.voice.id
    );
    if let Some(hz) = cache.lock().ok().and_then(|c| c.get(&key).copied()) {
        return Some(hz);
    }
    let job = SpeechJob {
        text: "This sentence measures how high the voice is, one, two, three, four.".into(),
        pronunciation: Vec::new(),
        prosody: Prosody::default(),
        whole: true,
        ..plan.job.clone()
    };
    let mut events = plan.provider.start(&plan.model, job).await.ok()?;
    let (mut samples, mut rate) = (Vec::new(), 0);
    while let Some(event) = events.recv().await {
        match event {
            SpeechEvent::Audio(a) => {
                rate = a.sample_rate;
                samples.extend(a.samples);
            }
            SpeechEvent::Pause(_) | SpeechEvent::Sentence(_) => {}
            SpeechEvent::Done(_) => break,
            // Encoded audio is an upstream's voice: not measured.
            SpeechEvent::Encoded(_) | SpeechEvent::Failed(_) => return None,
        }
    }
    let pcm = maximin_audio::Pcm::mono(samples, rate);
    let stats = tokio::task::spawn_blocking(move || maximin_audio::analysis::voice_stats(&pcm))
        .await
        .ok()?;
    let hz = stats.f0_median_hz?;
    if let Ok(mut c) = cache.lock() {
        c.insert(key, hz);
    }
    Some(hz)
}

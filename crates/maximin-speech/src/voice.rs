//! Which voice speaks: a request's voice id (or `timbre_weights` mix) →
//! a language, a gender and parameters → a provider and its voice.
//!
//! For local models the id is resolved here: an account's own voice (a
//! [`VoiceProfile`] over an engine voice), `espeak_<lang>`, a Piper voice's
//! file stem, or a MiniMax system id (its language and gender); the `*-hd`
//! models speak with Piper where the language has a voice, else espeak-ng.
//! For a model served by an upstream (`engine = "upstream:NAME"`) the id
//! goes to the upstream as sent: it knows its own voices.

use std::collections::HashMap;
use std::sync::Arc;

use maximin_core::catalog::ModelSpec;
use maximin_core::engines::{EngineVoice, Gender};
use maximin_core::error::NATIVE_CODE;
use maximin_core::providers::speech::{SpeechProvider, SpeechVoice};
use maximin_core::routing::{Policy, Target};
use maximin_core::speech;
use maximin_core::voices::{self, VoiceProfile};
use maximin_core::{Error, Platform, Result};
use maximin_types::speech::{T2aRequest, VoiceSetting};
use maximin_types::ErrorCode;

/// Prefix of espeak-ng voice ids in the voice list: `espeak_en-us`, `espeak_fr+f2`.
pub const ESPEAK_PREFIX: &str = "espeak_";

/// The catalog engine names of the local speech engines.
pub(crate) const PIPER: &str = "piper";
pub(crate) const ESPEAK: &str = "espeak-ng";

/// The caller's own (designed or cloned) voices a request names, by id.
pub type OwnVoices = HashMap<String, VoiceProfile>;

/// `voice_id` to a language, a gender and, when the id names one, an
/// engine's own voice.
pub(crate) struct Wanted {
    pub language: String,
    pub gender: Option<Gender>,
    piper: Option<String>,
    espeak: Option<String>,
    /// Parameters over the engine voice (an account's own voice, a mix).
    pub profile: VoiceProfile,
    /// For an upstream: the id as the client sent it, and the voices to mix.
    named: String,
    mix: Vec<(String, u32)>,
}

impl Wanted {
    fn named(language: &str, gender: Option<Gender>, named: &str) -> Wanted {
        Wanted {
            language: language.to_owned(),
            gender,
            piper: None,
            espeak: None,
            profile: VoiceProfile::neutral(language, gender),
            named: named.to_owned(),
            mix: Vec::new(),
        }
    }
}

/// Whether an id names a system voice (which an account's voice may not shadow).
pub fn is_system_voice(p: &Platform, voice_id: &str) -> bool {
    local_voice(p, &OwnVoices::new(), voice_id).is_ok()
}

/// Loads the caller's live voices among `ids` (the others are left to the
/// system voices, or to the unknown-voice error).
pub async fn own_voices<'a>(
    p: &Platform,
    account_id: &str,
    ids: impl IntoIterator<Item = &'a str>,
) -> Result<OwnVoices> {
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
pub fn voice_ids(req: &T2aRequest) -> Vec<&str> {
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

/// One voice id, for a local model.
fn local_voice(p: &Platform, own: &OwnVoices, voice_id: &str) -> Result<Wanted> {
    if let Some(profile) = own.get(voice_id) {
        return Ok(Wanted {
            profile: profile.clone(),
            ..Wanted::named(&profile.language, profile.gender(), voice_id)
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
            espeak: Some(id.to_owned()),
            ..Wanted::named(&voice.language, None, voice_id)
        });
    }
    if let Some(piper) = p.engines.speech.get(PIPER) {
        if let Some(v) = piper.voices().into_iter().find(|v| v.id == voice_id) {
            return Ok(Wanted {
                piper: Some(v.id),
                ..Wanted::named(&v.language, v.gender, voice_id)
            });
        }
    }
    if let Some(kind) = speech::minimax_voice_kind(voice_id) {
        return Ok(Wanted::named(kind.language, Some(kind.gender), voice_id));
    }
    Err(unknown_voice(voice_id))
}

/// One voice id, for a model an upstream serves: the id as sent, with the
/// language and gender of a MiniMax system id when it is one.
fn upstream_voice(spec: &ModelSpec, own: &OwnVoices, voice_id: &str) -> Result<Wanted> {
    if own.contains_key(voice_id) {
        return Err(Error::invalid(
            "voice_setting.voice_id",
            format!(
                "'{voice_id}' is a voice of this server; '{}' is served by an upstream, which cannot speak it. Use a local speech model.",
                spec.id
            ),
        ));
    }
    Ok(match speech::minimax_voice_kind(voice_id) {
        Some(kind) => Wanted::named(kind.language, Some(kind.gender), voice_id),
        None => Wanted::named("", None, voice_id),
    })
}

fn unknown_voice(voice_id: &str) -> Error {
    Error::invalid(
        "voice_setting.voice_id",
        format!("No voice '{voice_id}'; POST /v1/get_voice lists the voices you can use."),
    )
    .with(NATIVE_CODE, 20132)
}

/// The voice a request wants: `voice_setting.voice_id`, or `timbre_weights`
/// mixed (the heaviest voice's language, gender and engine voice, every
/// voice's parameters weighed together).
pub(crate) fn wanted(
    p: &Platform,
    spec: &ModelSpec,
    own: &OwnVoices,
    req: &T2aRequest,
    vs: &VoiceSetting,
) -> Result<Wanted> {
    let one = |id: &str| match spec.upstream() {
        Some(_) => upstream_voice(spec, own, id),
        None => local_voice(p, own, id),
    };
    let mut mixed = None;
    if let Some(weights) = req.timbre_weights.as_ref().filter(|w| !w.is_empty()) {
        if weights.len() > 4 {
            return Err(Error::invalid(
                "timbre_weights",
                "'timbre_weights' mixes at most 4 voices.",
            ));
        }
        let mut parts = Vec::new();
        for (i, w) in weights.iter().enumerate() {
            if !(1..=100).contains(&w.weight) {
                return Err(Error::invalid(
                    &format!("timbre_weights[{i}].weight"),
                    "Each weight must be between 1 and 100.",
                ));
            }
            let field = format!("timbre_weights[{i}].voice_id");
            let wanted = one(&w.voice_id).map_err(|e| match spec.upstream() {
                Some(_) => e.with("field", field.as_str()),
                None => Error::invalid(&field, format!("No voice '{}'.", w.voice_id))
                    .with(NATIVE_CODE, 20132),
            })?;
            parts.push((wanted, w.weight));
        }
        if vs.voice_id.is_empty() {
            let mix: Vec<_> = parts.iter().map(|(w, n)| (w.named.clone(), *n)).collect();
            let profiles: Vec<_> = parts.iter().map(|(w, n)| (w.profile.clone(), *n)).collect();
            let profile = VoiceProfile::mix(&profiles);
            let heaviest = parts.into_iter().max_by_key(|(_, n)| *n).map(|(w, _)| w);
            if let (Some(mut h), Some(m)) = (heaviest, profile) {
                h.profile = m;
                h.mix = mix;
                mixed = Some(h);
            }
        }
    }
    match mixed {
        Some(w) => Ok(w),
        None if vs.voice_id.is_empty() => Err(Error::invalid(
            "voice_setting.voice_id",
            "'voice_setting.voice_id' is required (or 'timbre_weights').",
        )),
        None => one(&vs.voice_id),
    }
}

/// `language_boost`: speaks the text as that language (a local voice of it
/// when the wanted voice speaks another).
pub(crate) fn boost_language(wanted: &mut Wanted, boost: Option<&str>) -> Result<()> {
    let Some(boost) = boost.filter(|b| *b != "auto" && !b.is_empty()) else {
        return Ok(());
    };
    let tag = speech::language_boost_tag(boost).ok_or_else(|| {
        Error::invalid(
            "language_boost",
            format!("'language_boost' '{boost}' is not a language MiniMax lists."),
        )
    })?;
    if !speech::same_language(&wanted.language, tag) {
        wanted.language = tag.to_owned();
        wanted.piper = None;
        wanted.espeak = None;
    }
    Ok(())
}

/// The provider that speaks `spec` and its voice for `wanted`.
pub(crate) fn provider_for(
    p: &Platform,
    spec: &ModelSpec,
    wanted: &Wanted,
    policy: &Policy,
) -> Result<(Arc<dyn SpeechProvider>, SpeechVoice, ModelSpec)> {
    let engines = &p.engines.speech;
    let voice = |id: String, mix: Vec<(String, u32)>| SpeechVoice {
        id,
        language: wanted.language.clone(),
        gender: wanted.gender,
        mix,
    };
    let unavailable = |what: String| {
        Error::new(ErrorCode::ModelUnavailable, what).with("model", spec.id.as_str())
    };
    if spec.upstream().is_some() || !spec.deployments.is_empty() {
        // Regions, sandbox keys, breakers and health: the router's rules.
        let target = p.router.eligible(spec, policy)?;
        let provider = engines
            .get(&target.provider)
            .ok_or_else(|| no_speech_provider(&target))?;
        return Ok((
            provider.clone(),
            voice(wanted.named.clone(), wanted.mix.clone()),
            target.spec.clone(),
        ));
    }
    // Neural for *-hd where the language has a voice.
    if spec.engine == PIPER {
        if let Some(piper) = engines.get(PIPER) {
            let v = match &wanted.piper {
                Some(id) => Some(id.clone()),
                None => speech::best_voice(&piper.voices(), &wanted.language, wanted.gender)
                    .map(|v| v.id.clone()),
            };
            if let Some(v) = v {
                return Ok((piper.clone(), voice(v, Vec::new()), spec.clone()));
            }
        }
    }
    let espeak = engines.get(ESPEAK).ok_or_else(|| {
        unavailable(format!(
            "No speech engine in this build can speak '{}' for '{}'.",
            wanted.language, spec.id
        ))
    })?;
    let v = match &wanted.espeak {
        Some(id) => Some(id.clone()),
        None => espeak_voice(&espeak.voices(), &wanted.language, wanted.gender),
    };
    let v = v.ok_or_else(|| {
        Error::invalid(
            "voice_setting.voice_id",
            format!("No installed voice speaks '{}'.", wanted.language),
        )
    })?;
    Ok((espeak.clone(), voice(v, Vec::new()), spec.clone()))
}

/// A routed target whose provider this server lacks.
pub(crate) fn no_speech_provider(target: &Target) -> Error {
    Error::new(
        ErrorCode::ModelUnavailable,
        format!(
            "'{}' has no speech provider for '{}' in this server.",
            target.provider, target.spec.id
        ),
    )
    .with("model", target.spec.id.as_str())
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

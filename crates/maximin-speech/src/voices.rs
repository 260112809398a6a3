//! Voices: the system voices a caller can speak with, and an account's own
//! voices (designed from a description, cloned from a clip) as they are
//! made: the id rules, their preview, the clip's measurements.
//!
//! System voices are every installed Piper voice, every espeak-ng language
//! (`espeak_<language>`; append `+<variant>` for another timbre), and the
//! MiniMax system voice ids this server resolves to a local voice of the
//! same language and gender.

use maximin_core::engines::{EngineVoice, Gender};
use maximin_core::error::NATIVE_CODE;
use maximin_core::speech;
use maximin_core::store::VoiceRecord;
use maximin_core::voices::{self, VoiceProfile};
use maximin_core::{Caller, Error, Platform, Result};
use maximin_types::speech::{T2aExtraInfo, T2aRequest, VoiceEntry};
use serde_json::json;

use crate::plan::plan_with;
use crate::synth::Synth;
use crate::voice::{is_system_voice, OwnVoices, ESPEAK, ESPEAK_PREFIX, PIPER};

/// Ids of MiniMax's documented voice list that resolve by their language
/// prefix; listed as examples of the form beside the ids known by name.
const PREFIXED_EXAMPLES: &[&str] = &[
    "English_expressive_narrator",
    "Chinese (Mandarin)_Reliable_Executive",
    "Japanese_Whisper_Belle",
    "Cantonese_GentleLady",
];

const SYSTEM_TIME: &str = "1970-01-01";

fn gender_word(g: Option<Gender>) -> &'static str {
    match g {
        Some(Gender::Female) => "female",
        Some(Gender::Male) => "male",
        None => "any",
    }
}

fn system(id: String, name: String, description: String) -> VoiceEntry {
    VoiceEntry {
        voice_id: id,
        voice_name: Some(name),
        description: vec![description],
        created_time: SYSTEM_TIME.to_owned(),
    }
}

/// The system voices, as `/v1/get_voice` lists them.
pub fn system_voices(p: &Platform) -> Vec<VoiceEntry> {
    let engines = &p.engines.speech;
    let mut out = Vec::new();
    if let Some(piper) = engines.get(PIPER) {
        for v in piper.voices() {
            let desc = format!(
                "Neural voice (Piper), language {}, {} — spoken by the *-hd models.",
                v.language,
                gender_word(v.gender)
            );
            out.push(system(v.id.clone(), v.name.clone(), desc));
        }
    }
    let espeak_voices: Vec<EngineVoice> =
        engines.get(ESPEAK).map(|e| e.voices()).unwrap_or_default();
    for v in &espeak_voices {
        let desc = format!(
            "espeak-ng voice, language {}; append +f1…+f5, +m1…+m7 or another espeak-ng variant for another timbre.",
            v.language
        );
        out.push(system(
            format!("{ESPEAK_PREFIX}{}", v.id),
            v.name.clone(),
            desc,
        ));
    }
    if !espeak_voices.is_empty() || engines.get(PIPER).is_some() {
        let known = speech::minimax_voices().map(|(id, k)| (id, Some(k)));
        let prefixed = PREFIXED_EXAMPLES
            .iter()
            .map(|&id| (id, speech::minimax_voice_kind(id)));
        for (id, kind) in known.chain(prefixed) {
            let Some(kind) = kind else { continue };
            let desc = format!(
                "MiniMax system voice id, spoken by a local {} voice of language {}.",
                gender_word(Some(kind.gender)),
                kind.language
            );
            out.push(system(id.to_owned(), id.replace('_', " "), desc));
        }
    }
    out
}

/// A user-chosen id for a new voice: the id rules, and not a system voice.
/// Deletes one of the account's live voices of `kind`; its id stays taken.
pub async fn delete(
    p: &Platform,
    account: &str,
    voice_id: &str,
    kind: &str,
) -> Result<VoiceRecord> {
    let now = p.clock.now();
    let v = p
        .store
        .voice(account, voice_id)
        .await?
        .filter(|v| voices::is_live(v, now) && v.kind == kind)
        .ok_or_else(|| {
            Error::invalid(
                "voice_id",
                format!("You have no {kind} voice '{voice_id}'."),
            )
            .with(NATIVE_CODE, 20132)
        })?;
    p.store.delete_voice(account, &v.voice_id, now).await?;
    Ok(v)
}

pub fn check_new_id(p: &Platform, id: &str) -> Result<()> {
    voices::check_voice_id(id)?;
    if is_system_voice(p, id) {
        return Err(
            Error::invalid("voice_id", format!("'{id}' is a system voice id."))
                .with(NATIVE_CODE, 2039),
        );
    }
    Ok(())
}

/// Keeps a new voice of the account (`kind`: designed or cloned).
pub async fn insert_voice(
    p: &Platform,
    account: &str,
    id: &str,
    kind: &str,
    profile: &VoiceProfile,
) -> Result<()> {
    let rec = VoiceRecord {
        account_id: account.to_owned(),
        voice_id: id.to_owned(),
        kind: kind.to_owned(),
        profile: serde_json::to_string(profile).map_err(Error::internal)?,
        created_at: p.clock.now(),
        used_at: None,
        deleted_at: None,
    };
    if !p.store.insert_voice(&rec).await? {
        return Err(Error::invalid(
            "voice_id",
            format!("The voice id '{id}' is taken (a deleted id is never reused)."),
        )
        .with(NATIVE_CODE, 2039));
    }
    Ok(())
}

/// A voice being made, spoken: its trial audio or demo.
pub struct Preview {
    /// MP3.
    pub audio: Vec<u8>,
    pub info: T2aExtraInfo,
    pub chars: u64,
    /// The catalog id of the model that spoke.
    pub model: String,
}

/// Speaks `text` with `voice_id` (a voice being made: it is in `own`) as
/// mp3: the trial audio of voice design and the demo of voice cloning.
pub async fn preview(
    p: &Platform,
    caller: &Caller,
    own: &OwnVoices,
    model: &str,
    text: &str,
    voice_id: &str,
) -> Result<Preview> {
    let req: T2aRequest = serde_json::from_value(json!({
        "model": model,
        "text": text,
        "voice_setting": {"voice_id": voice_id},
        "audio_setting": {"format": "mp3"},
    }))
    .map_err(Error::internal)?;
    let plan = plan_with(p, caller, own, &req, Some(text)).await?;
    crate::plan::reserve(p, caller, &plan, text).await?;
    let model = plan.model().to_owned();
    let whole = Synth::whole(plan).whole_audio(p).await?;
    Ok(Preview {
        audio: whole.audio,
        info: whole.info,
        chars: whole.chars,
        model,
    })
}

/// Largest clip read for cloning (spec: 20 MB).
const MAX_CLIP_BYTES: u64 = 20 * 1024 * 1024;

/// A stored clip of the account's, decoded; `field` names it in errors.
async fn clip(
    p: &Platform,
    account: &str,
    id: i64,
    purpose: &str,
    field: &str,
) -> Result<maximin_audio::Pcm> {
    let f = p
        .files
        .get(account, id)
        .await
        .map_err(|e| e.with("field", field))?;
    if f.purpose != purpose {
        return Err(Error::invalid(
            field,
            format!(
                "File {id} has purpose '{}'; upload the clip with purpose '{purpose}'.",
                f.purpose
            ),
        )
        .with(NATIVE_CODE, 20132));
    }
    let bytes = p.files.read_all(&f, MAX_CLIP_BYTES).await?;
    maximin_audio::decode(&bytes).map_err(|e| {
        Error::invalid(field, format!("The clip cannot be decoded: {e}")).with(NATIVE_CODE, 20132)
    })
}

/// The profile of the speaker of a clip (`file_id`, purpose `voice_clone`,
/// 10 s to 5 min), speaking `language`; an optional prompt clip
/// (`clone_prompt.prompt_audio`, under 8 s) is checked.
pub async fn clone_profile(
    p: &Platform,
    account: &str,
    file_id: i64,
    prompt_audio: Option<i64>,
    language: &str,
) -> Result<VoiceProfile> {
    let pcm = clip(p, account, file_id, "voice_clone", "file_id").await?;
    let secs = pcm.duration_secs();
    if !(10.0..=300.0).contains(&secs) {
        return Err(Error::invalid(
            "file_id",
            format!("The clip is {secs:.1} s long; cloning needs 10 seconds to 5 minutes."),
        )
        .with(NATIVE_CODE, 2037));
    }
    if let Some(id) = prompt_audio {
        let field = "clone_prompt.prompt_audio";
        let prompt = clip(p, account, id, "prompt_audio", field).await?;
        if prompt.duration_secs() >= 8.0 {
            return Err(
                Error::invalid(field, "The prompt audio must be shorter than 8 seconds.")
                    .with(NATIVE_CODE, 2048),
            );
        }
    }
    let stats = tokio::task::spawn_blocking(move || maximin_audio::analysis::voice_stats(&pcm))
        .await
        .map_err(Error::internal)?;
    let (Some(median), Some(p10), Some(p90)) =
        (stats.f0_median_hz, stats.f0_p10_hz, stats.f0_p90_hz)
    else {
        return Err(
            Error::invalid("file_id", "No voice was found in the clip.").with(NATIVE_CODE, 20132)
        );
    };
    Ok(voices::clone_profile(
        voices::SpeakerStats {
            f0_median_hz: median,
            f0_p10_hz: p10,
            f0_p90_hz: p90,
            syllables_per_s: stats.syllable_rate_per_s,
        },
        language,
    ))
}

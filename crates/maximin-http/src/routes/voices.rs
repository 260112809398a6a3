//! `POST /v1/get_voice`: the voices a caller can speak with (spec §5.4).
//!
//! System voices are every installed Piper voice, every espeak-ng language
//! (`espeak_<language>`; append `+<variant>` for another timbre), and the
//! MiniMax system voice ids this server resolves to a local voice of the same
//! language and gender. Designed and cloned voices are the account's own.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use maximin_core::engines::{EngineVoice, Gender};
use maximin_core::speech;
use maximin_core::Error;
use maximin_types::speech::{BaseResp, GetVoiceRequest, GetVoiceResponse, VoiceEntry};

use crate::ctx::{ApiJson, Ctx};
use crate::error::ApiError;
use crate::routes::speech::ESPEAK_PREFIX;
use crate::AppState;

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

fn system_voices(app: &AppState) -> Vec<VoiceEntry> {
    let engines = &app.platform.engines.speech;
    let mut out = Vec::new();
    if let Some(piper) = engines.get("piper") {
        for v in piper.voices() {
            let desc = format!(
                "Neural voice (Piper), language {}, {} — spoken by the *-hd models.",
                v.language,
                gender_word(v.gender)
            );
            out.push(system(v.id.clone(), v.name.clone(), desc));
        }
    }
    let espeak_voices: Vec<EngineVoice> = engines
        .get("espeak-ng")
        .map(|e| e.voices())
        .unwrap_or_default();
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
    if !espeak_voices.is_empty() || engines.get("piper").is_some() {
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

#[utoipa::path(post, path = "/v1/get_voice", tag = "speech", security(("bearer" = [])),
    request_body = GetVoiceRequest,
    responses((status = 200, description = "The voices of the types asked for (`system_voice`, `voice_cloning`, `voice_generation`); errors are HTTP 200 with a non-zero `base_resp.status_code`", body = GetVoiceResponse)))]
pub async fn get_voice(
    State(app): State<AppState>,
    _ctx: Ctx,
    ApiJson(req): ApiJson<GetVoiceRequest>,
) -> Result<Response, ApiError> {
    let (system_wanted, cloning, generation) = match req.voice_type.as_str() {
        "system" => (true, false, false),
        "voice_cloning" => (false, true, false),
        "voice_generation" => (false, false, true),
        "all" => (true, true, true),
        other => {
            return Err(Error::invalid(
                "voice_type",
                format!("'voice_type' '{other}' is not one of system, voice_cloning, voice_generation, all."),
            )
            .into())
        }
    };
    // This server does not make designed or cloned voices yet, so an
    // account has none of its own.
    let body = GetVoiceResponse {
        system_voice: system_wanted.then(|| system_voices(&app)),
        voice_cloning: cloning.then(Vec::new),
        voice_generation: generation.then(Vec::new),
        base_resp: BaseResp::success(),
    };
    Ok(axum::Json(body).into_response())
}

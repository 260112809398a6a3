//! `POST /v1/get_voice`: the voices a caller can speak with (spec §5.4).
//!
//! System voices are every installed Piper voice, every espeak-ng language
//! (`espeak_<language>`; append `+<variant>` for another timbre), and the
//! MiniMax system voice ids this server resolves to a local voice of the same
//! language and gender. Designed and cloned voices are the account's own.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use maximin_audio::Pcm;
use maximin_core::engines::{EngineVoice, Gender};
use maximin_core::speech;
use maximin_core::store::VoiceRecord;
use maximin_core::voices::{self, VoiceProfile};
use maximin_core::{Error, Platform};
use maximin_types::speech::{BaseResp, GetVoiceRequest, GetVoiceResponse, VoiceEntry};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::ctx::{ApiJson, Ctx, UsageReport};
use crate::error::{ApiError, NATIVE_CODE};
use crate::routes::speech::{is_system_voice, preview, OwnVoices, ESPEAK_PREFIX};
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
    responses((status = 200, description = "The voices of the types asked for (`system_voice`, `voice_cloning`, `voice_generation`)", body = GetVoiceResponse)))]
pub async fn get_voice(
    State(app): State<AppState>,
    ctx: Ctx,
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
    let p = &app.platform;
    let now = p.clock.now();
    let own: Vec<_> = if cloning || generation {
        p.store
            .voices_of(&ctx.caller.account.id)
            .await?
            .into_iter()
            .filter(|v| voices::is_live(v, now))
            .collect()
    } else {
        Vec::new()
    };
    let of_kind = |kind: &str| -> Vec<VoiceEntry> {
        own.iter()
            .filter(|v| v.kind == kind)
            .map(|v| VoiceEntry {
                voice_id: v.voice_id.clone(),
                voice_name: None,
                description: Vec::new(),
                created_time: day(v.created_at),
            })
            .collect()
    };
    let body = GetVoiceResponse {
        system_voice: system_wanted.then(|| system_voices(&app)),
        voice_cloning: cloning.then(|| of_kind(voices::CLONED)),
        voice_generation: generation.then(|| of_kind(voices::DESIGNED)),
        base_resp: BaseResp::success(),
    };
    Ok(axum::Json(body).into_response())
}

fn day(t: time::OffsetDateTime) -> String {
    format!("{:04}-{:02}-{:02}", t.year(), u8::from(t.month()), t.day())
}

fn success(mut body: Value) -> Value {
    body["base_resp"] = json!({"status_code": 0, "status_msg": "success"});
    body
}

fn with_report(body: Value, model: String, chars: u64) -> Response {
    let mut resp = axum::Json(body).into_response();
    resp.extensions_mut()
        .insert(UsageReport::characters(model, chars));
    resp
}

/// The model that speaks previews of designed voices.
const PREVIEW_MODEL: &str = "speech-2.8-hd";

/// A user-chosen id for a new voice: the id rules, and not a system voice.
fn check_new_id(app: &AppState, id: &str) -> Result<(), ApiError> {
    voices::check_voice_id(id)?;
    if is_system_voice(&app.platform, id) {
        return Err(
            Error::invalid("voice_id", format!("'{id}' is a system voice id."))
                .with(NATIVE_CODE, 2039)
                .into(),
        );
    }
    Ok(())
}

async fn insert_voice(
    app: &AppState,
    account: &str,
    id: &str,
    kind: &str,
    profile: &VoiceProfile,
) -> Result<(), ApiError> {
    let p = &app.platform;
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
        .with(NATIVE_CODE, 2039)
        .into());
    }
    Ok(())
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(example = json!({"prompt": "a calm, deep older male voice, slow", "preview_text": "Good evening."}))]
pub struct VoiceDesignRequest {
    /// What the voice should sound like, e.g. "a calm, deep older male voice, slow".
    pub prompt: String,
    /// Up to 500 characters spoken in the trial audio.
    pub preview_text: String,
    /// An id of your own; one is made when absent.
    #[serde(default)]
    pub voice_id: Option<String>,
    #[serde(default)]
    pub aigc_watermark: Option<bool>,
}

#[utoipa::path(post, path = "/v1/voice_design", tag = "speech", security(("bearer" = [])),
    request_body = VoiceDesignRequest,
    responses((status = 200, description = "The voice and its trial audio; the voice is the account's own and expires after 168 hours unless used in synthesis", body = crate::openapi::VoiceDesignResponse),
              (status = 402), (status = 503)))]
pub async fn voice_design(
    State(app): State<AppState>,
    ctx: Ctx,
    ApiJson(req): ApiJson<VoiceDesignRequest>,
) -> Result<Response, ApiError> {
    let p = &app.platform;
    let account = ctx.caller.account.id.clone();
    if req.prompt.trim().is_empty() {
        return Err(Error::invalid("prompt", "'prompt' is required.").into());
    }
    let n = req.preview_text.chars().count();
    if req.preview_text.trim().is_empty() || n > 500 {
        return Err(Error::invalid(
            "preview_text",
            "'preview_text' must be 1 to 500 characters.",
        )
        .into());
    }
    let profile = voices::design(&req.prompt)?;
    let id = match req.voice_id.as_deref().filter(|v| !v.is_empty()) {
        Some(id) => {
            check_new_id(&app, id)?;
            id.to_owned()
        }
        None => voices::designed_voice_id(p.clock.now()),
    };
    // The trial first: a voice whose preview fails is not kept.
    let own: OwnVoices = [(id.clone(), profile.clone())].into_iter().collect();
    let (audio, _, chars, model) =
        preview(p, &ctx.caller, &own, PREVIEW_MODEL, &req.preview_text, &id).await?;
    insert_voice(&app, &account, &id, voices::DESIGNED, &profile).await?;
    let body = success(json!({
        "voice_id": id,
        "trial_audio": hex::encode(audio),
    }));
    Ok(with_report(body, model, chars))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct ClonePrompt {
    #[serde(deserialize_with = "crate::routes::files::id_from_json")]
    #[schema(value_type = i64)]
    pub prompt_audio: i64,
    #[serde(default)]
    pub prompt_text: Option<String>,
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct VoiceCloneRequest {
    /// An upload with purpose `voice_clone`: mp3, m4a or wav, 10 s to 5 min, mono or stereo.
    #[serde(deserialize_with = "crate::routes::files::id_from_json")]
    #[schema(value_type = i64)]
    pub file_id: i64,
    /// 8–256 characters, a letter first; letters, digits, '-' and '_'.
    pub voice_id: String,
    #[serde(default)]
    pub clone_prompt: Option<ClonePrompt>,
    /// Preview text (with `model`), up to 1000 characters.
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub language_boost: Option<String>,
    /// Accepted; this server has no speech recognition to check it with.
    #[serde(default)]
    pub text_validation: Option<String>,
    #[serde(default)]
    pub accuracy: Option<f64>,
    #[serde(default)]
    pub need_noise_reduction: Option<bool>,
    #[serde(default)]
    pub need_volume_normalization: Option<bool>,
    #[serde(default)]
    pub aigc_watermark: Option<bool>,
}

/// Largest clip read for cloning (spec: 20 MB).
const MAX_CLIP_BYTES: u64 = 20 * 1024 * 1024;

async fn clip(
    p: &Platform,
    account: &str,
    id: i64,
    purpose: &str,
    field: &str,
) -> Result<Pcm, ApiError> {
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
        .with(NATIVE_CODE, 20132)
        .into());
    }
    let bytes = p.files.read_all(&f, MAX_CLIP_BYTES).await?;
    maximin_audio::decode(&bytes).map_err(|e| {
        Error::invalid(field, format!("The clip cannot be decoded: {e}"))
            .with(NATIVE_CODE, 20132)
            .into()
    })
}

#[utoipa::path(post, path = "/v1/voice_clone", tag = "speech", security(("bearer" = [])),
    request_body = VoiceCloneRequest,
    responses((status = 200, description = "The voice is the account's own and expires after 168 hours unless used in synthesis", body = crate::openapi::VoiceCloneResponse),
              (status = 402), (status = 404, description = "`not_found` / `model_not_found`: no such file or model"), (status = 503)))]
pub async fn voice_clone(
    State(app): State<AppState>,
    ctx: Ctx,
    headers: axum::http::HeaderMap,
    ApiJson(req): ApiJson<VoiceCloneRequest>,
) -> Result<Response, ApiError> {
    let p = &app.platform;
    let account = ctx.caller.account.id.clone();
    check_new_id(&app, &req.voice_id)?;
    if let Some(a) = req.accuracy {
        if !(0.0..=1.0).contains(&a) {
            return Err(Error::invalid("accuracy", "'accuracy' must be between 0 and 1.").into());
        }
    }
    let preview_text = req.text.as_deref().filter(|t| !t.trim().is_empty());
    if let Some(t) = preview_text {
        if t.chars().count() > 1000 {
            return Err(Error::invalid("text", "'text' may have at most 1000 characters.").into());
        }
        if req.model.as_deref().unwrap_or("").is_empty() {
            return Err(
                Error::invalid("model", "'model' is required with a preview 'text'.").into(),
            );
        }
    }
    let language = match req
        .language_boost
        .as_deref()
        .filter(|b| !b.is_empty() && *b != "auto")
    {
        Some(b) => speech::language_boost_tag(b).ok_or_else(|| {
            ApiError::from(Error::invalid(
                "language_boost",
                format!("'language_boost' '{b}' is not a language MiniMax lists."),
            ))
        })?,
        None => "en-us",
    };
    let pcm = clip(p, &account, req.file_id, "voice_clone", "file_id").await?;
    let secs = pcm.duration_secs();
    if !(10.0..=300.0).contains(&secs) {
        return Err(Error::invalid(
            "file_id",
            format!("The clip is {secs:.1} s long; cloning needs 10 seconds to 5 minutes."),
        )
        .with(NATIVE_CODE, 2037)
        .into());
    }
    if let Some(cp) = &req.clone_prompt {
        let prompt = clip(
            p,
            &account,
            cp.prompt_audio,
            "prompt_audio",
            "clone_prompt.prompt_audio",
        )
        .await?;
        if prompt.duration_secs() >= 8.0 {
            return Err(Error::invalid(
                "clone_prompt.prompt_audio",
                "The prompt audio must be shorter than 8 seconds.",
            )
            .with(NATIVE_CODE, 2048)
            .into());
        }
    }
    let stats = tokio::task::spawn_blocking(move || maximin_audio::analysis::voice_stats(&pcm))
        .await
        .map_err(Error::internal)?;
    let (Some(median), Some(p10), Some(p90)) =
        (stats.f0_median_hz, stats.f0_p10_hz, stats.f0_p90_hz)
    else {
        return Err(Error::invalid("file_id", "No voice was found in the clip.")
            .with(NATIVE_CODE, 20132)
            .into());
    };
    let profile = voices::clone_profile(
        voices::SpeakerStats {
            f0_median_hz: median,
            f0_p10_hz: p10,
            f0_p90_hz: p90,
            syllables_per_s: stats.syllable_rate_per_s,
        },
        language,
    );
    let mut body = json!({
        "input_sensitive": false,
        "input_sensitive_type": 0,
        "demo_audio": "",
    });
    let mut report = None;
    if let (Some(text), Some(model)) = (preview_text, req.model.as_deref()) {
        let own: OwnVoices = [(req.voice_id.clone(), profile.clone())]
            .into_iter()
            .collect();
        let (audio, info, chars, model) =
            preview(p, &ctx.caller, &own, model, text, &req.voice_id).await?;
        let base = crate::routes::files::base_url(&app, &headers);
        let expires = p.clock.now() + time::Duration::hours(24);
        let rec = p
            .files
            .write_output(
                &maximin_core::files::Output {
                    account_id: &account,
                    purpose: "t2a_output",
                    filename: "demo.mp3",
                    kind: "mp3",
                    id: None,
                    expires_at: Some(expires),
                },
                &audio,
            )
            .await?;
        p.files.record(&rec).await?;
        body["demo_audio"] = json!(p.files.link(&base, &rec, time::Duration::hours(24)));
        body["extra_info"] = serde_json::to_value(info).map_err(Error::internal)?;
        report = Some((model, chars));
    }
    insert_voice(&app, &account, &req.voice_id, voices::CLONED, &profile).await?;
    let body = success(body);
    Ok(match report {
        Some((model, chars)) => with_report(body, model, chars),
        None => axum::Json(body).into_response(),
    })
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct DeleteVoiceRequest {
    /// `voice_cloning` or `voice_generation`.
    pub voice_type: String,
    pub voice_id: String,
}

#[utoipa::path(post, path = "/v1/delete_voice", tag = "speech", security(("bearer" = [])),
    request_body = DeleteVoiceRequest,
    responses((status = 200, description = "The deleted voice", body = crate::openapi::DeleteVoiceResponse)))]
pub async fn delete_voice(
    State(app): State<AppState>,
    ctx: Ctx,
    ApiJson(req): ApiJson<DeleteVoiceRequest>,
) -> Result<Response, ApiError> {
    if req.voice_type != voices::CLONED && req.voice_type != voices::DESIGNED {
        return Err(Error::invalid(
            "voice_type",
            "'voice_type' must be voice_cloning or voice_generation (system voices cannot be deleted).",
        )
        .into());
    }
    let p = &app.platform;
    let account = &ctx.caller.account.id;
    let now = p.clock.now();
    let v = p
        .store
        .voice(account, &req.voice_id)
        .await?
        .filter(|v| voices::is_live(v, now) && v.kind == req.voice_type)
        .ok_or_else(|| {
            ApiError::from(
                Error::invalid(
                    "voice_id",
                    format!("You have no {} voice '{}'.", req.voice_type, req.voice_id),
                )
                .with(NATIVE_CODE, 20132),
            )
        })?;
    p.store.delete_voice(account, &v.voice_id, now).await?;
    Ok(axum::Json(success(json!({
        "voice_id": v.voice_id,
        "created_time": v.created_at.unix_timestamp().to_string(),
    })))
    .into_response())
}

//! The voice routes: `POST /v1/get_voice` (spec §5.4: system voices and the
//! account's own), `/v1/voice_design`, `/v1/voice_clone` and
//! `/v1/delete_voice`. The voices and their previews are
//! `maximin_speech::voices`'; these handlers check the wire fields and
//! render.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use maximin_core::speech;
use maximin_core::voices;
use maximin_core::Error;
use maximin_speech::voices::{check_new_id, clone_profile, insert_voice, preview, system_voices};
use maximin_speech::{Outputs, OwnVoices};
use maximin_types::speech::{BaseResp, GetVoiceRequest, GetVoiceResponse, VoiceEntry};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::ctx::{ApiJson, Ctx, UsageReport};
use crate::error::ApiError;
use crate::AppState;

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
        system_voice: system_wanted.then(|| system_voices(&app.platform)),
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
            check_new_id(p, id)?;
            id.to_owned()
        }
        None => voices::designed_voice_id(p.clock.now()),
    };
    // The trial first: a voice whose preview fails is not kept.
    let own: OwnVoices = [(id.clone(), profile.clone())].into_iter().collect();
    let trial = preview(p, &ctx.caller, &own, PREVIEW_MODEL, &req.preview_text, &id).await?;
    insert_voice(p, &account, &id, voices::DESIGNED, &profile).await?;
    let body = success(json!({
        "voice_id": id,
        "trial_audio": hex::encode(trial.audio),
    }));
    Ok(with_report(body, trial.model, trial.chars))
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
    check_new_id(p, &req.voice_id)?;
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
    let prompt_audio = req.clone_prompt.as_ref().map(|c| c.prompt_audio);
    let profile = clone_profile(p, &account, req.file_id, prompt_audio, language).await?;
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
        let demo = preview(p, &ctx.caller, &own, model, text, &req.voice_id).await?;
        let base = crate::routes::files::base_url(&app, &headers);
        let outputs = Outputs::new(p.clone(), base, account.clone());
        body["demo_audio"] = json!(outputs.put("demo.mp3", "mp3", &demo.audio).await?);
        body["extra_info"] = serde_json::to_value(demo.info).map_err(Error::internal)?;
        report = Some((demo.model, demo.chars));
    }
    insert_voice(p, &account, &req.voice_id, voices::CLONED, &profile).await?;
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
    let v = maximin_speech::voices::delete(
        &app.platform,
        &ctx.caller.account.id,
        &req.voice_id,
        &req.voice_type,
    )
    .await?;
    Ok(axum::Json(success(json!({
        "voice_id": v.voice_id,
        "created_time": v.created_at.unix_timestamp().to_string(),
    })))
    .into_response())
}

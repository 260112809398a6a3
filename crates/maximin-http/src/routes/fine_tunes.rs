//! Fine-tuning jobs (issue 19) on two surfaces: seed 002's
//! `/v1/fine-tunes…` (the `data`/`meta` envelope, ISO 8601 times) and
//! OpenAI's `/openai/v1/fine_tuning/jobs…` (its own objects, Unix times),
//! both over [`maximin_core::finetune::jobs`]. A fine-tuned model is
//! deleted with `DELETE /v1/models/{id}` or `/openai/v1/models/{id}`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maximin_core::clock::iso8601;
use maximin_core::finetune::jobs::{self, public_id, Created};
use maximin_core::finetune::store::{FineTuneCheckpoint, FineTuneEvent, FineTuneRecord};
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa::IntoParams;

use crate::ctx::{ApiJson, ApiQuery, Ctx, Param, QueryParams};
use crate::error::ApiError;
use crate::AppState;

fn hyper(job: &FineTuneRecord) -> Value {
    serde_json::from_str(&job.hyperparameters).unwrap_or(Value::Null)
}

fn error_of(job: &FineTuneRecord) -> Value {
    job.error
        .as_deref()
        .and_then(|e| serde_json::from_str(e).ok())
        .unwrap_or(Value::Null)
}

/// A job in seed 002's shape.
fn platform_job(job: &FineTuneRecord) -> Value {
    json!({
        "id": public_id(job.id),
        "object": "fine_tune",
        "model": job.base_model,
        "status": job.status,
        "training_file": job.training_file,
        "validation_file": job.validation_file,
        "hyperparameters": hyper(job),
        "suffix": job.suffix,
        "seed": job.seed,
        "fine_tuned_model": job.fine_tuned_model.as_ref().filter(|_| !job.model_deleted),
        "trained_tokens": job.trained_tokens,
        "error": error_of(job),
        "created_at": iso8601(job.created_at),
        "updated_at": iso8601(job.updated_at),
        "finished_at": job.finished_at.map(iso8601),
    })
}

/// A job as OpenAI's `fine_tuning.job`.
fn openai_job(job: &FineTuneRecord) -> Value {
    let h = hyper(job);
    let status = match job.status.as_str() {
        jobs::VALIDATING => "validating_files",
        s => s,
    };
    json!({
        "id": public_id(job.id),
        "object": "fine_tuning.job",
        "model": job.base_model,
        "created_at": job.created_at.unix_timestamp(),
        "finished_at": job.finished_at.map(|t| t.unix_timestamp()),
        "fine_tuned_model": job.fine_tuned_model.as_ref().filter(|_| !job.model_deleted),
        "organization_id": job.account_id,
        "result_files": job.adapter_file.filter(|_| !job.model_deleted).map(|f| vec![format!("file-{f}")]).unwrap_or_default(),
        "status": status,
        "validation_file": job.validation_file.map(|f| format!("file-{f}")),
        "training_file": format!("file-{}", job.training_file),
        "hyperparameters": {
            "n_epochs": h["n_epochs"],
            "batch_size": h["batch_size"],
            "learning_rate_multiplier": h["learning_rate_multiplier"],
            "lora_rank": h["lora_rank"],
        },
        "method": {"type": "supervised", "supervised": {"hyperparameters": {
            "n_epochs": h["n_epochs"],
            "batch_size": h["batch_size"],
            "learning_rate_multiplier": h["learning_rate_multiplier"],
        }}},
        "trained_tokens": job.trained_tokens,
        "error": error_of(job),
        "seed": job.seed,
        "user_provided_suffix": job.suffix,
        "estimated_finish": Value::Null,
        "integrations": [],
        "metadata": Value::Null,
    })
}

fn created_figures(c: &Created) -> Value {
    json!({
        "examples": c.examples,
        "tokens": c.tokens,
        "trained_tokens": c.trained_tokens,
        "estimated_cost_usd": c.estimated_cost_usd,
    })
}

fn event_data(e: &FineTuneEvent) -> Value {
    e.data
        .as_deref()
        .and_then(|d| serde_json::from_str(d).ok())
        .unwrap_or(Value::Null)
}

fn checkpoint_metrics(c: &FineTuneCheckpoint) -> Value {
    serde_json::from_str(&c.metrics).unwrap_or(Value::Null)
}

fn job_id(s: &str) -> Result<i64, ApiError> {
    Ok(jobs::parse_id("id", s)?)
}

// --- seed 002 ---

/// Create a fine-tuning job: LoRA training of a local chat model on an
/// uploaded chat jsonl (purpose `fine-tune`). The file is checked line by
/// line first; nothing is queued when a line is wrong.
#[utoipa::path(post, path = "/v1/fine-tunes", tag = "fine-tunes", security(("bearer" = [])),
    request_body(content = Object, description = "`model` (a local chat model), `training_file`, `validation_file`, `hyperparameters` {`n_epochs`, `learning_rate_multiplier`, `batch_size`, `lora_rank`: numbers or \"auto\"}, `suffix`, `seed`."),
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes a retry return the first response")),
    responses((status = 202, description = "`data` is the queued job, with `training`: examples, tokens, trained tokens (× epochs) and the estimated cost", body = Object),
              (status = 400, description = "`invalid_request`: `details.field` (`training_file` with `details.line` for a bad line)", body = crate::openapi::ErrorResponse),
              (status = 404, description = "`model_not_found` or `not_found` (a file)", body = crate::openapi::ErrorResponse)))]
pub async fn create_fine_tune(
    State(app): State<AppState>,
    ctx: Ctx,
    ApiJson(body): ApiJson<Value>,
) -> Result<Response, ApiError> {
    let c = jobs::create(&app.platform, &ctx.caller, &body, &app.fine_tune).await?;
    let mut v = platform_job(&c.job);
    v["training"] = created_figures(&c);
    Ok(ctx.respond(StatusCode::ACCEPTED, v, Default::default()))
}

/// The account's fine-tuning jobs, newest first.
#[utoipa::path(get, path = "/v1/fine-tunes", tag = "fine-tunes", security(("bearer" = [])),
    responses((status = 200, description = "`data` is the jobs", body = Object)))]
pub async fn list_fine_tunes(State(app): State<AppState>, ctx: Ctx) -> Result<Response, ApiError> {
    let list = jobs::list(&app.platform, &ctx.caller).await?;
    Ok(ctx.ok(list.iter().map(platform_job).collect::<Vec<_>>()))
}

/// A fine-tuning job: its status (queued, validating, running, succeeded,
/// failed, cancelled), progress and, once succeeded, `fine_tuned_model`.
#[utoipa::path(get, path = "/v1/fine-tunes/{id}", tag = "fine-tunes", security(("bearer" = [])),
    params(("id" = String, Path, description = "The job (`ftjob-…`)")),
    responses((status = 200, description = "`data` is the job, with `progress_percent`", body = Object),
              (status = 404, description = "`not_found`", body = crate::openapi::ErrorResponse)))]
pub async fn get_fine_tune(
    State(app): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let job = jobs::get(&app.platform, &ctx.caller, job_id(&id)?).await?;
    let mut v = platform_job(&job);
    let progress = match app.platform.store.task(job.task_id).await? {
        _ if job.status == jobs::SUCCEEDED => 100,
        Some(t) => t.progress,
        None => 0,
    };
    v["progress_percent"] = json!(progress);
    Ok(ctx.ok(v))
}

/// Cancel a job that has not ended: it stops within seconds and leaves no model.
#[utoipa::path(post, path = "/v1/fine-tunes/{id}/cancel", tag = "fine-tunes", security(("bearer" = [])),
    params(("id" = String, Path, description = "The job")),
    responses((status = 200, description = "`data` is the cancelled job", body = Object),
              (status = 400, description = "`invalid_request`: the job has ended", body = crate::openapi::ErrorResponse),
              (status = 404, description = "`not_found`", body = crate::openapi::ErrorResponse)))]
pub async fn cancel_fine_tune(
    State(app): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let job = jobs::cancel(&app.platform, &ctx.caller, job_id(&id)?).await?;
    Ok(ctx.ok(platform_job(&job)))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct EventsQuery {
    /// Events after this `seq` (default 0: from the first).
    pub after: Option<i64>,
    /// At most this many (default 100, at most 1000).
    pub limit: Option<i64>,
}

impl QueryParams for EventsQuery {
    const PARAMS: &'static [Param] = &[
        Param::int("after", 0, i64::MAX),
        Param::int("limit", 1, 1000),
    ];
}

/// A job's events as they happen, oldest first: steps with training loss,
/// validation loss (at each epoch's end), learning rate and tokens/s.
/// Follow a running job with `after` = the last `seq` seen.
#[utoipa::path(get, path = "/v1/fine-tunes/{id}/events", tag = "fine-tunes", security(("bearer" = [])),
    params(("id" = String, Path, description = "The job"), EventsQuery),
    responses((status = 200, description = "`data` is the events: `seq`, `created_at`, `level`, `message`, `data` (step, total_steps, epoch, train_loss, valid_loss, learning_rate, tokens_per_s)", body = Object),
              (status = 404, description = "`not_found`", body = crate::openapi::ErrorResponse)))]
pub async fn list_fine_tune_events(
    State(app): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<EventsQuery>,
) -> Result<Response, ApiError> {
    let events = jobs::events(
        &app.platform,
        &ctx.caller,
        job_id(&id)?,
        q.after.unwrap_or(0),
        q.limit.unwrap_or(100),
    )
    .await?;
    let data: Vec<Value> = events
        .iter()
        .map(|e| {
            json!({
                "seq": e.seq,
                "created_at": iso8601(e.created_at),
                "level": e.level,
                "message": e.message,
                "data": event_data(e),
            })
        })
        .collect();
    Ok(ctx.ok(data))
}

/// A job's checkpoints (the newest three while it runs).
#[utoipa::path(get, path = "/v1/fine-tunes/{id}/checkpoints", tag = "fine-tunes", security(("bearer" = [])),
    params(("id" = String, Path, description = "The job")),
    responses((status = 200, description = "`data` is the checkpoints: `step`, `metrics`, `created_at`", body = Object),
              (status = 404, description = "`not_found`", body = crate::openapi::ErrorResponse)))]
pub async fn list_fine_tune_checkpoints(
    State(app): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let list = jobs::checkpoints(&app.platform, &ctx.caller, job_id(&id)?).await?;
    let data: Vec<Value> = list
        .iter()
        .map(|c| json!({"step": c.step, "metrics": checkpoint_metrics(c), "created_at": iso8601(c.created_at)}))
        .collect();
    Ok(ctx.ok(data))
}

/// Delete a fine-tuned model of the account.
#[utoipa::path(delete, path = "/v1/models/{id}", tag = "models", security(("bearer" = [])),
    params(("id" = String, Path, description = "The fine-tuned model (`ft:…`)")),
    responses((status = 200, description = "`data`: `id`, `deleted: true`", body = Object),
              (status = 404, description = "`model_not_found`", body = crate::openapi::ErrorResponse)))]
pub async fn delete_model(
    State(app): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    jobs::delete_model(&app.platform, &ctx.caller, &id).await?;
    Ok(ctx.ok(json!({"id": id, "object": "model", "deleted": true})))
}

// --- OpenAI ---

#[derive(Debug, Deserialize, IntoParams)]
pub struct PageQuery {
    /// The last id of the previous page.
    pub after: Option<String>,
    /// At most this many (default 20, at most 100).
    pub limit: Option<i64>,
}

impl QueryParams for PageQuery {
    const PARAMS: &'static [Param] = &[Param::text("after"), Param::int("limit", 1, 100)];
}

fn page(items: Vec<Value>, after: Option<&str>, limit: i64) -> Value {
    let start = after
        .and_then(|a| {
            items
                .iter()
                .position(|v| v["id"] == json!(a))
                .map(|i| i + 1)
        })
        .unwrap_or(0);
    let rest = &items[start.min(items.len())..];
    let n = (limit.max(1) as usize).min(rest.len());
    json!({"object": "list", "data": rest[..n].to_vec(), "has_more": rest.len() > n})
}

/// OpenAI's fine-tuning job create (`model`, `training_file`,
/// `validation_file`, `hyperparameters` or `method.supervised.hyperparameters`,
/// `suffix`, `seed`); `lora_rank` as an extension.
#[utoipa::path(post, path = "/openai/v1/fine_tuning/jobs", tag = "openai", security(("bearer" = [])),
    request_body(content = Object, description = "OpenAI's fine-tuning job create"),
    responses((status = 200, description = "The `fine_tuning.job`", body = Object),
              (status = 400, description = "`invalid_request_error` with `param` (`training_file`: the line in the message)")))]
pub async fn openai_create_job(
    State(app): State<AppState>,
    ctx: Ctx,
    ApiJson(body): ApiJson<Value>,
) -> Result<Response, ApiError> {
    let c = jobs::create(&app.platform, &ctx.caller, &body, &app.fine_tune).await?;
    Ok(axum::Json(openai_job(&c.job)).into_response())
}

#[utoipa::path(get, path = "/openai/v1/fine_tuning/jobs", tag = "openai", security(("bearer" = [])),
    params(PageQuery),
    responses((status = 200, description = "A list of `fine_tuning.job`, newest first", body = Object)))]
pub async fn openai_list_jobs(
    State(app): State<AppState>,
    ctx: Ctx,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> Result<Response, ApiError> {
    let list = jobs::list(&app.platform, &ctx.caller).await?;
    let items = list.iter().map(openai_job).collect();
    Ok(axum::Json(page(items, q.after.as_deref(), q.limit.unwrap_or(20))).into_response())
}

#[utoipa::path(get, path = "/openai/v1/fine_tuning/jobs/{id}", tag = "openai", security(("bearer" = [])),
    params(("id" = String, Path, description = "The job")),
    responses((status = 200, description = "The `fine_tuning.job`", body = Object), (status = 404, description = "Not found")))]
pub async fn openai_get_job(
    State(app): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let job = jobs::get(&app.platform, &ctx.caller, job_id(&id)?).await?;
    Ok(axum::Json(openai_job(&job)).into_response())
}

#[utoipa::path(post, path = "/openai/v1/fine_tuning/jobs/{id}/cancel", tag = "openai", security(("bearer" = [])),
    params(("id" = String, Path, description = "The job")),
    responses((status = 200, description = "The cancelled `fine_tuning.job`", body = Object), (status = 404, description = "Not found")))]
pub async fn openai_cancel_job(
    State(app): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let job = jobs::cancel(&app.platform, &ctx.caller, job_id(&id)?).await?;
    Ok(axum::Json(openai_job(&job)).into_response())
}

/// A job's events, newest first (OpenAI's order; `after` pages to older ones).
#[utoipa::path(get, path = "/openai/v1/fine_tuning/jobs/{id}/events", tag = "openai", security(("bearer" = [])),
    params(("id" = String, Path, description = "The job"), PageQuery),
    responses((status = 200, description = "A list of `fine_tuning.job.event`", body = Object), (status = 404, description = "Not found")))]
pub async fn openai_list_events(
    State(app): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> Result<Response, ApiError> {
    let id = job_id(&id)?;
    // Newest first: all of them are read, however many steps the job had.
    let events = jobs::all_events(&app.platform, &ctx.caller, id).await?;
    let items: Vec<Value> = events
        .iter()
        .rev()
        .map(|e| {
            let data = event_data(e);
            json!({
                "id": format!("ftevent-{id}-{}", e.seq),
                "object": "fine_tuning.job.event",
                "created_at": e.created_at.unix_timestamp(),
                "level": e.level,
                "message": e.message,
                "type": if data.get("train_loss").is_some() { "metrics" } else { "message" },
                "data": data,
            })
        })
        .collect();
    Ok(axum::Json(page(items, q.after.as_deref(), q.limit.unwrap_or(20))).into_response())
}

#[utoipa::path(get, path = "/openai/v1/fine_tuning/jobs/{id}/checkpoints", tag = "openai", security(("bearer" = [])),
    params(("id" = String, Path, description = "The job"), PageQuery),
    responses((status = 200, description = "A list of `fine_tuning.job.checkpoint`, newest first", body = Object), (status = 404, description = "Not found")))]
pub async fn openai_list_checkpoints(
    State(app): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> Result<Response, ApiError> {
    let id = job_id(&id)?;
    let job = jobs::get(&app.platform, &ctx.caller, id).await?;
    let list = jobs::checkpoints(&app.platform, &ctx.caller, id).await?;
    let name = jobs::model_name(&job);
    let items: Vec<Value> = list
        .iter()
        .rev()
        .map(|c| {
            let m = checkpoint_metrics(c);
            json!({
                "id": format!("ftckpt-{id}-{}", c.step),
                "object": "fine_tuning.job.checkpoint",
                "created_at": c.created_at.unix_timestamp(),
                "fine_tuned_model_checkpoint": format!("{name}:ckpt-step-{}", c.step),
                "fine_tuning_job_id": public_id(id),
                "step_number": c.step,
                "metrics": {
                    "step": c.step,
                    "train_loss": m["train_loss"],
                    "valid_loss": m["valid_loss"],
                },
            })
        })
        .collect();
    Ok(axum::Json(page(items, q.after.as_deref(), q.limit.unwrap_or(10))).into_response())
}

#[utoipa::path(delete, path = "/openai/v1/models/{id}", tag = "openai", security(("bearer" = [])),
    params(("id" = String, Path, description = "The fine-tuned model")),
    responses((status = 200, description = "`{id, object: model, deleted: true}`", body = Object), (status = 404, description = "Not found")))]
pub async fn openai_delete_model(
    State(app): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    jobs::delete_model(&app.platform, &ctx.caller, &id).await?;
    Ok(axum::Json(json!({"id": id, "object": "model", "deleted": true})).into_response())
}

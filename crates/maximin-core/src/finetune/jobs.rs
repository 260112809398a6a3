//! Fine-tuning jobs: what the API's surfaces call (create, get, list,
//! cancel, events, checkpoints, a model's deletion) and the durable task
//! that trains (`fine_tune`).
//!
//! A job is a row of its own (status, the model it made) beside the task
//! that runs it: queued → validating → running → succeeded | failed |
//! cancelled. The job's end is written once (`finish_fine_tune` moves only a
//! job that has not ended), so a cancel racing a success ends it once. A
//! runner that dies leaves its task's lease to run out; the next runner
//! resumes from the job's last checkpoint. A cancel is seen by the runner
//! within a second, from the store, whichever process runs it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::catalog::ModelSpec;
use crate::files::{new_id, Output};
use crate::finetune::data::{self, Example};
use crate::finetune::provider::{Hyperparameters, StepMetrics, TrainEvent, TrainRun};
use crate::finetune::store::{FineTuneCheckpoint, FineTuneRecord};
use crate::providers::media::Work;
use crate::store::{TaskEnd, TaskRecord, TaskStatus, UsageEvent};
use crate::tasks::{TaskHandler, TaskOutput};
use crate::{Caller, Error, Platform, Result};
use maximin_types::ErrorCode;

pub const TASK_KIND: &str = "fine_tune";
/// Upload purpose of training and validation files.
pub const PURPOSE: &str = "fine-tune";
const CHECKPOINT_PURPOSE: &str = "fine-tune-checkpoint";
const RESULT_PURPOSE: &str = "fine-tune-result";
/// Training data read at most (a file's examples are also capped).
const MAX_DATA_BYTES: u64 = 64 << 20;
/// Checkpoints kept per job (the newest).
const KEEP_CHECKPOINTS: usize = 3;
/// Tokens trained in all (examples × epochs) a job may ask for.
const MAX_TRAINED_TOKENS: u64 = 50_000_000;

pub const QUEUED: &str = "queued";
pub const VALIDATING: &str = "validating";
pub const RUNNING: &str = "running";
pub const SUCCEEDED: &str = "succeeded";
pub const FAILED: &str = "failed";
pub const CANCELLED: &str = "cancelled";

/// How this process trains (`[fine_tune]`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FineTuneConfig {
    /// Threads a run may use (default: half the cores, at least one), so
    /// that serving keeps the rest.
    pub threads: Option<usize>,
    /// Jobs trained at once by this process.
    pub concurrent_jobs: usize,
    /// A checkpoint at least this often (seconds), and at each epoch's end.
    pub checkpoint_every_s: u64,
    /// Factors on the MLP projections as well as attention's.
    pub mlp: bool,
}

impl Default for FineTuneConfig {
    fn default() -> Self {
        FineTuneConfig {
            threads: None,
            concurrent_jobs: 1,
            checkpoint_every_s: 60,
            mlp: false,
        }
    }
}

impl FineTuneConfig {
    pub fn threads(&self) -> usize {
        self.threads.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get() / 2)
                .unwrap_or(1)
                .max(1)
        })
    }
}

/// The job's input, sealed in its task.
#[derive(Serialize, Deserialize)]
struct Params {
    job_id: i64,
}

/// What a create returns beside the job: the data's figures.
pub struct Created {
    pub job: FineTuneRecord,
    pub examples: usize,
    pub tokens: u64,
    pub trained_tokens: u64,
    pub estimated_cost_usd: f64,
}

/// The job's public id (`ftjob-…`).
pub fn public_id(id: i64) -> String {
    format!("ftjob-{id}")
}

/// A job id as a client sends it (`ftjob-123` or `123`).
pub fn parse_id(field: &str, s: &str) -> Result<i64> {
    s.strip_prefix("ftjob-")
        .unwrap_or(s)
        .parse()
        .map_err(|_| Error::not_found("fine-tuning job", s).with("field", field))
}

fn file_id(field: &str, v: &Value) -> Result<i64> {
    let bad = || {
        Error::invalid(
            field,
            format!("'{field}' must be a file id from the file API."),
        )
    };
    match v {
        Value::Number(n) => n.as_i64().ok_or_else(bad),
        Value::String(s) => s
            .strip_prefix("file-")
            .unwrap_or(s)
            .parse()
            .map_err(|_| bad()),
        _ => Err(bad()),
    }
}

/// `n`, `"auto"` or absent: the number, or `None` for a default.
fn auto_number(h: &Value, name: &str) -> Result<Option<f64>> {
    match h.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s == "auto" => Ok(None),
        Some(Value::Number(n)) => Ok(n.as_f64()),
        Some(_) => Err(Error::invalid(
            &format!("hyperparameters.{name}"),
            format!("'{name}' must be a number or \"auto\"."),
        )),
    }
}

fn whole(h: &Value, name: &str, range: (u32, u32)) -> Result<Option<u32>> {
    let Some(x) = auto_number(h, name)? else {
        return Ok(None);
    };
    if x.fract() != 0.0 || x < range.0 as f64 || x > range.1 as f64 {
        return Err(Error::invalid(
            &format!("hyperparameters.{name}"),
            format!(
                "'{name}' must be a whole number from {} to {}.",
                range.0, range.1
            ),
        ));
    }
    Ok(Some(x as u32))
}

/// The hyperparameters asked for, defaults chosen from the data's size:
/// enough epochs that a small file is seen about a hundred times in all
/// (3 to 25), a batch of about 2 % of the examples (1 to 8), rank 8.
pub fn resolve_hyperparameters(h: &Value, examples: usize, mlp: bool) -> Result<Hyperparameters> {
    if !h.is_null() && !h.is_object() {
        return Err(Error::invalid(
            "hyperparameters",
            "'hyperparameters' must be an object.",
        ));
    }
    let n = examples.max(1) as u32;
    let n_epochs =
        whole(h, "n_epochs", (1, 50))?.unwrap_or_else(|| (100u32.div_ceil(n)).clamp(3, 25));
    let batch_size = whole(h, "batch_size", (1, 64))?.unwrap_or_else(|| (n / 50).clamp(1, 8));
    let lora_rank = whole(h, "lora_rank", (1, 64))?.unwrap_or(8);
    let learning_rate_multiplier = match auto_number(h, "learning_rate_multiplier")? {
        None => 1.0,
        Some(x) if x > 0.0 && x <= 10.0 => x,
        Some(_) => {
            return Err(Error::invalid(
                "hyperparameters.learning_rate_multiplier",
                "'learning_rate_multiplier' must be above 0 and at most 10.",
            ))
        }
    };
    Ok(Hyperparameters {
        n_epochs,
        batch_size,
        learning_rate_multiplier,
        lora_rank,
        lora_mlp: mlp,
    })
}

fn suffix_of(v: Option<&Value>) -> Result<Option<String>> {
    let s = match v {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) => s,
        Some(_) => return Err(Error::invalid("suffix", "'suffix' must be a string.")),
    };
    if s.is_empty() {
        return Ok(None);
    }
    if s.len() > 40
        || !s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(Error::invalid(
            "suffix",
            "'suffix' may have up to 40 letters, digits, '-' and '_'.",
        ));
    }
    Ok(Some(s.clone()))
}

/// The base model a job may train: a local chat model some trainer takes.
fn base_model<'a>(
    p: &'a Platform,
    caller: &Caller,
    name: &str,
) -> Result<(&'a ModelSpec, Arc<dyn super::provider::FineTuner>)> {
    if name.starts_with("ft:") {
        return Err(Error::invalid(
            "model",
            "A fine-tuned model cannot be trained further; name its base model.",
        ));
    }
    let spec = p.model_for(caller, name)?;
    Ok((spec, trainer_of(p, spec)?))
}

fn trainer_of(p: &Platform, spec: &ModelSpec) -> Result<Arc<dyn super::provider::FineTuner>> {
    let t = p.engines.fine_tune.get(&spec.engine).cloned().ok_or_else(|| {
        Error::invalid(
            "model",
            format!(
                "The model '{}' cannot be fine-tuned here: fine-tuning trains local llama.cpp chat models.",
                spec.id
            ),
        )
    })?;
    t.supports(spec)?;
    Ok(t)
}

async fn read_examples(
    p: &Platform,
    account_id: &str,
    field: &str,
    id: i64,
) -> Result<Vec<Example>> {
    let file = p
        .files
        .get(account_id, id)
        .await
        .map_err(|e| e.with("field", field))?;
    if file.purpose != PURPOSE {
        return Err(Error::invalid(
            field,
            format!(
                "The file {id} was uploaded for '{}'; training data is uploaded with purpose 'fine-tune'.",
                file.purpose
            ),
        ));
    }
    let bytes = p
        .files
        .read_all(&file, MAX_DATA_BYTES)
        .await
        .map_err(|e| e.with("field", field))?;
    data::check(field, &bytes)
}

/// Creates a job: the files are read and checked line by line, the
/// examples counted in the model's own tokens, and nothing is queued when
/// any of it is wrong.
pub async fn create(
    p: &Arc<Platform>,
    caller: &Caller,
    body: &Value,
    config: &FineTuneConfig,
) -> Result<Created> {
    let model = body
        .get("model")
        .and_then(Value::as_str)
        .ok_or_else(|| Error::invalid("model", "'model' is required: the base model to train."))?;
    let (spec, trainer) = base_model(p, caller, model)?;
    let spec = spec.clone();
    let training_file = file_id(
        "training_file",
        body.get("training_file")
            .ok_or_else(|| Error::invalid("training_file", "'training_file' is required."))?,
    )?;
    let validation_file = match body.get("validation_file") {
        None | Some(Value::Null) => None,
        Some(v) => Some(file_id("validation_file", v)?),
    };
    // OpenAI's newer shape nests them under `method.supervised`.
    let h = body
        .get("hyperparameters")
        .filter(|v| !v.is_null())
        .or_else(|| body.pointer("/method/supervised/hyperparameters"))
        .cloned()
        .unwrap_or(Value::Null);
    let suffix = suffix_of(body.get("suffix"))?;
    let seed = match body.get("seed") {
        None | Some(Value::Null) => rand_seed(),
        Some(v) => v
            .as_i64()
            .filter(|s| (0..=i64::from(u32::MAX)).contains(s))
            .ok_or_else(|| {
                Error::invalid(
                    "seed",
                    "'seed' must be a whole number from 0 to 4294967295.",
                )
            })?,
    };
    let account = &caller.account.id;
    let training = read_examples(p, account, "training_file", training_file).await?;
    let validation = match validation_file {
        Some(id) => read_examples(p, account, "validation_file", id).await?,
        None => Vec::new(),
    };
    let hyper = resolve_hyperparameters(&h, training.len(), config.mlp)?;
    let weights = spec
        .weights_path(&p.installed.models_dir)
        .ok_or_else(|| Error::invalid("model", "The model has no local weights to train."))?;
    let examples = training.len();
    let counts = trainer
        .count_tokens(&spec, weights.clone(), "training_file", training)
        .await?;
    if !validation.is_empty() {
        trainer
            .count_tokens(&spec, weights, "validation_file", validation)
            .await?;
    }
    let tokens: u64 = counts.iter().sum();
    let trained_tokens = tokens * u64::from(hyper.n_epochs);
    if trained_tokens > MAX_TRAINED_TOKENS {
        return Err(Error::invalid(
            "training_file",
            format!("This job would train {trained_tokens} tokens (examples × epochs); at most {MAX_TRAINED_TOKENS} are trained in one job."),
        ));
    }
    let prices = p.prices_of(&spec);
    let estimated_cost_usd = trained_tokens as f64 * prices.input_per_million / 1e6;
    let id = new_id();
    let params = serde_json::to_vec(&Params { job_id: id }).map_err(Error::internal)?;
    let now = p.clock.now();
    let job = FineTuneRecord {
        id,
        account_id: account.clone(),
        key_id: caller.key.id.clone(),
        task_id: new_id(),
        base_model: spec.id.clone(),
        training_file,
        validation_file,
        hyperparameters: serde_json::to_string(&hyper).map_err(Error::internal)?,
        suffix,
        seed,
        status: QUEUED.into(),
        fine_tuned_model: None,
        adapter_file: None,
        trained_tokens: None,
        error: None,
        created_at: now,
        updated_at: now,
        finished_at: None,
        model_deleted: false,
    };
    // The job first, then its task: a runner that claims the task finds it.
    p.store.insert_fine_tune(&job).await?;
    let task = p
        .tasks
        .create_with_id(job.task_id, account, &caller.key.id, TASK_KIND, &params)
        .await?;
    debug_assert_eq!(task.id, job.task_id);
    event(
        p,
        id,
        "info",
        &format!("Created fine-tuning job: {}", public_id(id)),
        None,
    )
    .await;
    event(
        p,
        id,
        "info",
        &format!("Validated the training data: {examples} examples, {tokens} tokens."),
        Some(json!({"examples": examples, "tokens": tokens})),
    )
    .await;
    Ok(Created {
        job,
        examples,
        tokens,
        trained_tokens,
        estimated_cost_usd,
    })
}

fn rand_seed() -> i64 {
    (new_id().unsigned_abs() % u64::from(u32::MAX)) as i64
}

async fn event(p: &Platform, job: i64, level: &str, message: &str, data: Option<Value>) {
    let data = data.map(|d| d.to_string());
    if let Err(e) = p
        .store
        .add_fine_tune_event(job, level, message, data.as_deref(), p.clock.now())
        .await
    {
        tracing::warn!(code = %e.code, job_id = job, "recording a fine-tune event failed");
    }
}

/// The caller's job; another account's is as absent as a missing one. A
/// job whose task ended without its runner writing the job's end (the
/// process stopped between the two) is brought up to date from the task.
pub async fn get(p: &Arc<Platform>, caller: &Caller, id: i64) -> Result<FineTuneRecord> {
    let job = match p.store.fine_tune(id).await? {
        Some(j) if j.account_id == caller.account.id => j,
        _ => return Err(Error::not_found("fine-tuning job", &public_id(id)).with("field", "id")),
    };
    reconcile(p, job).await
}

async fn reconcile(p: &Arc<Platform>, job: FineTuneRecord) -> Result<FineTuneRecord> {
    if is_final(&job.status) {
        return Ok(job);
    }
    let Some(task) = p.store.task(job.task_id).await? else {
        return Ok(job);
    };
    match task.status {
        TaskStatus::Success => {
            let result: Value = task
                .result
                .as_deref()
                .and_then(|r| serde_json::from_str(r).ok())
                .unwrap_or(Value::Null);
            finish_success(p, &job, &task, &result).await?;
        }
        TaskStatus::Failed => {
            let error = json!({
                "code": task.error_code.clone().unwrap_or_else(|| "server_error".into()),
                "message": task.error_message.clone().unwrap_or_default(),
                "param": Value::Null,
            });
            fail(p, job.id, &error).await?;
        }
        _ => return Ok(job),
    }
    Ok(p.store.fine_tune(job.id).await?.unwrap_or(job))
}

pub fn is_final(status: &str) -> bool {
    matches!(status, SUCCEEDED | FAILED | CANCELLED)
}

/// The account's jobs, newest first.
pub async fn list(p: &Arc<Platform>, caller: &Caller) -> Result<Vec<FineTuneRecord>> {
    let mut out = Vec::new();
    for job in p
        .store
        .fine_tunes_of(&caller.account.id)
        .await?
        .into_iter()
        .rev()
    {
        out.push(reconcile(p, job).await?);
    }
    Ok(out)
}

/// Cancels a job that has not ended; its runner stops within a second or
/// two and leaves no model. Cancelling an ended job is refused.
pub async fn cancel(p: &Arc<Platform>, caller: &Caller, id: i64) -> Result<FineTuneRecord> {
    let job = get(p, caller, id).await?;
    if is_final(&job.status) {
        return Err(Error::invalid(
            "id",
            format!(
                "The job has already {}; only a queued or running job can be cancelled.",
                job.status
            ),
        ));
    }
    stop(p, id, "The job was cancelled.").await?;
    get(p, caller, id).await
}

/// Cancels a job unless it has ended, with `why` as its event; true when
/// this call ended it. Its runner sees it from the store within a second.
pub async fn stop(p: &Platform, id: i64, why: &str) -> Result<bool> {
    let ended = p
        .store
        .finish_fine_tune(id, CANCELLED, None, None, None, None, p.clock.now())
        .await?;
    if ended {
        event(p, id, "info", why, None).await;
    }
    Ok(ended)
}

/// Fails a job unless it has ended, with `error` (`{code, message,
/// param}`); true when this call ended it.
async fn fail(p: &Platform, id: i64, error: &Value) -> Result<bool> {
    p.store
        .finish_fine_tune(
            id,
            FAILED,
            None,
            None,
            None,
            Some(&error.to_string()),
            p.clock.now(),
        )
        .await
}

/// The job's events after `after` (its `seq`), oldest first.
pub async fn events(
    p: &Arc<Platform>,
    caller: &Caller,
    id: i64,
    after: i64,
    limit: i64,
) -> Result<Vec<crate::finetune::store::FineTuneEvent>> {
    get(p, caller, id).await?;
    p.store
        .fine_tune_events(id, after, limit.clamp(1, 1000))
        .await
}

/// Every event of the job, oldest first (read a thousand at a time).
pub async fn all_events(
    p: &Arc<Platform>,
    caller: &Caller,
    id: i64,
) -> Result<Vec<crate::finetune::store::FineTuneEvent>> {
    get(p, caller, id).await?;
    let mut out = Vec::new();
    loop {
        let after = out
            .last()
            .map_or(0, |e: &crate::finetune::store::FineTuneEvent| e.seq);
        let page = p.store.fine_tune_events(id, after, 1000).await?;
        let done = page.len() < 1000;
        out.extend(page);
        if done {
            return Ok(out);
        }
    }
}

/// The job's checkpoints, by step.
pub async fn checkpoints(
    p: &Arc<Platform>,
    caller: &Caller,
    id: i64,
) -> Result<Vec<FineTuneCheckpoint>> {
    get(p, caller, id).await?;
    p.store.fine_tune_checkpoints(id).await
}

/// Deletes the caller's fine-tuned model (its adapter goes too; the job
/// stays listed).
pub async fn delete_model(
    p: &Arc<Platform>,
    caller: &Caller,
    model: &str,
) -> Result<FineTuneRecord> {
    let job = match p.store.fine_tune_by_model(model).await? {
        Some(j) if j.account_id == caller.account.id => j,
        _ => return Err(model_not_found(model)),
    };
    p.store.delete_fine_tuned_model(job.id).await?;
    p.adapters.forget(job.id);
    if let Some(f) = job.adapter_file {
        let _ = p.files.remove_id(f).await;
    }
    Ok(job)
}

pub fn model_not_found(model: &str) -> Error {
    Error::new(
        ErrorCode::ModelNotFound,
        format!("No model '{model}' in the catalog; GET /v1/models lists them."),
    )
    .with("field", "model")
    .with("model", model)
}

/// The name a succeeded job's model gets.
pub fn model_name(job: &FineTuneRecord) -> String {
    format!(
        "ft:{}:{}:{}",
        job.base_model,
        job.suffix.as_deref().unwrap_or(""),
        job.id
    )
}

async fn finish_success(
    p: &Arc<Platform>,
    job: &FineTuneRecord,
    task: &TaskRecord,
    result: &Value,
) -> Result<bool> {
    let trained = result
        .get("trained_tokens")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let name = model_name(job);
    let ended = p
        .store
        .finish_fine_tune(
            job.id,
            SUCCEEDED,
            Some(&name),
            task.file_id,
            Some(trained as i64),
            None,
            p.clock.now(),
        )
        .await?;
    if ended {
        event(
            p,
            job.id,
            "info",
            &format!("The job has succeeded: the model is {name}."),
            None,
        )
        .await;
        // Training is metered as it is priced: tokens trained × epochs.
        p.record(UsageEvent {
            at: p.clock.now(),
            account_id: job.account_id.clone(),
            key_id: job.key_id.clone(),
            request_id: public_id(job.id),
            method: "TASK".into(),
            endpoint: "/v1/fine-tunes".into(),
            status: 200,
            model: Some(job.base_model.clone()),
            prompt_tokens: trained,
            completion_tokens: 0,
            characters: 0,
            images: 0,
            media_ms: 0,
            latency_us: 0,
            error_code: None,
            client_ip: None,
            charge: Default::default(),
        });
    }
    Ok(ended)
}

/// The runner of `fine_tune` tasks.
pub struct FineTuneTasks {
    pub platform: Arc<Platform>,
    pub config: FineTuneConfig,
}

fn cancelled() -> Error {
    Error::invalid("id", "The job was cancelled.").with("reason", "cancelled")
}

impl FineTuneTasks {
    async fn job(&self, id: i64) -> Result<FineTuneRecord> {
        self.platform
            .store
            .fine_tune(id)
            .await?
            .ok_or_else(|| Error::internal("the task's fine-tuning job is gone"))
    }

    async fn latest_checkpoint(&self, job: &FineTuneRecord) -> Option<(i64, Vec<u8>)> {
        let p = &self.platform;
        let list = p.store.fine_tune_checkpoints(job.id).await.ok()?;
        for c in list.iter().rev() {
            let Ok(file) = p.files.get(&job.account_id, c.file_id).await else {
                continue;
            };
            if let Ok(bytes) = p.files.read_all(&file, u64::MAX).await {
                return Some((c.step, bytes));
            }
        }
        None
    }

    async fn save_checkpoint(
        &self,
        job: &FineTuneRecord,
        step: u64,
        bytes: &[u8],
        metrics: &StepMetrics,
    ) -> Result<()> {
        let p = &self.platform;
        let file = p
            .files
            .write_output(
                &Output {
                    account_id: &job.account_id,
                    purpose: CHECKPOINT_PURPOSE,
                    filename: &format!("{}-step-{step}.ckpt", public_id(job.id)),
                    kind: "bin",
                    id: None,
                    expires_at: None,
                },
                bytes,
            )
            .await?;
        // Server-made files are recorded by their maker (a task's output
        // with its end; a checkpoint here).
        p.files.record(&file).await?;
        p.store
            .add_fine_tune_checkpoint(&FineTuneCheckpoint {
                job_id: job.id,
                step: step as i64,
                file_id: file.id,
                metrics: serde_json::to_string(metrics).map_err(Error::internal)?,
                created_at: p.clock.now(),
            })
            .await?;
        let list = p.store.fine_tune_checkpoints(job.id).await?;
        if list.len() > KEEP_CHECKPOINTS {
            let keep_from = list[list.len() - KEEP_CHECKPOINTS].step;
            for f in p
                .store
                .delete_fine_tune_checkpoints(job.id, keep_from)
                .await?
            {
                let _ = p.files.remove_id(f).await;
            }
        }
        Ok(())
    }

    async fn drop_checkpoints(&self, job: i64) {
        let p = &self.platform;
        if let Ok(files) = p.store.delete_fine_tune_checkpoints(job, i64::MAX).await {
            for f in files {
                let _ = p.files.remove_id(f).await;
            }
        }
    }

    async fn train(
        &self,
        task: &TaskRecord,
        job: &FineTuneRecord,
        work: &Work,
    ) -> Result<TaskOutput> {
        let p = &self.platform;
        let spec = p
            .catalog
            .resolve(&job.base_model)
            .ok_or_else(|| {
                Error::new(
                    ErrorCode::ModelUnavailable,
                    "The base model left the catalog.",
                )
            })?
            .clone();
        let trainer = trainer_of(p, &spec)?;
        let weights = spec.weights_path(&p.installed.models_dir).ok_or_else(|| {
            Error::new(
                ErrorCode::ModelUnavailable,
                "The base model has no weights.",
            )
        })?;
        p.store
            .set_fine_tune_status(job.id, VALIDATING, p.clock.now())
            .await?;
        let training =
            read_examples(p, &job.account_id, "training_file", job.training_file).await?;
        let validation = match job.validation_file {
            Some(id) => read_examples(p, &job.account_id, "validation_file", id).await?,
            None => Vec::new(),
        };
        let hyper: Hyperparameters =
            serde_json::from_str(&job.hyperparameters).map_err(Error::internal)?;
        let checkpoint = self.latest_checkpoint(job).await;
        if !p
            .store
            .set_fine_tune_status(job.id, RUNNING, p.clock.now())
            .await?
        {
            return Err(cancelled());
        }
        let cancel = Arc::new(AtomicBool::new(false));
        let mut rx = trainer
            .train(TrainRun {
                model: spec,
                weights,
                training,
                validation,
                hyperparameters: hyper,
                seed: job.seed as u64,
                checkpoint: checkpoint.map(|(_, b)| b),
                checkpoint_every_s: self.config.checkpoint_every_s,
                threads: self.config.threads(),
                cancel: cancel.clone(),
            })
            .await?;
        let mut last_look = Instant::now();
        let mut outcome = None;
        loop {
            let next = tokio::time::timeout(Duration::from_millis(500), rx.recv()).await;
            if work.is_cancelled() {
                cancel.store(true, Ordering::Relaxed);
            }
            if last_look.elapsed() >= Duration::from_millis(500) {
                last_look = Instant::now();
                if let Ok(Some(j)) = p.store.fine_tune(job.id).await {
                    if is_final(&j.status) {
                        cancel.store(true, Ordering::Relaxed);
                        outcome = Some(Err(cancelled()));
                        break;
                    }
                }
            }
            let Ok(next) = next else { continue };
            match next {
                None => break,
                Some(Err(e)) => {
                    outcome = Some(Err(e));
                    break;
                }
                Some(Ok(ev)) => match ev {
                    TrainEvent::Resumed { step } => {
                        event(
                            p,
                            job.id,
                            "info",
                            &format!("Resumed from the checkpoint at step {step}."),
                            Some(json!({"step": step})),
                        )
                        .await;
                    }
                    TrainEvent::Prepared {
                        examples,
                        tokens,
                        total_steps,
                    } => {
                        event(
                            p,
                            job.id,
                            "info",
                            &format!("Training started: {examples} examples, {tokens} tokens, {total_steps} steps."),
                            Some(json!({"examples": examples, "tokens": tokens, "total_steps": total_steps})),
                        )
                        .await;
                    }
                    TrainEvent::Step(m) => {
                        work.progress(m.step, m.total_steps);
                        let mut text = format!(
                            "Step {}/{}: training loss={:.4}",
                            m.step, m.total_steps, m.train_loss
                        );
                        if let Some(v) = m.valid_loss {
                            text.push_str(&format!(", validation loss={v:.4}"));
                        }
                        let data = serde_json::to_value(&m).ok();
                        event(p, job.id, "info", &text, data).await;
                    }
                    TrainEvent::Checkpoint {
                        step,
                        bytes,
                        metrics,
                    } => {
                        if let Err(e) = self.save_checkpoint(job, step, &bytes, &metrics).await {
                            tracing::warn!(code = %e.code, job_id = job.id, "saving a checkpoint failed");
                        }
                    }
                    TrainEvent::Done {
                        adapter,
                        trained_tokens,
                    } => {
                        outcome = Some(Ok((adapter, trained_tokens)));
                        break;
                    }
                },
            }
        }
        drop(rx);
        let (adapter, trained_tokens) = match outcome {
            Some(Ok(done)) => done,
            Some(Err(e)) => return Err(e),
            None if cancel.load(Ordering::Relaxed) => return Err(cancelled()),
            None => return Err(Error::internal("the trainer stopped without a result")),
        };
        let file = p
            .files
            .write_output(
                &Output {
                    account_id: &job.account_id,
                    purpose: RESULT_PURPOSE,
                    filename: &format!("{}.gguf", model_name(job).replace(':', "_")),
                    kind: "gguf",
                    id: task.file_id,
                    expires_at: None,
                },
                &adapter,
            )
            .await?;
        Ok(TaskOutput {
            result: json!({"trained_tokens": trained_tokens, "adapter_bytes": adapter.len()}),
            file: Some(file),
        })
    }
}

#[async_trait]
impl TaskHandler for FineTuneTasks {
    async fn run(&self, task: &TaskRecord, params: Vec<u8>, work: &Work) -> Result<TaskOutput> {
        let params: Params = serde_json::from_slice(&params).map_err(Error::internal)?;
        let job = self.job(params.job_id).await?;
        if is_final(&job.status) {
            return Err(cancelled());
        }
        let out = self.train(task, &job, work).await;
        if let Err(e) = &out {
            let p = &self.platform;
            let cancelled = e.details.get("reason").and_then(Value::as_str) == Some("cancelled");
            if !cancelled {
                let error = json!({"code": e.code.as_str(), "message": e.message, "param": e.details.get("field")});
                if fail(p, job.id, &error).await.unwrap_or(false) {
                    event(
                        p,
                        job.id,
                        "error",
                        &format!("The job failed: {}", e.message),
                        None,
                    )
                    .await;
                }
            }
            self.drop_checkpoints(job.id).await;
        }
        out
    }

    async fn ended(&self, task: &TaskRecord, params: &[u8], end: &TaskEnd) {
        let Ok(params) = serde_json::from_slice::<Params>(params) else {
            return;
        };
        let p = &self.platform;
        let Ok(job) = self.job(params.job_id).await else {
            return;
        };
        if end.status == TaskStatus::Success {
            let result: Value = end
                .result
                .as_deref()
                .and_then(|r| serde_json::from_str(r).ok())
                .unwrap_or(Value::Null);
            match finish_success(p, &job, task, &result).await {
                Ok(true) => {}
                // Cancelled at the last moment: no model is left.
                Ok(false) => {
                    if let Some(f) = task.file_id {
                        let _ = p.files.remove_id(f).await;
                    }
                }
                Err(e) => {
                    tracing::warn!(code = %e.code, job_id = job.id, "recording a fine-tune's end failed")
                }
            }
        }
        self.drop_checkpoints(job.id).await;
    }
}

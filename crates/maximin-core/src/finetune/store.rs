//! What the store keeps of fine-tunes: the jobs (and the models they
//! made), their events and their checkpoints.

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::Result;

/// The statuses a job never leaves: the store moves no job out of them.
pub const FINAL_STATUSES: [&str; 3] = ["succeeded", "failed", "cancelled"];

/// A fine-tuning job and, once it succeeded, the model it made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FineTuneRecord {
    pub id: i64,
    pub account_id: String,
    pub key_id: String,
    /// The durable task that trains it.
    pub task_id: i64,
    pub base_model: String,
    pub training_file: i64,
    pub validation_file: Option<i64>,
    /// The hyperparameters as resolved (JSON text).
    pub hyperparameters: String,
    pub suffix: Option<String>,
    pub seed: i64,
    /// queued | validating | running | succeeded | failed | cancelled
    pub status: String,
    /// `ft:BASE:SUFFIX:ID` once succeeded.
    pub fine_tuned_model: Option<String>,
    /// The adapter's file (a FileRecord id) once succeeded.
    pub adapter_file: Option<i64>,
    pub trained_tokens: Option<i64>,
    /// JSON `{"code":..,"message":..,"param":..}` when failed.
    pub error: Option<String>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub finished_at: Option<OffsetDateTime>,
    /// The model was deleted by its owner (the job stays listed).
    pub model_deleted: bool,
}

/// A line of a job's log, numbered per job so a reader pages on `seq`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FineTuneEvent {
    pub job_id: i64,
    /// 1, 2, 3… per job, assigned by the store on insert.
    pub seq: i64,
    pub created_at: OffsetDateTime,
    /// info | warn | error
    pub level: String,
    pub message: String,
    /// Metrics as JSON text (step, train_loss, valid_loss, tokens_per_s…), or None.
    pub data: Option<String>,
}

/// The adapter as it stood at one step, so a job can resume or be judged
/// by an earlier step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FineTuneCheckpoint {
    pub job_id: i64,
    pub step: i64,
    /// The sealed checkpoint file (a FileRecord id).
    pub file_id: i64,
    /// JSON text (step, train_loss, valid_loss…).
    pub metrics: String,
    pub created_at: OffsetDateTime,
}

/// Fine-tuning jobs, their events and checkpoints. The files they name
/// (training data, adapters, checkpoints) live in the file store; an
/// account's purge removes these rows.
#[async_trait]
pub trait FineTuneStore: Send + Sync + 'static {
    async fn insert_fine_tune(&self, r: &FineTuneRecord) -> Result<()>;
    async fn fine_tune(&self, id: i64) -> Result<Option<FineTuneRecord>>;
    /// An account's jobs, oldest first (by creation, then id).
    async fn fine_tunes_of(&self, account_id: &str) -> Result<Vec<FineTuneRecord>>;
    /// The job that made this model, unless its owner deleted the model.
    async fn fine_tune_by_model(&self, model: &str) -> Result<Option<FineTuneRecord>>;
    /// Moves a job to `status` unless it is in a final one already; true
    /// when it moved.
    async fn set_fine_tune_status(&self, id: i64, status: &str, at: OffsetDateTime)
        -> Result<bool>;
    /// Ends a job in the final `status` with its outcome, unless it has
    /// ended already: one statement, so a cancel racing a success ends it
    /// once. True when this call ended it.
    #[allow(clippy::too_many_arguments)]
    async fn finish_fine_tune(
        &self,
        id: i64,
        status: &str,
        fine_tuned_model: Option<&str>,
        adapter_file: Option<i64>,
        trained_tokens: Option<i64>,
        error: Option<&str>,
        at: OffsetDateTime,
    ) -> Result<bool>;
    /// Marks the job's model deleted (the job stays listed); true when it
    /// was not already.
    async fn delete_fine_tuned_model(&self, id: i64) -> Result<bool>;
    /// Appends an event numbered one past the job's last (appends to one
    /// job in parallel each get their own number); returns its `seq`.
    async fn add_fine_tune_event(
        &self,
        job_id: i64,
        level: &str,
        message: &str,
        data: Option<&str>,
        at: OffsetDateTime,
    ) -> Result<i64>;
    /// The job's events after `after` (a `seq`), oldest first, at most `limit`.
    async fn fine_tune_events(
        &self,
        job_id: i64,
        after: i64,
        limit: i64,
    ) -> Result<Vec<FineTuneEvent>>;
    /// Records a checkpoint; one at the same step replaces it.
    async fn add_fine_tune_checkpoint(&self, c: &FineTuneCheckpoint) -> Result<()>;
    /// The job's checkpoints by step.
    async fn fine_tune_checkpoints(&self, job_id: i64) -> Result<Vec<FineTuneCheckpoint>>;
    /// Deletes the job's checkpoints before `keep_from_step`; returns their
    /// file ids, for the caller to remove the files.
    async fn delete_fine_tune_checkpoints(
        &self,
        job_id: i64,
        keep_from_step: i64,
    ) -> Result<Vec<i64>>;
}

//! Fine-tunes as a privacy data category (`fine_tunes`): the account's jobs
//! and the models they made, as the export holds them, and their deletion
//! on request.

use maximin_types::DataCategory;
use serde_json::{json, Value};

use crate::clock::iso8601;
use crate::finetune::jobs::{is_final, public_id, stop, SUCCEEDED};
use crate::finetune::store::FineTuneRecord;
use crate::store::TaskStatus;
use crate::{Platform, Result};

/// Events read at once while exporting a job.
const EVENT_PAGE: i64 = 1000;

/// What an export says of an adapter in place of its bytes.
const ADAPTER_NOTE: &str = "The adapter is a file derived from the training data by training (LoRA weights), not data you provided; its bytes are not in this record. It is listed under files, and an export with files carries it.";
const ADAPTER_DELETED_NOTE: &str = "The adapter was a file derived from the training data by training (LoRA weights); it was deleted with the model.";

/// A model the catalog serves (the store's `fine_tuned_models`).
fn model_is_served(j: &FineTuneRecord) -> bool {
    j.status == SUCCEEDED && j.fine_tuned_model.is_some() && !j.model_deleted
}

fn parsed(text: Option<&str>) -> Value {
    text.and_then(|t| serde_json::from_str(t).ok())
        .unwrap_or(Value::Null)
}

fn adapter(j: &FineTuneRecord) -> Value {
    match j.adapter_file {
        None => Value::Null,
        Some(_) if j.model_deleted => json!({
            "file_id": Value::Null,
            "derived": true,
            "note": ADAPTER_DELETED_NOTE,
        }),
        Some(f) => json!({
            "file_id": f.to_string(),
            "derived": true,
            "note": ADAPTER_NOTE,
        }),
    }
}

impl Platform {
    /// The account's fine-tunes as the privacy export holds them: each job
    /// (what it trained, on which files, how, where it stands, its events
    /// and checkpoints' figures), then each model still served. Never an
    /// adapter's or a checkpoint's bytes: those are files, under files.
    pub(crate) async fn fine_tune_records(&self, account_id: &str) -> Result<Vec<Value>> {
        let jobs = self.store.fine_tunes_of(account_id).await?;
        let mut out = Vec::with_capacity(jobs.len());
        let mut models = Vec::new();
        for j in &jobs {
            let mut events = Vec::new();
            let mut after = 0;
            loop {
                let page = self.store.fine_tune_events(j.id, after, EVENT_PAGE).await?;
                let Some(last) = page.last() else { break };
                after = last.seq;
                let more = page.len() as i64 == EVENT_PAGE;
                events.extend(page.iter().map(|e| {
                    json!({
                        "seq": e.seq,
                        "created_at": iso8601(e.created_at),
                        "level": e.level,
                        "message": e.message,
                        "data": parsed(e.data.as_deref()),
                    })
                }));
                if !more {
                    break;
                }
            }
            let checkpoints: Vec<Value> = self
                .store
                .fine_tune_checkpoints(j.id)
                .await?
                .iter()
                .map(|c| {
                    json!({
                        "step": c.step,
                        "file_id": c.file_id.to_string(),
                        "metrics": parsed(Some(&c.metrics)),
                        "created_at": iso8601(c.created_at),
                    })
                })
                .collect();
            out.push(json!({
                "kind": "job",
                "id": public_id(j.id),
                "key_id": j.key_id,
                "task_id": j.task_id.to_string(),
                "base_model": j.base_model,
                "training_file": j.training_file.to_string(),
                "validation_file": j.validation_file.map(|f| f.to_string()),
                "hyperparameters": parsed(Some(&j.hyperparameters)),
                "suffix": j.suffix,
                "seed": j.seed,
                "status": j.status,
                "fine_tuned_model": j.fine_tuned_model,
                "model_deleted": j.model_deleted,
                "trained_tokens": j.trained_tokens,
                "error": parsed(j.error.as_deref()),
                "created_at": iso8601(j.created_at),
                "updated_at": iso8601(j.updated_at),
                "finished_at": j.finished_at.map(iso8601),
                "adapter": adapter(j),
                "checkpoints": checkpoints,
                "events": events,
            }));
            if model_is_served(j) {
                models.push(json!({
                    "kind": "model",
                    "id": j.fine_tuned_model,
                    "job_id": public_id(j.id),
                    "base_model": j.base_model,
                    "created_at": j.finished_at.map(iso8601),
                    "adapter": adapter(j),
                }));
            }
        }
        out.extend(models);
        Ok(out)
    }

    /// Deletes the account's fine-tunes (the category `fine_tunes`): a job
    /// not ended is cancelled first (its run stops within a second or two
    /// and makes no model); each model leaves the catalog, its adapter
    /// removed, record and bytes; then the records of ended jobs whose run
    /// has stopped go, with their events and checkpoints. A job cancelled
    /// here keeps its record, cancelled, until its run has stopped (the
    /// next deletion takes it). The training files stay: they are files.
    /// Returns the models and jobs deleted.
    pub(crate) async fn delete_fine_tunes(&self, account_id: &str) -> Result<u64> {
        let mut n = 0;
        for mut job in self.store.fine_tunes_of(account_id).await? {
            if !is_final(&job.status) {
                stop(
                    self,
                    job.id,
                    "The job was cancelled: the account's fine-tunes were deleted.",
                )
                .await?;
                match self.store.task(job.task_id).await? {
                    // Its run stops, and cleans up after itself.
                    Some(t) if !matches!(t.status, TaskStatus::Success | TaskStatus::Failed) => {
                        continue
                    }
                    // A task that ended without its runner writing the
                    // job's end (the process stopped between the two) may
                    // have left an adapter no model will use.
                    Some(t) => {
                        if let Some(f) = t.file_id {
                            self.files.remove_id(f).await?;
                        }
                    }
                    None => {}
                }
                // As it stands now (it may have ended otherwise meanwhile).
                job = self.store.fine_tune(job.id).await?.unwrap_or(job);
            }
            if model_is_served(&job) {
                if self.store.delete_fine_tuned_model(job.id).await? {
                    n += 1;
                }
                self.adapters.forget(job.id);
            }
            if let Some(f) = job.adapter_file {
                self.files.remove_id(f).await?;
            }
            for f in self
                .store
                .delete_fine_tune_checkpoints(job.id, i64::MAX)
                .await?
            {
                self.files.remove_id(f).await?;
            }
        }
        n += self
            .store
            .delete_records(account_id, DataCategory::FineTunes, self.clock.now())
            .await?;
        Ok(n)
    }
}

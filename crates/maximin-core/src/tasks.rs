//! Durable tasks (DESIGN.md §7): long speech now, video, music and
//! fine-tunes later. A task is a row in the store (`queued → processing →
//! success | failed`) whose input is sealed under the master key; runners
//! claim tasks atomically with a lease they renew while working. A runner
//! that dies (crash, restart) leaves its lease to run out, and the task is
//! claimed again; the attempt number fences a stale runner out, and the
//! output file is recorded in the same transaction as the success, so a task
//! ends exactly once.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::Notify;

use crate::clock::Clock;
use crate::crypto::MasterKeys;
use crate::files::{new_id, Files};
use crate::providers::media::Work;
use crate::store::{FileRecord, Store, TaskEnd, TaskRecord, TaskStatus};
use crate::{Error, Result};

/// A claim lasts this long unless renewed.
const LEASE: time::Duration = time::Duration::seconds(30);
/// How often a working runner renews its lease and records its progress.
const RENEW_EVERY: Duration = Duration::from_secs(2);
/// How often an idle runner looks for work another process queued.
const POLL_EVERY: Duration = Duration::from_secs(5);

/// What a finished task made.
pub struct TaskOutput {
    /// Metadata of the outcome as JSON (lengths, counts; never content).
    pub result: serde_json::Value,
    /// The output file, written with [`Files::write_output`] under the
    /// task's reserved file id.
    pub file: Option<FileRecord>,
}

/// Runs the tasks of one kind.
#[async_trait]
pub trait TaskHandler: Send + Sync + 'static {
    /// Does the work. `params` is the opened input; progress reported on
    /// `work` is recorded in the task, and `work` is cancelled when the
    /// runner stops waiting (the task was taken over, the server stops).
    /// An `Err` fails the task with that error's code and message.
    async fn run(&self, task: &TaskRecord, params: Vec<u8>, work: &Work) -> Result<TaskOutput>;

    /// Called when this runner has claimed the task, before `run`.
    async fn started(&self, _task: &TaskRecord, _params: &[u8]) {}

    /// Called once the task's end is recorded, by the runner that recorded
    /// it (never for an attempt that lost the task).
    async fn ended(&self, _task: &TaskRecord, _params: &[u8], _end: &TaskEnd) {}
}

/// What a webhook delivery's sealed payload is bound to.
pub fn webhook_aad(id: i64) -> Vec<u8> {
    format!("maximin/webhook/{id}").into_bytes()
}

fn aad(id: i64) -> Vec<u8> {
    format!("maximin/task/{id}").into_bytes()
}

/// Creates tasks and runs them.
pub struct Tasks {
    store: Arc<dyn Store>,
    keys: Arc<MasterKeys>,
    clock: Arc<dyn Clock>,
    wake: Arc<Notify>,
}

impl Tasks {
    pub fn new(store: Arc<dyn Store>, keys: Arc<MasterKeys>, clock: Arc<dyn Clock>) -> Self {
        Tasks {
            store,
            keys,
            clock,
            wake: Arc::new(Notify::new()),
        }
    }

    /// Queues a task; its input is sealed. The output file id is reserved now.
    pub async fn create(
        &self,
        account_id: &str,
        key_id: &str,
        kind: &str,
        params: &[u8],
    ) -> Result<TaskRecord> {
        self.create_with_id(new_id(), account_id, key_id, kind, params)
            .await
    }

    /// [`Tasks::create`] under an id the caller chose (with
    /// [`new_id`]), for a record that names its task before it is queued.
    pub async fn create_with_id(
        &self,
        id: i64,
        account_id: &str,
        key_id: &str,
        kind: &str,
        params: &[u8],
    ) -> Result<TaskRecord> {
        let now = self.clock.now();
        let task = TaskRecord {
            id,
            account_id: account_id.to_owned(),
            key_id: key_id.to_owned(),
            kind: kind.to_owned(),
            status: TaskStatus::Queued,
            params: self.keys.seal_value(params, &aad(id))?,
            file_id: Some(new_id()),
            result: None,
            error_code: None,
            error_message: None,
            attempts: 0,
            lease_until: None,
            progress: 0,
            created_at: now,
            updated_at: now,
        };
        self.store.insert_task(&task).await?;
        self.wake.notify_one();
        Ok(task)
    }

    /// The caller's task; another account's is as absent as a missing one.
    pub async fn get(&self, account_id: &str, id: i64) -> Result<TaskRecord> {
        match self.store.task(id).await? {
            Some(t) if t.account_id == account_id => Ok(t),
            _ => Err(Error::not_found("task", &id.to_string()).with("field", "task_id")),
        }
    }

    /// The account's tasks, newest first (the hub's list).
    pub async fn list(&self, account_id: &str) -> Result<Vec<TaskRecord>> {
        let mut tasks = self.store.tasks_of(account_id).await?;
        tasks.reverse();
        Ok(tasks)
    }

    /// Starts `workers` runners for these handlers; they stop when `stop` fires.
    pub fn start(
        self: &Arc<Self>,
        files: Arc<Files>,
        handlers: HashMap<String, Arc<dyn TaskHandler>>,
        workers: usize,
        stop: Arc<Notify>,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        let handlers = Arc::new(handlers);
        (0..workers)
            .map(|_| {
                let me = self.clone();
                let (handlers, files, stop) = (handlers.clone(), files.clone(), stop.clone());
                tokio::spawn(async move {
                    tokio::select! {
                        () = me.run_loop(handlers, files) => {}
                        () = stop.notified() => {}
                    }
                })
            })
            .collect()
    }

    async fn run_loop(
        self: Arc<Self>,
        handlers: Arc<HashMap<String, Arc<dyn TaskHandler>>>,
        files: Arc<Files>,
    ) {
        let kinds: Vec<String> = handlers.keys().cloned().collect();
        loop {
            match self.run_one(&kinds, &handlers, &files).await {
                Ok(true) => continue,
                Ok(false) => {}
                Err(e) => tracing::warn!(code = %e.code, "task runner: {}", e.message),
            }
            tokio::select! {
                () = self.wake.notified() => {}
                () = tokio::time::sleep(POLL_EVERY) => {}
            }
        }
    }

    /// Claims and runs one task; false when none was waiting.
    pub async fn run_one(
        &self,
        kinds: &[String],
        handlers: &HashMap<String, Arc<dyn TaskHandler>>,
        files: &Files,
    ) -> Result<bool> {
        let now = self.clock.now();
        let Some(task) = self.store.claim_task(kinds, now, now + LEASE).await? else {
            return Ok(false);
        };
        let handler = handlers
            .get(&task.kind)
            .ok_or_else(|| Error::internal(format!("no handler for task kind {}", task.kind)))?
            .clone();
        tracing::info!(task_id = task.id, kind = %task.kind, attempt = task.attempts, "task started");
        let params = self.keys.open_value(&task.params, &aad(task.id));
        let opened: Vec<u8> = params.as_ref().ok().cloned().unwrap_or_default();
        if params.is_ok() {
            handler.started(&task, &opened).await;
        }
        let work = Work::new();
        let run = async {
            match params {
                Ok(p) => {
                    let guard = work.cancel_on_drop();
                    let out = handler.run(&task, p, &work).await;
                    guard.disarm();
                    out
                }
                Err(e) => Err(e),
            }
        };
        // Renew the lease, with the progress, while the work runs.
        let renew = async {
            loop {
                tokio::time::sleep(RENEW_EVERY).await;
                let until = self.clock.now() + LEASE;
                match self
                    .store
                    .renew_task(task.id, task.attempts, until, work.percent())
                    .await
                {
                    Ok(true) => {}
                    Ok(false) => return,
                    Err(e) => tracing::warn!(code = %e.code, "renewing a task lease failed"),
                }
            }
        };
        let outcome = tokio::select! {
            r = run => Some(r),
            () = renew => None,
        };
        let Some(outcome) = outcome else {
            tracing::warn!(task_id = task.id, "task taken over by another runner");
            return Ok(true);
        };
        let end = match outcome {
            Ok(out) => TaskEnd {
                status: TaskStatus::Success,
                result: Some(out.result.to_string()),
                error_code: None,
                error_message: None,
                file: out.file,
            },
            Err(e) => TaskEnd {
                status: TaskStatus::Failed,
                result: serde_json::to_string(&e.details).ok(),
                error_code: Some(e.code.as_str().to_owned()),
                error_message: Some(e.message.clone()),
                file: None,
            },
        };
        let written = self
            .store
            .end_task(task.id, task.attempts, &end, self.clock.now())
            .await?;
        if written {
            handler.ended(&task, &opened, &end).await;
        } else if let Some(f) = &end.file {
            // Another attempt owns the task: this output is not its result.
            let _ = files.discard(f).await;
        }
        tracing::info!(
            task_id = task.id,
            status = end.status.as_str(),
            "task ended"
        );
        Ok(true)
    }

    /// Rewraps every unfinished task's input, and every waiting webhook
    /// delivery, under the current master key.
    pub async fn rewrap_all(&self) -> Result<u64> {
        let mut n = 0;
        for (id, params) in self.store.task_params().await? {
            let params = self.keys.rewrap_value(&params, &aad(id))?;
            self.store.set_task_params(id, &params).await?;
            n += 1;
        }
        for (id, payload) in self.store.webhook_payloads().await? {
            let payload = self.keys.rewrap_value(&payload, &webhook_aad(id))?;
            self.store.set_webhook_payload(id, &payload).await?;
            n += 1;
        }
        Ok(n)
    }
}

//! The privacy export (issue 16): a durable task that writes everything
//! held for an account as one JSON document, or a zip holding that
//! document and the files' contents, into a file the owner downloads with
//! a signed link. Every category the dashboard lists is in it, with the
//! same counts; nothing of another account is.

use std::collections::HashMap;
use std::io::Write as _;
use std::sync::Arc;

use async_trait::async_trait;
use maximin_types::privacy::{ExportRequest, ExportView};
use maximin_types::DataCategory;
use serde_json::{json, Map, Value};

use crate::billing::micro_to_usd;
use crate::clock::iso8601;
use crate::files::{Output, LINK_TTL};
use crate::providers::media::Work;
use crate::store::{FileRecord, TaskRecord, TaskStatus};
use crate::tasks::{TaskHandler, TaskOutput};
use crate::{account_view, activity_entry, key_view, Caller, Error, Platform, Result};

/// The task kind of an export.
pub const EXPORT_TASK: &str = "privacy_export";
/// The purpose of an export's file.
pub const EXPORT_PURPOSE: &str = "privacy_export";
/// An export's file is kept this long.
pub const EXPORT_TTL: time::Duration = time::Duration::days(7);
/// The most file content a zip export carries (it is built in memory).
pub const MAX_ZIP_FILES_BYTES: u64 = 1 << 30;
const USAGE_PAGE: u32 = 5000;

impl Platform {
    /// Queues an export of the caller's account.
    pub async fn start_export(&self, caller: &Caller, req: &ExportRequest) -> Result<ExportView> {
        self.queue_export(&caller.account.id, &caller.key.id, req)
            .await
    }

    /// Queues an export of an account (`key_id` names who asked: a key, or
    /// `cli` for the operator).
    pub async fn queue_export(
        &self,
        account_id: &str,
        key_id: &str,
        req: &ExportRequest,
    ) -> Result<ExportView> {
        self.account(account_id).await?;
        if req.include_files {
            let total: u64 = self
                .store
                .files_of(account_id, None)
                .await?
                .iter()
                .map(|f| f.bytes)
                .sum();
            if total > MAX_ZIP_FILES_BYTES {
                return Err(Error::invalid(
                    "include_files",
                    format!(
                        "The account's files hold {total} bytes, more than an export carries ({MAX_ZIP_FILES_BYTES}); export without them and download the files one by one."
                    ),
                ));
            }
        }
        let params = serde_json::to_vec(req).map_err(Error::internal)?;
        let task = self
            .tasks
            .create(account_id, key_id, EXPORT_TASK, &params)
            .await?;
        self.log_privacy(
            account_id,
            "export_requested",
            &task.id.to_string(),
            json!({ "include_files": req.include_files }),
        )
        .await?;
        Ok(export_view(&task, None))
    }

    /// Logs a finished export: by which task (or `cli`), how big.
    pub async fn log_export(&self, account_id: &str, by: &str, bytes: u64) -> Result<()> {
        self.log_privacy(account_id, "data_exported", by, json!({ "bytes": bytes }))
            .await
    }

    /// An export's state; once done, its file and a signed link (`base`
    /// is the public URL links start with).
    pub async fn export_status(
        &self,
        account_id: &str,
        task_id: i64,
        base: &str,
    ) -> Result<ExportView> {
        let task = self.tasks.get(account_id, task_id).await?;
        if task.kind != EXPORT_TASK {
            return Err(Error::not_found("export", &task_id.to_string()).with("field", "task_id"));
        }
        let link = match (task.status, task.file_id) {
            // Its file may have expired (7 days) or been deleted.
            (TaskStatus::Success, Some(id)) => self
                .files
                .get(account_id, id)
                .await
                .ok()
                .map(|f| (f.id, self.files.link(base, &f, LINK_TTL))),
            _ => None,
        };
        Ok(export_view(&task, link))
    }

    /// Everything held for the account, by category: `{count, records}`
    /// each. `files` says where each file's content is in a zip.
    pub async fn export_document(
        &self,
        account_id: &str,
        in_zip: bool,
        work: &Work,
    ) -> Result<Value> {
        self.meter.flush().await;
        let account = self.account(account_id).await?;
        let mut cats = Map::new();
        let total = DataCategory::ALL.len() as u64 + 1;
        for (i, &c) in DataCategory::ALL.iter().enumerate() {
            if work.is_cancelled() {
                return Err(Error::internal("the export was stopped"));
            }
            let records = self.category_records(&account, c, in_zip).await?;
            cats.insert(
                c.as_str().to_owned(),
                json!({ "count": records.len(), "records": records }),
            );
            work.progress(i as u64 + 1, total);
        }
        Ok(json!({
            "object": "privacy_export",
            "account_id": account_id,
            "exported_at": iso8601(self.clock.now()),
            "format": if in_zip { "zip" } else { "json" },
            "categories": cats,
        }))
    }

    async fn category_records(
        &self,
        account: &crate::store::Account,
        c: DataCategory,
        in_zip: bool,
    ) -> Result<Vec<Value>> {
        let id = account.id.as_str();
        Ok(match c {
            DataCategory::Profile => {
                let mut p = serde_json::to_value(account_view(account)).map_err(Error::internal)?;
                p["closed_at"] = json!(account.closed_at.map(iso8601));
                p["debug_logging_until"] = json!(account.debug_until.map(iso8601));
                vec![p]
            }
            DataCategory::Keys => self
                .store
                .keys_of(id)
                .await?
                .iter()
                .map(|k| to_json(&key_view(k)))
                .collect(),
            DataCategory::UsageLogs => {
                let mut out = Vec::new();
                let mut after = 0;
                loop {
                    let page = self.store.usage_page(id, after, USAGE_PAGE).await?;
                    let Some((last, _)) = page.last() else { break };
                    after = *last;
                    for (_, e) in page {
                        let key_id = e.key_id.clone();
                        let mut entry = to_json(&activity_entry(e));
                        entry["key_id"] = json!(key_id);
                        out.push(entry);
                    }
                }
                out
            }
            DataCategory::BillingRecords => {
                let mut out: Vec<Value> = self
                    .store
                    .ledger(id)
                    .await?
                    .into_iter()
                    .map(|l| {
                        json!({
                            "type": "credit",
                            "at": iso8601(l.at),
                            "amount_usd": micro_to_usd(l.amount_micro),
                            "kind": l.kind,
                            "note": l.note,
                        })
                    })
                    .collect();
                for l in self.store.billing_lines(id, "0000-01", "9999-12").await? {
                    out.push(json!({
                        "type": "spend",
                        "month": l.month,
                        "key_id": l.key_id,
                        "model": l.model,
                        "sandbox": l.sandbox,
                        "requests": l.requests,
                        "prompt_tokens": l.prompt_tokens,
                        "completion_tokens": l.completion_tokens,
                        "characters": l.characters,
                        "images": l.images,
                        "media_ms": l.media_ms,
                        "cost_usd": micro_to_usd(l.cost_micro),
                    }));
                }
                out
            }
            DataCategory::Files => self
                .store
                .files_of(id, None)
                .await?
                .iter()
                .map(|f| {
                    let mut r = json!({
                        "id": f.id.to_string(),
                        "purpose": f.purpose,
                        "filename": f.filename,
                        "kind": f.kind,
                        "bytes": f.bytes,
                        "created_at": iso8601(f.created_at),
                        "expires_at": f.expires_at.map(iso8601),
                    });
                    if in_zip {
                        r["path"] = json!(zip_path(f));
                    }
                    r
                })
                .collect(),
            DataCategory::TaskRecords => self
                .store
                .tasks_of(id)
                .await?
                .iter()
                .map(|t| {
                    json!({
                        "id": t.id.to_string(),
                        "kind": t.kind,
                        "status": t.status.as_str(),
                        "progress": t.progress,
                        "file_id": t.file_id.map(|f| f.to_string()),
                        "result": t.result.as_deref().and_then(|r| serde_json::from_str::<Value>(r).ok()),
                        "error_code": t.error_code,
                        "error_message": t.error_message,
                        "created_at": iso8601(t.created_at),
                        "updated_at": iso8601(t.updated_at),
                    })
                })
                .collect(),
            DataCategory::Voices => self
                .store
                .voices_of(id)
                .await?
                .iter()
                .filter(|v| v.deleted_at.is_none())
                .map(|v| {
                    json!({
                        "voice_id": v.voice_id,
                        "kind": v.kind,
                        "profile": serde_json::from_str::<Value>(&v.profile).unwrap_or(Value::Null),
                        "created_at": iso8601(v.created_at),
                        "used_at": v.used_at.map(iso8601),
                    })
                })
                .collect(),
            DataCategory::SupportMessages => {
                let mut out = Vec::new();
                for t in self.tickets_with_messages(id).await? {
                    for m in t.messages.iter().flatten() {
                        out.push(json!({
                            "ticket_id": t.id,
                            "subject": t.subject,
                            "ticket_status": t.status,
                            "at": m.at,
                            "author": m.author,
                            "body": m.body,
                        }));
                    }
                }
                out
            }
            DataCategory::PrivacyLog => self
                .privacy_log(id)
                .await?
                .iter()
                .map(to_json)
                .collect(),
            DataCategory::DebugLogs => self.debug_entries(id).await?,
            DataCategory::Members => self.member_records(id).await?,
            DataCategory::FineTunes => self.fine_tune_records(id).await?,
        })
    }

    /// The export's bytes: the document alone (`json`), or a zip of it and
    /// the files (`zip`); with the counts per category.
    pub async fn export_bytes(
        &self,
        account_id: &str,
        include_files: bool,
        work: &Work,
    ) -> Result<(Vec<u8>, &'static str, Map<String, Value>)> {
        let doc = self
            .export_document(account_id, include_files, work)
            .await?;
        let json_bytes = serde_json::to_vec_pretty(&doc).map_err(Error::internal)?;
        let counts: Map<String, Value> = doc["categories"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v["count"].clone()))
                    .collect()
            })
            .unwrap_or_default();
        Ok(if include_files {
            (
                self.export_zip(account_id, &json_bytes).await?,
                "zip",
                counts,
            )
        } else {
            (json_bytes, "json", counts)
        })
    }

    /// Writes a task's export into its file.
    async fn write_export(
        &self,
        task: &TaskRecord,
        include_files: bool,
        work: &Work,
    ) -> Result<TaskOutput> {
        let (bytes, kind, counts) = self
            .export_bytes(&task.account_id, include_files, work)
            .await?;
        let filename = format!("maximin-export-{}.{kind}", task.account_id);
        let file = self
            .files
            .write_output(
                &Output {
                    account_id: &task.account_id,
                    purpose: EXPORT_PURPOSE,
                    filename: &filename,
                    kind,
                    id: task.file_id,
                    expires_at: Some(self.clock.now() + EXPORT_TTL),
                },
                &bytes,
            )
            .await?;
        Ok(TaskOutput {
            result: json!({ "format": kind, "bytes": file.bytes, "counts": counts }),
            file: Some(file),
        })
    }

    async fn export_zip(&self, account_id: &str, json_bytes: &[u8]) -> Result<Vec<u8>> {
        use zip::write::SimpleFileOptions;
        let zerr = |e: zip::result::ZipError| Error::internal(format!("writing the export: {e}"));
        let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let deflated =
            SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
        let stored = SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored)
            .large_file(true);
        zip.start_file("export.json", deflated).map_err(zerr)?;
        zip.write_all(json_bytes).map_err(Error::internal)?;
        for f in self.store.files_of(account_id, None).await? {
            zip.start_file(zip_path(&f), stored).map_err(zerr)?;
            let mut r = self.files.read(&f).await?;
            while let Some(chunk) = r.next().await? {
                zip.write_all(&chunk).map_err(Error::internal)?;
            }
        }
        Ok(zip.finish().map_err(zerr)?.into_inner())
    }
}

/// Where a file's content is in a zip export.
fn zip_path(f: &FileRecord) -> String {
    let name: String = f
        .filename
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || ".-_".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("files/{}-{name}", f.id)
}

fn export_view(task: &TaskRecord, link: Option<(i64, String)>) -> ExportView {
    let result: Option<Value> = task
        .result
        .as_deref()
        .and_then(|r| serde_json::from_str(r).ok());
    ExportView {
        task_id: task.id.to_string(),
        status: task.status.as_str().to_owned(),
        progress: if task.status == TaskStatus::Success {
            100
        } else {
            task.progress
        },
        file_id: link.as_ref().map(|(id, _)| id.to_string()),
        download_url: link.map(|(_, url)| url),
        format: result
            .as_ref()
            .and_then(|r| r["format"].as_str().map(str::to_owned)),
        error: task.error_message.clone(),
    }
}

/// A view as JSON.
fn to_json<T: serde::Serialize>(x: &T) -> Value {
    serde_json::to_value(x).unwrap_or(Value::Null)
}

/// Runs export tasks.
pub struct ExportTask {
    platform: Arc<Platform>,
}

#[async_trait]
impl TaskHandler for ExportTask {
    async fn run(&self, task: &TaskRecord, params: Vec<u8>, work: &Work) -> Result<TaskOutput> {
        let req: ExportRequest = serde_json::from_slice(&params).map_err(Error::internal)?;
        self.platform
            .write_export(task, req.include_files, work)
            .await
    }

    async fn ended(&self, task: &TaskRecord, _params: &[u8], end: &crate::store::TaskEnd) {
        let Some(file) = &end.file else { return };
        if let Err(e) = self
            .platform
            .log_export(&task.account_id, &task.id.to_string(), file.bytes)
            .await
        {
            tracing::warn!(code = %e.code, "logging an export failed");
        }
    }
}

/// The export's task handler, to start with the other runners.
pub fn task_handlers(platform: Arc<Platform>) -> HashMap<String, Arc<dyn TaskHandler>> {
    let mut h: HashMap<String, Arc<dyn TaskHandler>> = HashMap::new();
    h.insert(EXPORT_TASK.to_owned(), Arc::new(ExportTask { platform }));
    h
}

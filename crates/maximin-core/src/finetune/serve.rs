//! Fine-tuned models as a request names them (`ft:BASE:SUFFIX:ID`): private
//! to the account that trained them (another account gets
//! `model_not_found`, as for a name nobody has), served by the base model's
//! engine with the adapter applied.
//!
//! The adapter is sealed at rest like every file; the engine loads it from
//! a path, so it is opened into memory that is never on disk: an anonymous
//! memory file (`memfd`, reached as `/proc/self/fd/N`), kept while the
//! process runs and gone with it.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use crate::catalog::ModelSpec;
use crate::finetune::jobs::model_not_found;
use crate::finetune::store::FineTuneRecord;
use crate::{Caller, Error, Platform, Result};

/// An adapter opened for the engine.
pub struct AdapterFile {
    pub path: PathBuf,
    /// Holds the memory file open (its path lives as long as it does).
    _file: std::fs::File,
}

/// Adapters opened by this process, by job.
#[derive(Default)]
pub struct Adapters {
    open: Mutex<HashMap<i64, Arc<AdapterFile>>>,
    /// Those of deleted models, still open: an engine knows an adapter by
    /// its path, and a closed descriptor's number could name the next
    /// adapter opened.
    retired: Mutex<Vec<Arc<AdapterFile>>>,
}

impl Adapters {
    fn get(&self, job: i64) -> Option<Arc<AdapterFile>> {
        self.open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&job)
            .cloned()
    }

    fn put(&self, job: i64, a: Arc<AdapterFile>) {
        self.open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(job, a);
    }

    pub fn forget(&self, job: i64) {
        let gone = self
            .open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&job);
        if let Some(a) = gone {
            self.retired
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(a);
        }
    }
}

#[cfg(target_os = "linux")]
fn memory_file(name: &str, bytes: &[u8]) -> Result<AdapterFile> {
    use std::io::Write;
    use std::os::fd::AsRawFd;
    let mfd = memfd::MemfdOptions::default()
        .close_on_exec(true)
        .create(name)
        .map_err(|e| Error::internal(format!("memory file: {e}")))?;
    let mut file = mfd.into_file();
    file.write_all(bytes)
        .and_then(|()| file.flush())
        .map_err(|e| Error::internal(format!("memory file: {e}")))?;
    Ok(AdapterFile {
        path: PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd())),
        _file: file,
    })
}

#[cfg(not(target_os = "linux"))]
fn memory_file(_name: &str, _bytes: &[u8]) -> Result<AdapterFile> {
    Err(Error::new(
        maximin_types::ErrorCode::ModelUnavailable,
        "Fine-tuned models are served on Linux only (their adapters are opened in memory files).",
    ))
}

/// A fine-tuned model the caller may use: the view requests see (the base
/// model's entry under the fine-tuned name), the base entry that routes it,
/// and the adapter.
pub struct FineTuned<'a> {
    pub spec: ModelSpec,
    pub base: &'a ModelSpec,
    pub adapter: Arc<AdapterFile>,
    pub job: FineTuneRecord,
}

impl Platform {
    /// Resolves `ft:…` for a caller; `model_not_found` unless it is the
    /// caller's account's and not deleted.
    pub async fn fine_tuned(&self, caller: &Caller, name: &str) -> Result<FineTuned<'_>> {
        let job = match self.store.fine_tune_by_model(name).await? {
            Some(j) if j.account_id == caller.account.id && !j.model_deleted => j,
            _ => return Err(model_not_found(name)),
        };
        let base = self.model_for(caller, &job.base_model)?;
        let mut spec = base.clone();
        spec.id = name.to_owned();
        spec.aliases.clear();
        caller.authorize_model(&spec)?;
        let adapter = match self.adapters.get(job.id) {
            Some(a) => a,
            None => {
                let file_id = job
                    .adapter_file
                    .ok_or_else(|| Error::internal("a fine-tuned model without its adapter"))?;
                let gone = |_| {
                    Error::new(
                        maximin_types::ErrorCode::ModelUnavailable,
                        format!("The adapter of '{name}' is gone (its file was deleted); train it again."),
                    )
                    .with("model", name)
                };
                let file = self
                    .files
                    .get(&job.account_id, file_id)
                    .await
                    .map_err(gone)?;
                let bytes = self.files.read_all(&file, u64::MAX).await?;
                let a = Arc::new(memory_file(&format!("maximin-adapter-{}", job.id), &bytes)?);
                self.adapters.put(job.id, a.clone());
                a
            }
        };
        Ok(FineTuned {
            spec,
            base,
            adapter,
            job,
        })
    }
}

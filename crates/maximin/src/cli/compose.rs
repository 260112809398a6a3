//! Every backend built from the configuration, in one place (issue 17):
//! the store, the blob store, the master keys and the rate limiter. Today
//! they are SQLite in the data dir, sealed files under `DATA_DIR/files/`,
//! `DATA_DIR/master.key` and the in-process limiter; a shared database,
//! object storage or Redis are further arms here, chosen by the
//! configuration, and no other module names a backend.

use std::sync::Arc;

use maximin_core::crypto::MasterKeys;
use maximin_core::files::BlobStore;
use maximin_core::ratelimit::{InProcessLimiter, RateLimiter};
use maximin_core::store::Store;
use maximin_store::{load_master_keys, DiskBlobs, SqliteStore};

use super::Failure;
use crate::config::Config;

/// The database the configuration names.
pub(super) async fn store(config: &Config) -> Result<Arc<dyn Store>, Failure> {
    // Readable by its owner only: the database, the master key, sealed files.
    maximin_store::ensure_private_dir(&config.data_dir)
        .map_err(|e| Failure::Setup(format!("cannot create the data dir: {}", e.message)))?;
    Ok(Arc::new(
        SqliteStore::open(&config.data_dir.join("maximin.db")).await?,
    ))
}

/// Where sealed file bytes live.
pub(super) fn blobs(config: &Config) -> Arc<dyn BlobStore> {
    Arc::new(DiskBlobs::new(config.data_dir.join("files")))
}

/// The master keys (made on first use).
pub(super) fn keys(config: &Config) -> Result<Arc<MasterKeys>, Failure> {
    Ok(Arc::new(load_master_keys(
        &config.data_dir.join("master.key"),
    )?))
}

/// The rate limiter the replicas share (one process: its own counters).
pub(super) fn limiter(_config: &Config) -> Arc<dyn RateLimiter> {
    Arc::new(InProcessLimiter::default())
}

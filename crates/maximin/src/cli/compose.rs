//! Every backend built from the configuration, in one place (issue 17):
//! the store, the blob store, the master keys and the rate limiter. By
//! default they are SQLite in the data dir, sealed files under
//! `DATA_DIR/files/`, `DATA_DIR/master.key` and the in-process limiter;
//! `database_url = "postgres://…"` shares one database between replicas,
//! `redis_url` their rate limits and `[storage] s3_endpoint` their files.
//! No other module names a backend.

use std::sync::Arc;

use maximin_core::crypto::MasterKeys;
use maximin_core::files::BlobStore;
use maximin_core::ratelimit::{InProcessLimiter, RateLimiter};
use maximin_core::store::Store;
use maximin_store::{load_master_keys, DiskBlobs, RedisLimiter, S3Blobs, S3Config, SqlStore};

use super::Failure;
use crate::config::Config;

/// The database the configuration names.
pub(super) async fn store(config: &Config) -> Result<Arc<dyn Store>, Failure> {
    // Readable by its owner only: the database, the master key, sealed files.
    maximin_store::ensure_private_dir(&config.data_dir)
        .map_err(|e| Failure::Setup(format!("cannot create the data dir: {}", e.message)))?;
    let store = match &config.database_url {
        Some(url) => SqlStore::connect(url).await?,
        None => SqlStore::open(&config.data_dir.join("maximin.db")).await?,
    };
    Ok(Arc::new(store))
}

/// What the store is, for the log (never the URL: it may hold a password).
pub(super) fn store_kind(config: &Config) -> &'static str {
    match config.database_url.as_deref() {
        Some(u) if u.starts_with("postgres://") || u.starts_with("postgresql://") => "PostgreSQL",
        _ => "SQLite",
    }
}

/// Where sealed file bytes live: the S3-compatible bucket `[storage]`
/// names (made when missing), else `DATA_DIR/files/`.
pub(super) async fn blobs(config: &Config) -> Result<Arc<dyn BlobStore>, Failure> {
    let s = &config.storage;
    let Some(endpoint) = &s.s3_endpoint else {
        return Ok(Arc::new(DiskBlobs::new(config.data_dir.join("files"))));
    };
    let s3 = S3Config::from_env(
        endpoint,
        s.bucket.as_deref().unwrap_or_default(),
        s.region.as_deref().unwrap_or("us-east-1"),
        s.prefix.as_deref().unwrap_or_default(),
    )
    .map_err(|e| Failure::Setup(e.message))?;
    let blobs = S3Blobs::new(s3)?;
    blobs.ensure_bucket().await.map_err(|e| {
        Failure::Setup(format!(
            "the [storage] bucket at {endpoint} is not reachable: {}",
            e.message
        ))
    })?;
    Ok(Arc::new(blobs))
}

/// The master keys (made on first use).
pub(super) fn keys(config: &Config) -> Result<Arc<MasterKeys>, Failure> {
    Ok(Arc::new(load_master_keys(
        &config.data_dir.join("master.key"),
    )?))
}

/// The rate limiter the replicas share: Redis when `redis_url` names one,
/// else this process's own counters.
pub(super) fn limiter(config: &Config) -> Result<Arc<dyn RateLimiter>, Failure> {
    Ok(match &config.redis_url {
        Some(url) => Arc::new(
            RedisLimiter::new(url, config.ratelimit.fail_open.unwrap_or(false))
                .map_err(|_| Failure::Setup("redis_url is not a valid redis:// URL".into()))?,
        ),
        None => Arc::new(InProcessLimiter::default()),
    })
}

//! Storage behind `maximin_core::store::Store`.
//!
//! [`SqlStore`] is the one SQL implementation of every store trait: SQLite
//! (the embedded default, a file) or PostgreSQL (replicas sharing one
//! database), chosen by its URL. Blobs are sealed files on disk
//! ([`DiskBlobs`]). [`RedisLimiter`] shares rate limits between replicas.

mod blobs;
mod redis_limiter;
mod sql;
#[cfg(any(test, feature = "testing"))]
pub mod testdb;
#[cfg(feature = "testing")]
pub mod testing;

pub use blobs::{add_master_key, ensure_private_dir, load_master_keys, DiskBlobs};
pub use redis_limiter::RedisLimiter;
pub use sql::{Dialect, SqlStore};

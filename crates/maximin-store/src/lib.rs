//! Storage behind `maximin_core::store::Store`.
//!
//! [`SqlStore`] is the one SQL implementation of every store trait: SQLite
//! (the embedded default, a file) or PostgreSQL (replicas sharing one
//! database), chosen by its URL. Blobs are sealed files on disk
//! ([`DiskBlobs`]) or objects in an S3-compatible store ([`S3Blobs`]).
//! [`RedisLimiter`] shares rate limits between replicas.

mod blobs;
mod redis_limiter;
mod s3;
mod sql;
#[cfg(any(test, feature = "testing"))]
pub mod testdb;
#[cfg(feature = "testing")]
pub mod testing;

pub use blobs::{add_master_key, ensure_private_dir, load_master_keys, DiskBlobs};
pub use redis_limiter::RedisLimiter;
pub use s3::{S3Blobs, S3Config};
pub use sql::{Dialect, SqlStore, TableCopy};

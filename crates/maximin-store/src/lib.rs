//! Storage behind `maximin_core::store::Store`.
//!
//! [`SqliteStore`] is the embedded default. Its SQL sticks to what SQLite and
//! PostgreSQL share (integers for times, `ON CONFLICT … DO NOTHING`, no
//! SQLite-only functions) so that a PostgreSQL store is a new module with the same
//! statements and its own migrations, not a rewrite.

mod billing;
mod blobs;
mod lifecycle;
mod sqlite;
#[cfg(feature = "testing")]
pub mod testing;
mod webhooks;

pub use blobs::{add_master_key, ensure_private_dir, load_master_keys, DiskBlobs};
pub use sqlite::SqliteStore;

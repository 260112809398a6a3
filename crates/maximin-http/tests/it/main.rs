//! Tests of the HTTP edge that need no server process: one binary, modules inside.

mod edge;
mod openapi;

use std::sync::Arc;

use maximin_core::catalog::{Catalog, Installed};
use maximin_core::clock::SystemClock;
use maximin_core::engines::Engines;
use maximin_core::ratelimit::InProcessLimiter;
use maximin_core::Platform;
use maximin_http::AppState;
use maximin_store::SqliteStore;

/// An app state over a fresh SQLite store in `dir`.
pub async fn state(dir: &std::path::Path) -> AppState {
    let store = SqliteStore::open(&dir.join("t.db")).await.expect("store");
    AppState::new(Arc::new(Platform::new(
        Arc::new(store),
        Arc::new(InProcessLimiter::default()),
        Arc::new(SystemClock),
        Catalog::with_overrides(vec![]).expect("catalog"),
        Engines::default(),
        Installed::default(),
        maximin_core::files::Vault {
            blobs: Arc::new(maximin_store::DiskBlobs::new(dir.join("files"))),
            keys: Arc::new(maximin_store::load_master_keys(&dir.join("master.key")).expect("keys")),
        },
    )))
}

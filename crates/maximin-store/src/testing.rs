//! For other crates' tests (feature `testing`): a platform over a fresh data
//! dir, as `maximin serve` assembles one, without a process.

use std::path::Path;
use std::sync::Arc;

use maximin_core::catalog::{Catalog, Installed};
use maximin_core::clock::SystemClock;
use maximin_core::engines::Engines;
use maximin_core::files::Vault;
use maximin_core::ratelimit::InProcessLimiter;
use maximin_core::routing::{RoutingConfig, UpstreamConfig};
use maximin_core::Platform;

use crate::{load_master_keys, DiskBlobs, SqlStore};

/// A platform over a SQLite store, sealed files and a master key in `dir`,
/// serving `catalog` with `engines`; `installed` says what else it can run.
pub async fn platform(
    dir: &Path,
    catalog: Catalog,
    engines: Engines,
    installed: Installed,
) -> Arc<Platform> {
    let store = SqlStore::open(&dir.join("t.db")).await.expect("store");
    // Upstreams the install names are routed to (their providers are
    // whatever `engines` holds under `upstream:NAME`), unpaid and unpinned.
    let upstreams: std::collections::BTreeMap<String, UpstreamConfig> = installed
        .upstreams
        .iter()
        .map(|name| {
            let mut c: UpstreamConfig = serde_json::from_value(serde_json::json!({
                "kind": "openai", "base_url": "http://127.0.0.1:9", "paid": false,
            }))
            .expect("config");
            c.retries = 0;
            (name.clone(), c)
        })
        .collect();
    let platform = Platform::new(
        Arc::new(store),
        Arc::new(InProcessLimiter::default()),
        Arc::new(SystemClock),
        catalog,
        engines,
        installed,
        Vault {
            blobs: Arc::new(DiskBlobs::new(dir.join("files"))),
            keys: Arc::new(load_master_keys(&dir.join("master.key")).expect("keys")),
        },
    )
    .with_upstreams(&upstreams, RoutingConfig::default(), None);
    Arc::new(platform)
}

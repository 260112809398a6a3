//! Tests of the HTTP edge that need no server process: one binary, modules inside.

mod edge;
mod openapi;
mod speech_upstream;
mod table;

use maximin_core::catalog::{Catalog, Installed};
use maximin_core::engines::Engines;
use maximin_http::AppState;

/// An app state over a fresh SQLite store in `dir`.
pub async fn state(dir: &std::path::Path) -> AppState {
    state_with(
        dir,
        Catalog::with_overrides(vec![]).expect("catalog"),
        Engines::default(),
        Installed::default(),
    )
    .await
}

/// [`state`] with a catalog, engines and what the install can run.
pub async fn state_with(
    dir: &std::path::Path,
    catalog: Catalog,
    engines: Engines,
    installed: Installed,
) -> AppState {
    AppState::new(maximin_store::testing::platform(dir, catalog, engines, installed).await)
}

//! The model list (`GET /v1/models`, `GET /openai/v1/models`), rendered once
//! and reused, so listing costs about what any authenticated read does.
//!
//! Two parts, each with its own rule for staying true:
//!
//! - The catalog's models, as JSON arrays in both shapes. They change only
//!   when weights appear or vanish on disk: an in-process pull says so
//!   ([`Listing::invalidate`]), and a rendering older than [`FRESH`] is made
//!   again, which bounds what another process (`maximin models pull`)
//!   leaves unseen to a second. The install's engines, upstreams and prices
//!   are fixed for the life of the process.
//! - Each account's fine-tuned models, read from the store and kept with the
//!   store's auth epoch at the time of reading (see [`crate::authcache`]): a
//!   job that makes a model, a deleted model and a privacy deletion all
//!   change the epoch, on this replica or any other sharing the store, so a
//!   list is never served from a cache older than the last such change.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use maximin_types::ModelView;
use serde_json::json;

use crate::{Platform, Result};

/// How long a rendering of the catalog is used before disk is looked at again.
pub const FRESH: Duration = Duration::from_secs(1);
/// Accounts whose fine-tuned models are kept; past it, the map starts over.
const MAX_ACCOUNTS: usize = 100_000;

/// The catalog's models rendered, in both shapes.
pub struct Rendered {
    at: Instant,
    /// `/v1/models`' `data`: every catalog model's view, a JSON array.
    pub native: String,
    /// `/openai/v1/models`' `data`: the models this install serves, a JSON
    /// array of OpenAI model objects.
    pub openai: String,
}

#[derive(Default)]
pub struct Listing {
    rendered: RwLock<Option<Arc<Rendered>>>,
    /// By account: the auth epoch read before the store, and the models.
    fine_tuned: RwLock<HashMap<String, Kept>>,
}

type Kept = (u64, Arc<Vec<FineTunedModel>>);

/// A fine-tuned model an account lists: its name and its base's catalog id.
#[derive(Debug, Clone)]
pub struct FineTunedModel {
    pub id: String,
    pub base: String,
}

impl Listing {
    /// The rendering, made again by `render` when there is none or it is
    /// older than [`FRESH`].
    pub fn catalog(&self, render: impl FnOnce() -> (String, String)) -> Arc<Rendered> {
        if let Some(r) = self.rendered.read().ok().and_then(|r| r.clone()) {
            if r.at.elapsed() < FRESH {
                return r;
            }
        }
        let (native, openai) = render();
        let r = Arc::new(Rendered {
            at: Instant::now(),
            native,
            openai,
        });
        if let Ok(mut slot) = self.rendered.write() {
            *slot = Some(r.clone());
        }
        r
    }

    /// Forgets the rendering: weights were fetched or removed.
    pub fn invalidate(&self) {
        if let Ok(mut slot) = self.rendered.write() {
            *slot = None;
        }
    }

    /// The account's fine-tuned models as cached at `epoch`, if they were.
    pub fn fine_tuned(&self, account_id: &str, epoch: u64) -> Option<Arc<Vec<FineTunedModel>>> {
        let map = self.fine_tuned.read().ok()?;
        match map.get(account_id) {
            Some((e, models)) if *e == epoch => Some(models.clone()),
            _ => None,
        }
    }

    /// Keeps the account's fine-tuned models as read at `epoch`.
    pub fn keep_fine_tuned(&self, account_id: &str, epoch: u64, models: Arc<Vec<FineTunedModel>>) {
        if let Ok(mut map) = self.fine_tuned.write() {
            if map.len() >= MAX_ACCOUNTS {
                map.clear();
            }
            map.insert(account_id.to_owned(), (epoch, models));
        }
    }
}

impl Platform {
    /// The catalog's models, rendered for both lists (see the module docs).
    pub fn catalog_listing(&self) -> Arc<Rendered> {
        self.listing.catalog(|| {
            let views: Vec<ModelView> = self
                .catalog
                .models()
                .iter()
                .map(|m| self.model_view(m))
                .collect();
            let openai: Vec<serde_json::Value> = views
                .iter()
                .filter(|v| v.available)
                .map(
                    |v| json!({"id": v.id, "object": "model", "created": 0, "owned_by": "maximin"}),
                )
                .collect();
            (
                serde_json::to_string(&views).unwrap_or_else(|_| "[]".into()),
                serde_json::to_string(&openai).unwrap_or_else(|_| "[]".into()),
            )
        })
    }

    /// A fine-tuned model as listed: its base's view (availability, prices,
    /// context window) under its own name.
    /// `None` when the base has left the catalog.
    pub fn fine_tuned_view(&self, model: &FineTunedModel) -> Option<ModelView> {
        let mut view = self.model_view(self.catalog.resolve(&model.base)?);
        view.id = model.id.clone();
        view.aliases.clear();
        Some(view)
    }

    /// Weights were fetched or removed by this process: the next list is
    /// rendered again.
    pub fn models_changed(&self) {
        self.listing.invalidate();
    }

    /// The account's fine-tuned models (listed after the catalog's), from
    /// the cache while the store's auth epoch has not moved.
    pub async fn fine_tuned_models(&self, account_id: &str) -> Result<Arc<Vec<FineTunedModel>>> {
        // Read before the store, so a list read while a model was being
        // made is kept under the older epoch and not used again.
        let epoch = self.store.auth_epoch().await?;
        if let Some(models) = epoch.and_then(|e| self.listing.fine_tuned(account_id, e)) {
            return Ok(models);
        }
        let mut out = Vec::new();
        for job in self.store.fine_tunes_of(account_id).await? {
            let Some(name) = job.fine_tuned_model.as_ref().filter(|_| !job.model_deleted) else {
                continue;
            };
            out.push(FineTunedModel {
                id: name.clone(),
                base: job.base_model.clone(),
            });
        }
        let out = Arc::new(out);
        if let Some(e) = epoch {
            self.listing.keep_fine_tuned(account_id, e, out.clone());
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rendering_is_reused_until_invalidated() {
        let listing = Listing::default();
        let mut renders = 0;
        let mut render = || {
            renders += 1;
            (format!("[{renders}]"), "[]".to_owned())
        };
        assert_eq!(listing.catalog(&mut render).native, "[1]");
        assert_eq!(listing.catalog(&mut render).native, "[1]");
        listing.invalidate();
        assert_eq!(listing.catalog(&mut render).native, "[2]");
    }

    #[test]
    fn fine_tuned_models_are_kept_per_epoch() {
        let listing = Listing::default();
        listing.keep_fine_tuned("acct", 7, Arc::new(Vec::new()));
        assert!(listing.fine_tuned("acct", 7).is_some());
        assert!(listing.fine_tuned("acct", 8).is_none());
        assert!(listing.fine_tuned("other", 7).is_none());
    }
}

//! What a starting server still has to put in place before it is ready:
//! the default models it fetches on first start (`maximin serve` without
//! `--no-pull`). `/readyz` reports it; the server serves meanwhile.
//!
//! A model is *fetching* while its pull runs, *missing* when the pull failed
//! (with why and the command that fetches it by hand), and leaves the report
//! once its weights are in place: a missing model the operator pulled by
//! hand is noticed on the next report, without a restart.

use std::sync::Mutex;

use serde::Serialize;

use crate::catalog::{Catalog, Installed};

/// One model the server needs and does not have yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Pending {
    pub model: String,
    /// Why it is missing, when its pull failed; `None` while fetching.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The command that fetches it.
    pub command: String,
}

/// The report `/readyz` gives.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    /// Models whose pull is running.
    pub fetching: Vec<Pending>,
    /// Models whose pull failed and that are still not in place.
    pub missing: Vec<Pending>,
}

impl Report {
    pub fn ready(&self) -> bool {
        self.fetching.is_empty() && self.missing.is_empty()
    }
}

#[derive(Debug, Default)]
pub struct Readiness {
    state: Mutex<Vec<Pending>>,
}

/// The command that fetches `model` by hand.
pub fn pull_command(model: &str) -> String {
    format!("maximin models pull {model}")
}

impl Readiness {
    fn with<R>(&self, f: impl FnOnce(&mut Vec<Pending>) -> R) -> R {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut state)
    }

    /// `model`'s pull has started.
    pub fn fetching(&self, model: &str) {
        self.set(model, None);
    }

    /// `model` is in place.
    pub fn done(&self, model: &str) {
        self.with(|s| s.retain(|p| p.model != model));
    }

    /// `model`'s pull failed with `error`.
    pub fn failed(&self, model: &str, error: &str) {
        self.set(model, Some(error.to_owned()));
    }

    fn set(&self, model: &str, error: Option<String>) {
        self.with(|s| {
            s.retain(|p| p.model != model);
            s.push(Pending {
                model: model.to_owned(),
                error,
                command: pull_command(model),
            });
        });
    }

    /// What is still pending. A missing model whose weights are now in place
    /// (pulled by hand) is dropped; `true` in the second place says that
    /// happened, so the caller can let the engines see the new files.
    pub fn report(&self, catalog: &Catalog, installed: &Installed) -> (Report, bool) {
        self.with(|s| {
            let before = s.len();
            s.retain(|p| {
                p.error.is_none()
                    || !catalog
                        .resolve_pullable(&p.model)
                        .is_some_and(|spec| installed.weights_present(spec))
            });
            let arrived = s.len() != before;
            let (fetching, missing) = s.iter().cloned().partition(|p| p.error.is_none());
            (Report { fetching, missing }, arrived)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_model_is_pending_until_done_and_a_failed_one_until_its_weights_arrive() {
        let dir = tempfile::tempdir().expect("tempdir");
        let catalog = Catalog::with_overrides(Vec::new()).expect("catalog");
        let installed = Installed {
            models_dir: dir.path().to_path_buf(),
            ..Installed::default()
        };
        let r = Readiness::default();
        assert!(r.report(&catalog, &installed).0.ready());
        r.fetching("gemma-3-270m");
        r.fetching("onnxruntime");
        let (report, _) = r.report(&catalog, &installed);
        assert!(!report.ready());
        assert_eq!(report.fetching.len(), 2);
        r.done("gemma-3-270m");
        r.failed("onnxruntime", "no network");
        let (report, arrived) = r.report(&catalog, &installed);
        assert!(!arrived);
        assert!(report.fetching.is_empty());
        assert_eq!(report.missing[0].model, "onnxruntime");
        assert_eq!(report.missing[0].command, "maximin models pull onnxruntime");
        assert_eq!(report.missing[0].error.as_deref(), Some("no network"));

        // Pulled by hand: the weights file appears under its final name.
        let spec = catalog.resolve_pullable("onnxruntime").expect("runtime");
        let path = spec.weights_path(dir.path()).expect("weights path");
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, b"lib").expect("write");
        let (report, arrived) = r.report(&catalog, &installed);
        assert!(arrived && report.ready());
    }
}

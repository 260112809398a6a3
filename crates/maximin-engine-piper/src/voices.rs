//! The voices on disk: a Piper voice's config, where voices are found, and
//! a text's IPA as the voice's phoneme ids.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use maximin_core::engines::Gender;
use maximin_engine_espeak::Clause;
use serde::Deserialize;
use unicode_normalization::UnicodeNormalization;

/// The parts of a Piper voice config this engine reads.
#[derive(Debug, Clone, Deserialize)]
pub struct VoiceConfig {
    pub audio: AudioConfig,
    pub espeak: EspeakConfig,
    #[serde(default)]
    pub inference: InferenceConfig,
    pub phoneme_id_map: HashMap<String, Vec<i64>>,
    #[serde(default)]
    pub num_speakers: u32,
    #[serde(default)]
    pub language: Option<LanguageConfig>,
    #[serde(default)]
    pub dataset: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct AudioConfig {
    pub sample_rate: u32,
}

#[derive(Debug, Clone, Deserialize)]
pub struct EspeakConfig {
    pub voice: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct InferenceConfig {
    pub noise_scale: f32,
    pub length_scale: f32,
    pub noise_w: f32,
}

impl Default for InferenceConfig {
    fn default() -> Self {
        InferenceConfig {
            noise_scale: 0.667,
            length_scale: 1.0,
            noise_w: 0.8,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct LanguageConfig {
    pub code: String,
}

/// A voice's gender as its name or dataset tells, for the well-known Piper voices.
pub(crate) fn known_gender(dataset: &str) -> Option<Gender> {
    const FEMALE: &[&str] = &[
        "amy",
        "kathleen",
        "kristin",
        "lessac",
        "ljspeech",
        "hfc_female",
        "jenny_dioco",
        "alba",
        "cori",
        "siwis",
        "eva_k",
        "kerstin",
        "ramona",
        "paola",
        "natia",
        "berta",
        "irina",
    ];
    const MALE: &[&str] = &[
        "joe",
        "ryan",
        "john",
        "kusal",
        "danny",
        "bryce",
        "norman",
        "hfc_male",
        "alan",
        "northern_english_male",
        "thorsten",
        "gilles",
        "riccardo",
        "carlfm",
        "davefx",
        "pavoque",
        "denis",
        "dmitri",
        "ruslan",
    ];
    let d = dataset.to_ascii_lowercase();
    if FEMALE.contains(&d.as_str()) {
        Some(Gender::Female)
    } else if MALE.contains(&d.as_str()) {
        Some(Gender::Male)
    } else {
        None
    }
}

/// Finds `*.onnx` files with a sibling `*.onnx.json` one level under `models_dir`.
pub fn find_voices(models_dir: &Path) -> Vec<(PathBuf, VoiceConfig)> {
    let mut out = Vec::new();
    let Ok(dirs) = std::fs::read_dir(models_dir) else {
        return out;
    };
    for dir in dirs.flatten() {
        let Ok(files) = std::fs::read_dir(dir.path()) else {
            continue;
        };
        for f in files.flatten() {
            let path = f.path();
            if path.extension().and_then(|e| e.to_str()) != Some("onnx") {
                continue;
            }
            let mut cfg_path = path.clone().into_os_string();
            cfg_path.push(".json");
            let Ok(text) = std::fs::read_to_string(&cfg_path) else {
                continue;
            };
            match serde_json::from_str::<VoiceConfig>(&text) {
                Ok(cfg) => out.push((path, cfg)),
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "not a Piper voice config")
                }
            }
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// IPA clauses to the voice's ids: `^ _ (p _)* $`, punctuation kept, a space
/// after each clause but the last. Codepoints the voice does not know are
/// skipped, as Piper does.
pub fn phoneme_ids(clauses: &[Clause], map: &HashMap<String, Vec<i64>>) -> Vec<i64> {
    let id = |s: &str| map.get(s).cloned().unwrap_or_default();
    let pad = id("_");
    let mut ids = id("^");
    ids.extend(&pad);
    let push = |c: char, ids: &mut Vec<i64>| {
        let mut buf = [0u8; 4];
        if let Some(v) = map.get(c.encode_utf8(&mut buf) as &str) {
            ids.extend(v);
            ids.extend(&pad);
        }
    };
    for (i, clause) in clauses.iter().enumerate() {
        for c in clause.phonemes.nfd() {
            push(c, &mut ids);
        }
        if let Some(t) = clause.terminator {
            push(t, &mut ids);
        }
        if i + 1 < clauses.len() {
            push(' ', &mut ids);
        }
    }
    ids.extend(id("$"));
    ids
}

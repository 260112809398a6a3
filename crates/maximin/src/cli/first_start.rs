//! What `maximin serve` does on a first start: it fetches the default
//! models it lacks while the server already answers (`/readyz` says what is
//! still coming), and, on an empty data dir, makes the owner account and its
//! first key so that a newcomer needs no second terminal.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use maximin_core::catalog::DEFAULT_PULLS;
use maximin_core::readiness::pull_command;
use maximin_core::{NewKey, Platform};
use maximin_models::{Progress, Pull};
use maximin_types::{Plan, Scope};

use super::Failure;
use crate::config::{Config, LogFormat};

/// The owner account a first start makes.
pub const OWNER_EMAIL: &str = "owner@maximin.local";
/// Where the first key's secret goes when it cannot be shown on a terminal.
pub const FIRST_KEY_FILE: &str = "first-key";

/// Marks the default models this start will fetch (or verify) as pending,
/// and returns their ids. Entries the configuration replaced with one that
/// has no pull recipe are left to the operator.
pub(super) fn mark_default_pulls(platform: &Platform) -> Vec<String> {
    let mut ids = Vec::new();
    for name in DEFAULT_PULLS {
        match platform.catalog.resolve_pullable(name) {
            Some(spec) if spec.source.is_some() && spec.weights.is_some() => {
                platform.readiness.fetching(&spec.id);
                ids.push(spec.id.clone());
            }
            _ => tracing::info!(
                model = name,
                "not fetched on start: the configured entry has no pull recipe"
            ),
        }
    }
    ids
}

/// Fetches each of `ids` that is missing or damaged, through the same code
/// (sources, checksums, staging) as `maximin models pull`: a progress bar on
/// a terminal, one log line per file otherwise. A failed pull leaves the
/// server up and the model listed as missing in `/readyz` with the command
/// that fetches it.
pub(super) async fn pull_defaults(platform: Arc<Platform>, models_dir: PathBuf, ids: Vec<String>) {
    if ids.is_empty() {
        return;
    }
    let started = Instant::now();
    let progress = if std::io::stderr().is_terminal() {
        Progress::Bar
    } else {
        Progress::Quiet
    };
    let index_url = maximin_models::index_url_from_env();
    let mut fetched = 0;
    let mut failed = 0;
    for id in &ids {
        let Some(spec) = platform.catalog.resolve_pullable(id) else {
            continue;
        };
        let one = Instant::now();
        let pulled = maximin_models::pull(Pull {
            spec,
            models_dir: &models_dir,
            from: None,
            force: false,
            index_url: index_url.clone(),
            progress,
        })
        .await;
        match pulled {
            Ok(p) if p.already_present => {
                tracing::debug!(model = %id, "present and verified");
                platform.readiness.done(id);
            }
            Ok(p) => {
                fetched += 1;
                for file in &p.files {
                    let bytes = std::fs::metadata(p.path.join(file)).map_or(0, |m| m.len());
                    tracing::info!(model = %id, file = %file, bytes, "fetched");
                }
                tracing::info!(
                    model = %id,
                    source = %p.source,
                    seconds = format_args!("{:.1}", one.elapsed().as_secs_f64()),
                    "model installed (sha256 verified)"
                );
                // The engines look for the new files (Piper's runtime and voice).
                platform.engines.refresh();
                platform.models_changed();
                platform.readiness.done(id);
            }
            Err(e) => {
                failed += 1;
                let command = pull_command(id);
                tracing::warn!(
                    model = %id,
                    error = %e,
                    "could not fetch a default model; the server runs without it: run `{command}` (or fix the cause and restart)"
                );
                platform.readiness.failed(id, &e.to_string());
            }
        }
    }
    if fetched > 0 || failed > 0 {
        tracing::info!(
            fetched,
            failed,
            seconds = format_args!("{:.1}", started.elapsed().as_secs_f64()),
            "default models checked"
        );
    }
}

/// On an empty data dir (no account yet), unless `MAXIMIN_BOOTSTRAP=off`:
/// the owner account and one admin key. The secret is shown once on the
/// terminal, or, when the output is not a terminal or the log is JSON,
/// written to `DATA_DIR/first-key` (mode 0600) and never to the log. The
/// store keeps only its hash, as for every key.
pub(super) async fn first_key(
    platform: &Platform,
    config: &Config,
    base: &str,
) -> Result<(), Failure> {
    match std::env::var("MAXIMIN_BOOTSTRAP")
        .ok()
        .as_deref()
        .map(str::trim)
    {
        None | Some("") | Some("on") => {}
        Some("off") => return Ok(()),
        Some(other) => {
            return Err(Failure::Setup(format!(
                "MAXIMIN_BOOTSTRAP must be 'on' or 'off', not '{other}'"
            )))
        }
    }
    if !platform.list_accounts().await?.is_empty() {
        return Ok(());
    }
    let account = platform
        .create_account(OWNER_EMAIL, Plan::Enterprise, None, true)
        .await?;
    let key = platform
        .create_key(
            &account.id,
            NewKey {
                name: "first key".into(),
                test: false,
                scopes: vec![Scope::Admin],
                models: Vec::new(),
                ..NewKey::default()
            },
        )
        .await?;
    let base = base.replace("://0.0.0.0:", "://127.0.0.1:");
    let on_terminal = config.log_format == LogFormat::Text && std::io::stdout().is_terminal();
    if on_terminal {
        println!(
            "\nFirst start: created the owner account {} ({OWNER_EMAIL}) and an admin key.\n\
             Its secret is shown this once; store it now:\n\n    {}\n\n\
             Try it:\n\n    {}\n",
            account.id,
            key.secret,
            curl_line(&base, &key.secret)
        );
        return Ok(());
    }
    let path = config.data_dir.join(FIRST_KEY_FILE);
    if let Err(e) = write_private(&path, &format!("{}\n", key.secret)) {
        // A key nobody can read is no use: revoke it and say what to do.
        let _ = platform.revoke_key(None, &key.key.id).await;
        return Err(Failure::Setup(format!(
            "cannot write the first key to {}: {e}; create a key with `maximin keys create --account {} --name laptop --scope admin`",
            path.display(),
            account.id
        )));
    }
    tracing::info!(
        account = %account.id,
        key = %key.key.id,
        path = %path.display(),
        "first start: created the owner account and an admin key; its secret is in the file at `path` (mode 0600) and nowhere else. Try: {}",
        curl_line(&base, &format!("$(cat {})", path.display()))
    );
    Ok(())
}

/// A ready-to-paste chat request with `secret`.
fn curl_line(base: &str, secret: &str) -> String {
    format!(
        "curl {base}/v1/chat/completions -H \"Authorization: Bearer {secret}\" -H 'Content-Type: application/json' -d '{{\"model\": \"minimax-chat-v2\", \"messages\": [{{\"role\": \"user\", \"content\": \"Hello!\"}}]}}'"
    )
}

/// Writes `text` to a new file at `path` readable by its owner only.
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()
}

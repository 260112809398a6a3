//! The administration commands: accounts, keys, the model catalog and
//! pulls, the file store's master key. They open the store and catalog,
//! never an inference engine.

use std::sync::Arc;

use maximin_core::catalog::Catalog;
use maximin_core::clock::SystemClock;
use maximin_core::files::Vault;
use maximin_core::{Error, NewKey, Platform};
use maximin_store::add_master_key;
use maximin_types::CustomLimits;

use super::{AccountsCmd, BillingCmd, Failure, KeysCmd, Out, PrivacyCmd, SupportCmd, UsersCmd};
use crate::config::Config;

/// `maximin models list`.
pub(super) fn list_models(platform: &Platform, out: &Out) -> Result<(), Failure> {
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
                    weights_column(platform, &v.id),
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
pub(super) async fn pull_model(
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

pub(super) async fn rotate_key(config: &Config, out: &Out) -> Result<(), Failure> {
    let path = config.data_dir.join("master.key");
    if !path.is_file() {
        return Err(Failure::Setup(format!(
            "{} does not exist: nothing is sealed yet",
            path.display()
        )));
    }
    let keys = Arc::new(add_master_key(&path)?);
    let store = super::compose::store(config).await?;
    let files = maximin_core::files::Files::new(
        store.clone(),
        Vault {
            blobs: super::compose::blobs(config).await?,
            keys: keys.clone(),
        },
        Arc::new(SystemClock),
    );
    let tasks = maximin_core::tasks::Tasks::new(store.clone(), keys.clone(), Arc::new(SystemClock));
    let files_n = files.rewrap_all().await?;
    // Pending tasks and webhooks, support messages and debug logs, the
    // hub's TOTP secrets.
    let tasks_n = tasks.rewrap_all().await?
        + maximin_core::support::rewrap_sealed(store.as_ref(), &keys).await?
        + maximin_core::people::rewrap_totp(store.as_ref(), &keys).await?;
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

pub(super) async fn accounts(p: &Platform, cmd: AccountsCmd, out: &Out) -> Result<(), Failure> {
    match cmd {
        AccountsCmd::Create {
            email,
            plan,
            rpm,
            burst,
            tpm,
            operator,
        } => {
            let limits = match (rpm, burst, tpm) {
                (None, None, None) => None,
                (rpm, burst, tpm) => Some(CustomLimits {
                    rpm: rpm.unwrap_or(maximin_core::ratelimit::DEFAULT_ENTERPRISE.rpm),
                    burst: burst.unwrap_or(0),
                    tpm,
                }),
            };
            let a = p.create_account(&email, plan, limits, operator).await?;
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
            out.print(&a, || account_line(&a));
        }
        AccountsCmd::Update {
            id,
            regions,
            pii,
            pii_local,
        } => {
            let regions = regions.map(|r| {
                if r.len() == 1 && (r[0] == "any" || r[0].is_empty()) {
                    Vec::new()
                } else {
                    r
                }
            });
            let a = p
                .update_account_routing(
                    &id,
                    maximin_core::RoutingUpdate {
                        regions,
                        pii,
                        pii_local,
                    },
                )
                .await?;
            out.print(&a, || format!("updated {}", account_line(&a)));
        }
    }
    Ok(())
}

fn account_line(a: &maximin_types::AccountView) -> String {
    let regions = if a.regions.is_empty() {
        "any".to_owned()
    } else {
        a.regions.join(",")
    };
    format!(
        "{}  {}  plan {}  regions {regions}  pii {}{}  created {}",
        a.id,
        a.email,
        a.plan,
        a.pii.as_str(),
        if a.pii_local { " (local too)" } else { "" },
        a.created_at
    )
}

pub(super) async fn keys(p: &Platform, cmd: KeysCmd, out: &Out) -> Result<(), Failure> {
    match cmd {
        KeysCmd::Create {
            account,
            name,
            test,
            scopes,
            models,
            regions,
            pii,
            budget_usd,
        } => {
            let k = p
                .create_key(
                    &account,
                    NewKey {
                        name,
                        test,
                        scopes,
                        models,
                        regions,
                        pii,
                        budget_usd,
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
                            "{}  {}…  {:<20} {:<8} requests {} errors {} tokens {}/{} characters {} images {} media {:.1} s",
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
                            k.usage.completion_tokens,
                            k.usage.characters,
                            k.usage.images,
                            k.usage.media_ms as f64 / 1000.0
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

pub(super) async fn billing(p: &Platform, cmd: BillingCmd, out: &Out) -> Result<(), Failure> {
    match cmd {
        BillingCmd::Grant { account, usd, note } => {
            let balance = p.grant_credit(&account, usd, &note).await?;
            let granted = maximin_types::billing::CreditGranted {
                account_id: account.clone(),
                amount_usd: usd,
                balance_usd: maximin_core::billing::micro_to_usd(balance),
                note,
            };
            out.print(&granted, || {
                format!(
                    "added ${usd:.2} to {account}; balance ${:.6}",
                    granted.balance_usd
                )
            });
        }
        BillingCmd::Show { account } => {
            let v = p.billing_view(&account).await?;
            out.print(&v, || {
                let mut lines = vec![
                    format!(
                        "{} ({}{})",
                        v.account_id,
                        v.plan,
                        if v.invoiced { ", invoiced monthly" } else { "" }
                    ),
                    format!(
                        "balance ${:.6}  held ${:.6}  available ${:.6}",
                        v.balance_usd, v.held_usd, v.available_usd
                    ),
                    format!(
                        "{}: ${:.6} over {} requests",
                        v.month, v.this_month.cost_usd, v.this_month.requests
                    ),
                ];
                for m in &v.this_month.by_model {
                    lines.push(format!(
                        "  {:<28} ${:.6}  {} requests",
                        m.name, m.cost_usd, m.requests
                    ));
                }
                if v.sandbox.requests > 0 {
                    lines.push(format!(
                        "sandbox: {} requests, not charged",
                        v.sandbox.requests
                    ));
                }
                lines.join("\n")
            });
        }
    }
    Ok(())
}

pub(super) async fn privacy(p: &Platform, cmd: PrivacyCmd, out: &Out) -> Result<(), Failure> {
    match cmd {
        PrivacyCmd::Log { account } => {
            let log = p.privacy_log(&account).await?;
            out.print(&log, || {
                log.iter()
                    .map(|e| format!("{}  {:<20} {}  {}", e.at, e.action, e.subject, e.detail))
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        PrivacyCmd::Categories { account } => {
            let cats = p.categories(&account).await?;
            out.print(&cats, || {
                cats.iter()
                    .map(|c| {
                        format!(
                            "{:<17} {:>8} records {:>12} bytes  {}{}",
                            c.category,
                            c.count,
                            c.bytes,
                            c.retention,
                            if c.legally_required {
                                " (required by law)"
                            } else {
                                ""
                            }
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        PrivacyCmd::Export {
            account,
            include_files,
            out: path,
        } => {
            let work = maximin_core::providers::media::Work::new();
            let (bytes, kind, counts) = p.export_bytes(&account, include_files, &work).await?;
            let path = path.unwrap_or_else(|| format!("maximin-export-{account}.{kind}").into());
            write_private(&path, &bytes)?;
            p.log_export(&account, "cli", bytes.len() as u64).await?;
            let view = serde_json::json!({
                "account_id": account,
                "path": path.display().to_string(),
                "format": kind,
                "bytes": bytes.len(),
                "counts": counts,
            });
            out.print(&view, || {
                format!(
                    "{} bytes ({kind}) written to {}",
                    bytes.len(),
                    path.display()
                )
            });
        }
        PrivacyCmd::Delete {
            account,
            categories,
        } => {
            let v = p.delete_categories(&account, &categories).await?;
            out.print(&v, || {
                v.deleted
                    .iter()
                    .map(|(c, n)| format!("{c}: {n} deleted"))
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        PrivacyCmd::Close { account } => {
            let v = p.close_account(&account).await?;
            out.print(&v, || {
                format!(
                    "account {} closed: {} keys revoked, {} files and {} voices deleted; profile purged on {}",
                    v.account_id, v.keys_revoked, v.files_deleted, v.voices_deleted, v.purge_at
                )
            });
        }
    }
    Ok(())
}

/// Writes an export only its owner can read.
fn write_private(path: &std::path::Path, bytes: &[u8]) -> Result<(), Failure> {
    use std::io::Write as _;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path)
        .and_then(|mut f| f.write_all(bytes))
        .map_err(|e| Failure::Setup(format!("cannot write {}: {e}", path.display())))
}

pub(super) async fn support(p: &Platform, cmd: SupportCmd, out: &Out) -> Result<(), Failure> {
    let ticket = match cmd {
        SupportCmd::List { account } => {
            let list = p.list_tickets(&account).await?;
            out.print(&list, || {
                list.iter()
                    .map(|t| format!("{}  {:<6}  {}  {}", t.id, t.status, t.created_at, t.subject))
                    .collect::<Vec<_>>()
                    .join("\n")
            });
            return Ok(());
        }
        SupportCmd::Show { ticket } => p.ticket(None, &ticket).await?,
        SupportCmd::Reply { ticket, message } => p.reply_ticket(None, &ticket, &message).await?,
        SupportCmd::Close { ticket } => p.close_ticket(None, &ticket).await?,
    };
    out.print(&ticket, || {
        let mut lines = vec![format!(
            "{}  {}  {}",
            ticket.id, ticket.status, ticket.subject
        )];
        for m in ticket.messages.iter().flatten() {
            lines.push(format!("  {} {}: {}", m.at, m.author, m.body));
        }
        lines.join("\n")
    });
    Ok(())
}

/// A hub user as the CLI prints it (never a password hash or a secret).
#[derive(serde::Serialize)]
struct UserLine {
    id: String,
    email: String,
    operator: bool,
    totp: bool,
    accounts: Vec<serde_json::Value>,
}

pub(super) async fn users(p: &Platform, cmd: UsersCmd, out: &Out) -> Result<(), Failure> {
    match cmd {
        UsersCmd::List => {
            let list: Vec<UserLine> = p
                .users()
                .await?
                .into_iter()
                .map(|(u, m)| UserLine {
                    id: u.id,
                    email: u.email,
                    operator: u.operator,
                    totp: u.totp.is_some(),
                    accounts: m
                        .into_iter()
                        .map(|m| serde_json::json!({"account_id": m.account_id, "role": m.role}))
                        .collect(),
                })
                .collect();
            out.print(&list, || {
                list.iter()
                    .map(|u| {
                        format!(
                            "{}  {}{}{}",
                            u.id,
                            u.email,
                            if u.operator { "  operator" } else { "" },
                            if u.totp { "  totp" } else { "" }
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        UsersCmd::Operator { email, off } => {
            let u = p.set_operator(&email, !off).await?;
            let view = serde_json::json!({"id": u.id, "email": u.email, "operator": u.operator});
            out.print(&view, || {
                format!(
                    "{} is {} operator",
                    u.email,
                    if u.operator { "now an" } else { "no longer an" }
                )
            });
        }
        UsersCmd::Invite {
            account,
            email,
            role,
        } => {
            let i = p.invite(&account, &email, &role).await?;
            let path = format!("/hub/invite/{}", i.token);
            let view = serde_json::json!({
                "id": i.invite.id, "account_id": i.invite.account_id, "email": i.invite.email,
                "role": i.invite.role, "link": path,
            });
            out.print(&view, || {
                format!(
                    "invitation for {} ({}) to {}: open SERVER{path} within 7 days (shown once)",
                    i.invite.email, i.invite.role, i.invite.account_id
                )
            });
        }
    }
    Ok(())
}

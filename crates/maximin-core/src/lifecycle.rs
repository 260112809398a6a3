//! An account over its whole life (issue 16): the data categories the
//! privacy dashboard lists and deletes, closure, and the purge of a closed
//! account's profile 90 days later.

use std::collections::BTreeMap;
use std::str::FromStr;

use maximin_types::privacy::{CategoryView, ClosureView, DeleteView};
use maximin_types::DataCategory;

use crate::clock::iso8601;
use crate::{Error, Platform, Result};

/// A closed account's profile is purged this long after closure (seed 001).
pub const PROFILE_RETENTION: time::Duration = time::Duration::days(90);

/// What the dashboard says of a category: what it holds, how long it is
/// kept, whether the law requires it, and why it cannot be deleted on
/// request when it cannot.
pub struct CategoryRule {
    pub description: &'static str,
    pub retention: &'static str,
    pub legally_required: bool,
    pub refused: Option<&'static str>,
}

pub fn rule(c: DataCategory) -> CategoryRule {
    let (description, retention, legally_required, refused) = match c {
        DataCategory::Profile => (
            "The account: email, plan, limits, routing and PII settings.",
            "While the account is open; purged 90 days after it is closed.",
            false,
            Some("The profile is the account itself: close the account (POST /v1/account/close) and it is purged 90 days later."),
        ),
        DataCategory::Keys => (
            "API keys: names, display prefixes, scopes, hashes of the secrets (never the secrets) and their usage figures.",
            "While the account is open; purged with the profile.",
            false,
            Some("Keys are revoked one by one (DELETE /v1/account/keys/{id}), or all at once by closing the account."),
        ),
        DataCategory::UsageLogs => (
            "Metadata of each request: time, endpoint, model, counts, status, latency, client IP. Never content.",
            "12 months.",
            false,
            None,
        ),
        DataCategory::BillingRecords => (
            "Credits added and spend per month, key and model: the monthly statements.",
            "7 years after the month they belong to.",
            true,
            Some("Billing records must be kept 7 years by tax and accounting law; they are deleted when that period ends."),
        ),
        DataCategory::Files => (
            "Uploaded files and the outputs made for you, sealed at rest.",
            "Until deleted, or until their own expiry.",
            false,
            None,
        ),
        DataCategory::TaskRecords => (
            "Async tasks: kind, status, progress and output file (inputs sealed, cleared when a task ends).",
            "12 months after the task ends; tasks still running cannot be deleted.",
            false,
            None,
        ),
        DataCategory::Voices => (
            "Designed and cloned voices: engine parameters, no audio.",
            "Until deleted; a voice never used is deleted after 7 days.",
            false,
            None,
        ),
        DataCategory::SupportMessages => (
            "Support tickets and their messages, sealed at rest.",
            "2 years after the ticket is closed.",
            false,
            Some("Support messages are kept 2 years after their ticket closes, to settle disputes; they are deleted then."),
        ),
        DataCategory::PrivacyLog => (
            "Every action on this account's data and access: exports, deletions, debug logging, keys, routing, closure.",
            "Append-only while the account exists; purged with the profile.",
            false,
            Some("The privacy log is append-only: it is the record of what was done to this account's data."),
        ),
        DataCategory::DebugLogs => (
            "Request and response bodies kept while debug logging is on, sealed at rest.",
            "Until the debug logging window ends (at most 7 days).",
            false,
            None,
        ),
        DataCategory::Members => (
            "The people who sign in to the hub for this account: e-mail address, role, when they joined, whether two-factor sign-in is on (their logins hold an Argon2id hash of the password and a sealed TOTP secret, never the password), and open invitations.",
            "While the account is open; removed with the profile, and a login left in no account with it.",
            false,
            Some("Members are removed one by one by an owner on the hub's Members page, or all at once with the profile after the account is closed."),
        ),
        DataCategory::FineTunes => (
            "Fine-tuning jobs: the base model, the training and validation files they used (by id), hyperparameters, seed, status, tokens trained, the fine-tuned model's name, and their events (step and loss figures, never the examples); and the fine-tuned models they made. The adapters and checkpoints are sealed files, counted and exported under files.",
            "Jobs while the account is open, until deleted here; a fine-tuned model and its adapter until its owner deletes the model or closes the account; the jobs are purged with the profile.",
            false,
            None,
        ),
    };
    CategoryRule {
        description,
        retention,
        legally_required,
        refused,
    }
}

impl Platform {
    /// Moves an account to another plan (the operator's; custom limits
    /// only on `enterprise`, and none kept when leaving it). A cached
    /// caller carries the plan, so the change holds from the next request.
    pub async fn set_plan(
        &self,
        account_id: &str,
        plan: maximin_types::Plan,
        limits: Option<maximin_types::CustomLimits>,
    ) -> Result<maximin_types::AccountView> {
        crate::check_limits(plan, limits)?;
        if !self
            .store
            .set_account_plan(account_id, plan, limits)
            .await?
        {
            return Err(Error::not_found("account", account_id));
        }
        self.account_view(account_id).await
    }

    /// Every data category held for the account, with figures.
    pub async fn categories(&self, account_id: &str) -> Result<Vec<CategoryView>> {
        self.account(account_id).await?;
        // Requests answered before this one are in the usage logs.
        self.meter.flush().await;
        let mut out = Vec::with_capacity(DataCategory::ALL.len());
        for &c in DataCategory::ALL {
            let f = self.store.category_figures(account_id, c).await?;
            let r = rule(c);
            out.push(CategoryView {
                category: c,
                description: r.description.to_owned(),
                count: f.count,
                bytes: f.bytes,
                oldest: f.oldest.map(iso8601),
                retention: r.retention.to_owned(),
                legally_required: r.legally_required,
                deletable: r.refused.is_none(),
                delete_refused: r.refused.map(str::to_owned),
            });
        }
        Ok(out)
    }

    /// Deletes the account's records of these categories now. A category
    /// that cannot be deleted on request refuses the whole request, with
    /// the reason, before anything is deleted.
    pub async fn delete_categories(
        &self,
        account_id: &str,
        names: &[String],
    ) -> Result<DeleteView> {
        self.account(account_id).await?;
        if names.is_empty() {
            return Err(Error::invalid(
                "categories",
                format!(
                    "Name the categories to delete: any of {}.",
                    deletable_names().join(", ")
                ),
            ));
        }
        let mut cats = Vec::new();
        for n in names {
            let c = DataCategory::from_str(n)
                .map_err(|e| Error::invalid("categories", e.to_string()))?;
            if let Some(why) = rule(c).refused {
                return Err(
                    Error::permission_denied(format!("Cannot delete {c}: {why}"))
                        .with("field", "categories")
                        .with("category", c.as_str())
                        .with("legally_required", rule(c).legally_required),
                );
            }
            if !cats.contains(&c) {
                cats.push(c);
            }
        }
        self.meter.flush().await;
        let now = self.clock.now();
        let mut deleted = BTreeMap::new();
        for c in cats {
            let n = match c {
                DataCategory::Files => self.delete_all_files(account_id).await?,
                DataCategory::FineTunes => self.delete_fine_tunes(account_id).await?,
                other => self.store.delete_records(account_id, other, now).await?,
            };
            deleted.insert(c.as_str().to_owned(), n);
        }
        self.log_privacy(
            account_id,
            "data_deleted",
            account_id,
            serde_json::json!({ "deleted": deleted }),
        )
        .await?;
        Ok(DeleteView { deleted })
    }

    /// Deletes every file of the account, bytes and records.
    async fn delete_all_files(&self, account_id: &str) -> Result<u64> {
        let mut n = 0;
        for f in self.store.files_of(account_id, None).await? {
            self.files.remove(&f).await?;
            n += 1;
        }
        Ok(n)
    }

    /// Closes the account: every key refused at once, files (their bytes
    /// on disk too) and voices deleted, debug logging off, open support
    /// tickets closed; billing records, support tickets and the profile
    /// stay for their retention periods.
    pub async fn close_account(&self, account_id: &str) -> Result<ClosureView> {
        self.account(account_id).await?;
        let now = self.clock.now();
        let keys_revoked = self
            .store
            .close_account(account_id, now)
            .await?
            .ok_or_else(|| Error::invalid("account", "This account is already closed."))?;
        // Its training stops (the runner sees the cancel within a second)
        // and its models' adapters close with the files.
        for job in self.store.fine_tunes_of(account_id).await? {
            if !crate::finetune::jobs::is_final(&job.status) {
                crate::finetune::jobs::stop(
                    self,
                    job.id,
                    "The job was cancelled: the account was closed.",
                )
                .await?;
            }
            self.adapters.forget(job.id);
        }
        let files_deleted = self.delete_all_files(account_id).await?;
        let voices_deleted = self
            .store
            .delete_records(account_id, DataCategory::Voices, now)
            .await?;
        let view = ClosureView {
            account_id: account_id.to_owned(),
            closed_at: iso8601(now),
            purge_at: iso8601(now + PROFILE_RETENTION),
            keys_revoked,
            files_deleted,
            voices_deleted,
        };
        self.log_privacy(
            account_id,
            "account_closed",
            account_id,
            serde_json::json!({
                "keys_revoked": keys_revoked,
                "files_deleted": files_deleted,
                "voices_deleted": voices_deleted,
                "purge_at": view.purge_at,
            }),
        )
        .await?;
        tracing::info!(
            keys_revoked,
            files_deleted,
            voices_deleted,
            "account closed"
        );
        Ok(view)
    }

    /// Purges the profiles of accounts closed `PROFILE_RETENTION` ago or
    /// more (files first, bytes and records); returns how many.
    pub async fn purge_closed(&self, now: time::OffsetDateTime) -> Result<u64> {
        let mut n = 0;
        for id in self.store.closed_accounts(now - PROFILE_RETENTION).await? {
            self.delete_all_files(&id).await?;
            if self.store.purge_account(&id).await? {
                n += 1;
            }
        }
        Ok(n)
    }
}

fn deletable_names() -> Vec<&'static str> {
    DataCategory::ALL
        .iter()
        .filter(|c| rule(**c).refused.is_none())
        .map(|c| c.as_str())
        .collect()
}

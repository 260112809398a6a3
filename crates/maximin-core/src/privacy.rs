//! The privacy action log (issue 16): every action on an account's data and
//! access, appended as it happens, read back by the dashboard and the CLI.

use maximin_types::privacy::PrivacyLogEntry;
use serde_json::Value;

use crate::clock::iso8601;
use crate::store::PrivacyRecord;
use crate::{Platform, Result};

impl Platform {
    /// Appends an action to the account's privacy log. A failure to log is
    /// an error of the action: an unlogged privacy action must not pass.
    pub(crate) async fn log_privacy(
        &self,
        account_id: &str,
        action: &str,
        subject: &str,
        detail: Value,
    ) -> Result<()> {
        self.store
            .append_privacy(&PrivacyRecord {
                id: 0,
                account_id: account_id.to_owned(),
                at: self.clock.now(),
                action: action.to_owned(),
                subject: subject.to_owned(),
                detail: detail.to_string(),
            })
            .await
    }

    /// The account's privacy log, oldest first.
    pub async fn privacy_log(&self, account_id: &str) -> Result<Vec<PrivacyLogEntry>> {
        self.account(account_id).await?;
        Ok(self
            .store
            .privacy_log(account_id)
            .await?
            .into_iter()
            .map(|r| PrivacyLogEntry {
                id: r.id,
                at: iso8601(r.at),
                action: r.action,
                subject: r.subject,
                detail: serde_json::from_str(&r.detail).unwrap_or(Value::Null),
            })
            .collect())
    }
}

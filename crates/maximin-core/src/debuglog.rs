//! Debug logging, the owner's opt-in (issue 16, DESIGN.md §8): while it is
//! on, an account's request and response bodies are kept, sealed under the
//! master key, and they are swept when the window ends. Outside a window
//! no content is kept anywhere.

use base64::Engine as _;
use maximin_types::privacy::{DebugLoggingRequest, DebugLoggingView};
use serde_json::{json, Value};

use crate::clock::iso8601;
use crate::store::{Account, DebugRecord};
use crate::{Error, Platform, Result};

/// The longest window the owner may ask for (seed 001).
pub const MAX_DEBUG_HOURS: u32 = 7 * 24;
/// The most of one body kept; the rest is cut and marked so.
pub const MAX_DEBUG_BODY: usize = 256 * 1024;

pub(crate) fn aad(account_id: &str, request_id: &str) -> Vec<u8> {
    format!("maximin/debug/{account_id}/{request_id}").into_bytes()
}

/// One body as kept: text when it is UTF-8, else base64; `truncated` when cut.
pub fn body_value(bytes: &[u8], total: usize) -> Value {
    let kept = &bytes[..bytes.len().min(MAX_DEBUG_BODY)];
    let mut v = match std::str::from_utf8(kept) {
        Ok(text) => json!({ "text": text }),
        Err(_) => json!({ "base64": base64::engine::general_purpose::STANDARD.encode(kept) }),
    };
    v["bytes"] = json!(total);
    if total > kept.len() {
        v["truncated"] = json!(true);
    }
    v
}

impl Platform {
    /// Whether this account's bodies are kept now.
    pub fn debug_logging_on(&self, account: &Account) -> bool {
        account.debug_until.is_some_and(|u| u > self.clock.now())
    }

    /// Turns debug logging on for `duration_hours` (1 to 168), or off,
    /// which deletes what it kept; either way it goes to the privacy log.
    pub async fn set_debug_logging(
        &self,
        account_id: &str,
        req: &DebugLoggingRequest,
    ) -> Result<DebugLoggingView> {
        let account = self.account(account_id).await?;
        if account.closed_at.is_some() {
            return Err(Error::invalid("account", "This account is closed."));
        }
        let until = if req.enabled {
            let hours = req.duration_hours.ok_or_else(|| {
                Error::invalid(
                    "duration_hours",
                    format!("Say for how long, in hours: 1 to {MAX_DEBUG_HOURS} (7 days)."),
                )
            })?;
            if !(1..=MAX_DEBUG_HOURS).contains(&hours) {
                return Err(Error::invalid(
                    "duration_hours",
                    format!("Debug logging lasts 1 to {MAX_DEBUG_HOURS} hours (7 days at most); {hours} was asked."),
                )
                .with("max", MAX_DEBUG_HOURS));
            }
            Some(self.clock.now() + time::Duration::hours(i64::from(hours)))
        } else {
            None
        };
        self.store.set_debug_until(account_id, until).await?;
        match until {
            Some(u) => {
                self.log_privacy(
                    account_id,
                    "debug_logging_on",
                    account_id,
                    json!({ "until": iso8601(u), "hours": req.duration_hours }),
                )
                .await?
            }
            None => {
                self.log_privacy(account_id, "debug_logging_off", account_id, json!({}))
                    .await?
            }
        }
        self.debug_logging(account_id).await
    }

    pub async fn debug_logging(&self, account_id: &str) -> Result<DebugLoggingView> {
        let account = self.account(account_id).await?;
        let on = self.debug_logging_on(&account);
        Ok(DebugLoggingView {
            enabled: on,
            until: if on {
                account.debug_until.map(iso8601)
            } else {
                None
            },
            entries: self.store.debug_logs_of(account_id).await?.len() as u64,
        })
    }

    /// Keeps a request and its response, sealed, when the account's debug
    /// logging is on (a no-op otherwise); kept until the window ends.
    pub async fn keep_debug(
        &self,
        account: &Account,
        request_id: &str,
        endpoint: &str,
        status: u16,
        request: Value,
        response: Value,
    ) -> Result<()> {
        if !self.debug_logging_on(account) {
            return Ok(());
        }
        // As the store says now: the window may have been closed while
        // this request ran (the request that turns it off, for one).
        let Some(until) = self
            .store
            .account(&account.id)
            .await?
            .and_then(|a| a.debug_until)
            .filter(|u| *u > self.clock.now())
        else {
            return Ok(());
        };
        let plain = serde_json::to_vec(&json!({ "request": request, "response": response }))
            .map_err(Error::internal)?;
        let sealed = self
            .files
            .keys()
            .seal_value(&plain, &aad(&account.id, request_id))?;
        self.store
            .insert_debug_log(&DebugRecord {
                id: 0,
                account_id: account.id.clone(),
                at: self.clock.now(),
                request_id: request_id.to_owned(),
                endpoint: endpoint.to_owned(),
                status,
                sealed,
                expires_at: until,
            })
            .await
    }

    /// The account's debug logs, opened (for its export).
    pub async fn debug_entries(&self, account_id: &str) -> Result<Vec<Value>> {
        let mut out = Vec::new();
        for r in self.store.debug_logs_of(account_id).await? {
            let opened = self
                .files
                .keys()
                .open_value(&r.sealed, &aad(account_id, &r.request_id))?;
            let bodies: Value = serde_json::from_slice(&opened).map_err(Error::internal)?;
            out.push(json!({
                "id": r.id,
                "at": iso8601(r.at),
                "request_id": r.request_id,
                "endpoint": r.endpoint,
                "status": r.status,
                "expires_at": iso8601(r.expires_at),
                "request": bodies["request"],
                "response": bodies["response"],
            }));
        }
        Ok(out)
    }
}

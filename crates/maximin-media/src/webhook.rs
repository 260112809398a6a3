//! Task webhooks (`callback_url`, spec §6.1): the MiniMax verification
//! handshake when a task is created (we POST `{"challenge": …}` and the
//! receiver must echo it within 3 seconds), then a POST on every status
//! change with the query's body and a lowercase `status`, signed:
//!
//! - `X-Maximin-Timestamp`: unix seconds when it was signed;
//! - `X-Maximin-Signature`: `v1=` and the hex HMAC-SHA256, under the
//!   account's webhook secret (`GET /v1/account/webhook_secret`), of
//!   `TIMESTAMP.BODY`.
//!
//! Every delivery is recorded (URL and body sealed) before its first
//! attempt and removed once the receiver takes it (a 2xx); one that fails is
//! retried with growing pauses for 24 hours, by whichever process holds its
//! lease ([`Webhooks::run`] picks up the due ones, a restart's included), so
//! none is lost to a restart and none is sent twice at once. Only public
//! addresses are called unless the operator allows private ones.

use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use maximin_core::clock::Clock;
use maximin_core::crypto::MasterKeys;
use maximin_core::store::{Store, WebhookRecord};
use maximin_core::tasks::webhook_aad as aad;
use maximin_core::{Error, Platform, Result};
use serde_json::{json, Value};
use sha2::Sha256;

use crate::net;

/// How long the receiver has to answer the handshake (spec: 3 s).
const HANDSHAKE: Duration = Duration::from_secs(3);
/// How long one delivery may take.
const DELIVERY: Duration = Duration::from_secs(10);
/// How long a delivery is retried.
const RETRY_FOR: Duration = Duration::from_secs(24 * 3600);
/// The longest pause between two attempts.
const MAX_PAUSE: Duration = Duration::from_secs(3600);
/// How long an attempt holds its delivery: past it, another runner may
/// take the delivery up.
const LEASE: Duration = Duration::from_secs(60);
/// How often [`Webhooks::run`] looks for due deliveries, and how many it
/// takes at a time.
const SWEEP: Duration = Duration::from_secs(1);
const BATCH: u32 = 16;

/// Signs, records and sends webhooks.
pub struct Webhooks {
    key: [u8; 32],
    allow_private: bool,
    /// Pauses between attempts (first, then each next doubles, capped).
    first_pause: Duration,
    store: Arc<dyn Store>,
    keys: Arc<MasterKeys>,
    clock: Arc<dyn Clock>,
}

/// What is sealed in a delivery's record.
#[derive(serde::Serialize, serde::Deserialize)]
struct Payload {
    url: String,
    body: Value,
}

impl Webhooks {
    /// `MAXIMIN_WEBHOOK_RETRY_MS` sets the first pause between attempts
    /// (5 s by default; each next one doubles, up to an hour).
    pub fn new(platform: &Platform, allow_private: bool) -> Self {
        let keys = platform.files.keys().clone();
        Webhooks {
            key: keys.derive("maximin/webhooks"),
            allow_private,
            first_pause: std::env::var("MAXIMIN_WEBHOOK_RETRY_MS")
                .ok()
                .and_then(|v| v.parse().ok())
                .map(Duration::from_millis)
                .unwrap_or(Duration::from_secs(5)),
            store: platform.store.clone(),
            keys,
            clock: platform.clock.clone(),
        }
    }

    /// The account's signing secret: derived, so nothing is stored; the
    /// same for the account until the master key changes.
    pub fn secret(&self, account_id: &str) -> String {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key).expect("any key length");
        mac.update(account_id.as_bytes());
        format!("whsec_{}", hex::encode(mac.finalize().into_bytes()))
    }

    /// `v1=HEX` over `TIMESTAMP.BODY` with the account's secret.
    pub fn signature(&self, account_id: &str, timestamp: i64, body: &[u8]) -> String {
        sign(&self.secret(account_id), timestamp, body)
    }

    /// The handshake: a refused, unreachable or wrong answer is an error on
    /// `callback_url`, and the task is not created.
    pub async fn verify(&self, url: &str) -> Result<()> {
        let (client, url) =
            net::pinned_client(url, "callback_url", self.allow_private, HANDSHAKE).await?;
        let challenge = hex::encode(rand::random::<[u8; 16]>());
        let failed = |why: String| {
            Error::invalid(
                "callback_url",
                format!("The callback_url did not pass verification: {why}. It must answer a POST of {{\"challenge\": …}} with the same JSON within 3 seconds."),
            )
            .with("reason", "webhook_verification")
        };
        let resp = client
            .post(url)
            .json(&json!({ "challenge": challenge }))
            .send()
            .await
            .map_err(|e| failed(net::without_url(&e)))?;
        if !resp.status().is_success() {
            return Err(failed(format!("it answered {}", resp.status())));
        }
        let body: Value = resp
            .json()
            .await
            .map_err(|_| failed("its answer is not JSON".into()))?;
        if body.get("challenge").and_then(Value::as_str) != Some(challenge.as_str()) {
            return Err(failed("its answer does not echo the challenge".into()));
        }
        Ok(())
    }

    /// Records the delivery of `body` to `url`, then makes its first
    /// attempt on its own task; a failed one is retried by [`Webhooks::run`]
    /// until it is taken (a 2xx) or 24 hours have passed.
    pub async fn deliver(self: &Arc<Self>, account_id: &str, url: &str, body: Value) {
        let payload = Payload {
            url: url.to_owned(),
            body,
        };
        let recorded = match self.record(account_id, &payload).await {
            Ok(r) => Some(r),
            Err(e) => {
                tracing::warn!(reason = %e, "webhook delivery not recorded: one attempt only");
                None
            }
        };
        let me = self.clone();
        let account_id = account_id.to_owned();
        tokio::spawn(async move {
            match recorded {
                Some(r) => me.attempt(r, payload).await,
                None => {
                    let _ = me.send(&account_id, &payload).await;
                }
            }
        });
    }

    /// Seals and stores a delivery, held by its first attempt.
    async fn record(&self, account_id: &str, payload: &Payload) -> Result<WebhookRecord> {
        let id = maximin_core::files::new_id();
        let now = self.clock.now();
        let sealed = self.keys.seal_value(
            &serde_json::to_vec(payload).map_err(Error::internal)?,
            &aad(id),
        )?;
        let r = WebhookRecord {
            id,
            account_id: account_id.to_owned(),
            payload: sealed,
            attempts: 1,
            created_at: now,
        };
        self.store.insert_webhook(&r, now + LEASE).await?;
        Ok(r)
    }

    /// Retries due deliveries (those of an earlier process included) until
    /// `stop` is notified.
    pub async fn run(self: Arc<Self>, stop: Arc<tokio::sync::Notify>) {
        loop {
            let now = self.clock.now();
            match self.store.claim_webhooks(now, now + LEASE, BATCH).await {
                Ok(due) => {
                    for r in due {
                        let me = self.clone();
                        tokio::spawn(async move {
                            match me.keys.open_value(&r.payload, &aad(r.id)).and_then(|p| {
                                serde_json::from_slice::<Payload>(&p).map_err(Error::internal)
                            }) {
                                Ok(payload) => me.attempt(r, payload).await,
                                Err(e) => {
                                    tracing::warn!(reason = %e, "webhook delivery unreadable: dropped");
                                    let _ = me.store.delete_webhook(r.id).await;
                                }
                            }
                        });
                    }
                }
                Err(e) => tracing::warn!(reason = %e, "webhook deliveries not read"),
            }
            tokio::select! {
                _ = stop.notified() => return,
                _ = tokio::time::sleep(SWEEP.min(self.first_pause)) => {}
            }
        }
    }

    /// One attempt of a recorded delivery: removed once taken, else
    /// scheduled again (or given up after 24 hours).
    async fn attempt(&self, r: WebhookRecord, payload: Payload) {
        let why = match self.send(&r.account_id, &payload).await {
            Ok(()) => {
                if let Err(e) = self.store.delete_webhook(r.id).await {
                    tracing::warn!(reason = %e, "webhook delivered but its record stays");
                }
                return;
            }
            Err(why) => why,
        };
        let attempt = r.attempts.max(1);
        tracing::warn!(attempt, reason = %why, "webhook delivery failed");
        let pause = self
            .first_pause
            .saturating_mul(1u32 << (attempt - 1).min(16))
            .min(MAX_PAUSE);
        let now = self.clock.now();
        let done = if now + pause > r.created_at + RETRY_FOR {
            tracing::warn!(attempt, "webhook delivery given up after 24 hours");
            self.store.delete_webhook(r.id).await
        } else {
            self.store.retry_webhook(r.id, now + pause).await
        };
        if let Err(e) = done {
            tracing::warn!(reason = %e, "webhook delivery record not updated");
        }
    }

    async fn send(&self, account_id: &str, payload: &Payload) -> Result<()> {
        let body = payload.body.to_string().into_bytes();
        self.send_once(account_id, &payload.url, &body).await
    }

    async fn send_once(&self, account_id: &str, url: &str, body: &[u8]) -> Result<()> {
        let (client, url) =
            net::pinned_client(url, "callback_url", self.allow_private, DELIVERY).await?;
        let ts = time::OffsetDateTime::now_utc().unix_timestamp();
        let resp = client
            .post(url)
            .header("content-type", "application/json")
            .header("x-maximin-timestamp", ts.to_string())
            .header("x-maximin-signature", self.signature(account_id, ts, body))
            .body(body.to_vec())
            .send()
            .await
            .map_err(|e| Error::internal(net::without_url(&e)))?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(Error::internal(format!("answered {}", resp.status())))
        }
    }
}

/// `v1=` and the hex HMAC-SHA256 of `TIMESTAMP.BODY` under `secret`.
pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1={}", hex::encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_depend_on_secret_time_and_body() {
        let a = sign("whsec_a", 1, b"{}");
        assert!(a.starts_with("v1=") && a.len() == 3 + 64);
        assert_ne!(a, sign("whsec_b", 1, b"{}"));
        assert_ne!(a, sign("whsec_a", 2, b"{}"));
        assert_ne!(a, sign("whsec_a", 1, b"{ }"));
        assert_eq!(a, sign("whsec_a", 1, b"{}"));
    }
}

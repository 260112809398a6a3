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
//! A delivery that fails is retried with growing pauses for 24 hours. Only
//! public addresses are called unless the operator allows private ones.

use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use maximin_core::crypto::MasterKeys;
use maximin_core::{Error, Result};
use serde_json::{json, Value};
use sha2::Sha256;

use crate::net;

/// How long the receiver has to answer the handshake (spec: 3 s).
const HANDSHAKE: Duration = Duration::from_secs(3);
/// How long one delivery may take.
const DELIVERY: Duration = Duration::from_secs(10);
/// How long a delivery is retried.
const RETRY_FOR: Duration = Duration::from_secs(24 * 3600);

/// Signs and sends webhooks.
pub struct Webhooks {
    key: [u8; 32],
    allow_private: bool,
    /// Pauses between attempts (first, then each next doubles, capped).
    first_pause: Duration,
}

impl Webhooks {
    pub fn new(keys: &MasterKeys, allow_private: bool) -> Self {
        Webhooks {
            key: keys.derive("maximin/webhooks"),
            allow_private,
            first_pause: Duration::from_secs(5),
        }
    }

    /// Shorter pauses between retries (tests).
    pub fn with_first_pause(mut self, pause: Duration) -> Self {
        self.first_pause = pause;
        self
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

    /// Sends `body` to `url`, signed, retrying until it is taken (a 2xx) or
    /// 24 hours have passed. Returns at once; the delivery runs on its own.
    pub fn deliver(self: &Arc<Self>, account_id: &str, url: &str, body: Value) {
        let me = self.clone();
        let (account_id, url) = (account_id.to_owned(), url.to_owned());
        tokio::spawn(async move {
            let bytes = body.to_string().into_bytes();
            let started = tokio::time::Instant::now();
            let mut pause = me.first_pause;
            let mut attempt = 1u32;
            loop {
                match me.send_once(&account_id, &url, &bytes).await {
                    Ok(()) => return,
                    Err(why) => {
                        tracing::warn!(attempt, reason = %why, "webhook delivery failed");
                    }
                }
                if started.elapsed() + pause > RETRY_FOR {
                    tracing::warn!(attempt, "webhook delivery given up after 24 hours");
                    return;
                }
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(3600));
                attempt += 1;
            }
        });
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

//! Idempotency (DESIGN.md §4).
//!
//! A POST or DELETE with an `Idempotency-Key` runs once per account and key for 24
//! hours. Everything stored is derived from the client's key so that the data dir
//! holds nothing readable:
//! - the record id is HKDF(key, salt = account id, info = "id"): the key itself is
//!   never stored;
//! - the request fingerprint is an HMAC under a second derived key, so a stored
//!   fingerprint does not confirm a guessed body;
//! - the response is sealed with AES-256-GCM under a third derived key, so the
//!   server can only read it back when the client retries with the same key.
//!
//! Concurrent duplicates: the store's claim is atomic (one insert wins); the others
//! wait on an in-process notifier and re-read the store, which also works across
//! processes sharing a database.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use hkdf::Hkdf;
use maximin_types::ErrorCode;
use rand::RngCore;
use sha2::{Digest, Sha256};
use tokio::sync::Notify;

use crate::clock::Clock;
use crate::store::{IdemState, Store};
use crate::{Error, Result};

pub const TTL: time::Duration = time::Duration::hours(24);
/// How long a duplicate waits for the first execution before giving up.
const WAIT_LIMIT: Duration = Duration::from_secs(600);
const POLL_EVERY: Duration = Duration::from_millis(50);
pub const MAX_KEY_LEN: usize = 255;

/// The secrets derived from one client key.
pub struct DerivedKeys {
    pub record_id: String,
    fingerprint_key: [u8; 32],
    seal_key: [u8; 32],
}

impl DerivedKeys {
    pub fn derive(account_id: &str, idempotency_key: &str) -> Self {
        let hk = Hkdf::<Sha256>::new(Some(account_id.as_bytes()), idempotency_key.as_bytes());
        let mut id = [0u8; 32];
        let mut fingerprint_key = [0u8; 32];
        let mut seal_key = [0u8; 32];
        // HKDF-SHA256 can expand up to 8160 bytes; 32 always succeeds.
        let _ = hk.expand(b"maximin/idempotency/id", &mut id);
        let _ = hk.expand(b"maximin/idempotency/fingerprint", &mut fingerprint_key);
        let _ = hk.expand(b"maximin/idempotency/seal", &mut seal_key);
        DerivedKeys {
            record_id: hex::encode(id),
            fingerprint_key,
            seal_key,
        }
    }

    /// A keyed digest of what makes two requests "the same".
    pub fn fingerprint(&self, method: &str, path: &str, body: &[u8]) -> String {
        // HMAC-SHA256 built from HKDF's extract step, which is HMAC(salt, ikm).
        let mut h = Sha256::new();
        h.update(method.as_bytes());
        h.update([0]);
        h.update(path.as_bytes());
        h.update([0]);
        h.update(body);
        let digest = h.finalize();
        let (prk, _) = Hkdf::<Sha256>::extract(Some(&self.fingerprint_key), &digest);
        hex::encode(prk)
    }

    pub fn seal(&self, plaintext: &[u8]) -> Result<Vec<u8>> {
        let cipher = Aes256Gcm::new_from_slice(&self.seal_key).map_err(Error::internal)?;
        let mut nonce = [0u8; 12];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let ct = cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: self.record_id.as_bytes(),
                },
            )
            .map_err(|_| Error::internal("sealing an idempotent response failed"))?;
        let mut out = Vec::with_capacity(12 + ct.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        Ok(out)
    }

    pub fn open(&self, sealed: &[u8]) -> Result<Vec<u8>> {
        if sealed.len() < 12 {
            return Err(Error::internal("stored idempotent response is truncated"));
        }
        let cipher = Aes256Gcm::new_from_slice(&self.seal_key).map_err(Error::internal)?;
        let (nonce, ct) = sealed.split_at(12);
        cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ct,
                    aad: self.record_id.as_bytes(),
                },
            )
            .map_err(|_| Error::internal("stored idempotent response does not open"))
    }
}

/// Checks the header value: 1 to 255 visible ASCII characters.
pub fn validate_key(key: &str) -> Result<()> {
    if key.is_empty() || key.len() > MAX_KEY_LEN || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Error::invalid(
            "Idempotency-Key",
            format!("Idempotency-Key must be 1 to {MAX_KEY_LEN} visible ASCII characters."),
        ));
    }
    Ok(())
}

/// A response as stored for replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    pub status: u16,
    pub content_type: String,
    pub body: Vec<u8>,
}

impl StoredResponse {
    fn encode(&self) -> Vec<u8> {
        let ct = self.content_type.as_bytes();
        let mut out = Vec::with_capacity(4 + ct.len() + self.body.len());
        out.extend_from_slice(&self.status.to_be_bytes());
        out.extend_from_slice(&u16::try_from(ct.len()).unwrap_or(0).to_be_bytes());
        if ct.len() <= usize::from(u16::MAX) {
            out.extend_from_slice(ct);
        }
        out.extend_from_slice(&self.body);
        out
    }

    fn decode(bytes: &[u8]) -> Result<Self> {
        let bad = || Error::internal("stored idempotent response is malformed");
        if bytes.len() < 4 {
            return Err(bad());
        }
        let status = u16::from_be_bytes([bytes[0], bytes[1]]);
        let ct_len = usize::from(u16::from_be_bytes([bytes[2], bytes[3]]));
        let rest = &bytes[4..];
        if rest.len() < ct_len {
            return Err(bad());
        }
        let content_type = String::from_utf8(rest[..ct_len].to_vec()).map_err(|_| bad())?;
        Ok(StoredResponse {
            status,
            content_type,
            body: rest[ct_len..].to_vec(),
        })
    }
}

/// The outcome of starting an idempotent request.
pub enum Begin {
    /// Run the handler, then call [`Execution::complete`].
    Execute(Execution),
    /// The first execution's response, to send again.
    Replay(StoredResponse),
}

pub struct Idempotency {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    waiting: Arc<Mutex<HashMap<String, Arc<Notify>>>>,
}

impl Idempotency {
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> Self {
        Idempotency {
            store,
            clock,
            waiting: Arc::default(),
        }
    }

    fn notifier(&self, id: &str) -> Arc<Notify> {
        let mut map = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(id.to_owned()).or_default().clone()
    }

    pub async fn begin(
        &self,
        account_id: &str,
        idempotency_key: &str,
        method: &str,
        path: &str,
        body: &[u8],
    ) -> Result<Begin> {
        validate_key(idempotency_key)?;
        let keys = DerivedKeys::derive(account_id, idempotency_key);
        let fingerprint = keys.fingerprint(method, path, body);
        let deadline = tokio::time::Instant::now() + WAIT_LIMIT;
        loop {
            let notify = self.notifier(&keys.record_id);
            let notified = notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();

            let now = self.clock.now();
            // Read first: a replay then costs no write.
            let state = match self.store.idem_get(&keys.record_id, now).await? {
                IdemState::Absent => {
                    self.store
                        .idem_claim(&keys.record_id, account_id, &fingerprint, now, now + TTL)
                        .await?
                }
                state => state,
            };
            match state {
                IdemState::Claimed => {
                    return Ok(Begin::Execute(Execution {
                        keys,
                        store: self.store.clone(),
                        waiting: self.waiting.clone(),
                        finished: false,
                    }))
                }
                IdemState::Absent => continue,
                IdemState::InProgress { fingerprint: fp }
                | IdemState::Done {
                    fingerprint: fp, ..
                } if fp != fingerprint => {
                    return Err(conflict());
                }
                IdemState::Done { sealed, .. } => {
                    let plain = keys.open(&sealed)?;
                    return Ok(Begin::Replay(StoredResponse::decode(&plain)?));
                }
                IdemState::InProgress { .. } => {
                    if tokio::time::Instant::now() >= deadline {
                        return Err(Error::new(
                            ErrorCode::IdempotencyConflict,
                            "A request with this Idempotency-Key is still being processed; retry later.",
                        )
                        .with("field", "Idempotency-Key"));
                    }
                    // Woken at once by an execution in this process, or re-read
                    // after a short wait when it runs in another one.
                    let _ = tokio::time::timeout(POLL_EVERY, notified).await;
                }
            }
        }
    }
}

fn conflict() -> Error {
    Error::new(
        ErrorCode::IdempotencyConflict,
        "This Idempotency-Key was already used with a different request; use a new key for a new request.",
    )
    .with("field", "Idempotency-Key")
}

/// The right and duty to execute a claimed request. Dropping it without
/// completing (an error, a panic, a client that went away) releases the claim so
/// that a retry executes.
pub struct Execution {
    keys: DerivedKeys,
    store: Arc<dyn Store>,
    waiting: Arc<Mutex<HashMap<String, Arc<Notify>>>>,
    finished: bool,
}

impl Execution {
    /// Stores the response for replay (or, for a server-side failure, releases the
    /// claim so that a retry runs again) and wakes waiting duplicates.
    pub async fn complete(mut self, response: &StoredResponse) -> Result<()> {
        self.finished = true;
        let result = if response.status >= 500 {
            self.store.idem_release(&self.keys.record_id).await
        } else {
            match self.keys.seal(&response.encode()) {
                Ok(sealed) => {
                    self.store
                        .idem_complete(&self.keys.record_id, &sealed)
                        .await
                }
                Err(e) => {
                    let _ = self.store.idem_release(&self.keys.record_id).await;
                    Err(e)
                }
            }
        };
        wake(&self.waiting, &self.keys.record_id);
        result
    }
}

fn wake(waiting: &Mutex<HashMap<String, Arc<Notify>>>, id: &str) {
    let notify = waiting.lock().unwrap_or_else(|e| e.into_inner()).remove(id);
    if let Some(n) = notify {
        n.notify_waiters();
    }
}

impl Drop for Execution {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        let store = self.store.clone();
        let waiting = self.waiting.clone();
        let id = self.keys.record_id.clone();
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                if let Err(e) = store.idem_release(&id).await {
                    tracing::warn!(error = %e, "releasing an idempotency claim failed");
                }
                wake(&waiting, &id);
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derivations_depend_on_account_and_key() {
        let a = DerivedKeys::derive("acct_1", "k1");
        let b = DerivedKeys::derive("acct_2", "k1");
        let c = DerivedKeys::derive("acct_1", "k2");
        assert_ne!(a.record_id, b.record_id);
        assert_ne!(a.record_id, c.record_id);
        assert!(!a.record_id.contains("k1"));
        assert_ne!(
            a.fingerprint("POST", "/x", b"{}"),
            a.fingerprint("POST", "/x", b"{ }")
        );
        assert_ne!(
            a.fingerprint("POST", "/x", b"{}"),
            b.fingerprint("POST", "/x", b"{}")
        );
    }

    #[test]
    fn sealed_responses_open_only_with_the_same_key() {
        let a = DerivedKeys::derive("acct_1", "k1");
        let resp = StoredResponse {
            status: 201,
            content_type: "application/json".into(),
            body: b"{\"secret\":\"canary\"}".to_vec(),
        };
        let sealed = a.seal(&resp.encode()).expect("seal");
        assert!(!sealed.windows(6).any(|w| w == b"canary"));
        let opened = StoredResponse::decode(&a.open(&sealed).expect("open")).expect("decode");
        assert_eq!(opened, resp);
        assert!(DerivedKeys::derive("acct_1", "k2").open(&sealed).is_err());
    }

    #[test]
    fn keys_are_validated() {
        assert!(validate_key("order-123").is_ok());
        assert!(validate_key("").is_err());
        assert!(validate_key("has space").is_err());
        assert!(validate_key(&"x".repeat(256)).is_err());
    }
}

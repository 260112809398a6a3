//! The storage trait and the records it keeps. Implementations live in
//! `maximin-store`; the core only sees this trait.

use async_trait::async_trait;
use maximin_types::{CustomLimits, Plan, Scope, UsageFigures};
use time::OffsetDateTime;

use crate::Result;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub id: String,
    pub email: String,
    pub plan: Plan,
    pub limits: Option<CustomLimits>,
    pub created_at: OffsetDateTime,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    pub id: String,
    pub account_id: String,
    pub name: String,
    /// Display prefix of the secret (`mmx_live_AbCd`).
    pub prefix: String,
    /// Hex SHA-256 of the secret.
    pub hash: String,
    pub test: bool,
    pub scopes: Vec<Scope>,
    /// Catalog ids this key may use; empty means every model.
    pub models: Vec<String>,
    pub created_at: OffsetDateTime,
    pub revoked_at: Option<OffsetDateTime>,
    pub last_used_at: Option<OffsetDateTime>,
    pub usage: UsageFigures,
}

/// Metadata of one authenticated request: what the activity log and usage
/// figures are made of. Never content.
#[derive(Debug, Clone, PartialEq)]
pub struct UsageEvent {
    pub at: OffsetDateTime,
    pub account_id: String,
    pub key_id: String,
    pub request_id: String,
    pub method: String,
    pub endpoint: String,
    pub status: u16,
    pub model: Option<String>,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub latency_us: u64,
    pub error_code: Option<String>,
    pub client_ip: Option<String>,
}

/// Usage of an account over a period, grouped.
#[derive(Debug, Clone, Default)]
pub struct UsageSummary {
    pub by_key: Vec<(String, UsageFigures)>,
    pub by_model: Vec<(String, UsageFigures)>,
}

/// The state of an idempotency record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdemState {
    /// No live record: the caller may claim it.
    Absent,
    /// This call created the record and must execute the request.
    Claimed,
    /// Another execution holds the record.
    InProgress { fingerprint: String },
    /// The request ran; `sealed` is the encrypted response.
    Done {
        fingerprint: String,
        sealed: Vec<u8>,
    },
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// A value that changes whenever a key or account changes in a way that
    /// affects authentication (revocation, plan, limits), by any process sharing
    /// this store. `None` when the store has no cheap way to tell: then nothing
    /// about keys is cached. Must be far cheaper than `key_by_hash`.
    async fn auth_epoch(&self) -> Result<Option<u64>>;

    /// Cheap round trip, for readiness.
    async fn ping(&self) -> Result<()>;

    /// Fails with `invalid_request` on field `email` when the email is taken.
    async fn insert_account(&self, account: &Account) -> Result<()>;
    async fn account(&self, id: &str) -> Result<Option<Account>>;
    async fn list_accounts(&self) -> Result<Vec<Account>>;

    /// Inserts a key unless the account already has `max_active` unrevoked keys,
    /// atomically; returns false when the limit stopped it.
    async fn insert_key(&self, key: &ApiKey, max_active: usize) -> Result<bool>;
    /// The key with this secret hash and its account, in one round trip (the
    /// hot path of every authenticated request).
    async fn key_by_hash(&self, hash: &str) -> Result<Option<(ApiKey, Account)>>;
    async fn key(&self, id: &str) -> Result<Option<ApiKey>>;
    async fn keys_of(&self, account_id: &str) -> Result<Vec<ApiKey>>;
    /// Marks a key revoked; returns false when it was already revoked or absent.
    async fn revoke_key(&self, id: &str, at: OffsetDateTime) -> Result<bool>;

    /// Appends events to the activity log and adds them to the keys' figures.
    async fn record_usage(&self, events: &[UsageEvent]) -> Result<()>;
    /// The newest `limit` events of a key, newest first.
    async fn activity(&self, key_id: &str, limit: u32) -> Result<Vec<UsageEvent>>;
    async fn usage_summary(
        &self,
        account_id: &str,
        since: OffsetDateTime,
        until: OffsetDateTime,
    ) -> Result<UsageSummary>;

    /// Claims an idempotency record or reports the live one that exists.
    /// Records past `expires_at` count as absent.
    async fn idem_claim(
        &self,
        id: &str,
        account_id: &str,
        fingerprint: &str,
        now: OffsetDateTime,
        expires_at: OffsetDateTime,
    ) -> Result<IdemState>;
    async fn idem_get(&self, id: &str, now: OffsetDateTime) -> Result<IdemState>;
    async fn idem_complete(&self, id: &str, sealed: &[u8]) -> Result<()>;
    async fn idem_release(&self, id: &str) -> Result<()>;

    /// Deletes what has outlived its retention; returns how many rows went.
    async fn sweep(&self, now: OffsetDateTime, usage_retention: time::Duration) -> Result<u64>;
}

//! The storage trait and the records it keeps. Implementations live in
//! `maximin-store`; the core only sees this trait.

use async_trait::async_trait;
use maximin_types::{CustomLimits, DataCategory, Plan, Scope, UsageFigures};
use time::OffsetDateTime;

use crate::Result;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub id: String,
    pub email: String,
    pub plan: Plan,
    pub limits: Option<CustomLimits>,
    /// Where its requests may go and how its content is protected.
    pub routing: Routing,
    pub created_at: OffsetDateTime,
    /// The install's own account: its admin keys may grant credit to any
    /// account (`POST /v1/account/credits`).
    pub operator: bool,
    /// When the owner closed it: every key refused since, the profile
    /// purged 90 days later.
    pub closed_at: Option<OffsetDateTime>,
    /// Until when its request and response bodies are kept, sealed, for
    /// debugging (the owner's opt-in); `None`: off.
    pub debug_until: Option<OffsetDateTime>,
}

/// Routing limits of an account or a key (issue 14): the regions requests
/// may be served in (empty: anywhere) and PII protection before upstreams.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Routing {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub regions: Vec<String>,
    /// `None`: as the account says (for a key), off (for an account).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pii: Option<crate::pii::PiiMode>,
    /// Protect content bound for local engines too (accounts only).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pii_local: bool,
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
    /// Narrows the account's routing: its regions within the account's, its
    /// PII mode over the account's.
    pub routing: Routing,
    pub created_at: OffsetDateTime,
    pub revoked_at: Option<OffsetDateTime>,
    pub last_used_at: Option<OffsetDateTime>,
    pub usage: UsageFigures,
    /// What the key may spend in a calendar month (UTC), micro-USD.
    pub budget_micro: Option<i64>,
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
    /// Characters billed by a speech request (text requests count tokens).
    pub characters: u64,
    /// Images made by an image request.
    pub images: u64,
    /// Milliseconds of video or music made.
    pub media_ms: u64,
    pub latency_us: u64,
    pub error_code: Option<String>,
    pub client_ip: Option<String>,
    /// What it cost and whom it charges (set when it is recorded).
    pub charge: Charge,
}

/// The money side of a usage event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Charge {
    /// What the request cost, micro-USD (0 for a sandbox key).
    pub cost_micro: i64,
    /// Whether the cost comes off the account's balance (not for sandbox
    /// keys, nor for invoiced plans, whose spend is billed monthly).
    pub debit: bool,
    /// Made with a sandbox key (`mmx_test_`): shown apart, never charged.
    pub sandbox: bool,
    /// Credit holds the request took, released as it is charged.
    pub holds: Vec<String>,
    /// Tokens counted against the tokens-per-minute limits at admission,
    /// settled against what it used when it is recorded (not stored).
    pub tokens: Option<TokenCharge>,
}

/// Tokens counted for a request at admission, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenCharge {
    pub buckets: Vec<crate::ratelimit::Bucket>,
    pub admitted: u64,
}

/// An entry of an account's privacy action log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrivacyRecord {
    pub id: i64,
    pub account_id: String,
    pub at: OffsetDateTime,
    pub action: String,
    pub subject: String,
    /// Metadata as JSON.
    pub detail: String,
}

/// How much of one data category an account has (the privacy dashboard).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CategoryFigures {
    pub count: u64,
    pub bytes: u64,
    pub oldest: Option<OffsetDateTime>,
}

/// A request and its response kept while the account's debug logging is
/// on: sealed under the master key, gone at `expires_at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DebugRecord {
    pub id: i64,
    pub account_id: String,
    pub at: OffsetDateTime,
    pub request_id: String,
    pub endpoint: String,
    pub status: u16,
    pub sealed: Vec<u8>,
    pub expires_at: OffsetDateTime,
}

/// A support ticket; its subject is sealed at rest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketRecord {
    pub id: String,
    pub account_id: String,
    pub subject: Vec<u8>,
    /// `open` or `closed`.
    pub status: String,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub closed_at: Option<OffsetDateTime>,
}

/// A message of a support ticket; its body is sealed at rest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketMessageRecord {
    pub id: i64,
    pub ticket_id: String,
    pub account_id: String,
    pub at: OffsetDateTime,
    /// `customer` or `operator`.
    pub author: String,
    pub body: Vec<u8>,
}

/// A value sealed under the master key outside files and tasks, to
/// rewrap when the master key rotates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SealedRow {
    TicketSubject {
        ticket_id: String,
    },
    TicketMessage {
        id: i64,
        ticket_id: String,
    },
    DebugLog {
        id: i64,
        account_id: String,
        request_id: String,
    },
}

/// Credit set aside for a request still running.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreditHold {
    pub id: String,
    pub account_id: String,
    pub key_id: String,
    pub amount_micro: i64,
    /// When a hold left by a dead process stops counting.
    pub expires_at: OffsetDateTime,
}

/// What a hold is checked against, besides the account's balance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HoldLimits {
    /// Whether the account's balance must cover it (not for invoiced plans).
    pub balance: bool,
    /// The key's monthly budget and the month (`2026-12`) it applies to.
    pub key_budget: Option<(i64, String)>,
}

/// Why a hold was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldRefusal {
    /// The account's balance less its holds, micro-USD.
    Balance { available_micro: i64 },
    /// What is left of the key's monthly budget, micro-USD.
    KeyBudget { remaining_micro: i64 },
}

/// Credit added to an account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerEntry {
    pub id: i64,
    pub account_id: String,
    pub at: OffsetDateTime,
    pub amount_micro: i64,
    /// `starting` or `grant`.
    pub kind: String,
    pub note: String,
}

/// Spend of one key on one model in one month: a statement line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BillingLine {
    pub month: String,
    pub key_id: String,
    pub model: String,
    pub sandbox: bool,
    pub requests: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub characters: u64,
    pub images: u64,
    pub media_ms: u64,
    pub cost_micro: i64,
}

/// One day's usage of one key with one model (the hub's charts).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DailyUsage {
    /// Days since 1970-01-01 (UTC).
    pub day: i64,
    pub key_id: String,
    /// Empty for requests without a model.
    pub model: String,
    pub requests: u64,
    pub tokens: u64,
    pub characters: u64,
    pub cost_micro: i64,
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

/// A stored file's metadata. The bytes are an encrypted blob named by the id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRecord {
    pub id: i64,
    pub account_id: String,
    pub purpose: String,
    pub filename: String,
    /// What the content was recognised as (`mp3`, `wav`, `txt`, `tar`, …).
    pub kind: String,
    pub bytes: u64,
    /// The master key that wraps this file's data key.
    pub key_id: String,
    pub wrapped_key: Vec<u8>,
    pub created_at: OffsetDateTime,
    pub expires_at: Option<OffsetDateTime>,
}

/// A durable task's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskStatus {
    Queued,
    Processing,
    Success,
    Failed,
}

impl TaskStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Queued => "queued",
            TaskStatus::Processing => "processing",
            TaskStatus::Success => "success",
            TaskStatus::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "queued" => TaskStatus::Queued,
            "processing" => TaskStatus::Processing,
            "success" => TaskStatus::Success,
            "failed" => TaskStatus::Failed,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskRecord {
    pub id: i64,
    pub account_id: String,
    pub key_id: String,
    pub kind: String,
    pub status: TaskStatus,
    /// The request, sealed (see `crypto::Sealer`); empty once the task ended.
    pub params: Vec<u8>,
    /// The output file's id, reserved at creation.
    pub file_id: Option<i64>,
    /// Metadata of the outcome as JSON (lengths, counts; never content).
    pub result: Option<String>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub attempts: u32,
    pub lease_until: Option<OffsetDateTime>,
    /// How far a running task has come, percent (its runner reports it).
    pub progress: u32,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

/// How a task ended.
#[derive(Debug, Clone)]
pub struct TaskEnd {
    pub status: TaskStatus,
    pub result: Option<String>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    /// The output file, recorded in the same transaction.
    pub file: Option<FileRecord>,
}

/// A webhook delivery still to be made: kept until the receiver takes it
/// or its 24 hours pass, so a restart loses none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookRecord {
    pub id: i64,
    pub account_id: String,
    /// The URL and the body, sealed (the URL may carry the receiver's token).
    pub payload: Vec<u8>,
    /// Attempts started so far.
    pub attempts: u32,
    pub created_at: OffsetDateTime,
}

/// An account's own voice (designed or cloned): engine parameters as JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoiceRecord {
    pub account_id: String,
    pub voice_id: String,
    /// `voice_cloning` or `voice_generation`.
    pub kind: String,
    pub profile: String,
    pub created_at: OffsetDateTime,
    /// First use in a real synthesis; an unused voice expires.
    pub used_at: Option<OffsetDateTime>,
    pub deleted_at: Option<OffsetDateTime>,
}

/// Accounts and their keys: who may call, with what limits. Every change that affects authentication changes the auth epoch.
#[async_trait]
pub trait AccountStore: Send + Sync + 'static {
    /// A value that changes whenever a key or account changes in a way that
    /// affects authentication (revocation, plan, limits), or the models an
    /// account sees change (a fine-tuned model made or deleted, a privacy
    /// deletion), by any process sharing this store. `None` when the store has no cheap way to tell: then nothing
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
    /// Replaces an account's routing limits (regions, PII); false when no
    /// such account. Changes the auth epoch, so cached callers are re-read.
    async fn set_account_routing(&self, id: &str, routing: &Routing) -> Result<bool>;
    /// Changes an account's plan and custom limits (changes the auth
    /// epoch: cached callers carry the plan); false when there is none.
    async fn set_account_plan(
        &self,
        id: &str,
        plan: maximin_types::Plan,
        limits: Option<maximin_types::CustomLimits>,
    ) -> Result<bool>;
    /// The same for one key.
    async fn set_key_routing(&self, id: &str, routing: &Routing) -> Result<bool>;
    /// Marks a key revoked; returns false when it was already revoked or absent.
    async fn revoke_key(&self, id: &str, at: OffsetDateTime) -> Result<bool>;
    /// Sets or clears a key's monthly budget.
    async fn set_key_budget(&self, key_id: &str, budget_micro: Option<i64>) -> Result<bool>;
}

/// What requests used and cost: the activity log, the keys' figures, credit, holds, the ledger and the monthly billing lines.
#[async_trait]
pub trait UsageStore: Send + Sync + 'static {
    /// Appends events to the activity log and adds them to the keys'
    /// figures; in the same transaction, adds their cost to the monthly
    /// billing lines, takes what they debit off the balances and removes
    /// their credit holds.
    async fn record_usage(&self, events: &[UsageEvent]) -> Result<()>;
    /// Takes a credit hold if the account's balance less its live holds
    /// (and the key's budget less its month's spend and holds) covers it:
    /// one statement, so concurrent holds cannot overdraw.
    async fn hold_credit(
        &self,
        hold: &CreditHold,
        limits: &HoldLimits,
        now: OffsetDateTime,
    ) -> Result<std::result::Result<(), HoldRefusal>>;
    /// Removes holds (a request that ended without being metered).
    async fn release_holds(&self, ids: &[String]) -> Result<()>;
    /// An account's balance and the credit its live holds set aside.
    async fn credit(&self, account_id: &str, now: OffsetDateTime) -> Result<(i64, i64)>;
    /// What a key spent in a month (`2026-12`), and its live holds.
    async fn key_spend(&self, key_id: &str, month: &str, now: OffsetDateTime)
        -> Result<(i64, i64)>;
    /// Adds credit to an account (a ledger entry and the balance, together);
    /// returns the new balance, or `None` when there is no such account.
    async fn add_credit(&self, entry: &LedgerEntry) -> Result<Option<i64>>;
    /// An account's ledger, oldest first.
    async fn ledger(&self, account_id: &str) -> Result<Vec<LedgerEntry>>;
    /// Billing lines of an account for months `from..=to` (`2026-01`).
    async fn billing_lines(
        &self,
        account_id: &str,
        from: &str,
        to: &str,
    ) -> Result<Vec<BillingLine>>;
    /// Retention of billing records (7 years): removes ledger entries made
    /// before `ledger_before`, billing lines of months before
    /// `month_before` (`2019-12`), and holds that lapsed before `now`.
    /// Returns the rows removed.
    async fn sweep_billing(
        &self,
        now: OffsetDateTime,
        ledger_before: OffsetDateTime,
        month_before: &str,
    ) -> Result<u64>;
    /// The newest `limit` events of a key, newest first.
    async fn activity(&self, key_id: &str, limit: u32) -> Result<Vec<UsageEvent>>;
    async fn usage_summary(
        &self,
        account_id: &str,
        since: OffsetDateTime,
        until: OffsetDateTime,
    ) -> Result<UsageSummary>;
    /// An account's usage from `since` by UTC day, key and model.
    async fn usage_daily(&self, account_id: &str, since: OffsetDateTime)
        -> Result<Vec<DailyUsage>>;
}

/// Idempotency records: one claim per key, shared by every process on the store.
#[async_trait]
pub trait IdempotencyStore: Send + Sync + 'static {
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
}

/// File records (the bytes live in a `BlobStore`).
#[async_trait]
pub trait FileStore: Send + Sync + 'static {
    /// Fails with `payload_too_large` when the account's files would pass `quota` bytes.
    async fn insert_file(&self, file: &FileRecord, quota: u64) -> Result<()>;
    async fn file(&self, id: i64) -> Result<Option<FileRecord>>;
    /// An account's files of one purpose (all purposes when `None`), newest first.
    async fn files_of(&self, account_id: &str, purpose: Option<&str>) -> Result<Vec<FileRecord>>;
    /// Removes the record; returns false when there was none.
    async fn delete_file(&self, id: i64) -> Result<bool>;
    /// Up to `limit` files whose `expires_at` has passed.
    async fn expired_files(&self, now: OffsetDateTime, limit: u32) -> Result<Vec<FileRecord>>;
    /// Every file's (id, key id, wrapped key), to rewrap under a new master key.
    async fn file_keys(&self) -> Result<Vec<(i64, String, Vec<u8>)>>;
    async fn set_file_key(&self, id: i64, key_id: &str, wrapped_key: &[u8]) -> Result<()>;
}

/// Durable tasks and their webhook deliveries, claimed under leases by any process on the store.
#[async_trait]
pub trait TaskStore: Send + Sync + 'static {
    async fn insert_task(&self, task: &TaskRecord) -> Result<()>;
    async fn task(&self, id: i64) -> Result<Option<TaskRecord>>;
    /// Takes the oldest queued task of these kinds, or a processing one whose
    /// lease ran out before `now` (its runner died): marks it processing until
    /// `lease_until` and counts the attempt. Atomic across processes.
    async fn claim_task(
        &self,
        kinds: &[String],
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
    ) -> Result<Option<TaskRecord>>;
    /// Extends the lease of attempt `attempt`; false when the task moved on.
    /// Extends a running task's lease and records its progress (percent);
    /// false when the attempt no longer owns the task.
    async fn renew_task(
        &self,
        id: i64,
        attempt: u32,
        lease_until: OffsetDateTime,
        progress: u32,
    ) -> Result<bool>;
    /// Ends attempt `attempt` (and records its output file) in one
    /// transaction; false, with nothing written, when another attempt owns the
    /// task now or it already ended.
    async fn end_task(
        &self,
        id: i64,
        attempt: u32,
        end: &TaskEnd,
        now: OffsetDateTime,
    ) -> Result<bool>;
    /// Every unfinished task's (id, params), to rewrap under a new master key.
    async fn task_params(&self) -> Result<Vec<(i64, Vec<u8>)>>;
    async fn set_task_params(&self, id: i64, params: &[u8]) -> Result<()>;
    /// Records a delivery, held by its caller (one attempt counted) until
    /// `lease_until`.
    async fn insert_webhook(
        &self,
        record: &WebhookRecord,
        lease_until: OffsetDateTime,
    ) -> Result<()>;
    /// Takes up to `limit` deliveries that are due (their pause over) and
    /// held by no one (a lease that ran out counts as none): holds them
    /// until `lease_until` and counts an attempt. Atomic across processes.
    async fn claim_webhooks(
        &self,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<WebhookRecord>>;
    /// Lets the delivery go until `next_at` (the next attempt's time).
    async fn retry_webhook(&self, id: i64, next_at: OffsetDateTime) -> Result<()>;
    /// The delivery was taken, or given up.
    async fn delete_webhook(&self, id: i64) -> Result<()>;
    /// Every waiting delivery's (id, payload), to rewrap under a new master key.
    async fn webhook_payloads(&self) -> Result<Vec<(i64, Vec<u8>)>>;
    async fn set_webhook_payload(&self, id: i64, payload: &[u8]) -> Result<()>;
}

pub use crate::finetune::store::FineTuneStore;
pub use crate::people::store::PeopleStore;

/// The accounts' own voices.
#[async_trait]
pub trait VoiceStore: Send + Sync + 'static {
    /// Inserts a voice; false when the account has (or had) a voice with that id.
    async fn insert_voice(&self, voice: &VoiceRecord) -> Result<bool>;
    /// The voice, deleted or not.
    async fn voice(&self, account_id: &str, voice_id: &str) -> Result<Option<VoiceRecord>>;
    async fn voices_of(&self, account_id: &str) -> Result<Vec<VoiceRecord>>;
    /// Records the first real use (later uses keep the first time).
    async fn mark_voice_used(
        &self,
        account_id: &str,
        voice_id: &str,
        at: OffsetDateTime,
    ) -> Result<()>;
    /// Marks a live voice deleted; false when there was none.
    async fn delete_voice(
        &self,
        account_id: &str,
        voice_id: &str,
        at: OffsetDateTime,
    ) -> Result<bool>;
    /// Deletes voices created before `unused_since` and never used; returns how many.
    async fn expire_voices(&self, unused_since: OffsetDateTime, now: OffsetDateTime)
        -> Result<u64>;
}

/// An account's whole life: the privacy log and dashboard, retention, closure and purge, debug logs, support tickets.
#[async_trait]
pub trait LifecycleStore: Send + Sync + 'static {
    /// Appends to an account's privacy log (there is no statement that
    /// changes or removes an entry).
    async fn append_privacy(&self, record: &PrivacyRecord) -> Result<()>;
    /// An account's privacy log, oldest first.
    async fn privacy_log(&self, account_id: &str) -> Result<Vec<PrivacyRecord>>;
    /// Deletes what has outlived its retention: idempotency records past
    /// their expiry, usage events and ended task records older than
    /// `usage_retention`; returns how many rows went.
    async fn sweep(&self, now: OffsetDateTime, usage_retention: time::Duration) -> Result<u64>;
    /// How many records of a category the account has, their size and the
    /// oldest one's time (files: every file row, expired or not).
    async fn category_figures(
        &self,
        account_id: &str,
        category: DataCategory,
    ) -> Result<CategoryFigures>;
    /// The account's usage events with ids above `after_id`, oldest first,
    /// at most `limit` (an export reads them page by page).
    async fn usage_page(
        &self,
        account_id: &str,
        after_id: i64,
        limit: u32,
    ) -> Result<Vec<(i64, UsageEvent)>>;
    /// The account's task records, oldest first.
    async fn tasks_of(&self, account_id: &str) -> Result<Vec<TaskRecord>>;
    /// Deletes an account's records of a category the owner may delete now
    /// (usage logs, debug logs, ended task records; voices are marked
    /// deleted, keeping only their ids; fine-tuning jobs that have ended,
    /// whose run has stopped and whose model is deleted or was never made,
    /// with their events and checkpoints); returns how many. Files go
    /// through the file store, which removes their bytes too; fine-tuned
    /// models through the platform, which removes their adapters.
    async fn delete_records(
        &self,
        account_id: &str,
        category: DataCategory,
        now: OffsetDateTime,
    ) -> Result<u64>;
    /// Closes an account: marks it closed, revokes every key, turns debug
    /// logging off and deletes its debug logs, closes its open support
    /// tickets (their 2 years start), marks its fine-tuned models deleted
    /// (their adapters go with its files), in one transaction. Returns
    /// the keys revoked, or `None` when there is no such open account.
    async fn close_account(&self, id: &str, at: OffsetDateTime) -> Result<Option<u64>>;
    /// Accounts closed before `closed_before` whose profile is still held.
    async fn closed_accounts(&self, closed_before: OffsetDateTime) -> Result<Vec<String>>;
    /// Purges a closed account's profile: the account, its keys, usage
    /// events, tasks, voices, privacy log and what else names it, but
    /// billing records (kept 7 years) and support tickets (kept 2 years
    /// after closing). Its files go first, through the file store. False
    /// when there is no such closed account.
    async fn purge_account(&self, id: &str) -> Result<bool>;
    /// Turns debug logging on until `until`, or off (`None`, deleting what
    /// it kept); false when there is no such account.
    async fn set_debug_until(&self, id: &str, until: Option<OffsetDateTime>) -> Result<bool>;
    async fn insert_debug_log(&self, record: &DebugRecord) -> Result<()>;
    async fn debug_logs_of(&self, account_id: &str) -> Result<Vec<DebugRecord>>;
    /// Deletes debug logs whose window ended by `now`; returns how many.
    async fn sweep_debug_logs(&self, now: OffsetDateTime) -> Result<u64>;
    /// Opens a ticket with its first message.
    async fn insert_ticket(&self, ticket: &TicketRecord, first: &TicketMessageRecord)
        -> Result<()>;
    async fn ticket(&self, id: &str) -> Result<Option<TicketRecord>>;
    /// The account's tickets, newest first.
    async fn tickets_of(&self, account_id: &str) -> Result<Vec<TicketRecord>>;
    /// Adds a message to an open ticket; false when it is closed or absent.
    async fn add_ticket_message(&self, message: &TicketMessageRecord) -> Result<bool>;
    /// A ticket's messages, oldest first.
    async fn ticket_messages(&self, ticket_id: &str) -> Result<Vec<TicketMessageRecord>>;
    /// Closes an open ticket; false when it was closed or absent.
    async fn close_ticket(&self, id: &str, at: OffsetDateTime) -> Result<bool>;
    /// Every support subject and message and every debug log, sealed.
    async fn sealed_rows(&self) -> Result<Vec<(SealedRow, Vec<u8>)>>;
    async fn set_sealed_row(&self, row: &SealedRow, sealed: &[u8]) -> Result<()>;
    /// Deletes tickets (and their messages) closed before `closed_before`.
    async fn sweep_tickets(&self, closed_before: OffsetDateTime) -> Result<u64>;
}

/// Everything the platform keeps, as one object: a backend implements each
/// part, and `Store` comes with them.
pub trait Store:
    AccountStore
    + UsageStore
    + IdempotencyStore
    + FileStore
    + TaskStore
    + VoiceStore
    + LifecycleStore
    + PeopleStore
    + FineTuneStore
{
}

impl<T> Store for T where
    T: AccountStore
        + UsageStore
        + IdempotencyStore
        + FileStore
        + TaskStore
        + VoiceStore
        + LifecycleStore
        + PeopleStore
        + FineTuneStore
{
}

/// Every store trait, for code that calls a backend's methods on its own
/// type (`use maximin_core::store::traits::*`); `dyn Store` needs none.
pub mod traits {
    pub use super::{
        AccountStore, FileStore, FineTuneStore, IdempotencyStore, LifecycleStore, PeopleStore,
        Store, TaskStore, UsageStore, VoiceStore,
    };
}

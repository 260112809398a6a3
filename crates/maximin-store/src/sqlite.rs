use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use maximin_core::store::{
    Account, ApiKey, BillingLine, CategoryFigures, CreditHold, DebugRecord, FileRecord, HoldLimits,
    HoldRefusal, IdemState, LedgerEntry, PrivacyRecord, Routing, SealedRow, Store, TaskEnd,
    TaskRecord, TaskStatus, TicketMessageRecord, TicketRecord, UsageEvent, UsageSummary,
    VoiceRecord, WebhookRecord,
};
use maximin_core::{Error, Result};
use maximin_types::{CustomLimits, DataCategory, Plan, Scope, UsageFigures};

use crate::lifecycle;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{Row, SqlitePool};
use time::OffsetDateTime;

/// Migrations, applied in order at start; each runs once.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "core",
        include_str!("../migrations/sqlite/0001_core.sql"),
    ),
    (
        2,
        "files_tasks_voices",
        include_str!("../migrations/sqlite/0002_files_tasks_voices.sql"),
    ),
    (
        3,
        "routing",
        include_str!("../migrations/sqlite/0003_routing.sql"),
    ),
    (
        4,
        "usage_characters",
        include_str!("../migrations/sqlite/0004_usage_characters.sql"),
    ),
    (
        5,
        "task_progress",
        include_str!("../migrations/sqlite/0005_task_progress.sql"),
    ),
    (
        6,
        "usage_media",
        include_str!("../migrations/sqlite/0006_usage_media.sql"),
    ),
    (
        7,
        "webhook_deliveries",
        include_str!("../migrations/sqlite/0007_webhook_deliveries.sql"),
    ),
    (
        8,
        "billing",
        include_str!("../migrations/sqlite/0008_billing.sql"),
    ),
    (
        9,
        "privacy_log",
        include_str!("../migrations/sqlite/0009_privacy_log.sql"),
    ),
    (
        10,
        "account_lifecycle",
        include_str!("../migrations/sqlite/0010_account_lifecycle.sql"),
    ),
];

#[derive(Clone)]
pub struct SqliteStore {
    pub(crate) pool: SqlitePool,
    epoch: Arc<AuthEpochFile>,
}

/// The auth epoch of a SQLite store: 8 bytes in a file beside the database,
/// rewritten with a fresh random value after every change that affects
/// authentication. Every process that opens the database opens this file too,
/// so the server sees the CLI's revocations on the next request at the cost of
/// one `pread`, not a query.
struct AuthEpochFile {
    file: Option<std::fs::File>,
}

impl AuthEpochFile {
    fn open(db: &Path) -> Self {
        let mut name = db.as_os_str().to_owned();
        name.push(".auth-epoch");
        let mut opts = std::fs::OpenOptions::new();
        opts.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let file = opts
            .open(PathBuf::from(name))
            .map_err(|e| tracing::warn!(error = %e, "auth epoch file unavailable: keys will not be cached"))
            .ok();
        let f = AuthEpochFile { file };
        if f.read().is_none() {
            f.bump();
        }
        f
    }

    #[cfg(unix)]
    fn read(&self) -> Option<u64> {
        use std::os::unix::fs::FileExt;
        let mut buf = [0u8; 8];
        match self.file.as_ref()?.read_at(&mut buf, 0) {
            Ok(8) => Some(u64::from_le_bytes(buf)),
            _ => None,
        }
    }

    #[cfg(unix)]
    fn bump(&self) {
        use std::os::unix::fs::FileExt;
        if let Some(f) = &self.file {
            if let Err(e) = f.write_all_at(&rand_u64().to_le_bytes(), 0) {
                tracing::error!(error = %e, "cannot change the auth epoch");
            }
        }
    }

    #[cfg(not(unix))]
    fn read(&self) -> Option<u64> {
        None
    }

    #[cfg(not(unix))]
    fn bump(&self) {}
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    // RandomState is seeded from the OS; mixing in the time makes each call differ.
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.finish()
}

/// Creates an empty file 0600 at `path` unless one is there.
fn create_private(path: &Path) -> Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    match opts.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(Error::internal(format!("creating {}: {e}", path.display()))),
    }
}

pub(crate) fn db_err(e: sqlx::Error) -> Error {
    Error::internal(format!("database: {e}"))
}

pub(crate) fn ms(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

pub(crate) fn from_ms(v: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(v) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

fn u(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn i(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl SqliteStore {
    /// Opens (creating if needed) the database file and applies migrations.
    /// A new database file is made 0600 before SQLite opens it; SQLite gives
    /// its `-wal` and `-shm` files the database file's mode.
    pub async fn open(path: &Path) -> Result<Self> {
        create_private(path)?;
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .min_connections(1)
            .connect_with(options)
            .await
            .map_err(|e| Error::internal(format!("opening {}: {e}", path.display())))?;
        let store = SqliteStore {
            pool,
            epoch: Arc::new(AuthEpochFile::open(path)),
        };
        store.migrate().await?;
        Ok(store)
    }

    async fn migrate(&self) -> Result<()> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)",
        )
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        let applied: Vec<i64> = sqlx::query_scalar("SELECT version FROM schema_migrations")
            .fetch_all(&mut *tx)
            .await
            .map_err(db_err)?;
        for (version, name, sql) in MIGRATIONS {
            if applied.contains(version) {
                continue;
            }
            sqlx::raw_sql(sql).execute(&mut *tx).await.map_err(db_err)?;
            sqlx::query(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
            )
            .bind(version)
            .bind(name)
            .bind(ms(OffsetDateTime::now_utc()))
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        }
        tx.commit().await.map_err(db_err)
    }

    /// Writes an account's or a key's routing limits. Cached callers carry
    /// the old ones: the auth epoch changes, so the next request reads anew.
    async fn set_routing(&self, sql: &str, id: &str, routing: &Routing) -> Result<bool> {
        let res = sqlx::query(sql)
            .bind(routing_text(routing)?)
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        self.epoch.bump();
        Ok(res.rows_affected() == 1)
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

fn account_from(row: &SqliteRow) -> Result<Account> {
    let plan: String = row.get("plan");
    let rpm: Option<i64> = row.get("rpm");
    let burst: Option<i64> = row.get("burst");
    Ok(Account {
        id: row.get("id"),
        email: row.get("email"),
        plan: Plan::from_str(&plan).map_err(Error::internal)?,
        limits: limits_from(rpm, burst, row.get("tpm")),
        routing: routing_from(row.get("routing"))?,
        created_at: from_ms(row.get("created_at")),
        operator: row.get::<i64, _>("operator") != 0,
        closed_at: row.get::<Option<i64>, _>("closed_at").map(from_ms),
        debug_until: row.get::<Option<i64>, _>("debug_until").map(from_ms),
    })
}

fn routing_from(text: String) -> Result<Routing> {
    serde_json::from_str(&text).map_err(Error::internal)
}

fn routing_text(r: &Routing) -> Result<String> {
    serde_json::to_string(r).map_err(Error::internal)
}

fn limits_from(rpm: Option<i64>, burst: Option<i64>, tpm: Option<i64>) -> Option<CustomLimits> {
    rpm.map(|rpm| CustomLimits {
        rpm: u32::try_from(rpm).unwrap_or(u32::MAX),
        burst: u32::try_from(burst.unwrap_or(0)).unwrap_or(u32::MAX),
        tpm: tpm.map(|t| u32::try_from(t).unwrap_or(u32::MAX)),
    })
}

fn key_from(row: &SqliteRow) -> Result<ApiKey> {
    let scopes: String = row.get("scopes");
    let models: String = row.get("models");
    Ok(ApiKey {
        id: row.get("id"),
        account_id: row.get("account_id"),
        name: row.get("name"),
        prefix: row.get("prefix"),
        hash: row.get("hash"),
        test: row.get::<i64, _>("test") != 0,
        scopes: serde_json::from_str::<Vec<Scope>>(&scopes).map_err(Error::internal)?,
        models: serde_json::from_str(&models).map_err(Error::internal)?,
        routing: routing_from(row.get("routing"))?,
        created_at: from_ms(row.get("created_at")),
        revoked_at: row.get::<Option<i64>, _>("revoked_at").map(from_ms),
        last_used_at: row.get::<Option<i64>, _>("last_used_at").map(from_ms),
        usage: figures_from(row),
        budget_micro: row.get("budget_micro"),
    })
}

pub(crate) fn event_from(row: &SqliteRow) -> UsageEvent {
    UsageEvent {
        at: from_ms(row.get("at")),
        account_id: row.get("account_id"),
        key_id: row.get("key_id"),
        request_id: row.get("request_id"),
        method: row.get("method"),
        endpoint: row.get("endpoint"),
        status: u16::try_from(row.get::<i64, _>("status")).unwrap_or(0),
        model: row.get("model"),
        prompt_tokens: u(row.get("prompt_tokens")),
        completion_tokens: u(row.get("completion_tokens")),
        characters: u(row.get("characters")),
        images: u(row.get("images")),
        media_ms: u(row.get("media_ms")),
        latency_us: u(row.get("latency_us")),
        error_code: row.get("error_code"),
        client_ip: row.get("client_ip"),
        charge: maximin_core::store::Charge {
            cost_micro: row.get("cost_micro"),
            ..Default::default()
        },
    }
}

fn figures_from(row: &SqliteRow) -> UsageFigures {
    UsageFigures {
        requests: u(row.get("requests")),
        errors: u(row.get("errors")),
        prompt_tokens: u(row.get("prompt_tokens")),
        completion_tokens: u(row.get("completion_tokens")),
        characters: u(row.get("characters")),
        images: u(row.get("images")),
        media_ms: u(row.get("media_ms")),
    }
}

const KEY_COLUMNS: &str = "id, account_id, name, prefix, hash, test, scopes, models, created_at, revoked_at, last_used_at, requests, errors, prompt_tokens, completion_tokens, characters, images, media_ms, routing, budget_micro";

const FILE_COLUMNS: &str =
    "id, account_id, purpose, filename, kind, bytes, key_id, wrapped_key, created_at, expires_at";

fn file_from(row: &SqliteRow) -> FileRecord {
    FileRecord {
        id: row.get("id"),
        account_id: row.get("account_id"),
        purpose: row.get("purpose"),
        filename: row.get("filename"),
        kind: row.get("kind"),
        bytes: u(row.get("bytes")),
        key_id: row.get("key_id"),
        wrapped_key: row.get("wrapped_key"),
        created_at: from_ms(row.get("created_at")),
        expires_at: row.get::<Option<i64>, _>("expires_at").map(from_ms),
    }
}

pub(crate) const TASK_COLUMNS: &str = "id, account_id, key_id, kind, status, params, file_id, result, error_code, error_message, attempts, lease_until, progress, created_at, updated_at";

pub(crate) fn task_from(row: &SqliteRow) -> Result<TaskRecord> {
    let status: String = row.get("status");
    Ok(TaskRecord {
        id: row.get("id"),
        account_id: row.get("account_id"),
        key_id: row.get("key_id"),
        kind: row.get("kind"),
        status: TaskStatus::parse(&status)
            .ok_or_else(|| Error::internal(format!("task status '{status}'")))?,
        params: row.get::<Option<Vec<u8>>, _>("params").unwrap_or_default(),
        file_id: row.get("file_id"),
        result: row.get("result"),
        error_code: row.get("error_code"),
        error_message: row.get("error_message"),
        attempts: u32::try_from(row.get::<i64, _>("attempts")).unwrap_or(u32::MAX),
        lease_until: row.get::<Option<i64>, _>("lease_until").map(from_ms),
        progress: u32::try_from(row.get::<i64, _>("progress")).unwrap_or(0),
        created_at: from_ms(row.get("created_at")),
        updated_at: from_ms(row.get("updated_at")),
    })
}

const VOICE_COLUMNS: &str = "account_id, voice_id, kind, profile, created_at, used_at, deleted_at";

fn voice_from(row: &SqliteRow) -> VoiceRecord {
    VoiceRecord {
        account_id: row.get("account_id"),
        voice_id: row.get("voice_id"),
        kind: row.get("kind"),
        profile: row.get("profile"),
        created_at: from_ms(row.get("created_at")),
        used_at: row.get::<Option<i64>, _>("used_at").map(from_ms),
        deleted_at: row.get::<Option<i64>, _>("deleted_at").map(from_ms),
    }
}

async fn insert_file_in(
    conn: &mut sqlx::SqliteConnection,
    f: &FileRecord,
    quota: u64,
) -> Result<()> {
    // One statement: the sum and the insert cannot interleave with another writer.
    let res = sqlx::query(
        "INSERT INTO files (id, account_id, purpose, filename, kind, bytes, key_id, wrapped_key, created_at, expires_at) \
         SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ? \
         WHERE (SELECT COALESCE(SUM(bytes), 0) FROM files WHERE account_id = ?) + ? <= ?",
    )
    .bind(f.id)
    .bind(&f.account_id)
    .bind(&f.purpose)
    .bind(&f.filename)
    .bind(&f.kind)
    .bind(i(f.bytes))
    .bind(&f.key_id)
    .bind(&f.wrapped_key)
    .bind(ms(f.created_at))
    .bind(f.expires_at.map(ms))
    .bind(&f.account_id)
    .bind(i(f.bytes))
    .bind(i(quota))
    .execute(conn)
    .await
    .map_err(db_err)?;
    if res.rows_affected() == 0 {
        return Err(Error::new(
            maximin_types::ErrorCode::PayloadTooLarge,
            format!(
                "This file would take the account's files past its {} GB; delete files first.",
                quota / 1_000_000_000
            ),
        )
        .with("quota_bytes", quota));
    }
    Ok(())
}

#[async_trait]
impl Store for SqliteStore {
    async fn auth_epoch(&self) -> Result<Option<u64>> {
        Ok(self.epoch.read())
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn insert_account(&self, a: &Account) -> Result<()> {
        let res = sqlx::query(
            "INSERT INTO accounts (id, email, plan, rpm, burst, tpm, routing, created_at, operator) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&a.id)
        .bind(&a.email)
        .bind(a.plan.as_str())
        .bind(a.limits.map(|l| i64::from(l.rpm)))
        .bind(a.limits.map(|l| i64::from(l.burst)))
        .bind(a.limits.and_then(|l| l.tpm).map(i64::from))
        .bind(routing_text(&a.routing)?)
        .bind(ms(a.created_at))
        .bind(i64::from(a.operator))
        .execute(&self.pool)
        .await;
        match res {
            Ok(_) => Ok(()),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Err(Error::invalid(
                "email",
                format!("An account with the email '{}' already exists.", a.email),
            )),
            Err(e) => Err(db_err(e)),
        }
    }

    async fn account(&self, id: &str) -> Result<Option<Account>> {
        sqlx::query(
            "SELECT id, email, plan, rpm, burst, tpm, routing, created_at, operator, closed_at, debug_until FROM accounts WHERE id = ?",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?
        .as_ref()
        .map(account_from)
        .transpose()
    }

    async fn list_accounts(&self) -> Result<Vec<Account>> {
        sqlx::query(
            "SELECT id, email, plan, rpm, burst, tpm, routing, created_at, operator, closed_at, debug_until FROM accounts ORDER BY created_at, id",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?
        .iter()
        .map(account_from)
        .collect()
    }

    async fn insert_key(&self, k: &ApiKey, max_active: usize) -> Result<bool> {
        let scopes = serde_json::to_string(&k.scopes).map_err(Error::internal)?;
        let models = serde_json::to_string(&k.models).map_err(Error::internal)?;
        // One statement, so the count and the insert cannot interleave with
        // another writer.
        let res = sqlx::query(
            "INSERT INTO api_keys (id, account_id, name, prefix, hash, test, scopes, models, routing, created_at, budget_micro) \
             SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ? \
             WHERE (SELECT COUNT(*) FROM api_keys WHERE account_id = ? AND revoked_at IS NULL) < ?",
        )
        .bind(&k.id)
        .bind(&k.account_id)
        .bind(&k.name)
        .bind(&k.prefix)
        .bind(&k.hash)
        .bind(i64::from(k.test))
        .bind(scopes)
        .bind(models)
        .bind(routing_text(&k.routing)?)
        .bind(ms(k.created_at))
        .bind(k.budget_micro)
        .bind(&k.account_id)
        .bind(i64::try_from(max_active).unwrap_or(i64::MAX))
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(res.rows_affected() == 1)
    }

    async fn key_by_hash(&self, hash: &str) -> Result<Option<(ApiKey, Account)>> {
        let row = sqlx::query(
            "SELECT k.id, k.account_id, k.name, k.prefix, k.hash, k.test, k.scopes, k.models, k.created_at, \
             k.revoked_at, k.last_used_at, k.requests, k.errors, k.prompt_tokens, k.completion_tokens, \
             k.characters, k.images, k.media_ms, k.routing, a.email, a.plan, a.rpm, a.burst, a.tpm, a.routing AS account_routing, \
             a.created_at AS account_created_at, a.operator, a.closed_at, a.debug_until, k.budget_micro \
             FROM api_keys k JOIN accounts a ON a.id = k.account_id WHERE k.hash = ?",
        )
        .bind(hash)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        let Some(row) = row else { return Ok(None) };
        let key = key_from(&row)?;
        let plan: String = row.get("plan");
        let rpm: Option<i64> = row.get("rpm");
        let account = Account {
            id: key.account_id.clone(),
            email: row.get("email"),
            plan: Plan::from_str(&plan).map_err(Error::internal)?,
            limits: limits_from(rpm, row.get("burst"), row.get("tpm")),
            routing: routing_from(row.get("account_routing"))?,
            created_at: from_ms(row.get("account_created_at")),
            operator: row.get::<i64, _>("operator") != 0,
            closed_at: row.get::<Option<i64>, _>("closed_at").map(from_ms),
            debug_until: row.get::<Option<i64>, _>("debug_until").map(from_ms),
        };
        Ok(Some((key, account)))
    }

    async fn key(&self, id: &str) -> Result<Option<ApiKey>> {
        sqlx::query(&format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE id = ?"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?
            .as_ref()
            .map(key_from)
            .transpose()
    }

    async fn keys_of(&self, account_id: &str) -> Result<Vec<ApiKey>> {
        sqlx::query(&format!(
            "SELECT {KEY_COLUMNS} FROM api_keys WHERE account_id = ? ORDER BY created_at, id"
        ))
        .bind(account_id)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?
        .iter()
        .map(key_from)
        .collect()
    }

    async fn set_account_routing(&self, id: &str, routing: &Routing) -> Result<bool> {
        self.set_routing("UPDATE accounts SET routing = ? WHERE id = ?", id, routing)
            .await
    }

    async fn set_key_routing(&self, id: &str, routing: &Routing) -> Result<bool> {
        self.set_routing("UPDATE api_keys SET routing = ? WHERE id = ?", id, routing)
            .await
    }

    async fn revoke_key(&self, id: &str, at: OffsetDateTime) -> Result<bool> {
        let res =
            sqlx::query("UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL")
                .bind(ms(at))
                .bind(id)
                .execute(&self.pool)
                .await
                .map_err(db_err)?;
        self.epoch.bump();
        Ok(res.rows_affected() == 1)
    }

    async fn record_usage(&self, events: &[UsageEvent]) -> Result<()> {
        let mut per_key: HashMap<&str, (UsageFigures, i64)> = HashMap::new();
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        // 52 rows to a statement (17 parameters each: 884, under SQLite's
        // oldest limit of 999). A statement per row cost a round trip to
        // SQLite's thread each: a sixth of a gateway request's CPU.
        for chunk in events.chunks(52) {
            let mut q = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
                "INSERT INTO usage_events (at, account_id, key_id, request_id, method, endpoint, status, model, \
                 prompt_tokens, completion_tokens, characters, images, media_ms, latency_us, error_code, client_ip, cost_micro) ",
            );
            q.push_values(chunk, |mut row, e| {
                row.push_bind(ms(e.at))
                    .push_bind(e.account_id.as_str())
                    .push_bind(e.key_id.as_str())
                    .push_bind(e.request_id.as_str())
                    .push_bind(e.method.as_str())
                    .push_bind(e.endpoint.as_str())
                    .push_bind(i64::from(e.status))
                    .push_bind(e.model.as_deref())
                    .push_bind(i(e.prompt_tokens))
                    .push_bind(i(e.completion_tokens))
                    .push_bind(i(e.characters))
                    .push_bind(i(e.images))
                    .push_bind(i(e.media_ms))
                    .push_bind(i(e.latency_us))
                    .push_bind(e.error_code.as_deref())
                    .push_bind(e.client_ip.as_deref())
                    .push_bind(e.charge.cost_micro);
            });
            q.build().execute(&mut *tx).await.map_err(db_err)?;
        }
        for e in events {
            let (f, last) = per_key.entry(&e.key_id).or_default();
            f.requests += 1;
            f.errors += u64::from(e.status >= 400);
            f.prompt_tokens += e.prompt_tokens;
            f.completion_tokens += e.completion_tokens;
            f.characters += e.characters;
            f.images += e.images;
            f.media_ms += e.media_ms;
            *last = (*last).max(ms(e.at));
        }
        for (key_id, (f, last)) in per_key {
            sqlx::query(
                "UPDATE api_keys SET requests = requests + ?, errors = errors + ?, \
                 prompt_tokens = prompt_tokens + ?, completion_tokens = completion_tokens + ?, \
                 characters = characters + ?, images = images + ?, media_ms = media_ms + ?, \
                 last_used_at = CASE WHEN last_used_at IS NULL OR last_used_at < ? THEN ? ELSE last_used_at END \
                 WHERE id = ?",
            )
            .bind(i(f.requests))
            .bind(i(f.errors))
            .bind(i(f.prompt_tokens))
            .bind(i(f.completion_tokens))
            .bind(i(f.characters))
            .bind(i(f.images))
            .bind(i(f.media_ms))
            .bind(last)
            .bind(last)
            .bind(key_id)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        }
        crate::billing::charge(&mut tx, events).await?;
        tx.commit().await.map_err(db_err)
    }

    async fn hold_credit(
        &self,
        hold: &CreditHold,
        limits: &HoldLimits,
        now: OffsetDateTime,
    ) -> Result<std::result::Result<(), HoldRefusal>> {
        crate::billing::hold(&self.pool, hold, limits, now).await
    }

    async fn release_holds(&self, ids: &[String]) -> Result<()> {
        crate::billing::release(&self.pool, ids).await
    }

    async fn credit(&self, account_id: &str, now: OffsetDateTime) -> Result<(i64, i64)> {
        crate::billing::credit(&self.pool, account_id, now).await
    }

    async fn key_spend(
        &self,
        key_id: &str,
        month: &str,
        now: OffsetDateTime,
    ) -> Result<(i64, i64)> {
        crate::billing::key_spend(&self.pool, key_id, month, now).await
    }

    async fn add_credit(&self, entry: &LedgerEntry) -> Result<Option<i64>> {
        crate::billing::add_credit(&self.pool, entry).await
    }

    async fn ledger(&self, account_id: &str) -> Result<Vec<LedgerEntry>> {
        crate::billing::ledger(&self.pool, account_id).await
    }

    async fn billing_lines(
        &self,
        account_id: &str,
        from: &str,
        to: &str,
    ) -> Result<Vec<BillingLine>> {
        crate::billing::lines(&self.pool, account_id, from, to).await
    }

    async fn append_privacy(&self, r: &PrivacyRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO privacy_log (account_id, at, action, subject, detail) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(&r.account_id)
        .bind(ms(r.at))
        .bind(&r.action)
        .bind(&r.subject)
        .bind(&r.detail)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn privacy_log(&self, account_id: &str) -> Result<Vec<PrivacyRecord>> {
        Ok(sqlx::query(
            "SELECT id, account_id, at, action, subject, detail FROM privacy_log \
             WHERE account_id = ? ORDER BY at, id",
        )
        .bind(account_id)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?
        .iter()
        .map(|r| PrivacyRecord {
            id: r.get("id"),
            account_id: r.get("account_id"),
            at: from_ms(r.get("at")),
            action: r.get("action"),
            subject: r.get("subject"),
            detail: r.get("detail"),
        })
        .collect())
    }

    async fn sweep_billing(
        &self,
        now: OffsetDateTime,
        ledger_before: OffsetDateTime,
        month_before: &str,
    ) -> Result<u64> {
        crate::billing::sweep(&self.pool, now, ledger_before, month_before).await
    }

    async fn set_key_budget(&self, key_id: &str, budget_micro: Option<i64>) -> Result<bool> {
        let changed = crate::billing::set_key_budget(&self.pool, key_id, budget_micro).await?;
        // Cached callers carry the old budget.
        self.epoch.bump();
        Ok(changed)
    }

    async fn activity(&self, key_id: &str, limit: u32) -> Result<Vec<UsageEvent>> {
        Ok(sqlx::query(
            "SELECT at, account_id, key_id, request_id, method, endpoint, status, model, prompt_tokens, \
             completion_tokens, characters, images, media_ms, latency_us, error_code, client_ip, cost_micro FROM usage_events \
             WHERE key_id = ? ORDER BY at DESC, id DESC LIMIT ?",
        )
        .bind(key_id)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?
        .iter()
        .map(event_from)
        .collect())
    }

    async fn usage_summary(
        &self,
        account_id: &str,
        since: OffsetDateTime,
        until: OffsetDateTime,
    ) -> Result<UsageSummary> {
        const SUMS: &str = "COUNT(*) AS requests, SUM(CASE WHEN status >= 400 THEN 1 ELSE 0 END) AS errors, \
             COALESCE(SUM(prompt_tokens), 0) AS prompt_tokens, COALESCE(SUM(completion_tokens), 0) AS completion_tokens, \
             COALESCE(SUM(characters), 0) AS characters, COALESCE(SUM(images), 0) AS images, \
             COALESCE(SUM(media_ms), 0) AS media_ms";
        let by_key = sqlx::query(&format!(
            "SELECT key_id AS name, {SUMS} FROM usage_events WHERE account_id = ? AND at >= ? AND at <= ? \
             GROUP BY key_id ORDER BY key_id"
        ))
        .bind(account_id)
        .bind(ms(since))
        .bind(ms(until))
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        let by_model = sqlx::query(&format!(
            "SELECT model AS name, {SUMS} FROM usage_events WHERE account_id = ? AND at >= ? AND at <= ? \
             AND model IS NOT NULL GROUP BY model ORDER BY model"
        ))
        .bind(account_id)
        .bind(ms(since))
        .bind(ms(until))
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        let named = |rows: Vec<SqliteRow>| {
            rows.iter()
                .map(|r| (r.get::<String, _>("name"), figures_from(r)))
                .collect()
        };
        Ok(UsageSummary {
            by_key: named(by_key),
            by_model: named(by_model),
        })
    }

    async fn idem_claim(
        &self,
        id: &str,
        account_id: &str,
        fingerprint: &str,
        now: OffsetDateTime,
        expires_at: OffsetDateTime,
    ) -> Result<IdemState> {
        // One statement: insert, or take over a record that has expired.
        let res = sqlx::query(
            "INSERT INTO idempotency (id, account_id, fingerprint, sealed, created_at, expires_at) \
             VALUES (?, ?, ?, NULL, ?, ?) \
             ON CONFLICT (id) DO UPDATE SET account_id = excluded.account_id, \
             fingerprint = excluded.fingerprint, sealed = NULL, created_at = excluded.created_at, \
             expires_at = excluded.expires_at WHERE idempotency.expires_at <= ?",
        )
        .bind(id)
        .bind(account_id)
        .bind(fingerprint)
        .bind(ms(now))
        .bind(ms(expires_at))
        .bind(ms(now))
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        if res.rows_affected() == 1 {
            return Ok(IdemState::Claimed);
        }
        self.idem_get(id, now).await
    }

    async fn idem_get(&self, id: &str, now: OffsetDateTime) -> Result<IdemState> {
        let row = sqlx::query(
            "SELECT fingerprint, sealed FROM idempotency WHERE id = ? AND expires_at > ?",
        )
        .bind(id)
        .bind(ms(now))
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(match row {
            None => IdemState::Absent,
            Some(r) => {
                let fingerprint: String = r.get("fingerprint");
                match r.get::<Option<Vec<u8>>, _>("sealed") {
                    Some(sealed) => IdemState::Done {
                        fingerprint,
                        sealed,
                    },
                    None => IdemState::InProgress { fingerprint },
                }
            }
        })
    }

    async fn idem_complete(&self, id: &str, sealed: &[u8]) -> Result<()> {
        sqlx::query("UPDATE idempotency SET sealed = ? WHERE id = ?")
            .bind(sealed)
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn idem_release(&self, id: &str) -> Result<()> {
        sqlx::query("DELETE FROM idempotency WHERE id = ? AND sealed IS NULL")
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn insert_file(&self, f: &FileRecord, quota: u64) -> Result<()> {
        let mut conn = self.pool.acquire().await.map_err(db_err)?;
        insert_file_in(&mut conn, f, quota).await
    }

    async fn file(&self, id: i64) -> Result<Option<FileRecord>> {
        Ok(
            sqlx::query(&format!("SELECT {FILE_COLUMNS} FROM files WHERE id = ?"))
                .bind(id)
                .fetch_optional(&self.pool)
                .await
                .map_err(db_err)?
                .as_ref()
                .map(file_from),
        )
    }

    async fn files_of(&self, account_id: &str, purpose: Option<&str>) -> Result<Vec<FileRecord>> {
        Ok(sqlx::query(&format!(
            "SELECT {FILE_COLUMNS} FROM files WHERE account_id = ? AND (? IS NULL OR purpose = ?) ORDER BY created_at DESC, id DESC"
        ))
        .bind(account_id)
        .bind(purpose)
        .bind(purpose)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?
        .iter()
        .map(file_from)
        .collect())
    }

    async fn delete_file(&self, id: i64) -> Result<bool> {
        Ok(sqlx::query("DELETE FROM files WHERE id = ?")
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(db_err)?
            .rows_affected()
            > 0)
    }

    async fn expired_files(&self, now: OffsetDateTime, limit: u32) -> Result<Vec<FileRecord>> {
        Ok(sqlx::query(&format!(
            "SELECT {FILE_COLUMNS} FROM files WHERE expires_at IS NOT NULL AND expires_at <= ? LIMIT ?"
        ))
        .bind(ms(now))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?
        .iter()
        .map(file_from)
        .collect())
    }

    async fn file_keys(&self) -> Result<Vec<(i64, String, Vec<u8>)>> {
        Ok(sqlx::query("SELECT id, key_id, wrapped_key FROM files")
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?
            .iter()
            .map(|r| (r.get("id"), r.get("key_id"), r.get("wrapped_key")))
            .collect())
    }

    async fn set_file_key(&self, id: i64, key_id: &str, wrapped_key: &[u8]) -> Result<()> {
        sqlx::query("UPDATE files SET key_id = ?, wrapped_key = ? WHERE id = ?")
            .bind(key_id)
            .bind(wrapped_key)
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn insert_task(&self, t: &TaskRecord) -> Result<()> {
        sqlx::query(&format!(
            "INSERT INTO tasks ({TASK_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        ))
        .bind(t.id)
        .bind(&t.account_id)
        .bind(&t.key_id)
        .bind(&t.kind)
        .bind(t.status.as_str())
        .bind(&t.params)
        .bind(t.file_id)
        .bind(&t.result)
        .bind(&t.error_code)
        .bind(&t.error_message)
        .bind(i64::from(t.attempts))
        .bind(t.lease_until.map(ms))
        .bind(i64::from(t.progress))
        .bind(ms(t.created_at))
        .bind(ms(t.updated_at))
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn task(&self, id: i64) -> Result<Option<TaskRecord>> {
        sqlx::query(&format!("SELECT {TASK_COLUMNS} FROM tasks WHERE id = ?"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?
            .as_ref()
            .map(task_from)
            .transpose()
    }

    async fn claim_task(
        &self,
        kinds: &[String],
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
    ) -> Result<Option<TaskRecord>> {
        if kinds.is_empty() {
            return Ok(None);
        }
        let marks = vec!["?"; kinds.len()].join(", ");
        // One statement: two runners cannot claim the same task.
        let sql = format!(
            "UPDATE tasks SET status = 'processing', attempts = attempts + 1, lease_until = ?, updated_at = ? \
             WHERE id = (SELECT id FROM tasks WHERE kind IN ({marks}) \
                 AND (status = 'queued' OR (status = 'processing' AND lease_until < ?)) \
                 ORDER BY created_at, id LIMIT 1) \
             RETURNING {TASK_COLUMNS}"
        );
        let mut q = sqlx::query(&sql).bind(ms(lease_until)).bind(ms(now));
        for k in kinds {
            q = q.bind(k);
        }
        q.bind(ms(now))
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?
            .as_ref()
            .map(task_from)
            .transpose()
    }

    async fn renew_task(
        &self,
        id: i64,
        attempt: u32,
        lease_until: OffsetDateTime,
        progress: u32,
    ) -> Result<bool> {
        Ok(sqlx::query(
            "UPDATE tasks SET lease_until = ?, progress = ? WHERE id = ? AND attempts = ? AND status = 'processing'",
        )
        .bind(ms(lease_until))
        .bind(i64::from(progress.min(100)))
        .bind(id)
        .bind(i64::from(attempt))
        .execute(&self.pool)
        .await
        .map_err(db_err)?
        .rows_affected()
            > 0)
    }

    async fn end_task(
        &self,
        id: i64,
        attempt: u32,
        end: &TaskEnd,
        now: OffsetDateTime,
    ) -> Result<bool> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        let changed = sqlx::query(
            "UPDATE tasks SET status = ?, params = NULL, result = ?, error_code = ?, error_message = ?, \
             lease_until = NULL, updated_at = ? \
             WHERE id = ? AND attempts = ? AND status = 'processing'",
        )
        .bind(end.status.as_str())
        .bind(&end.result)
        .bind(&end.error_code)
        .bind(&end.error_message)
        .bind(ms(now))
        .bind(id)
        .bind(i64::from(attempt))
        .execute(&mut *tx)
        .await
        .map_err(db_err)?
        .rows_affected();
        if changed == 0 {
            return Ok(false);
        }
        if let Some(f) = &end.file {
            // Task outputs are not held to the upload quota.
            insert_file_in(&mut tx, f, u64::MAX / 2).await?;
        }
        tx.commit().await.map_err(db_err)?;
        Ok(true)
    }

    async fn task_params(&self) -> Result<Vec<(i64, Vec<u8>)>> {
        Ok(
            sqlx::query("SELECT id, params FROM tasks WHERE params IS NOT NULL")
                .fetch_all(&self.pool)
                .await
                .map_err(db_err)?
                .iter()
                .map(|r| (r.get("id"), r.get("params")))
                .collect(),
        )
    }

    async fn set_task_params(&self, id: i64, params: &[u8]) -> Result<()> {
        sqlx::query("UPDATE tasks SET params = ? WHERE id = ? AND params IS NOT NULL")
            .bind(params)
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn insert_webhook(&self, w: &WebhookRecord, lease_until: OffsetDateTime) -> Result<()> {
        crate::webhooks::insert(&self.pool, w, lease_until).await
    }

    async fn claim_webhooks(
        &self,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<WebhookRecord>> {
        crate::webhooks::claim(&self.pool, now, lease_until, limit).await
    }

    async fn retry_webhook(&self, id: i64, next_at: OffsetDateTime) -> Result<()> {
        crate::webhooks::retry(&self.pool, id, next_at).await
    }

    async fn delete_webhook(&self, id: i64) -> Result<()> {
        crate::webhooks::delete(&self.pool, id).await
    }

    async fn webhook_payloads(&self) -> Result<Vec<(i64, Vec<u8>)>> {
        crate::webhooks::payloads(&self.pool).await
    }

    async fn set_webhook_payload(&self, id: i64, payload: &[u8]) -> Result<()> {
        crate::webhooks::set_payload(&self.pool, id, payload).await
    }

    async fn insert_voice(&self, v: &VoiceRecord) -> Result<bool> {
        let res = sqlx::query(&format!(
            "INSERT INTO voices ({VOICE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
        ))
        .bind(&v.account_id)
        .bind(&v.voice_id)
        .bind(&v.kind)
        .bind(&v.profile)
        .bind(ms(v.created_at))
        .bind(v.used_at.map(ms))
        .bind(v.deleted_at.map(ms))
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(res.rows_affected() > 0)
    }

    async fn voice(&self, account_id: &str, voice_id: &str) -> Result<Option<VoiceRecord>> {
        Ok(sqlx::query(&format!(
            "SELECT {VOICE_COLUMNS} FROM voices WHERE account_id = ? AND voice_id = ?"
        ))
        .bind(account_id)
        .bind(voice_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?
        .as_ref()
        .map(voice_from))
    }

    async fn voices_of(&self, account_id: &str) -> Result<Vec<VoiceRecord>> {
        Ok(sqlx::query(&format!(
            "SELECT {VOICE_COLUMNS} FROM voices WHERE account_id = ? ORDER BY created_at, voice_id"
        ))
        .bind(account_id)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?
        .iter()
        .map(voice_from)
        .collect())
    }

    async fn mark_voice_used(
        &self,
        account_id: &str,
        voice_id: &str,
        at: OffsetDateTime,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE voices SET used_at = ? WHERE account_id = ? AND voice_id = ? AND used_at IS NULL",
        )
        .bind(ms(at))
        .bind(account_id)
        .bind(voice_id)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn delete_voice(
        &self,
        account_id: &str,
        voice_id: &str,
        at: OffsetDateTime,
    ) -> Result<bool> {
        Ok(sqlx::query(
            "UPDATE voices SET deleted_at = ?, profile = '{}' WHERE account_id = ? AND voice_id = ? AND deleted_at IS NULL",
        )
        .bind(ms(at))
        .bind(account_id)
        .bind(voice_id)
        .execute(&self.pool)
        .await
        .map_err(db_err)?
        .rows_affected()
            > 0)
    }

    async fn expire_voices(
        &self,
        unused_since: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<u64> {
        Ok(sqlx::query(
            "UPDATE voices SET deleted_at = ?, profile = '{}' \
             WHERE deleted_at IS NULL AND used_at IS NULL AND created_at < ?",
        )
        .bind(ms(now))
        .bind(ms(unused_since))
        .execute(&self.pool)
        .await
        .map_err(db_err)?
        .rows_affected())
    }

    async fn sweep(&self, now: OffsetDateTime, usage_retention: time::Duration) -> Result<u64> {
        let a = sqlx::query("DELETE FROM idempotency WHERE expires_at <= ?")
            .bind(ms(now))
            .execute(&self.pool)
            .await
            .map_err(db_err)?
            .rows_affected();
        let b = sqlx::query("DELETE FROM usage_events WHERE at < ?")
            .bind(ms(now - usage_retention))
            .execute(&self.pool)
            .await
            .map_err(db_err)?
            .rows_affected();
        // A task's record is metadata of a request, kept as long as usage
        // events; its output is a file with an expiry of its own.
        let c = sqlx::query(
            "DELETE FROM tasks WHERE status IN ('success', 'failed') AND updated_at < ?",
        )
        .bind(ms(now - usage_retention))
        .execute(&self.pool)
        .await
        .map_err(db_err)?
        .rows_affected();
        Ok(a + b + c)
    }

    // ---- the account's life ----

    async fn category_figures(
        &self,
        account_id: &str,
        category: DataCategory,
    ) -> Result<CategoryFigures> {
        lifecycle::figures(&self.pool, account_id, category).await
    }

    async fn usage_page(
        &self,
        account_id: &str,
        after_id: i64,
        limit: u32,
    ) -> Result<Vec<(i64, UsageEvent)>> {
        lifecycle::usage_page(&self.pool, account_id, after_id, limit).await
    }

    async fn tasks_of(&self, account_id: &str) -> Result<Vec<TaskRecord>> {
        lifecycle::tasks_of(&self.pool, account_id).await
    }

    async fn delete_records(
        &self,
        account_id: &str,
        category: DataCategory,
        now: OffsetDateTime,
    ) -> Result<u64> {
        lifecycle::delete_records(&self.pool, account_id, category, now).await
    }

    async fn close_account(&self, id: &str, at: OffsetDateTime) -> Result<Option<u64>> {
        let out = lifecycle::close_account(&self.pool, id, at).await;
        // Every cached caller of the account is refused from now on.
        self.epoch.bump();
        out
    }

    async fn closed_accounts(&self, closed_before: OffsetDateTime) -> Result<Vec<String>> {
        lifecycle::closed_accounts(&self.pool, closed_before).await
    }

    async fn purge_account(&self, id: &str) -> Result<bool> {
        let out = lifecycle::purge_account(&self.pool, id).await;
        self.epoch.bump();
        out
    }

    async fn set_debug_until(&self, id: &str, until: Option<OffsetDateTime>) -> Result<bool> {
        let out = lifecycle::set_debug_until(&self.pool, id, until).await;
        // Cached callers carry the old window.
        self.epoch.bump();
        out
    }

    async fn insert_debug_log(&self, record: &DebugRecord) -> Result<()> {
        lifecycle::insert_debug_log(&self.pool, record).await
    }

    async fn debug_logs_of(&self, account_id: &str) -> Result<Vec<DebugRecord>> {
        lifecycle::debug_logs_of(&self.pool, account_id).await
    }

    async fn sweep_debug_logs(&self, now: OffsetDateTime) -> Result<u64> {
        lifecycle::sweep_debug_logs(&self.pool, now).await
    }

    async fn insert_ticket(
        &self,
        ticket: &TicketRecord,
        first: &TicketMessageRecord,
    ) -> Result<()> {
        lifecycle::insert_ticket(&self.pool, ticket, first).await
    }

    async fn ticket(&self, id: &str) -> Result<Option<TicketRecord>> {
        lifecycle::ticket(&self.pool, id).await
    }

    async fn tickets_of(&self, account_id: &str) -> Result<Vec<TicketRecord>> {
        lifecycle::tickets_of(&self.pool, account_id).await
    }

    async fn add_ticket_message(&self, message: &TicketMessageRecord) -> Result<bool> {
        lifecycle::add_ticket_message(&self.pool, message).await
    }

    async fn ticket_messages(&self, ticket_id: &str) -> Result<Vec<TicketMessageRecord>> {
        lifecycle::ticket_messages(&self.pool, ticket_id).await
    }

    async fn close_ticket(&self, id: &str, at: OffsetDateTime) -> Result<bool> {
        lifecycle::close_ticket(&self.pool, id, at).await
    }

    async fn sealed_rows(&self) -> Result<Vec<(SealedRow, Vec<u8>)>> {
        lifecycle::sealed_rows(&self.pool).await
    }

    async fn set_sealed_row(&self, row: &SealedRow, sealed: &[u8]) -> Result<()> {
        lifecycle::set_sealed_row(&self.pool, row, sealed).await
    }

    async fn sweep_tickets(&self, closed_before: OffsetDateTime) -> Result<u64> {
        lifecycle::sweep_tickets(&self.pool, closed_before).await
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn account(id: &str, email: &str) -> Account {
        Account {
            id: id.into(),
            email: email.into(),
            plan: Plan::Payg,
            limits: None,
            routing: Default::default(),
            created_at: OffsetDateTime::now_utc(),
            operator: false,
            closed_at: None,
            debug_until: None,
        }
    }

    pub(crate) fn key(id: &str, account_id: &str) -> ApiKey {
        ApiKey {
            id: id.into(),
            account_id: account_id.into(),
            name: "k".into(),
            prefix: "mmx_live_abcd".into(),
            hash: format!("hash-{id}"),
            test: false,
            scopes: vec![Scope::Admin],
            models: vec![],
            routing: Default::default(),
            created_at: OffsetDateTime::now_utc(),
            revoked_at: None,
            last_used_at: None,
            usage: UsageFigures::default(),
            budget_micro: None,
        }
    }

    #[tokio::test]
    async fn keys_limits_usage_and_idempotency_round_trip() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = SqliteStore::open(&dir.path().join("t.db"))
            .await
            .expect("open");
        s.insert_account(&account("a1", "a@x.io"))
            .await
            .expect("insert");
        let dup = s
            .insert_account(&account("a2", "a@x.io"))
            .await
            .expect_err("dup email");
        assert_eq!(
            dup.details.get("field").and_then(|v| v.as_str()),
            Some("email")
        );

        assert!(s.insert_key(&key("k1", "a1"), 2).await.expect("k1"));
        assert!(s.insert_key(&key("k2", "a1"), 2).await.expect("k2"));
        assert!(!s.insert_key(&key("k3", "a1"), 2).await.expect("k3 refused"));
        let before = s.auth_epoch().await.expect("epoch").expect("some");
        assert!(s
            .revoke_key("k1", OffsetDateTime::now_utc())
            .await
            .expect("revoke"));
        let after = s.auth_epoch().await.expect("epoch").expect("some");
        assert_ne!(before, after, "a revocation changes the auth epoch");
        // Another handle on the same database (another process) sees it too.
        let other = SqliteStore::open(&dir.path().join("t.db"))
            .await
            .expect("reopen");
        assert_eq!(other.auth_epoch().await.expect("epoch"), Some(after));
        assert!(!s
            .revoke_key("k1", OffsetDateTime::now_utc())
            .await
            .expect("again"));
        assert!(s
            .insert_key(&key("k3", "a1"), 2)
            .await
            .expect("k3 after revoke"));
        let (k, a) = s.key_by_hash("hash-k2").await.expect("get").expect("some");
        assert_eq!(k.scopes, vec![Scope::Admin]);
        assert_eq!(a.email, "a@x.io");

        let now = OffsetDateTime::now_utc();
        let ev = |status, tokens| UsageEvent {
            at: now,
            account_id: "a1".into(),
            key_id: "k2".into(),
            request_id: "req_1".into(),
            method: "POST".into(),
            endpoint: "/v1/chat/completions".into(),
            status,
            model: Some("m".into()),
            prompt_tokens: tokens,
            completion_tokens: 1,
            characters: 0,
            images: 0,
            media_ms: 0,
            latency_us: 10,
            error_code: None,
            client_ip: Some("127.0.0.1".into()),
            charge: Default::default(),
        };
        let speech = UsageEvent {
            endpoint: "/v1/t2a_v2".into(),
            model: Some("speech".into()),
            prompt_tokens: 0,
            completion_tokens: 0,
            characters: 12,
            images: 0,
            media_ms: 0,
            ..ev(200, 0)
        };
        s.record_usage(&[ev(200, 5), ev(429, 0), speech])
            .await
            .expect("usage");
        let k = s.key("k2").await.expect("get").expect("some");
        assert_eq!(
            k.usage,
            UsageFigures {
                requests: 3,
                errors: 1,
                prompt_tokens: 5,
                completion_tokens: 2,
                characters: 12,
                images: 0,
                media_ms: 0,
            }
        );
        assert!(k.last_used_at.is_some());
        let log = s.activity("k2", 10).await.expect("activity");
        assert_eq!(log.len(), 3);
        assert_eq!(log.iter().map(|e| e.characters).sum::<u64>(), 12);
        let sum = s
            .usage_summary(
                "a1",
                now - time::Duration::minutes(1),
                now + time::Duration::minutes(1),
            )
            .await
            .expect("summary");
        assert_eq!(sum.by_model[0].1.requests, 2);
        assert_eq!(sum.by_model[1].0, "speech");
        assert_eq!(
            (
                sum.by_model[1].1.prompt_tokens,
                sum.by_model[1].1.characters
            ),
            (0, 12)
        );
        // A batch over several multi-row statements (64 rows each) keeps every row.
        let many: Vec<UsageEvent> = (0..130).map(|_| ev(200, 1)).collect();
        s.record_usage(&many).await.expect("a large batch");
        let k = s.key("k2").await.expect("get").expect("some");
        assert_eq!((k.usage.requests, k.usage.prompt_tokens), (133, 135));
        assert_eq!(s.activity("k2", 500).await.expect("activity").len(), 133);

        let exp = now + time::Duration::hours(24);
        assert_eq!(
            s.idem_claim("i1", "a1", "fp", now, exp)
                .await
                .expect("claim"),
            IdemState::Claimed
        );
        assert_eq!(
            s.idem_claim("i1", "a1", "fp", now, exp)
                .await
                .expect("again"),
            IdemState::InProgress {
                fingerprint: "fp".into()
            }
        );
        s.idem_complete("i1", b"sealed").await.expect("complete");
        assert_eq!(
            s.idem_get("i1", now).await.expect("get"),
            IdemState::Done {
                fingerprint: "fp".into(),
                sealed: b"sealed".to_vec()
            }
        );
        // Past expiry the record is gone and may be claimed anew.
        let later = exp + time::Duration::seconds(1);
        assert_eq!(
            s.idem_get("i1", later).await.expect("get"),
            IdemState::Absent
        );
        assert!(
            s.sweep(later, time::Duration::days(365))
                .await
                .expect("sweep")
                >= 1
        );
    }

    #[tokio::test]
    async fn speech_usage_recorded_as_tokens_moves_to_characters() {
        // A database as the version before characters left it: a speech
        // request's characters in prompt_tokens, beside a chat request.
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("t.db");
        let opts = SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true);
        let pool = SqlitePool::connect_with(opts).await.expect("pool");
        sqlx::raw_sql(
            "CREATE TABLE schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)",
        )
        .execute(&pool)
        .await
        .expect("table");
        for (version, name, sql) in &MIGRATIONS[..2] {
            sqlx::raw_sql(sql).execute(&pool).await.expect("migration");
            sqlx::query("INSERT INTO schema_migrations VALUES (?, ?, 0)")
                .bind(version)
                .bind(name)
                .execute(&pool)
                .await
                .expect("applied");
        }
        sqlx::raw_sql(
            "INSERT INTO accounts VALUES ('a1', 'a@x.io', 'payg', NULL, NULL, 0);
             INSERT INTO api_keys (id, account_id, name, prefix, hash, test, scopes, models, created_at,
                 requests, errors, prompt_tokens, completion_tokens)
                 VALUES ('k1', 'a1', 'k', 'p', 'h', 0, '[]', '[]', 0, 2, 0, 19, 3);
             INSERT INTO usage_events (at, account_id, key_id, request_id, method, endpoint, status, model,
                 prompt_tokens, completion_tokens, latency_us) VALUES
                 (1, 'a1', 'k1', 'r1', 'POST', '/v1/t2a_v2', 200, 'speech-2.8-hd', 12, 0, 5),
                 (2, 'a1', 'k1', 'r2', 'POST', '/v1/chat/completions', 200, 'gemma', 7, 3, 5);",
        )
        .execute(&pool)
        .await
        .expect("old rows");
        pool.close().await;

        let s = SqliteStore::open(&path).await.expect("migrated");
        let k = s.key("k1").await.expect("get").expect("some");
        assert_eq!(
            (
                k.usage.prompt_tokens,
                k.usage.completion_tokens,
                k.usage.characters
            ),
            (7, 3, 12)
        );
        let log = s.activity("k1", 10).await.expect("activity");
        let speech = log.iter().find(|e| e.request_id == "r1").expect("r1");
        assert_eq!((speech.prompt_tokens, speech.characters), (0, 12));
        let chat = log.iter().find(|e| e.request_id == "r2").expect("r2");
        assert_eq!((chat.prompt_tokens, chat.characters), (7, 0));
    }

    fn task(id: i64, at: OffsetDateTime) -> TaskRecord {
        TaskRecord {
            id,
            account_id: "acc".into(),
            key_id: "k".into(),
            kind: "t2a_async".into(),
            status: TaskStatus::Queued,
            params: vec![1, 2, 3],
            file_id: Some(id + 1),
            result: None,
            error_code: None,
            error_message: None,
            attempts: 0,
            lease_until: None,
            progress: 0,
            created_at: at,
            updated_at: at,
        }
    }

    #[tokio::test]
    async fn a_task_is_claimed_once_and_ended_by_its_latest_attempt_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = SqliteStore::open(&dir.path().join("t.db"))
            .await
            .expect("open");
        let t0 = OffsetDateTime::now_utc();
        let kinds = vec!["t2a_async".to_owned()];
        s.insert_task(&task(1, t0)).await.expect("insert");
        s.insert_task(&task(2, t0 + time::Duration::seconds(1)))
            .await
            .expect("insert");
        let lease = time::Duration::seconds(30);

        let a = s
            .claim_task(&kinds, t0, t0 + lease)
            .await
            .expect("claim")
            .expect("task");
        assert_eq!((a.id, a.attempts, a.status), (1, 1, TaskStatus::Processing));
        let b = s
            .claim_task(&kinds, t0, t0 + lease)
            .await
            .expect("claim")
            .expect("task");
        assert_eq!(b.id, 2, "a claimed task is not handed out twice");
        assert!(s
            .claim_task(&kinds, t0, t0 + lease)
            .await
            .expect("claim")
            .is_none());
        assert!(s
            .claim_task(&["other".to_owned()], t0, t0 + lease)
            .await
            .expect("claim")
            .is_none());

        // The first runner dies; after its lease the task is claimed again.
        let later = t0 + time::Duration::seconds(31);
        let again = s
            .claim_task(&kinds, later, later + lease)
            .await
            .expect("claim")
            .expect("expired lease");
        assert_eq!((again.id, again.attempts), (1, 2));
        let file = FileRecord {
            id: 77,
            account_id: "acc".into(),
            purpose: "t2a_async".into(),
            filename: "out.tar".into(),
            kind: "tar".into(),
            bytes: 10,
            key_id: "k1".into(),
            wrapped_key: vec![0; 60],
            created_at: from_ms(ms(later)),
            expires_at: None,
        };
        let end = TaskEnd {
            status: TaskStatus::Success,
            result: Some("{}".into()),
            error_code: None,
            error_message: None,
            file: Some(file.clone()),
        };
        // The stale first attempt cannot end it.
        assert!(!s.end_task(1, 1, &end, later).await.expect("end"));
        assert!(s.file(77).await.expect("file").is_none());
        assert!(s.end_task(1, 2, &end, later).await.expect("end"));
        assert!(!s.end_task(1, 2, &end, later).await.expect("ends once"));
        let done = s.task(1).await.expect("task").expect("some");
        assert_eq!(done.status, TaskStatus::Success);
        assert!(
            done.params.is_empty(),
            "the input is gone once the task ended"
        );
        assert_eq!(s.file(77).await.expect("file"), Some(file));
    }

    #[tokio::test]
    async fn voices_are_per_account_and_unused_ones_expire() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = SqliteStore::open(&dir.path().join("t.db"))
            .await
            .expect("open");
        let t0 = OffsetDateTime::now_utc();
        let v = |acc: &str, id: &str| VoiceRecord {
            account_id: acc.into(),
            voice_id: id.into(),
            kind: "voice_generation".into(),
            profile: "{}".into(),
            created_at: t0,
            used_at: None,
            deleted_at: None,
        };
        assert!(s.insert_voice(&v("a", "voice-one")).await.expect("insert"));
        assert!(!s.insert_voice(&v("a", "voice-one")).await.expect("taken"));
        assert!(s
            .insert_voice(&v("b", "voice-one"))
            .await
            .expect("other account"));
        assert!(s.insert_voice(&v("a", "voice-two")).await.expect("insert"));
        s.mark_voice_used("a", "voice-two", t0).await.expect("use");
        let n = s
            .expire_voices(t0 + time::Duration::seconds(1), t0)
            .await
            .expect("expire");
        assert_eq!(n, 2, "the unused voices of both accounts");
        let one = s
            .voice("a", "voice-one")
            .await
            .expect("voice")
            .expect("tombstone");
        assert!(one.deleted_at.is_some());
        assert!(s
            .voice("a", "voice-two")
            .await
            .expect("voice")
            .expect("kept")
            .deleted_at
            .is_none());
        assert!(!s
            .insert_voice(&v("a", "voice-one"))
            .await
            .expect("never reused"));
        assert!(s.delete_voice("a", "voice-two", t0).await.expect("delete"));
        assert!(!s.delete_voice("a", "voice-two", t0).await.expect("once"));
    }
}

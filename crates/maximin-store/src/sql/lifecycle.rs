//! An account's life on SQLite (issue 16): the privacy dashboard's figures
//! and deletions, closure and the purge 90 days later, debug logs and
//! support tickets.

use maximin_core::store::{
    CategoryFigures, DebugRecord, SealedRow, TaskRecord, TicketMessageRecord, TicketRecord,
    UsageEvent,
};
use maximin_core::{Error, Result};
use maximin_types::DataCategory;
use sqlx::any::AnyRow;
use sqlx::AnyPool;
use sqlx::Row;
use time::OffsetDateTime;

use super::{db_err, event_from, from_ms, ms, query, task_from, TASK_COLUMNS};

fn u(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// Count, bytes and oldest time of one category. Bytes are what the rows
/// hold: text and blob lengths, 8 per number.
pub(crate) async fn figures(
    pool: &AnyPool,
    account_id: &str,
    category: DataCategory,
) -> Result<CategoryFigures> {
    let sql = match category {
        DataCategory::Profile => {
            "SELECT COUNT(*), CAST(COALESCE(SUM(LENGTH(id) + LENGTH(email) + LENGTH(plan) + LENGTH(routing) + 64), 0) AS BIGINT), \
             MIN(created_at) FROM accounts WHERE id = ?"
        }
        DataCategory::Keys => {
            "SELECT COUNT(*), CAST(COALESCE(SUM(LENGTH(id) + LENGTH(name) + LENGTH(prefix) + LENGTH(hash) + LENGTH(scopes) \
             + LENGTH(models) + LENGTH(routing) + 112), 0) AS BIGINT), MIN(created_at) FROM api_keys WHERE account_id = ?"
        }
        DataCategory::UsageLogs => {
            "SELECT COUNT(*), CAST(COALESCE(SUM(LENGTH(request_id) + LENGTH(method) + LENGTH(endpoint) \
             + COALESCE(LENGTH(model), 0) + COALESCE(LENGTH(error_code), 0) + COALESCE(LENGTH(client_ip), 0) + 96), 0) AS BIGINT), \
             MIN(at) FROM usage_events WHERE account_id = ?"
        }
        DataCategory::BillingRecords => return billing_figures(pool, account_id).await,
        DataCategory::Files => {
            "SELECT COUNT(*), CAST(COALESCE(SUM(bytes), 0) AS BIGINT), MIN(created_at) FROM files WHERE account_id = ?"
        }
        DataCategory::TaskRecords => {
            "SELECT COUNT(*), CAST(COALESCE(SUM(LENGTH(kind) + COALESCE(LENGTH(params), 0) + COALESCE(LENGTH(result), 0) \
             + COALESCE(LENGTH(error_message), 0) + 80), 0) AS BIGINT), MIN(created_at) FROM tasks WHERE account_id = ?"
        }
        DataCategory::Voices => {
            "SELECT COUNT(*), CAST(COALESCE(SUM(LENGTH(voice_id) + LENGTH(kind) + LENGTH(profile) + 24), 0) AS BIGINT), \
             MIN(created_at) FROM voices WHERE account_id = ? AND deleted_at IS NULL"
        }
        DataCategory::SupportMessages => {
            "SELECT COUNT(*), CAST(COALESCE(SUM(LENGTH(body) + LENGTH(author) + 16), 0) AS BIGINT), MIN(at) \
             FROM support_messages WHERE account_id = ?"
        }
        DataCategory::PrivacyLog => {
            "SELECT COUNT(*), CAST(COALESCE(SUM(LENGTH(action) + LENGTH(subject) + LENGTH(detail) + 16), 0) AS BIGINT), MIN(at) \
             FROM privacy_log WHERE account_id = ?"
        }
        DataCategory::DebugLogs => {
            "SELECT COUNT(*), CAST(COALESCE(SUM(LENGTH(sealed) + LENGTH(request_id) + LENGTH(endpoint) + 24), 0) AS BIGINT), MIN(at) \
             FROM debug_logs WHERE account_id = ?"
        }
        DataCategory::Members => {
            "SELECT COUNT(*), CAST(COALESCE(SUM(LENGTH(m.role) + LENGTH(u.email) + LENGTH(u.password_hash) \
             + COALESCE(LENGTH(u.totp), 0) + 40), 0) AS BIGINT), MIN(m.created_at) \
             FROM memberships m JOIN users u ON u.id = m.user_id WHERE m.account_id = ?"
        }
        DataCategory::FineTunes => return fine_tune_figures(pool, account_id).await,
    };
    let row = query(sql)
        .bind(account_id)
        .fetch_one(pool)
        .await
        .map_err(db_err)?;
    Ok(figures_from(&row))
}

fn figures_from(row: &AnyRow) -> CategoryFigures {
    CategoryFigures {
        count: u(row.get(0)),
        bytes: u(row.get(1)),
        oldest: row.get::<Option<i64>, _>(2).map(from_ms),
    }
}

/// The credit ledger and the monthly billing lines together.
async fn billing_figures(pool: &AnyPool, account_id: &str) -> Result<CategoryFigures> {
    let ledger = query(
        "SELECT COUNT(*), CAST(COALESCE(SUM(LENGTH(kind) + LENGTH(note) + 24), 0) AS BIGINT), MIN(at) \
         FROM credit_ledger WHERE account_id = ?",
    )
    .bind(account_id)
    .fetch_one(pool)
    .await
    .map_err(db_err)?;
    let lines = query(
        "SELECT COUNT(*), CAST(COALESCE(SUM(LENGTH(month) + LENGTH(key_id) + LENGTH(model) + 72), 0) AS BIGINT), MIN(month) \
         FROM billing_monthly WHERE account_id = ?",
    )
    .bind(account_id)
    .fetch_one(pool)
    .await
    .map_err(db_err)?;
    let mut f = figures_from(&ledger);
    f.count += u(lines.get(0));
    f.bytes += u(lines.get(1));
    let first_line = lines
        .get::<Option<String>, _>(2)
        .and_then(|m| maximin_core::billing::month_start(&m));
    f.oldest = match (f.oldest, first_line) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    Ok(f)
}

/// A fine-tuned model the catalog serves, as SQL (the condition of
/// `fine_tuned_models`).
const LIVE_MODEL: &str =
    "status = 'succeeded' AND fine_tuned_model IS NOT NULL AND model_deleted = 0";

/// The jobs and the models they made (each counts), and what the jobs'
/// rows, events and checkpoints hold; the adapters and checkpoints
/// themselves are files, counted under files.
async fn fine_tune_figures(pool: &AnyPool, account_id: &str) -> Result<CategoryFigures> {
    let jobs = query(&format!(
        "SELECT CAST(COUNT(*) + COALESCE(SUM(CASE WHEN {LIVE_MODEL} THEN 1 ELSE 0 END), 0) AS BIGINT), \
         CAST(COALESCE(SUM(LENGTH(key_id) + LENGTH(base_model) + LENGTH(hyperparameters) + COALESCE(LENGTH(suffix), 0) \
         + LENGTH(status) + COALESCE(LENGTH(fine_tuned_model), 0) + COALESCE(LENGTH(error), 0) + 96), 0) AS BIGINT), \
         MIN(created_at) FROM fine_tunes WHERE account_id = ?"
    ))
    .bind(account_id)
    .fetch_one(pool)
    .await
    .map_err(db_err)?;
    let logs = query(
        "SELECT CAST(COALESCE((SELECT SUM(LENGTH(e.level) + LENGTH(e.message) + COALESCE(LENGTH(e.data), 0) + 24) \
         FROM fine_tune_events e JOIN fine_tunes j ON j.id = e.job_id WHERE j.account_id = ?), 0) \
         + COALESCE((SELECT SUM(LENGTH(c.metrics) + 32) \
         FROM fine_tune_checkpoints c JOIN fine_tunes j ON j.id = c.job_id WHERE j.account_id = ?), 0) AS BIGINT)",
    )
    .bind(account_id)
    .bind(account_id)
    .fetch_one(pool)
    .await
    .map_err(db_err)?;
    let mut f = figures_from(&jobs);
    f.bytes += u(logs.get(0));
    Ok(f)
}

pub(crate) async fn usage_page(
    pool: &AnyPool,
    account_id: &str,
    after_id: i64,
    limit: u32,
) -> Result<Vec<(i64, UsageEvent)>> {
    Ok(query(
        "SELECT id, at, account_id, key_id, request_id, method, endpoint, status, model, prompt_tokens, \
         completion_tokens, characters, images, media_ms, latency_us, error_code, client_ip, cost_micro \
         FROM usage_events WHERE account_id = ? AND id > ? ORDER BY id LIMIT ?",
    )
    .bind(account_id)
    .bind(after_id)
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await
    .map_err(db_err)?
    .iter()
    .map(|r| (r.get::<i64, _>("id"), event_from(r)))
    .collect())
}

pub(crate) async fn tasks_of(pool: &AnyPool, account_id: &str) -> Result<Vec<TaskRecord>> {
    query(&format!(
        "SELECT {TASK_COLUMNS} FROM tasks WHERE account_id = ? ORDER BY created_at, id"
    ))
    .bind(account_id)
    .fetch_all(pool)
    .await
    .map_err(db_err)?
    .iter()
    .map(task_from)
    .collect()
}

pub(crate) async fn delete_records(
    pool: &AnyPool,
    account_id: &str,
    category: DataCategory,
    now: OffsetDateTime,
) -> Result<u64> {
    let q = match category {
        DataCategory::UsageLogs => query("DELETE FROM usage_events WHERE account_id = ?"),
        DataCategory::DebugLogs => query("DELETE FROM debug_logs WHERE account_id = ?"),
        DataCategory::TaskRecords => query(
            "DELETE FROM tasks WHERE account_id = ? AND status IN ('success', 'failed')",
        ),
        DataCategory::Voices => query(
            "UPDATE voices SET deleted_at = ?, profile = '{}' WHERE deleted_at IS NULL AND account_id = ?",
        )
        .bind(ms(now)),
        DataCategory::FineTunes => return delete_fine_tunes(pool, account_id).await,
        other => {
            return Err(Error::internal(format!(
                "the store does not delete {other} records on request"
            )))
        }
    };
    Ok(q.bind(account_id)
        .execute(pool)
        .await
        .map_err(db_err)?
        .rows_affected())
}

/// Deletes the account's jobs that have ended, whose run has stopped (their
/// task is not queued or processing, or is gone) and whose model is
/// deleted or was never made, with their events and checkpoints; returns
/// how many jobs. A job whose model is served stays: its model is deleted
/// first, with its adapter, by the platform.
async fn delete_fine_tunes(pool: &AnyPool, account_id: &str) -> Result<u64> {
    use super::fine_tunes::NOT_FINAL;
    let gone = format!(
        "account_id = ? AND NOT ({NOT_FINAL}) AND (fine_tuned_model IS NULL OR model_deleted = 1) \
         AND NOT EXISTS (SELECT 1 FROM tasks t WHERE t.id = fine_tunes.task_id \
         AND t.status IN ('queued', 'processing'))"
    );
    let mut tx = pool.begin().await.map_err(db_err)?;
    for table in ["fine_tune_events", "fine_tune_checkpoints"] {
        query(&format!(
            "DELETE FROM {table} WHERE job_id IN (SELECT id FROM fine_tunes WHERE {gone})"
        ))
        .bind(account_id)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
    }
    let n = query(&format!("DELETE FROM fine_tunes WHERE {gone}"))
        .bind(account_id)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?
        .rows_affected();
    tx.commit().await.map_err(db_err)?;
    Ok(n)
}

pub(crate) async fn close_account(
    pool: &AnyPool,
    id: &str,
    at: OffsetDateTime,
) -> Result<Option<u64>> {
    let mut tx = pool.begin().await.map_err(db_err)?;
    let closed = query(
        "UPDATE accounts SET closed_at = ?, debug_until = NULL WHERE id = ? AND closed_at IS NULL",
    )
    .bind(ms(at))
    .bind(id)
    .execute(&mut *tx)
    .await
    .map_err(db_err)?
    .rows_affected();
    if closed == 0 {
        return Ok(None);
    }
    let revoked =
        query("UPDATE api_keys SET revoked_at = ? WHERE account_id = ? AND revoked_at IS NULL")
            .bind(ms(at))
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?
            .rows_affected();
    for sql in [
        "DELETE FROM debug_logs WHERE account_id = ?",
        "DELETE FROM credit_holds WHERE account_id = ?",
        // Its fine-tuned models leave the catalog: their adapters go with
        // the account's files.
        "UPDATE fine_tunes SET model_deleted = 1 WHERE account_id = ? AND model_deleted = 0",
    ] {
        query(sql)
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
    }
    // Open tickets close with the account: their 2 years start now.
    query(
        "UPDATE support_tickets SET status = 'closed', closed_at = ?, updated_at = ? \
         WHERE account_id = ? AND status = 'open'",
    )
    .bind(ms(at))
    .bind(ms(at))
    .bind(id)
    .execute(&mut *tx)
    .await
    .map_err(db_err)?;
    tx.commit().await.map_err(db_err)?;
    Ok(Some(revoked))
}

pub(crate) async fn closed_accounts(
    pool: &AnyPool,
    closed_before: OffsetDateTime,
) -> Result<Vec<String>> {
    Ok(
        query("SELECT id FROM accounts WHERE closed_at IS NOT NULL AND closed_at < ? ORDER BY id")
            .bind(ms(closed_before))
            .fetch_all(pool)
            .await
            .map_err(db_err)?
            .iter()
            .map(|r| r.get(0))
            .collect(),
    )
}

pub(crate) async fn purge_account(pool: &AnyPool, id: &str) -> Result<bool> {
    let mut tx = pool.begin().await.map_err(db_err)?;
    let closed: Option<i64> = query("SELECT closed_at FROM accounts WHERE id = ?")
        .bind(id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_err)?
        .and_then(|r| r.get(0));
    if closed.is_none() {
        return Ok(false);
    }
    // Everything that names the account but billing records and support
    // tickets, which have retention periods of their own; keys before the
    // account they reference.
    for sql in [
        "DELETE FROM usage_events WHERE account_id = ?",
        "DELETE FROM tasks WHERE account_id = ?",
        "DELETE FROM voices WHERE account_id = ?",
        "DELETE FROM privacy_log WHERE account_id = ?",
        "DELETE FROM idempotency WHERE account_id = ?",
        "DELETE FROM credit_holds WHERE account_id = ?",
        "DELETE FROM webhook_deliveries WHERE account_id = ?",
        "DELETE FROM debug_logs WHERE account_id = ?",
        // A job's events and checkpoints before the job they name (their
        // files are the account's, gone already).
        "DELETE FROM fine_tune_events WHERE job_id IN (SELECT id FROM fine_tunes WHERE account_id = ?)",
        "DELETE FROM fine_tune_checkpoints WHERE job_id IN (SELECT id FROM fine_tunes WHERE account_id = ?)",
        "DELETE FROM fine_tunes WHERE account_id = ?",
        "DELETE FROM files WHERE account_id = ?",
        "DELETE FROM api_keys WHERE account_id = ?",
        "DELETE FROM invites WHERE account_id = ?",
        "DELETE FROM memberships WHERE account_id = ?",
        "DELETE FROM accounts WHERE id = ?",
    ] {
        query(sql)
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
    }
    // Logins left in no account go with it, with their sessions and
    // recovery codes.
    for sql in [
        "DELETE FROM hub_sessions WHERE user_id NOT IN (SELECT user_id FROM memberships)",
        "DELETE FROM recovery_codes WHERE user_id NOT IN (SELECT user_id FROM memberships)",
        "DELETE FROM users WHERE id NOT IN (SELECT user_id FROM memberships)",
    ] {
        query(sql).execute(&mut *tx).await.map_err(db_err)?;
    }
    tx.commit().await.map_err(db_err)?;
    Ok(true)
}

pub(crate) async fn set_debug_until(
    pool: &AnyPool,
    id: &str,
    until: Option<OffsetDateTime>,
) -> Result<bool> {
    let mut tx = pool.begin().await.map_err(db_err)?;
    let n = query("UPDATE accounts SET debug_until = ? WHERE id = ?")
        .bind(until.map(ms))
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?
        .rows_affected();
    if until.is_none() {
        query("DELETE FROM debug_logs WHERE account_id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
    }
    tx.commit().await.map_err(db_err)?;
    Ok(n == 1)
}

pub(crate) async fn insert_debug_log(pool: &AnyPool, r: &DebugRecord) -> Result<()> {
    query(
        "INSERT INTO debug_logs (account_id, at, request_id, endpoint, status, sealed, expires_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&r.account_id)
    .bind(ms(r.at))
    .bind(&r.request_id)
    .bind(&r.endpoint)
    .bind(i64::from(r.status))
    .bind(&r.sealed)
    .bind(ms(r.expires_at))
    .execute(pool)
    .await
    .map_err(db_err)?;
    Ok(())
}

pub(crate) async fn debug_logs_of(pool: &AnyPool, account_id: &str) -> Result<Vec<DebugRecord>> {
    Ok(query(
        "SELECT id, account_id, at, request_id, endpoint, status, sealed, expires_at FROM debug_logs \
         WHERE account_id = ? ORDER BY id",
    )
    .bind(account_id)
    .fetch_all(pool)
    .await
    .map_err(db_err)?
    .iter()
    .map(|r| DebugRecord {
        id: r.get("id"),
        account_id: r.get("account_id"),
        at: from_ms(r.get("at")),
        request_id: r.get("request_id"),
        endpoint: r.get("endpoint"),
        status: u16::try_from(r.get::<i64, _>("status")).unwrap_or(0),
        sealed: r.get("sealed"),
        expires_at: from_ms(r.get("expires_at")),
    })
    .collect())
}

pub(crate) async fn sweep_debug_logs(pool: &AnyPool, now: OffsetDateTime) -> Result<u64> {
    Ok(query("DELETE FROM debug_logs WHERE expires_at <= ?")
        .bind(ms(now))
        .execute(pool)
        .await
        .map_err(db_err)?
        .rows_affected())
}

// ---- support tickets ----

pub(crate) async fn insert_ticket(
    pool: &AnyPool,
    t: &TicketRecord,
    first: &TicketMessageRecord,
) -> Result<()> {
    let mut tx = pool.begin().await.map_err(db_err)?;
    query(
        "INSERT INTO support_tickets (id, account_id, subject, status, created_at, updated_at, closed_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&t.id)
    .bind(&t.account_id)
    .bind(&t.subject)
    .bind(&t.status)
    .bind(ms(t.created_at))
    .bind(ms(t.updated_at))
    .bind(t.closed_at.map(ms))
    .execute(&mut *tx)
    .await
    .map_err(db_err)?;
    insert_message(&mut tx, first).await?;
    tx.commit().await.map_err(db_err)
}

async fn insert_message(conn: &mut sqlx::AnyConnection, m: &TicketMessageRecord) -> Result<()> {
    query(
        "INSERT INTO support_messages (ticket_id, account_id, at, author, body) VALUES (?, ?, ?, ?, ?)",
    )
    .bind(&m.ticket_id)
    .bind(&m.account_id)
    .bind(ms(m.at))
    .bind(&m.author)
    .bind(&m.body)
    .execute(conn)
    .await
    .map_err(db_err)?;
    Ok(())
}

const TICKET_COLUMNS: &str = "id, account_id, subject, status, created_at, updated_at, closed_at";

fn ticket_from(r: &AnyRow) -> TicketRecord {
    TicketRecord {
        id: r.get("id"),
        account_id: r.get("account_id"),
        subject: r.get("subject"),
        status: r.get("status"),
        created_at: from_ms(r.get("created_at")),
        updated_at: from_ms(r.get("updated_at")),
        closed_at: r.get::<Option<i64>, _>("closed_at").map(from_ms),
    }
}

pub(crate) async fn ticket(pool: &AnyPool, id: &str) -> Result<Option<TicketRecord>> {
    Ok(query(&format!(
        "SELECT {TICKET_COLUMNS} FROM support_tickets WHERE id = ?"
    ))
    .bind(id)
    .fetch_optional(pool)
    .await
    .map_err(db_err)?
    .as_ref()
    .map(ticket_from))
}

pub(crate) async fn tickets_of(pool: &AnyPool, account_id: &str) -> Result<Vec<TicketRecord>> {
    Ok(query(&format!(
        "SELECT {TICKET_COLUMNS} FROM support_tickets WHERE account_id = ? ORDER BY created_at DESC, id"
    ))
    .bind(account_id)
    .fetch_all(pool)
    .await
    .map_err(db_err)?
    .iter()
    .map(ticket_from)
    .collect())
}

pub(crate) async fn add_ticket_message(pool: &AnyPool, m: &TicketMessageRecord) -> Result<bool> {
    let mut tx = pool.begin().await.map_err(db_err)?;
    let open = query("UPDATE support_tickets SET updated_at = ? WHERE id = ? AND status = 'open'")
        .bind(ms(m.at))
        .bind(&m.ticket_id)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?
        .rows_affected();
    if open == 0 {
        return Ok(false);
    }
    insert_message(&mut tx, m).await?;
    tx.commit().await.map_err(db_err)?;
    Ok(true)
}

pub(crate) async fn ticket_messages(
    pool: &AnyPool,
    ticket_id: &str,
) -> Result<Vec<TicketMessageRecord>> {
    Ok(query(
        "SELECT id, ticket_id, account_id, at, author, body FROM support_messages \
         WHERE ticket_id = ? ORDER BY at, id",
    )
    .bind(ticket_id)
    .fetch_all(pool)
    .await
    .map_err(db_err)?
    .iter()
    .map(|r| TicketMessageRecord {
        id: r.get("id"),
        ticket_id: r.get("ticket_id"),
        account_id: r.get("account_id"),
        at: from_ms(r.get("at")),
        author: r.get("author"),
        body: r.get("body"),
    })
    .collect())
}

pub(crate) async fn close_ticket(pool: &AnyPool, id: &str, at: OffsetDateTime) -> Result<bool> {
    Ok(query(
        "UPDATE support_tickets SET status = 'closed', closed_at = ?, updated_at = ? \
         WHERE id = ? AND status = 'open'",
    )
    .bind(ms(at))
    .bind(ms(at))
    .bind(id)
    .execute(pool)
    .await
    .map_err(db_err)?
    .rows_affected()
        == 1)
}

pub(crate) async fn sweep_tickets(pool: &AnyPool, closed_before: OffsetDateTime) -> Result<u64> {
    let mut tx = pool.begin().await.map_err(db_err)?;
    let m = query(
        "DELETE FROM support_messages WHERE ticket_id IN \
         (SELECT id FROM support_tickets WHERE closed_at IS NOT NULL AND closed_at < ?)",
    )
    .bind(ms(closed_before))
    .execute(&mut *tx)
    .await
    .map_err(db_err)?
    .rows_affected();
    let t = query("DELETE FROM support_tickets WHERE closed_at IS NOT NULL AND closed_at < ?")
        .bind(ms(closed_before))
        .execute(&mut *tx)
        .await
        .map_err(db_err)?
        .rows_affected();
    tx.commit().await.map_err(db_err)?;
    Ok(m + t)
}

pub(crate) async fn sealed_rows(pool: &AnyPool) -> Result<Vec<(SealedRow, Vec<u8>)>> {
    let mut out = Vec::new();
    for r in query("SELECT id, subject FROM support_tickets")
        .fetch_all(pool)
        .await
        .map_err(db_err)?
    {
        out.push((
            SealedRow::TicketSubject {
                ticket_id: r.get(0),
            },
            r.get(1),
        ));
    }
    for r in query("SELECT id, ticket_id, body FROM support_messages")
        .fetch_all(pool)
        .await
        .map_err(db_err)?
    {
        out.push((
            SealedRow::TicketMessage {
                id: r.get(0),
                ticket_id: r.get(1),
            },
            r.get(2),
        ));
    }
    for r in query("SELECT id, account_id, request_id, sealed FROM debug_logs")
        .fetch_all(pool)
        .await
        .map_err(db_err)?
    {
        out.push((
            SealedRow::DebugLog {
                id: r.get(0),
                account_id: r.get(1),
                request_id: r.get(2),
            },
            r.get(3),
        ));
    }
    Ok(out)
}

pub(crate) async fn set_sealed_row(pool: &AnyPool, row: &SealedRow, sealed: &[u8]) -> Result<()> {
    let q = match row {
        SealedRow::TicketSubject { ticket_id } => {
            query("UPDATE support_tickets SET subject = ? WHERE id = ?")
                .bind(sealed)
                .bind(ticket_id.as_str())
        }
        SealedRow::TicketMessage { id, .. } => {
            query("UPDATE support_messages SET body = ? WHERE id = ?")
                .bind(sealed)
                .bind(*id)
        }
        SealedRow::DebugLog { id, .. } => query("UPDATE debug_logs SET sealed = ? WHERE id = ?")
            .bind(sealed)
            .bind(*id),
    };
    q.execute(pool).await.map_err(db_err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use maximin_core::store::traits::*;
    use maximin_core::store::LedgerEntry;

    use super::*;
    use crate::sql::tests::{account, key};
    use crate::testdb::TestDb;

    fn ticket(id: &str, now: OffsetDateTime) -> TicketRecord {
        TicketRecord {
            id: id.into(),
            account_id: "a1".into(),
            subject: b"sealed".to_vec(),
            status: "open".into(),
            created_at: now,
            updated_at: now,
            closed_at: None,
        }
    }

    fn message(ticket_id: &str, now: OffsetDateTime) -> TicketMessageRecord {
        TicketMessageRecord {
            id: 0,
            ticket_id: ticket_id.into(),
            account_id: "a1".into(),
            at: now,
            author: "customer".into(),
            body: b"sealed body".to_vec(),
        }
    }

    async fn closure_revokes_every_key_and_the_purge_keeps_billing_records(db: &TestDb) {
        let s = db.open().await;
        for (a, k) in [("a1", "k1"), ("a2", "k2")] {
            s.insert_account(&account(a, &format!("{a}@x.io")))
                .await
                .expect("account");
            s.insert_key(&key(k, a), 20).await.expect("key");
            s.add_credit(&LedgerEntry {
                id: 0,
                account_id: a.into(),
                at: OffsetDateTime::now_utc(),
                amount_micro: 5,
                kind: "starting".into(),
                note: String::new(),
            })
            .await
            .expect("credit");
        }
        s.insert_key(&key("k3", "a1"), 20).await.expect("key");
        let now = OffsetDateTime::now_utc();
        s.insert_ticket(&ticket("t1", now), &message("t1", now))
            .await
            .expect("ticket");
        assert_eq!(s.close_account("a1", now).await.expect("close"), Some(2));
        let t = s.ticket("t1").await.expect("read").expect("t1");
        assert_eq!(t.status, "closed", "its 2 years start at closure");
        assert_eq!(t.closed_at.map(crate::sql::ms), Some(crate::sql::ms(now)));
        assert_eq!(s.close_account("a1", now).await.expect("again"), None);
        let (k, a) = s.key_by_hash("hash-k1").await.expect("read").expect("k1");
        assert!(k.revoked_at.is_some() && a.closed_at.is_some());
        assert!(s
            .key("k2")
            .await
            .expect("k2")
            .expect("k2")
            .revoked_at
            .is_none());
        // Not yet 90 days: nothing to purge; then only the closed account.
        assert!(s
            .closed_accounts(now - time::Duration::days(90))
            .await
            .expect("closed")
            .is_empty());
        let due = s
            .closed_accounts(now + time::Duration::seconds(1))
            .await
            .expect("closed");
        assert_eq!(due, ["a1"]);
        assert!(s.purge_account("a1").await.expect("purge"));
        assert!(!s.purge_account("a2").await.expect("open accounts stay"));
        assert!(s.account("a1").await.expect("read").is_none());
        assert!(s.key("k3").await.expect("read").is_none());
        assert_eq!(
            s.ledger("a1").await.expect("ledger").len(),
            1,
            "kept 7 years"
        );
        assert!(s.account("a2").await.expect("read").is_some());
    }

    async fn closed_tickets_go_two_years_on_and_open_ones_stay(db: &TestDb) {
        let s = db.open().await;
        let now = OffsetDateTime::now_utc();
        for id in ["t1", "t2"] {
            s.insert_ticket(&ticket(id, now), &message(id, now))
                .await
                .expect("ticket");
        }
        assert!(s.close_ticket("t1", now).await.expect("close"));
        assert!(!s.close_ticket("t1", now).await.expect("closed already"));
        let reply = message("t1", now);
        assert!(!s.add_ticket_message(&reply).await.expect("closed"));
        assert_eq!(s.sweep_tickets(now).await.expect("sweep"), 0, "not before");
        assert_eq!(
            s.sweep_tickets(now + time::Duration::seconds(1))
                .await
                .expect("sweep"),
            2,
            "the ticket and its message"
        );
        assert!(s.ticket("t1").await.expect("read").is_none());
        assert_eq!(s.ticket_messages("t2").await.expect("read").len(), 1);
        let f = s
            .category_figures("a1", DataCategory::SupportMessages)
            .await
            .expect("figures");
        assert_eq!(f.count, 1);
    }

    /// Fine-tunes count their jobs and the models still served; a
    /// deletion takes the ended jobs whose run has stopped and whose model
    /// is gone, with their events and checkpoints, and nothing of another
    /// account.
    async fn fine_tunes_count_jobs_and_models_and_go_once_ended(db: &TestDb) {
        use crate::sql::tests::{fine_tune, served, task};
        use maximin_core::finetune::store::{FineTuneCheckpoint, FineTuneRecord};
        use maximin_core::store::{TaskEnd, TaskStatus};
        let s = db.open().await;
        for a in ["a1", "a2"] {
            s.insert_account(&account(a, &format!("{a}@x.io")))
                .await
                .expect("account");
        }
        let now = crate::sql::from_ms(crate::sql::ms(OffsetDateTime::now_utc()));
        let empty = s
            .category_figures("a1", DataCategory::FineTunes)
            .await
            .expect("figures");
        assert_eq!((empty.count, empty.bytes, empty.oldest), (0, 0, None));
        // 1: succeeded, its model served; 2: running; 3: failed; 4: another
        // account's, succeeded.
        let succeeded = |id, account: &str| FineTuneRecord {
            status: "succeeded".into(),
            fine_tuned_model: Some(format!("ft:base::{id}")),
            adapter_file: Some(3000 + id),
            finished_at: Some(now),
            ..fine_tune(id, account, now)
        };
        let jobs = [
            succeeded(1, "a1"),
            FineTuneRecord {
                status: "running".into(),
                ..fine_tune(2, "a1", now)
            },
            FineTuneRecord {
                status: "failed".into(),
                error: Some(r#"{"code":"server_error"}"#.into()),
                finished_at: Some(now),
                ..fine_tune(3, "a1", now)
            },
            succeeded(4, "a2"),
        ];
        for j in &jobs {
            let status = match j.status.as_str() {
                "running" => TaskStatus::Processing,
                "failed" => TaskStatus::Failed,
                _ => TaskStatus::Success,
            };
            s.insert_task(&TaskRecord {
                account_id: j.account_id.clone(),
                kind: "fine_tune".into(),
                status,
                attempts: 1,
                ..task(j.task_id, now)
            })
            .await
            .expect("task");
            s.insert_fine_tune(j).await.expect("job");
        }
        let f = s
            .category_figures("a1", DataCategory::FineTunes)
            .await
            .expect("figures");
        assert_eq!(f.count, 4, "three jobs and one model");
        assert_eq!(f.oldest.map(crate::sql::ms), Some(crate::sql::ms(now)));
        for job in [1, 3] {
            s.add_fine_tune_event(
                job,
                "info",
                "Step 1/1: training loss=1.0",
                Some(r#"{"step":1}"#),
                now,
            )
            .await
            .expect("event");
        }
        s.add_fine_tune_checkpoint(&FineTuneCheckpoint {
            job_id: 3,
            step: 1,
            file_id: 300,
            metrics: r#"{"step":1}"#.into(),
            created_at: now,
        })
        .await
        .expect("checkpoint");
        let g = s
            .category_figures("a1", DataCategory::FineTunes)
            .await
            .expect("figures");
        assert_eq!(g.count, 4, "events are a job's");
        assert!(g.bytes > f.bytes, "{} then {}", f.bytes, g.bytes);
        assert_eq!(
            s.category_figures("a2", DataCategory::FineTunes)
                .await
                .expect("figures")
                .count,
            2
        );

        // Only the failed job: the served model and the running job stay.
        assert_eq!(
            s.delete_records("a1", DataCategory::FineTunes, now)
                .await
                .expect("delete"),
            1
        );
        assert!(s.fine_tune(3).await.expect("get").is_none());
        assert!(s
            .fine_tune_events(3, 0, 10)
            .await
            .expect("events")
            .is_empty());
        assert!(s.fine_tune_checkpoints(3).await.expect("cps").is_empty());
        // The model deleted and the running job ended (cancelled), its run
        // not yet stopped: only the first job goes.
        assert!(s.delete_fine_tuned_model(1).await.expect("model"));
        assert!(s
            .finish_fine_tune(2, "cancelled", None, None, None, None, now)
            .await
            .expect("cancel"));
        assert_eq!(
            s.delete_records("a1", DataCategory::FineTunes, now)
                .await
                .expect("delete"),
            1
        );
        assert!(s
            .fine_tune_events(1, 0, 10)
            .await
            .expect("events")
            .is_empty());
        assert_eq!(ids(s.fine_tunes_of("a1").await.expect("of")), [2]);
        // Its run stopped: it goes too.
        let end = TaskEnd {
            status: TaskStatus::Failed,
            result: None,
            error_code: Some("invalid_request".into()),
            error_message: Some("The job was cancelled.".into()),
            file: None,
        };
        assert!(s.end_task(1002, 1, &end, now).await.expect("end"));
        assert_eq!(
            s.delete_records("a1", DataCategory::FineTunes, now)
                .await
                .expect("delete"),
            1
        );
        let f = s
            .category_figures("a1", DataCategory::FineTunes)
            .await
            .expect("figures");
        assert_eq!((f.count, f.bytes, f.oldest), (0, 0, None));
        // Another account's, untouched.
        assert_eq!(ids(s.fine_tunes_of("a2").await.expect("of")), [4]);
        assert_eq!(served(&s, &["a1", "a2"]).await, [4]);
    }

    fn ids(jobs: Vec<maximin_core::finetune::store::FineTuneRecord>) -> Vec<i64> {
        jobs.iter().map(|j| j.id).collect()
    }

    crate::store_tests!(
        closure_revokes_every_key_and_the_purge_keeps_billing_records,
        closed_tickets_go_two_years_on_and_open_ones_stay,
        fine_tunes_count_jobs_and_models_and_go_once_ended,
    );
}

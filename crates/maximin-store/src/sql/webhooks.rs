//! Webhook deliveries on SQLite: one row per delivery not yet taken, held
//! by one runner at a time through a lease (`claim` is one statement, so
//! two processes never take the same row).

use maximin_core::store::WebhookRecord;
use maximin_core::Result;
use sqlx::any::AnyRow;
use sqlx::AnyPool;
use sqlx::Row;
use time::OffsetDateTime;

use super::{db_err, from_ms, ms, query};

const COLUMNS: &str = "id, account_id, payload, attempts, created_at";

fn from_row(row: &AnyRow) -> WebhookRecord {
    WebhookRecord {
        id: row.get("id"),
        account_id: row.get("account_id"),
        payload: row.get("payload"),
        attempts: u32::try_from(row.get::<i64, _>("attempts")).unwrap_or(u32::MAX),
        created_at: from_ms(row.get("created_at")),
    }
}

pub(crate) async fn insert(
    pool: &AnyPool,
    w: &WebhookRecord,
    lease_until: OffsetDateTime,
) -> Result<()> {
    query(
        "INSERT INTO webhook_deliveries (id, account_id, payload, attempts, next_at, lease_until, created_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(w.id)
    .bind(&w.account_id)
    .bind(&w.payload)
    .bind(i64::from(w.attempts))
    .bind(ms(w.created_at))
    .bind(ms(lease_until))
    .bind(ms(w.created_at))
    .execute(pool)
    .await
    .map_err(db_err)?;
    Ok(())
}

pub(crate) async fn claim(
    pool: &AnyPool,
    dialect: super::Dialect,
    now: OffsetDateTime,
    lease_until: OffsetDateTime,
    limit: u32,
) -> Result<Vec<WebhookRecord>> {
    let rows = query(&format!(
        "UPDATE webhook_deliveries SET lease_until = ?, attempts = attempts + 1 \
         WHERE id IN (SELECT id FROM webhook_deliveries WHERE next_at <= ? AND lease_until < ? \
             ORDER BY next_at, id LIMIT ?{}) \
         RETURNING {COLUMNS}",
        dialect.skip_locked()
    ))
    .bind(ms(lease_until))
    .bind(ms(now))
    .bind(ms(now))
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await
    .map_err(db_err)?;
    Ok(rows.iter().map(from_row).collect())
}

pub(crate) async fn retry(pool: &AnyPool, id: i64, next_at: OffsetDateTime) -> Result<()> {
    query("UPDATE webhook_deliveries SET next_at = ?, lease_until = 0 WHERE id = ?")
        .bind(ms(next_at))
        .bind(id)
        .execute(pool)
        .await
        .map_err(db_err)?;
    Ok(())
}

pub(crate) async fn delete(pool: &AnyPool, id: i64) -> Result<()> {
    query("DELETE FROM webhook_deliveries WHERE id = ?")
        .bind(id)
        .execute(pool)
        .await
        .map_err(db_err)?;
    Ok(())
}

pub(crate) async fn payloads(pool: &AnyPool) -> Result<Vec<(i64, Vec<u8>)>> {
    Ok(query("SELECT id, payload FROM webhook_deliveries")
        .fetch_all(pool)
        .await
        .map_err(db_err)?
        .iter()
        .map(|r| (r.get("id"), r.get("payload")))
        .collect())
}

pub(crate) async fn set_payload(pool: &AnyPool, id: i64, payload: &[u8]) -> Result<()> {
    query("UPDATE webhook_deliveries SET payload = ? WHERE id = ?")
        .bind(payload)
        .bind(id)
        .execute(pool)
        .await
        .map_err(db_err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::testdb::TestDb;
    use maximin_core::store::traits::*;
    use maximin_core::store::WebhookRecord;
    use time::{Duration, OffsetDateTime};

    async fn a_delivery_is_held_by_one_runner_until_its_lease_or_pause_ends(db: &TestDb) {
        let s = db.open().await;
        let t0 = OffsetDateTime::from_unix_timestamp(1_800_000_000).expect("time");
        let w = WebhookRecord {
            id: 7,
            account_id: "a1".into(),
            payload: vec![1, 2, 3],
            attempts: 1,
            created_at: t0,
        };
        // Recorded under its first attempt's lease: no one else takes it.
        s.insert_webhook(&w, t0 + Duration::seconds(60))
            .await
            .expect("insert");
        let claim = |now: OffsetDateTime| s.claim_webhooks(now, now + Duration::seconds(60), 16);
        assert!(claim(t0 + Duration::seconds(30))
            .await
            .expect("claim")
            .is_empty());
        // A lease that ran out (its runner died): taken up, one more attempt.
        let got = claim(t0 + Duration::seconds(61)).await.expect("claim");
        assert_eq!(got.len(), 1);
        assert_eq!(
            (got[0].id, got[0].attempts, &got[0].payload[..]),
            (7, 2, &[1u8, 2, 3][..])
        );
        // Held now: a second claim at the same time gets nothing.
        assert!(claim(t0 + Duration::seconds(62))
            .await
            .expect("claim")
            .is_empty());
        // Failed: due again only when its pause is over.
        s.retry_webhook(7, t0 + Duration::seconds(100))
            .await
            .expect("retry");
        assert!(claim(t0 + Duration::seconds(99))
            .await
            .expect("claim")
            .is_empty());
        assert_eq!(
            claim(t0 + Duration::seconds(100))
                .await
                .expect("claim")
                .len(),
            1
        );
        // Rewrapped payloads are kept; a taken delivery is gone.
        s.set_webhook_payload(7, &[9]).await.expect("set");
        assert_eq!(
            s.webhook_payloads().await.expect("payloads"),
            vec![(7, vec![9])]
        );
        s.delete_webhook(7).await.expect("delete");
        assert!(s.webhook_payloads().await.expect("payloads").is_empty());
        assert!(claim(t0 + Duration::seconds(1000))
            .await
            .expect("claim")
            .is_empty());
    }

    crate::store_tests!(a_delivery_is_held_by_one_runner_until_its_lease_or_pause_ends);
}

use super::*;

#[async_trait]
impl IdempotencyStore for SqlStore {
    async fn idem_claim(
        &self,
        id: &str,
        account_id: &str,
        fingerprint: &str,
        now: OffsetDateTime,
        expires_at: OffsetDateTime,
    ) -> Result<IdemState> {
        // One statement: insert, or take over a record that has expired.
        let res = query(
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
        let row =
            query("SELECT fingerprint, sealed FROM idempotency WHERE id = ? AND expires_at > ?")
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
        query("UPDATE idempotency SET sealed = ? WHERE id = ?")
            .bind(sealed)
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn idem_release(&self, id: &str) -> Result<()> {
        query("DELETE FROM idempotency WHERE id = ? AND sealed IS NULL")
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(())
    }
}

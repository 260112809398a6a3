use super::*;

pub(crate) const TASK_COLUMNS: &str = "id, account_id, key_id, kind, status, params, file_id, result, error_code, error_message, attempts, lease_until, progress, created_at, updated_at";

pub(crate) fn task_from(row: &AnyRow) -> Result<TaskRecord> {
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

#[async_trait]
impl TaskStore for SqlStore {
    async fn insert_task(&self, t: &TaskRecord) -> Result<()> {
        query(&format!(
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
        query(&format!("SELECT {TASK_COLUMNS} FROM tasks WHERE id = ?"))
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
                 ORDER BY created_at, id LIMIT 1{}) \
             RETURNING {TASK_COLUMNS}",
            self.dialect.skip_locked()
        );
        let mut q = query(&sql).bind(ms(lease_until)).bind(ms(now));
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
        Ok(query(
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
        let changed = query(
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
            super::files::insert_file_in(&mut tx, f, u64::MAX / 2).await?;
        }
        tx.commit().await.map_err(db_err)?;
        Ok(true)
    }

    async fn task_params(&self) -> Result<Vec<(i64, Vec<u8>)>> {
        Ok(
            query("SELECT id, params FROM tasks WHERE params IS NOT NULL")
                .fetch_all(&self.pool)
                .await
                .map_err(db_err)?
                .iter()
                .map(|r| (r.get("id"), r.get("params")))
                .collect(),
        )
    }

    async fn set_task_params(&self, id: i64, params: &[u8]) -> Result<()> {
        query("UPDATE tasks SET params = ? WHERE id = ? AND params IS NOT NULL")
            .bind(params)
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn insert_webhook(&self, w: &WebhookRecord, lease_until: OffsetDateTime) -> Result<()> {
        super::webhooks::insert(&self.pool, w, lease_until).await
    }

    async fn claim_webhooks(
        &self,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<WebhookRecord>> {
        super::webhooks::claim(&self.pool, self.dialect, now, lease_until, limit).await
    }

    async fn retry_webhook(&self, id: i64, next_at: OffsetDateTime) -> Result<()> {
        super::webhooks::retry(&self.pool, id, next_at).await
    }

    async fn delete_webhook(&self, id: i64) -> Result<()> {
        super::webhooks::delete(&self.pool, id).await
    }

    async fn webhook_payloads(&self) -> Result<Vec<(i64, Vec<u8>)>> {
        super::webhooks::payloads(&self.pool).await
    }

    async fn set_webhook_payload(&self, id: i64, payload: &[u8]) -> Result<()> {
        super::webhooks::set_payload(&self.pool, id, payload).await
    }
}

//! Fine-tunes: the jobs and the models they made, their events and
//! checkpoints.

use maximin_core::finetune::store::{
    FineTuneCheckpoint, FineTuneEvent, FineTuneRecord, FineTuneStore,
};

use super::*;

const JOB_COLUMNS: &str = "id, account_id, key_id, task_id, base_model, training_file, \
     validation_file, hyperparameters, suffix, seed, status, fine_tuned_model, adapter_file, \
     trained_tokens, error, created_at, updated_at, finished_at, model_deleted";

/// The statuses a job never leaves, as SQL (see `FINAL_STATUSES`).
pub(super) const NOT_FINAL: &str = "status NOT IN ('succeeded', 'failed', 'cancelled')";

fn job_from(row: &AnyRow) -> FineTuneRecord {
    FineTuneRecord {
        id: row.get("id"),
        account_id: row.get("account_id"),
        key_id: row.get("key_id"),
        task_id: row.get("task_id"),
        base_model: row.get("base_model"),
        training_file: row.get("training_file"),
        validation_file: row.get("validation_file"),
        hyperparameters: row.get("hyperparameters"),
        suffix: row.get("suffix"),
        seed: row.get("seed"),
        status: row.get("status"),
        fine_tuned_model: row.get("fine_tuned_model"),
        adapter_file: row.get("adapter_file"),
        trained_tokens: row.get("trained_tokens"),
        error: row.get("error"),
        created_at: from_ms(row.get("created_at")),
        updated_at: from_ms(row.get("updated_at")),
        finished_at: row.get::<Option<i64>, _>("finished_at").map(from_ms),
        model_deleted: row.get::<i64, _>("model_deleted") != 0,
    }
}

fn fine_tune_event_from(row: &AnyRow) -> FineTuneEvent {
    FineTuneEvent {
        job_id: row.get("job_id"),
        seq: row.get("seq"),
        created_at: from_ms(row.get("created_at")),
        level: row.get("level"),
        message: row.get("message"),
        data: row.get("data"),
    }
}

fn checkpoint_from(row: &AnyRow) -> FineTuneCheckpoint {
    FineTuneCheckpoint {
        job_id: row.get("job_id"),
        step: row.get("step"),
        file_id: row.get("file_id"),
        metrics: row.get("metrics"),
        created_at: from_ms(row.get("created_at")),
    }
}

impl SqlStore {
    async fn fine_tunes_where(
        &self,
        filter: &str,
        bind: Option<&str>,
    ) -> Result<Vec<FineTuneRecord>> {
        let sql =
            format!("SELECT {JOB_COLUMNS} FROM fine_tunes WHERE {filter} ORDER BY created_at, id");
        let q = query(&sql);
        let q = match bind {
            Some(v) => q.bind(v.to_owned()),
            None => q,
        };
        Ok(q.fetch_all(&self.pool)
            .await
            .map_err(db_err)?
            .iter()
            .map(job_from)
            .collect())
    }
}

#[async_trait]
impl FineTuneStore for SqlStore {
    async fn insert_fine_tune(&self, r: &FineTuneRecord) -> Result<()> {
        query(&format!(
            "INSERT INTO fine_tunes ({JOB_COLUMNS}) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        ))
        .bind(r.id)
        .bind(&r.account_id)
        .bind(&r.key_id)
        .bind(r.task_id)
        .bind(&r.base_model)
        .bind(r.training_file)
        .bind(r.validation_file)
        .bind(&r.hyperparameters)
        .bind(r.suffix.clone())
        .bind(r.seed)
        .bind(&r.status)
        .bind(r.fine_tuned_model.clone())
        .bind(r.adapter_file)
        .bind(r.trained_tokens)
        .bind(r.error.clone())
        .bind(ms(r.created_at))
        .bind(ms(r.updated_at))
        .bind(r.finished_at.map(ms))
        .bind(i64::from(r.model_deleted))
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn fine_tune(&self, id: i64) -> Result<Option<FineTuneRecord>> {
        Ok(query(&format!(
            "SELECT {JOB_COLUMNS} FROM fine_tunes WHERE id = ?"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?
        .as_ref()
        .map(job_from))
    }

    async fn fine_tunes_of(&self, account_id: &str) -> Result<Vec<FineTuneRecord>> {
        self.fine_tunes_where("account_id = ?", Some(account_id))
            .await
    }

    async fn fine_tune_by_model(&self, model: &str) -> Result<Option<FineTuneRecord>> {
        Ok(self
            .fine_tunes_where("fine_tuned_model = ? AND model_deleted = 0", Some(model))
            .await?
            .into_iter()
            .next())
    }

    async fn set_fine_tune_status(
        &self,
        id: i64,
        status: &str,
        at: OffsetDateTime,
    ) -> Result<bool> {
        let res = query(&format!(
            "UPDATE fine_tunes SET status = ?, updated_at = ? WHERE id = ? AND {NOT_FINAL}"
        ))
        .bind(status)
        .bind(ms(at))
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(res.rows_affected() > 0)
    }

    async fn finish_fine_tune(
        &self,
        id: i64,
        status: &str,
        fine_tuned_model: Option<&str>,
        adapter_file: Option<i64>,
        trained_tokens: Option<i64>,
        error: Option<&str>,
        at: OffsetDateTime,
    ) -> Result<bool> {
        // One statement whose condition is the current status: of two
        // ends racing (PostgreSQL re-reads the row the first one wrote;
        // SQLite runs one writer at a time), only the first matches.
        let res = query(&format!(
            "UPDATE fine_tunes SET status = ?, fine_tuned_model = ?, adapter_file = ?, \
             trained_tokens = ?, error = ?, finished_at = ?, updated_at = ? \
             WHERE id = ? AND {NOT_FINAL}"
        ))
        .bind(status)
        .bind(fine_tuned_model.map(str::to_owned))
        .bind(adapter_file)
        .bind(trained_tokens)
        .bind(error.map(str::to_owned))
        .bind(ms(at))
        .bind(ms(at))
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        let done = res.rows_affected() > 0;
        if done && fine_tuned_model.is_some() {
            // A new model in its account's list (cached by epoch).
            self.bump_epoch().await;
        }
        Ok(done)
    }

    async fn delete_fine_tuned_model(&self, id: i64) -> Result<bool> {
        let res =
            query("UPDATE fine_tunes SET model_deleted = 1 WHERE id = ? AND model_deleted = 0")
                .bind(id)
                .execute(&self.pool)
                .await
                .map_err(db_err)?;
        let done = res.rows_affected() > 0;
        if done {
            self.bump_epoch().await;
        }
        Ok(done)
    }

    async fn add_fine_tune_event(
        &self,
        job_id: i64,
        level: &str,
        message: &str,
        data: Option<&str>,
        at: OffsetDateTime,
    ) -> Result<i64> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        if self.dialect == Dialect::Postgres {
            // Appends to one job take turns on its row: the next statement
            // (a new snapshot under READ COMMITTED) sees the last one's
            // event. SQLite runs one writer at a time already, and takes
            // the write lock before the statement reads.
            query("SELECT id FROM fine_tunes WHERE id = ? FOR UPDATE")
                .bind(job_id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_err)?;
        }
        let seq: i64 = query_scalar(
            "INSERT INTO fine_tune_events (job_id, seq, created_at, level, message, data) \
             SELECT ?1, COALESCE(MAX(seq), 0) + 1, ?2, ?3, ?4, ?5 FROM fine_tune_events WHERE job_id = ?1 \
             RETURNING seq",
        )
        .bind(job_id)
        .bind(ms(at))
        .bind(level)
        .bind(message)
        .bind(data.map(str::to_owned))
        .fetch_one(&mut *tx)
        .await
        .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        Ok(seq)
    }

    async fn fine_tune_events(
        &self,
        job_id: i64,
        after: i64,
        limit: i64,
    ) -> Result<Vec<FineTuneEvent>> {
        Ok(query(
            "SELECT job_id, seq, created_at, level, message, data FROM fine_tune_events \
             WHERE job_id = ? AND seq > ? ORDER BY seq LIMIT ?",
        )
        .bind(job_id)
        .bind(after)
        .bind(limit.max(0))
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?
        .iter()
        .map(fine_tune_event_from)
        .collect())
    }

    async fn add_fine_tune_checkpoint(&self, c: &FineTuneCheckpoint) -> Result<()> {
        query(
            "INSERT INTO fine_tune_checkpoints (job_id, step, file_id, metrics, created_at) \
             VALUES (?, ?, ?, ?, ?) ON CONFLICT (job_id, step) DO UPDATE SET \
             file_id = excluded.file_id, metrics = excluded.metrics, created_at = excluded.created_at",
        )
        .bind(c.job_id)
        .bind(c.step)
        .bind(c.file_id)
        .bind(&c.metrics)
        .bind(ms(c.created_at))
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn fine_tune_checkpoints(&self, job_id: i64) -> Result<Vec<FineTuneCheckpoint>> {
        Ok(query(
            "SELECT job_id, step, file_id, metrics, created_at FROM fine_tune_checkpoints \
             WHERE job_id = ? ORDER BY step",
        )
        .bind(job_id)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?
        .iter()
        .map(checkpoint_from)
        .collect())
    }

    async fn delete_fine_tune_checkpoints(
        &self,
        job_id: i64,
        keep_from_step: i64,
    ) -> Result<Vec<i64>> {
        query_scalar(
            "DELETE FROM fine_tune_checkpoints WHERE job_id = ? AND step < ? RETURNING file_id",
        )
        .bind(job_id)
        .bind(keep_from_step)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)
    }
}

#[cfg(test)]
mod sync_tests {
    use maximin_core::finetune::store::FINAL_STATUSES;

    #[test]
    fn the_sql_names_every_final_status() {
        for s in FINAL_STATUSES {
            assert!(super::NOT_FINAL.contains(&format!("'{s}'")), "{s}");
        }
        assert_eq!(
            super::NOT_FINAL.matches('\'').count(),
            2 * FINAL_STATUSES.len()
        );
    }
}

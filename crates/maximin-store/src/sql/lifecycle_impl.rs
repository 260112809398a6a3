use super::*;

#[async_trait]
impl LifecycleStore for SqlStore {
    async fn append_privacy(&self, r: &PrivacyRecord) -> Result<()> {
        query(
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
        Ok(query(
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

    async fn sweep(&self, now: OffsetDateTime, usage_retention: time::Duration) -> Result<u64> {
        let a = query("DELETE FROM idempotency WHERE expires_at <= ?")
            .bind(ms(now))
            .execute(&self.pool)
            .await
            .map_err(db_err)?
            .rows_affected();
        let b = query("DELETE FROM usage_events WHERE at < ?")
            .bind(ms(now - usage_retention))
            .execute(&self.pool)
            .await
            .map_err(db_err)?
            .rows_affected();
        // A task's record is metadata of a request, kept as long as usage
        // events; its output is a file with an expiry of its own.
        let c = query("DELETE FROM tasks WHERE status IN ('success', 'failed') AND updated_at < ?")
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
        self.bump_epoch().await;
        out
    }

    async fn closed_accounts(&self, closed_before: OffsetDateTime) -> Result<Vec<String>> {
        lifecycle::closed_accounts(&self.pool, closed_before).await
    }

    async fn purge_account(&self, id: &str) -> Result<bool> {
        let out = lifecycle::purge_account(&self.pool, id).await;
        self.bump_epoch().await;
        out
    }

    async fn set_debug_until(&self, id: &str, until: Option<OffsetDateTime>) -> Result<bool> {
        let out = lifecycle::set_debug_until(&self.pool, id, until).await;
        // Cached callers carry the old window.
        self.bump_epoch().await;
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

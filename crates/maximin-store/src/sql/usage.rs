use super::*;
use maximin_core::store::DailyUsage;

pub(crate) fn event_from(row: &AnyRow) -> UsageEvent {
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

pub(crate) fn figures_from(row: &AnyRow) -> UsageFigures {
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

#[async_trait]
impl UsageStore for SqlStore {
    async fn record_usage(&self, events: &[UsageEvent]) -> Result<()> {
        // In key order, as every other writer: two processes' batches
        // take the rows' locks in one order, so they never deadlock.
        let mut per_key: BTreeMap<&str, (UsageFigures, i64)> = BTreeMap::new();
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        // 52 rows to a statement (17 parameters each: 884, under SQLite's
        // oldest limit of 999). A statement per row cost a round trip to
        // SQLite's thread each: a sixth of a gateway request's CPU.
        for chunk in events.chunks(52) {
            let row = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
            let sql = format!(
                "INSERT INTO usage_events (at, account_id, key_id, request_id, method, endpoint, status, model, \
                 prompt_tokens, completion_tokens, characters, images, media_ms, latency_us, error_code, client_ip, cost_micro) \
                 VALUES {}",
                vec![row; chunk.len()].join(", ")
            );
            let mut q = query(&sql);
            for e in chunk {
                q = q
                    .bind(ms(e.at))
                    .bind(e.account_id.as_str())
                    .bind(e.key_id.as_str())
                    .bind(e.request_id.as_str())
                    .bind(e.method.as_str())
                    .bind(e.endpoint.as_str())
                    .bind(i64::from(e.status))
                    .bind(e.model.as_deref())
                    .bind(i(e.prompt_tokens))
                    .bind(i(e.completion_tokens))
                    .bind(i(e.characters))
                    .bind(i(e.images))
                    .bind(i(e.media_ms))
                    .bind(i(e.latency_us))
                    .bind(e.error_code.as_deref())
                    .bind(e.client_ip.as_deref())
                    .bind(e.charge.cost_micro);
            }
            q.execute(&mut *tx).await.map_err(db_err)?;
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
            query(
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
        super::billing::charge(&mut tx, events).await?;
        tx.commit().await.map_err(db_err)
    }

    async fn hold_credit(
        &self,
        hold: &CreditHold,
        limits: &HoldLimits,
        now: OffsetDateTime,
    ) -> Result<std::result::Result<(), HoldRefusal>> {
        super::billing::hold(self, hold, limits, now).await
    }

    async fn release_holds(&self, ids: &[String]) -> Result<()> {
        super::billing::release(&self.pool, ids).await
    }

    async fn credit(&self, account_id: &str, now: OffsetDateTime) -> Result<(i64, i64)> {
        super::billing::credit(&self.pool, account_id, now).await
    }

    async fn key_spend(
        &self,
        key_id: &str,
        month: &str,
        now: OffsetDateTime,
    ) -> Result<(i64, i64)> {
        super::billing::key_spend(&self.pool, key_id, month, now).await
    }

    async fn add_credit(&self, entry: &LedgerEntry) -> Result<Option<i64>> {
        super::billing::add_credit(&self.pool, entry).await
    }

    async fn ledger(&self, account_id: &str) -> Result<Vec<LedgerEntry>> {
        super::billing::ledger(&self.pool, account_id).await
    }

    async fn billing_lines(
        &self,
        account_id: &str,
        from: &str,
        to: &str,
    ) -> Result<Vec<BillingLine>> {
        super::billing::lines(&self.pool, account_id, from, to).await
    }

    async fn sweep_billing(
        &self,
        now: OffsetDateTime,
        ledger_before: OffsetDateTime,
        month_before: &str,
    ) -> Result<u64> {
        super::billing::sweep(&self.pool, now, ledger_before, month_before).await
    }

    async fn activity(&self, key_id: &str, limit: u32) -> Result<Vec<UsageEvent>> {
        Ok(query(
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

    async fn usage_daily(
        &self,
        account_id: &str,
        since: OffsetDateTime,
    ) -> Result<Vec<DailyUsage>> {
        Ok(query(
            "SELECT at / 86400000 AS day, key_id, COALESCE(model, '') AS model, COUNT(*) AS requests, \
             CAST(COALESCE(SUM(prompt_tokens + completion_tokens), 0) AS BIGINT) AS tokens, \
             CAST(COALESCE(SUM(characters), 0) AS BIGINT) AS characters, \
             CAST(COALESCE(SUM(cost_micro), 0) AS BIGINT) AS cost_micro \
             FROM usage_events WHERE account_id = ? AND at >= ? \
             GROUP BY at / 86400000, key_id, COALESCE(model, '') ORDER BY day, key_id, model",
        )
        .bind(account_id)
        .bind(ms(since))
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?
        .iter()
        .map(|r| DailyUsage {
            day: r.get("day"),
            key_id: r.get("key_id"),
            model: r.get("model"),
            requests: r.get::<i64, _>("requests").max(0) as u64,
            tokens: r.get::<i64, _>("tokens").max(0) as u64,
            characters: r.get::<i64, _>("characters").max(0) as u64,
            cost_micro: r.get("cost_micro"),
        })
        .collect())
    }

    async fn usage_summary(
        &self,
        account_id: &str,
        since: OffsetDateTime,
        until: OffsetDateTime,
    ) -> Result<UsageSummary> {
        const SUMS: &str = "COUNT(*) AS requests, CAST(SUM(CASE WHEN status >= 400 THEN 1 ELSE 0 END) AS BIGINT) AS errors, \
             CAST(COALESCE(SUM(prompt_tokens), 0) AS BIGINT) AS prompt_tokens, CAST(COALESCE(SUM(completion_tokens), 0) AS BIGINT) AS completion_tokens, \
             CAST(COALESCE(SUM(characters), 0) AS BIGINT) AS characters, CAST(COALESCE(SUM(images), 0) AS BIGINT) AS images, \
             CAST(COALESCE(SUM(media_ms), 0) AS BIGINT) AS media_ms";
        let by_key = query(&format!(
            "SELECT key_id AS name, {SUMS} FROM usage_events WHERE account_id = ? AND at >= ? AND at <= ? \
             GROUP BY key_id ORDER BY key_id"
        ))
        .bind(account_id)
        .bind(ms(since))
        .bind(ms(until))
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        let by_model = query(&format!(
            "SELECT model AS name, {SUMS} FROM usage_events WHERE account_id = ? AND at >= ? AND at <= ? \
             AND model IS NOT NULL GROUP BY model ORDER BY model"
        ))
        .bind(account_id)
        .bind(ms(since))
        .bind(ms(until))
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        let named = |rows: Vec<AnyRow>| {
            rows.iter()
                .map(|r| (r.get::<String, _>("name"), figures_from(r)))
                .collect()
        };
        Ok(UsageSummary {
            by_key: named(by_key),
            by_model: named(by_model),
        })
    }
}

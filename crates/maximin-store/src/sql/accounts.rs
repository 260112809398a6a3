use super::*;

fn account_from(row: &AnyRow) -> Result<Account> {
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

pub(crate) fn routing_text(r: &Routing) -> Result<String> {
    serde_json::to_string(r).map_err(Error::internal)
}

fn limits_from(rpm: Option<i64>, burst: Option<i64>, tpm: Option<i64>) -> Option<CustomLimits> {
    rpm.map(|rpm| CustomLimits {
        rpm: u32::try_from(rpm).unwrap_or(u32::MAX),
        burst: u32::try_from(burst.unwrap_or(0)).unwrap_or(u32::MAX),
        tpm: tpm.map(|t| u32::try_from(t).unwrap_or(u32::MAX)),
    })
}

fn key_from(row: &AnyRow) -> Result<ApiKey> {
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
        usage: super::usage::figures_from(row),
        budget_micro: row.get("budget_micro"),
    })
}

const KEY_COLUMNS: &str = "id, account_id, name, prefix, hash, test, scopes, models, created_at, revoked_at, last_used_at, requests, errors, prompt_tokens, completion_tokens, characters, images, media_ms, routing, budget_micro";

#[async_trait]
impl AccountStore for SqlStore {
    async fn auth_epoch(&self) -> Result<Option<u64>> {
        self.read_epoch().await
    }

    async fn ping(&self) -> Result<()> {
        query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn insert_account(&self, a: &Account) -> Result<()> {
        let res = query(
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
        query(
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
        query(
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
        // another writer (on PostgreSQL, with the account's row held).
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        self.lock_account(&mut tx, &k.account_id).await?;
        let res = query(
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
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        Ok(res.rows_affected() == 1)
    }

    async fn key_by_hash(&self, hash: &str) -> Result<Option<(ApiKey, Account)>> {
        let row = query(
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
        query(&format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE id = ?"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?
            .as_ref()
            .map(key_from)
            .transpose()
    }

    async fn keys_of(&self, account_id: &str) -> Result<Vec<ApiKey>> {
        query(&format!(
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

    async fn set_account_plan(
        &self,
        id: &str,
        plan: Plan,
        limits: Option<CustomLimits>,
    ) -> Result<bool> {
        let res = query("UPDATE accounts SET plan = ?, rpm = ?, burst = ?, tpm = ? WHERE id = ?")
            .bind(plan.as_str())
            .bind(limits.map(|l| i64::from(l.rpm)))
            .bind(limits.map(|l| i64::from(l.burst)))
            .bind(limits.and_then(|l| l.tpm).map(i64::from))
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        self.bump_epoch().await;
        Ok(res.rows_affected() == 1)
    }

    async fn set_key_routing(&self, id: &str, routing: &Routing) -> Result<bool> {
        self.set_routing("UPDATE api_keys SET routing = ? WHERE id = ?", id, routing)
            .await
    }

    async fn revoke_key(&self, id: &str, at: OffsetDateTime) -> Result<bool> {
        let res = query("UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL")
            .bind(ms(at))
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        self.bump_epoch().await;
        Ok(res.rows_affected() == 1)
    }

    async fn set_key_budget(&self, key_id: &str, budget_micro: Option<i64>) -> Result<bool> {
        let changed = super::billing::set_key_budget(&self.pool, key_id, budget_micro).await?;
        // Cached callers carry the old budget.
        self.bump_epoch().await;
        Ok(changed)
    }
}

//! Billing on SQLite: balances, credit holds, the credit ledger and the
//! monthly billing lines. A hold is one statement that checks the balance
//! (and the key's budget) and inserts, so concurrent requests cannot
//! overdraw; charging happens with the usage events' own transaction.

use std::collections::BTreeMap;

use maximin_core::billing::month_of;
use maximin_core::store::{
    BillingLine, CreditHold, HoldLimits, HoldRefusal, LedgerEntry, UsageEvent,
};
use maximin_core::Result;
use sqlx::any::AnyRow;
use sqlx::AnyPool;
use sqlx::{Any, Row, Transaction};
use time::OffsetDateTime;

use super::{db_err, from_ms, ms, query, query_scalar};

fn i(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn u(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

pub(crate) async fn hold(
    store: &super::SqlStore,
    h: &CreditHold,
    limits: &HoldLimits,
    now: OffsetDateTime,
) -> Result<std::result::Result<(), HoldRefusal>> {
    let (budget, month) = match &limits.key_budget {
        Some((b, m)) => (Some(*b), m.as_str()),
        None => (None, ""),
    };
    let pool = &store.pool;
    // The check and the insert are one statement; on PostgreSQL the
    // account's row is held too, so concurrent holds take turns.
    let q = query(
        "INSERT INTO credit_holds (id, account_id, key_id, amount_micro, expires_at) \
         SELECT ?1, ?2, ?3, ?4, ?5 \
         WHERE (?6 = 0 OR (SELECT balance_micro FROM accounts WHERE id = ?2) \
                - COALESCE((SELECT CAST(SUM(amount_micro) AS BIGINT) FROM credit_holds WHERE account_id = ?2 AND expires_at > ?7), 0) >= ?4) \
           AND (?8 IS NULL OR ?8 \
                - COALESCE((SELECT CAST(SUM(cost_micro) AS BIGINT) FROM billing_monthly WHERE key_id = ?3 AND month = ?9), 0) \
                - COALESCE((SELECT CAST(SUM(amount_micro) AS BIGINT) FROM credit_holds WHERE key_id = ?3 AND expires_at > ?7), 0) >= ?4)",
    )
    .bind(&h.id)
    .bind(&h.account_id)
    .bind(&h.key_id)
    .bind(h.amount_micro)
    .bind(ms(h.expires_at))
    .bind(i64::from(limits.balance))
    .bind(ms(now))
    .bind(budget)
    .bind(month);
    let res = if store.dialect == super::Dialect::Postgres {
        let mut tx = pool.begin().await.map_err(db_err)?;
        store.lock_account(&mut tx, &h.account_id).await?;
        let res = q.execute(&mut *tx).await.map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        res
    } else {
        q.execute(pool).await.map_err(db_err)?
    };
    if res.rows_affected() == 1 {
        return Ok(Ok(()));
    }
    // Refused: say which limit, as of now.
    if let Some(b) = budget {
        let (spent, held) = key_spend(pool, &h.key_id, month, now).await?;
        let remaining = b - spent - held;
        if remaining < h.amount_micro {
            return Ok(Err(HoldRefusal::KeyBudget {
                remaining_micro: remaining,
            }));
        }
    }
    let (balance, held) = credit(pool, &h.account_id, now).await?;
    Ok(Err(HoldRefusal::Balance {
        available_micro: balance - held,
    }))
}

pub(crate) async fn release(pool: &AnyPool, ids: &[String]) -> Result<()> {
    for id in ids {
        query("DELETE FROM credit_holds WHERE id = ?")
            .bind(id)
            .execute(pool)
            .await
            .map_err(db_err)?;
    }
    Ok(())
}

pub(crate) async fn credit(
    pool: &AnyPool,
    account_id: &str,
    now: OffsetDateTime,
) -> Result<(i64, i64)> {
    let row = query(
        "SELECT COALESCE((SELECT balance_micro FROM accounts WHERE id = ?1), 0) AS balance, \
         COALESCE((SELECT CAST(SUM(amount_micro) AS BIGINT) FROM credit_holds WHERE account_id = ?1 AND expires_at > ?2), 0) AS held",
    )
    .bind(account_id)
    .bind(ms(now))
    .fetch_one(pool)
    .await
    .map_err(db_err)?;
    Ok((row.get("balance"), row.get("held")))
}

pub(crate) async fn key_spend(
    pool: &AnyPool,
    key_id: &str,
    month: &str,
    now: OffsetDateTime,
) -> Result<(i64, i64)> {
    let row = query(
        "SELECT COALESCE((SELECT CAST(SUM(cost_micro) AS BIGINT) FROM billing_monthly WHERE key_id = ?1 AND month = ?2), 0) AS spent, \
         COALESCE((SELECT CAST(SUM(amount_micro) AS BIGINT) FROM credit_holds WHERE key_id = ?1 AND expires_at > ?3), 0) AS held",
    )
    .bind(key_id)
    .bind(month)
    .bind(ms(now))
    .fetch_one(pool)
    .await
    .map_err(db_err)?;
    Ok((row.get("spent"), row.get("held")))
}

pub(crate) async fn add_credit(pool: &AnyPool, e: &LedgerEntry) -> Result<Option<i64>> {
    let mut tx = pool.begin().await.map_err(db_err)?;
    let balance: Option<i64> = query_scalar(
        "UPDATE accounts SET balance_micro = balance_micro + ? WHERE id = ? RETURNING balance_micro",
    )
    .bind(e.amount_micro)
    .bind(&e.account_id)
    .fetch_optional(&mut *tx)
    .await
    .map_err(db_err)?;
    if balance.is_none() {
        return Ok(None);
    }
    query(
        "INSERT INTO credit_ledger (account_id, at, amount_micro, kind, note) VALUES (?, ?, ?, ?, ?)",
    )
    .bind(&e.account_id)
    .bind(ms(e.at))
    .bind(e.amount_micro)
    .bind(&e.kind)
    .bind(&e.note)
    .execute(&mut *tx)
    .await
    .map_err(db_err)?;
    tx.commit().await.map_err(db_err)?;
    Ok(balance)
}

pub(crate) async fn ledger(pool: &AnyPool, account_id: &str) -> Result<Vec<LedgerEntry>> {
    Ok(query(
        "SELECT id, account_id, at, amount_micro, kind, note FROM credit_ledger \
         WHERE account_id = ? ORDER BY at, id",
    )
    .bind(account_id)
    .fetch_all(pool)
    .await
    .map_err(db_err)?
    .iter()
    .map(|r: &AnyRow| LedgerEntry {
        id: r.get("id"),
        account_id: r.get("account_id"),
        at: from_ms(r.get("at")),
        amount_micro: r.get("amount_micro"),
        kind: r.get("kind"),
        note: r.get("note"),
    })
    .collect())
}

pub(crate) async fn lines(
    pool: &AnyPool,
    account_id: &str,
    from: &str,
    to: &str,
) -> Result<Vec<BillingLine>> {
    Ok(query(
        "SELECT month, key_id, model, sandbox, requests, prompt_tokens, completion_tokens, characters, \
         images, media_ms, cost_micro FROM billing_monthly \
         WHERE account_id = ? AND month >= ? AND month <= ? ORDER BY month, key_id, model",
    )
    .bind(account_id)
    .bind(from)
    .bind(to)
    .fetch_all(pool)
    .await
    .map_err(db_err)?
    .iter()
    .map(|r: &AnyRow| BillingLine {
        month: r.get("month"),
        key_id: r.get("key_id"),
        model: r.get("model"),
        sandbox: r.get::<i64, _>("sandbox") != 0,
        requests: u(r.get("requests")),
        prompt_tokens: u(r.get("prompt_tokens")),
        completion_tokens: u(r.get("completion_tokens")),
        characters: u(r.get("characters")),
        images: u(r.get("images")),
        media_ms: u(r.get("media_ms")),
        cost_micro: r.get("cost_micro"),
    })
    .collect())
}

pub(crate) async fn set_key_budget(
    pool: &AnyPool,
    key_id: &str,
    budget: Option<i64>,
) -> Result<bool> {
    Ok(query("UPDATE api_keys SET budget_micro = ? WHERE id = ?")
        .bind(budget)
        .bind(key_id)
        .execute(pool)
        .await
        .map_err(db_err)?
        .rows_affected()
        == 1)
}

pub(crate) async fn sweep(
    pool: &AnyPool,
    now: OffsetDateTime,
    ledger_before: OffsetDateTime,
    month_before: &str,
) -> Result<u64> {
    let mut removed = 0;
    for (sql, before) in [
        ("DELETE FROM credit_ledger WHERE at < ?", ledger_before),
        ("DELETE FROM credit_holds WHERE expires_at < ?", now),
    ] {
        removed += query(sql)
            .bind(ms(before))
            .execute(pool)
            .await
            .map_err(db_err)?
            .rows_affected();
    }
    removed += query("DELETE FROM billing_monthly WHERE month < ?")
        .bind(month_before)
        .execute(pool)
        .await
        .map_err(db_err)?
        .rows_affected();
    Ok(removed)
}

/// The billing side of recording usage, in the events' transaction: the
/// monthly lines, the balances, the holds.
pub(crate) async fn charge(tx: &mut Transaction<'_, Any>, events: &[UsageEvent]) -> Result<()> {
    // Sorted, so concurrent batches lock rows in one order (no deadlock).
    let mut lines: BTreeMap<(&str, String, &str, &str), BillingLine> = BTreeMap::new();
    let mut debits: BTreeMap<&str, i64> = BTreeMap::new();
    for e in events {
        if let Some(model) = e.model.as_deref() {
            let line = lines
                .entry((&e.account_id, month_of(e.at), &e.key_id, model))
                .or_default();
            line.sandbox = e.charge.sandbox;
            line.requests += 1;
            line.prompt_tokens += e.prompt_tokens;
            line.completion_tokens += e.completion_tokens;
            line.characters += e.characters;
            line.images += e.images;
            line.media_ms += e.media_ms;
            line.cost_micro += e.charge.cost_micro;
        }
        if e.charge.debit && e.charge.cost_micro != 0 {
            *debits.entry(&e.account_id).or_default() += e.charge.cost_micro;
        }
        for h in &e.charge.holds {
            query("DELETE FROM credit_holds WHERE id = ?")
                .bind(h)
                .execute(&mut **tx)
                .await
                .map_err(db_err)?;
        }
    }
    for ((account, month, key, model), l) in lines {
        query(
            "INSERT INTO billing_monthly (account_id, month, key_id, model, sandbox, requests, prompt_tokens, \
             completion_tokens, characters, images, media_ms, cost_micro) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
             ON CONFLICT (account_id, month, key_id, model) DO UPDATE SET \
             requests = billing_monthly.requests + excluded.requests, prompt_tokens = billing_monthly.prompt_tokens + excluded.prompt_tokens, \
             completion_tokens = billing_monthly.completion_tokens + excluded.completion_tokens, \
             characters = billing_monthly.characters + excluded.characters, images = billing_monthly.images + excluded.images, \
             media_ms = billing_monthly.media_ms + excluded.media_ms, cost_micro = billing_monthly.cost_micro + excluded.cost_micro",
        )
        .bind(account)
        .bind(month)
        .bind(key)
        .bind(model)
        .bind(i64::from(l.sandbox))
        .bind(i(l.requests))
        .bind(i(l.prompt_tokens))
        .bind(i(l.completion_tokens))
        .bind(i(l.characters))
        .bind(i(l.images))
        .bind(i(l.media_ms))
        .bind(l.cost_micro)
        .execute(&mut **tx)
        .await
        .map_err(db_err)?;
    }
    for (account, amount) in debits {
        query("UPDATE accounts SET balance_micro = balance_micro - ? WHERE id = ?")
            .bind(amount)
            .bind(account)
            .execute(&mut **tx)
            .await
            .map_err(db_err)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use maximin_core::store::traits::*;
    use maximin_core::store::Charge;

    use super::*;
    use crate::sql::tests::{account, key};
    use crate::testdb::TestDb;

    fn hold(id: &str, amount: i64, now: OffsetDateTime) -> CreditHold {
        CreditHold {
            id: id.into(),
            account_id: "a1".into(),
            key_id: "k1".into(),
            amount_micro: amount,
            expires_at: now + time::Duration::hours(1),
        }
    }

    fn event(cost: i64, holds: &[&str], sandbox: bool, now: OffsetDateTime) -> UsageEvent {
        UsageEvent {
            at: now,
            account_id: "a1".into(),
            key_id: "k1".into(),
            request_id: "r".into(),
            method: "POST".into(),
            endpoint: "/v1/chat/completions".into(),
            status: 200,
            model: Some("m".into()),
            prompt_tokens: 10,
            completion_tokens: 5,
            characters: 0,
            images: 0,
            media_ms: 0,
            latency_us: 1,
            error_code: None,
            client_ip: None,
            charge: Charge {
                cost_micro: cost,
                debit: !sandbox,
                sandbox,
                holds: holds.iter().map(|h| (*h).to_owned()).collect(),
                tokens: None,
            },
        }
    }

    async fn holds_cover_the_balance_and_charging_releases_them(db: &TestDb) {
        let s = db.open().await;
        s.insert_account(&account("a1", "a@x.io"))
            .await
            .expect("account");
        let mut k1 = key("k1", "a1");
        k1.budget_micro = Some(7);
        s.insert_key(&k1, 20).await.expect("key");
        let (read, _) = s.key_by_hash("hash-k1").await.expect("read").expect("k1");
        assert_eq!(
            read.budget_micro,
            Some(7),
            "the budget is stored with the key"
        );
        assert!(s.set_key_budget("k1", None).await.expect("clear"));
        assert_eq!(
            s.key("k1").await.expect("read").expect("k1").budget_micro,
            None
        );
        let now = OffsetDateTime::now_utc();
        let grant = |amount| LedgerEntry {
            id: 0,
            account_id: "a1".into(),
            at: now,
            amount_micro: amount,
            kind: "grant".into(),
            note: "test".into(),
        };
        assert_eq!(s.add_credit(&grant(100)).await.expect("grant"), Some(100));
        let mut nobody = grant(1);
        nobody.account_id = "nobody".into();
        assert_eq!(s.add_credit(&nobody).await.expect("grant"), None);

        let balance_only = HoldLimits {
            balance: true,
            key_budget: None,
        };
        // 100 covers 60 + 40, not a third hold of 1.
        assert_eq!(
            s.hold_credit(&hold("h1", 60, now), &balance_only, now)
                .await
                .expect("h1"),
            Ok(())
        );
        assert_eq!(
            s.hold_credit(&hold("h2", 40, now), &balance_only, now)
                .await
                .expect("h2"),
            Ok(())
        );
        assert_eq!(
            s.hold_credit(&hold("h3", 1, now), &balance_only, now)
                .await
                .expect("h3"),
            Err(HoldRefusal::Balance { available_micro: 0 })
        );
        assert_eq!(s.credit("a1", now).await.expect("credit"), (100, 100));
        // An expired hold no longer counts.
        let later = now + time::Duration::hours(2);
        assert_eq!(s.credit("a1", later).await.expect("credit"), (100, 0));
        // Invoiced: no balance check.
        let invoiced = HoldLimits {
            balance: false,
            key_budget: None,
        };
        assert_eq!(
            s.hold_credit(&hold("h4", 1000, now), &invoiced, now)
                .await
                .expect("h4"),
            Ok(())
        );
        s.release_holds(&["h4".into()]).await.expect("release");

        // The first request cost 50 (its hold was 60), the sandbox one nothing.
        s.record_usage(&[event(50, &["h1"], false, now), event(0, &[], true, now)])
            .await
            .expect("usage");
        assert_eq!(s.credit("a1", now).await.expect("credit"), (50, 40));
        let month = maximin_core::billing::month_of(now);
        let lines = s.billing_lines("a1", &month, &month).await.expect("lines");
        assert_eq!(
            lines.len(),
            1,
            "sandbox and live share the key's line: {lines:?}"
        );
        assert_eq!(lines[0].cost_micro, 50);
        assert_eq!(lines[0].requests, 2);

        // A key budget of 100 with 50 spent and 40 held leaves 10.
        let budget = HoldLimits {
            balance: false,
            key_budget: Some((100, month.clone())),
        };
        assert_eq!(
            s.hold_credit(&hold("h5", 11, now), &budget, now)
                .await
                .expect("h5"),
            Err(HoldRefusal::KeyBudget {
                remaining_micro: 10
            })
        );
        assert_eq!(
            s.hold_credit(&hold("h6", 10, now), &budget, now)
                .await
                .expect("h6"),
            Ok(())
        );
        assert_eq!(
            s.key_spend("k1", &month, now).await.expect("spend"),
            (50, 50)
        );
        let ledger = s.ledger("a1").await.expect("ledger");
        assert_eq!(ledger.len(), 1);
        assert_eq!(ledger[0].note, "test");

        // Retention: a day before the cut-offs nothing goes; past them the
        // ledger entry, this month's lines and the lapsed holds do.
        let kept = s
            .sweep_billing(now, now - time::Duration::days(1), &month)
            .await
            .expect("sweep");
        assert_eq!(kept, 0, "live holds, this month's lines and the entry stay");
        let next = maximin_core::billing::months_back(now + time::Duration::days(40), 0);
        let later = now + time::Duration::hours(3);
        let gone = s
            .sweep_billing(later, now + time::Duration::seconds(1), &next)
            .await
            .expect("sweep");
        assert_eq!(gone, 1 + 1 + 2, "the entry, the line, holds h2 and h6");
        assert!(s.ledger("a1").await.expect("ledger").is_empty());
        assert!(s
            .billing_lines("a1", &month, &month)
            .await
            .expect("lines")
            .is_empty());
        assert_eq!(s.credit("a1", now).await.expect("credit").1, 0);
    }

    /// Two processes on one database, 64 holds of 10 at once against a
    /// balance of 100: exactly 10 are taken, whichever process asks.
    async fn concurrent_holds_from_two_processes_never_overdraw(db: &TestDb) {
        let a = db.open().await;
        let b = db.open().await;
        a.insert_account(&account("a1", "a@x.io"))
            .await
            .expect("account");
        a.insert_key(&key("k1", "a1"), 20).await.expect("key");
        let now = OffsetDateTime::now_utc();
        let grant = LedgerEntry {
            id: 0,
            account_id: "a1".into(),
            at: now,
            amount_micro: 100,
            kind: "grant".into(),
            note: "test".into(),
        };
        assert_eq!(a.add_credit(&grant).await.expect("grant"), Some(100));
        let limits = HoldLimits {
            balance: true,
            key_budget: Some((1_000, maximin_core::billing::month_of(now))),
        };
        let mut runs = tokio::task::JoinSet::new();
        for n in 0..64 {
            let s = if n % 2 == 0 { a.clone() } else { b.clone() };
            let limits = limits.clone();
            runs.spawn(async move {
                s.hold_credit(&hold(&format!("h{n}"), 10, now), &limits, now)
                    .await
                    .expect("hold")
                    .is_ok()
            });
        }
        let taken = runs.join_all().await.into_iter().filter(|ok| *ok).count();
        assert_eq!(taken, 10, "64 holds of 10 against 100");
        assert_eq!(a.credit("a1", now).await.expect("credit"), (100, 100));
    }

    crate::store_tests!(
        holds_cover_the_balance_and_charging_releases_them,
        concurrent_holds_from_two_processes_never_overdraw,
    );
}

//! `maximin migrate`: copies a single machine's SQLite database into a
//! PostgreSQL one, table by table in batches, with progress. Resumable: a
//! row already in the target (same key) is left as it is, so a copy that
//! was interrupted is run again and finishes.

use super::*;

/// The tables, parents first, with their key columns (the first orders the
/// batches when it is the only one).
const TABLES: &[(&str, &[&str])] = &[
    ("accounts", &["id"]),
    ("api_keys", &["id"]),
    ("usage_events", &["id"]),
    ("idempotency", &["id"]),
    ("files", &["id"]),
    ("tasks", &["id"]),
    ("voices", &["account_id", "voice_id"]),
    ("webhook_deliveries", &["id"]),
    ("credit_ledger", &["id"]),
    ("credit_holds", &["id"]),
    (
        "billing_monthly",
        &["account_id", "month", "key_id", "model"],
    ),
    ("privacy_log", &["id"]),
    ("debug_logs", &["id"]),
    ("support_tickets", &["id"]),
    ("support_messages", &["id"]),
    ("users", &["id"]),
    ("recovery_codes", &["user_id", "hash"]),
    ("memberships", &["account_id", "user_id"]),
    ("hub_sessions", &["id"]),
    ("invites", &["id"]),
    ("login_guards", &["subject"]),
    ("fine_tunes", &["id"]),
    ("fine_tune_events", &["job_id", "seq"]),
    ("fine_tune_checkpoints", &["job_id", "step"]),
];

const BATCH: usize = 500;

/// How one table's copy went.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TableCopy {
    pub table: String,
    /// Rows in the source.
    pub rows: u64,
    /// Rows written now (the rest were there already).
    pub copied: u64,
}

#[derive(Clone, Copy)]
enum Kind {
    Int,
    Text,
    Bytes,
}

enum Value {
    Int(Option<i64>),
    Text(Option<String>),
    Bytes(Option<Vec<u8>>),
}

impl SqlStore {
    /// Copies every table of this (SQLite) store into `to` (PostgreSQL),
    /// calling `progress(table, done, total)` after each batch.
    pub async fn copy_into(
        &self,
        to: &SqlStore,
        mut progress: impl FnMut(&str, u64, u64),
    ) -> Result<Vec<TableCopy>> {
        if to.dialect != Dialect::Postgres {
            return Err(Error::invalid(
                "to",
                "The target of a migration is a PostgreSQL database (postgres://…).",
            ));
        }
        let mut report = Vec::new();
        for (table, key) in TABLES {
            let columns = to.column_kinds(table).await?;
            let total: i64 = query_scalar(&format!("SELECT COUNT(*) FROM {table}"))
                .fetch_one(&self.pool)
                .await
                .map_err(db_err)?;
            let total = u(total);
            let names: Vec<&str> = columns.iter().map(|(n, _)| n.as_str()).collect();
            let list = names.join(", ");
            let mut done = 0u64;
            let mut copied = 0u64;
            // Batches in key order (keyset on a single key; a table keyed
            // by several columns is small and read at once).
            let mut after: Option<Value> = None;
            loop {
                let rows = if key.len() == 1 {
                    let k = key[0];
                    let sql = match after {
                        None => format!("SELECT {list} FROM {table} ORDER BY {k} LIMIT {BATCH}"),
                        Some(_) => format!(
                            "SELECT {list} FROM {table} WHERE {k} > ? ORDER BY {k} LIMIT {BATCH}"
                        ),
                    };
                    let q = query(&sql);
                    let q = match &after {
                        Some(Value::Int(v)) => q.bind(*v),
                        Some(Value::Text(v)) => q.bind(v.clone()),
                        Some(Value::Bytes(v)) => q.bind(v.clone()),
                        None => q,
                    };
                    q.fetch_all(&self.pool).await.map_err(db_err)?
                } else if done == 0 {
                    query(&format!("SELECT {list} FROM {table}"))
                        .fetch_all(&self.pool)
                        .await
                        .map_err(db_err)?
                } else {
                    Vec::new()
                };
                if rows.is_empty() {
                    break;
                }
                let values: Vec<Vec<Value>> = rows
                    .iter()
                    .map(|r| read_row(r, &columns))
                    .collect::<Result<_>>()?;
                if key.len() == 1 {
                    let at = names.iter().position(|n| *n == key[0]).unwrap_or(0);
                    after = values.last().map(|row| match &row[at] {
                        Value::Int(v) => Value::Int(*v),
                        Value::Text(v) => Value::Text(v.clone()),
                        Value::Bytes(v) => Value::Bytes(v.clone()),
                    });
                }
                for chunk in values.chunks(BATCH) {
                    copied += to.insert_rows(table, &names, chunk).await?;
                }
                done += u64::try_from(rows.len()).unwrap_or(0);
                progress(table, done, total);
                if key.len() > 1 {
                    break;
                }
            }
            if key == &["id"]
                && columns
                    .iter()
                    .any(|(n, k)| n == "id" && matches!(k, Kind::Int))
            {
                to.advance_identity(table).await?;
            }
            report.push(TableCopy {
                table: (*table).to_owned(),
                rows: total,
                copied,
            });
        }
        // Whatever a replica had cached of the target is stale now.
        to.bump_epoch().await;
        Ok(report)
    }

    /// A PostgreSQL table's columns and how to carry their values.
    async fn column_kinds(&self, table: &str) -> Result<Vec<(String, Kind)>> {
        let rows = query(
            "SELECT CAST(column_name AS TEXT), CAST(data_type AS TEXT) FROM information_schema.columns \
             WHERE table_schema = current_schema() AND table_name = ? ORDER BY ordinal_position",
        )
        .bind(table)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter()
            .map(|r| {
                let name: String = r.get(0);
                let kind = match r.get::<String, _>(1).as_str() {
                    "bigint" | "integer" | "smallint" => Kind::Int,
                    "text" | "character varying" => Kind::Text,
                    "bytea" => Kind::Bytes,
                    other => {
                        return Err(Error::internal(format!(
                            "{table}.{name} is of type {other}, which migrate does not carry"
                        )))
                    }
                };
                Ok((name, kind))
            })
            .collect()
    }

    /// Inserts rows, skipping those whose key is there; returns how many went in.
    async fn insert_rows(&self, table: &str, names: &[&str], rows: &[Vec<Value>]) -> Result<u64> {
        let marks = format!("({})", vec!["?"; names.len()].join(", "));
        let sql = format!(
            "INSERT INTO {table} ({}) VALUES {} ON CONFLICT DO NOTHING",
            names.join(", "),
            vec![marks.as_str(); rows.len()].join(", ")
        );
        let mut q = query(&sql);
        for row in rows {
            for v in row {
                q = match v {
                    Value::Int(v) => q.bind(*v),
                    Value::Text(v) => q.bind(v.clone()),
                    Value::Bytes(v) => q.bind(v.clone()),
                };
            }
        }
        Ok(q.execute(&self.pool).await.map_err(db_err)?.rows_affected())
    }

    /// Moves an identity column's next value past the ids copied in.
    async fn advance_identity(&self, table: &str) -> Result<()> {
        query(&format!(
            "SELECT COUNT(*) FROM (SELECT setval(pg_get_serial_sequence('{table}', 'id'), \
             GREATEST((SELECT MAX(id) FROM {table}), 1))) AS s"
        ))
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(())
    }
}

fn read_row(row: &AnyRow, columns: &[(String, Kind)]) -> Result<Vec<Value>> {
    columns
        .iter()
        .map(|(name, kind)| {
            let bad = |e: sqlx::Error| Error::internal(format!("reading {name}: {e}"));
            Ok(match kind {
                Kind::Int => Value::Int(row.try_get(name.as_str()).map_err(bad)?),
                Kind::Text => Value::Text(row.try_get(name.as_str()).map_err(bad)?),
                Kind::Bytes => Value::Bytes(row.try_get(name.as_str()).map_err(bad)?),
            })
        })
        .collect()
}

use super::*;

const FILE_COLUMNS: &str =
    "id, account_id, purpose, filename, kind, bytes, key_id, wrapped_key, created_at, expires_at";

fn file_from(row: &AnyRow) -> FileRecord {
    FileRecord {
        id: row.get("id"),
        account_id: row.get("account_id"),
        purpose: row.get("purpose"),
        filename: row.get("filename"),
        kind: row.get("kind"),
        bytes: u(row.get("bytes")),
        key_id: row.get("key_id"),
        wrapped_key: row.get("wrapped_key"),
        created_at: from_ms(row.get("created_at")),
        expires_at: row.get::<Option<i64>, _>("expires_at").map(from_ms),
    }
}

pub(crate) async fn insert_file_in(
    conn: &mut sqlx::AnyConnection,
    f: &FileRecord,
    quota: u64,
) -> Result<()> {
    // One statement: the sum and the insert cannot interleave with another writer.
    let res = query(
        "INSERT INTO files (id, account_id, purpose, filename, kind, bytes, key_id, wrapped_key, created_at, expires_at) \
         SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ? \
         WHERE (SELECT CAST(COALESCE(SUM(bytes), 0) AS BIGINT) FROM files WHERE account_id = ?) + ? <= ?",
    )
    .bind(f.id)
    .bind(&f.account_id)
    .bind(&f.purpose)
    .bind(&f.filename)
    .bind(&f.kind)
    .bind(i(f.bytes))
    .bind(&f.key_id)
    .bind(&f.wrapped_key)
    .bind(ms(f.created_at))
    .bind(f.expires_at.map(ms))
    .bind(&f.account_id)
    .bind(i(f.bytes))
    .bind(i(quota))
    .execute(conn)
    .await
    .map_err(db_err)?;
    if res.rows_affected() == 0 {
        return Err(Error::new(
            maximin_types::ErrorCode::PayloadTooLarge,
            format!(
                "This file would take the account's files past its {} GB; delete files first.",
                quota / 1_000_000_000
            ),
        )
        .with("quota_bytes", quota));
    }
    Ok(())
}

#[async_trait]
impl FileStore for SqlStore {
    async fn insert_file(&self, f: &FileRecord, quota: u64) -> Result<()> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        self.lock_account(&mut tx, &f.account_id).await?;
        insert_file_in(&mut tx, f, quota).await?;
        tx.commit().await.map_err(db_err)
    }

    async fn file(&self, id: i64) -> Result<Option<FileRecord>> {
        Ok(
            query(&format!("SELECT {FILE_COLUMNS} FROM files WHERE id = ?"))
                .bind(id)
                .fetch_optional(&self.pool)
                .await
                .map_err(db_err)?
                .as_ref()
                .map(file_from),
        )
    }

    async fn files_of(&self, account_id: &str, purpose: Option<&str>) -> Result<Vec<FileRecord>> {
        Ok(query(&format!(
            "SELECT {FILE_COLUMNS} FROM files WHERE account_id = ? AND (? IS NULL OR purpose = ?) ORDER BY created_at DESC, id DESC"
        ))
        .bind(account_id)
        .bind(purpose)
        .bind(purpose)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?
        .iter()
        .map(file_from)
        .collect())
    }

    async fn delete_file(&self, id: i64) -> Result<bool> {
        Ok(query("DELETE FROM files WHERE id = ?")
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(db_err)?
            .rows_affected()
            > 0)
    }

    async fn expired_files(&self, now: OffsetDateTime, limit: u32) -> Result<Vec<FileRecord>> {
        Ok(query(&format!(
            "SELECT {FILE_COLUMNS} FROM files WHERE expires_at IS NOT NULL AND expires_at <= ? LIMIT ?"
        ))
        .bind(ms(now))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?
        .iter()
        .map(file_from)
        .collect())
    }

    async fn file_keys(&self) -> Result<Vec<(i64, String, Vec<u8>)>> {
        Ok(query("SELECT id, key_id, wrapped_key FROM files")
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?
            .iter()
            .map(|r| (r.get("id"), r.get("key_id"), r.get("wrapped_key")))
            .collect())
    }

    async fn set_file_key(&self, id: i64, key_id: &str, wrapped_key: &[u8]) -> Result<()> {
        query("UPDATE files SET key_id = ?, wrapped_key = ? WHERE id = ?")
            .bind(key_id)
            .bind(wrapped_key)
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(())
    }
}

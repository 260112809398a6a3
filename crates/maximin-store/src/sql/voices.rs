use super::*;

const VOICE_COLUMNS: &str = "account_id, voice_id, kind, profile, created_at, used_at, deleted_at";

fn voice_from(row: &AnyRow) -> VoiceRecord {
    VoiceRecord {
        account_id: row.get("account_id"),
        voice_id: row.get("voice_id"),
        kind: row.get("kind"),
        profile: row.get("profile"),
        created_at: from_ms(row.get("created_at")),
        used_at: row.get::<Option<i64>, _>("used_at").map(from_ms),
        deleted_at: row.get::<Option<i64>, _>("deleted_at").map(from_ms),
    }
}

#[async_trait]
impl VoiceStore for SqlStore {
    async fn insert_voice(&self, v: &VoiceRecord) -> Result<bool> {
        let res = query(&format!(
            "INSERT INTO voices ({VOICE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
        ))
        .bind(&v.account_id)
        .bind(&v.voice_id)
        .bind(&v.kind)
        .bind(&v.profile)
        .bind(ms(v.created_at))
        .bind(v.used_at.map(ms))
        .bind(v.deleted_at.map(ms))
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(res.rows_affected() > 0)
    }

    async fn voice(&self, account_id: &str, voice_id: &str) -> Result<Option<VoiceRecord>> {
        Ok(query(&format!(
            "SELECT {VOICE_COLUMNS} FROM voices WHERE account_id = ? AND voice_id = ?"
        ))
        .bind(account_id)
        .bind(voice_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?
        .as_ref()
        .map(voice_from))
    }

    async fn voices_of(&self, account_id: &str) -> Result<Vec<VoiceRecord>> {
        Ok(query(&format!(
            "SELECT {VOICE_COLUMNS} FROM voices WHERE account_id = ? ORDER BY created_at, voice_id"
        ))
        .bind(account_id)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?
        .iter()
        .map(voice_from)
        .collect())
    }

    async fn mark_voice_used(
        &self,
        account_id: &str,
        voice_id: &str,
        at: OffsetDateTime,
    ) -> Result<()> {
        query(
            "UPDATE voices SET used_at = ? WHERE account_id = ? AND voice_id = ? AND used_at IS NULL",
        )
        .bind(ms(at))
        .bind(account_id)
        .bind(voice_id)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn delete_voice(
        &self,
        account_id: &str,
        voice_id: &str,
        at: OffsetDateTime,
    ) -> Result<bool> {
        Ok(query(
            "UPDATE voices SET deleted_at = ?, profile = '{}' WHERE account_id = ? AND voice_id = ? AND deleted_at IS NULL",
        )
        .bind(ms(at))
        .bind(account_id)
        .bind(voice_id)
        .execute(&self.pool)
        .await
        .map_err(db_err)?
        .rows_affected()
            > 0)
    }

    async fn expire_voices(
        &self,
        unused_since: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<u64> {
        Ok(query(
            "UPDATE voices SET deleted_at = ?, profile = '{}' \
             WHERE deleted_at IS NULL AND used_at IS NULL AND created_at < ?",
        )
        .bind(ms(now))
        .bind(ms(unused_since))
        .execute(&self.pool)
        .await
        .map_err(db_err)?
        .rows_affected())
    }
}

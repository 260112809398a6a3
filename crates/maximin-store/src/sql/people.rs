//! The hub's people: users, memberships, sessions, invitations, recovery
//! codes and sign-in guards.

use maximin_core::people::store::{
    GuardState, InviteRecord, MembershipRecord, PeopleStore, SessionRecord, UserRecord,
};

use super::*;

const USER_COLUMNS: &str =
    "id, email, password_hash, totp, totp_pending, totp_step, operator, created_at";
const SESSION_COLUMNS: &str =
    "id, user_id, account_id, stage, created_at, seen_at, expires_at, playground_key";
const INVITE_COLUMNS: &str =
    "id, account_id, email, role, token_hash, created_at, expires_at, accepted_at";

fn user_from(row: &AnyRow) -> UserRecord {
    UserRecord {
        id: row.get("id"),
        email: row.get("email"),
        password_hash: row.get("password_hash"),
        totp: row.get("totp"),
        totp_pending: row.get("totp_pending"),
        totp_step: row.get("totp_step"),
        operator: row.get::<i64, _>("operator") != 0,
        created_at: from_ms(row.get("created_at")),
    }
}

fn membership_from(row: &AnyRow) -> MembershipRecord {
    MembershipRecord {
        account_id: row.get("account_id"),
        user_id: row.get("user_id"),
        role: row.get("role"),
        created_at: from_ms(row.get("created_at")),
    }
}

fn session_from(row: &AnyRow) -> SessionRecord {
    SessionRecord {
        id: row.get("id"),
        user_id: row.get("user_id"),
        account_id: row.get("account_id"),
        stage: row.get("stage"),
        created_at: from_ms(row.get("created_at")),
        seen_at: from_ms(row.get("seen_at")),
        expires_at: from_ms(row.get("expires_at")),
        playground_key: row.get("playground_key"),
    }
}

fn invite_from(row: &AnyRow) -> InviteRecord {
    InviteRecord {
        id: row.get("id"),
        account_id: row.get("account_id"),
        email: row.get("email"),
        role: row.get("role"),
        token_hash: row.get("token_hash"),
        created_at: from_ms(row.get("created_at")),
        expires_at: from_ms(row.get("expires_at")),
        accepted_at: row.get::<Option<i64>, _>("accepted_at").map(from_ms),
    }
}

fn guard_from(row: &AnyRow) -> GuardState {
    GuardState {
        failures: row.get("failures"),
        locked_until: row.get::<Option<i64>, _>("locked_until").map(from_ms),
    }
}

#[async_trait]
impl PeopleStore for SqlStore {
    async fn insert_user(&self, u: &UserRecord) -> Result<bool> {
        let res = query(&format!(
            "INSERT INTO users ({USER_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
        ))
        .bind(&u.id)
        .bind(&u.email)
        .bind(&u.password_hash)
        .bind(u.totp.clone())
        .bind(u.totp_pending.clone())
        .bind(u.totp_step)
        .bind(i64::from(u.operator))
        .bind(ms(u.created_at))
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(res.rows_affected() > 0)
    }

    async fn user(&self, id: &str) -> Result<Option<UserRecord>> {
        Ok(
            query(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?"))
                .bind(id)
                .fetch_optional(&self.pool)
                .await
                .map_err(db_err)?
                .as_ref()
                .map(user_from),
        )
    }

    async fn user_by_email(&self, email: &str) -> Result<Option<UserRecord>> {
        Ok(
            query(&format!("SELECT {USER_COLUMNS} FROM users WHERE email = ?"))
                .bind(email)
                .fetch_optional(&self.pool)
                .await
                .map_err(db_err)?
                .as_ref()
                .map(user_from),
        )
    }

    async fn update_user(&self, u: &UserRecord) -> Result<()> {
        query("UPDATE users SET password_hash = ?, totp = ?, totp_pending = ?, totp_step = ?, operator = ? WHERE id = ?")
            .bind(&u.password_hash)
            .bind(u.totp.clone())
            .bind(u.totp_pending.clone())
            .bind(u.totp_step)
            .bind(i64::from(u.operator))
            .bind(&u.id)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn users(&self) -> Result<Vec<UserRecord>> {
        Ok(query(&format!(
            "SELECT {USER_COLUMNS} FROM users ORDER BY created_at, id"
        ))
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?
        .iter()
        .map(user_from)
        .collect())
    }

    async fn set_recovery_codes(&self, user_id: &str, hashes: &[String]) -> Result<()> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        query("DELETE FROM recovery_codes WHERE user_id = ?")
            .bind(user_id)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        for h in hashes {
            query(
                "INSERT INTO recovery_codes (user_id, hash) VALUES (?, ?) ON CONFLICT DO NOTHING",
            )
            .bind(user_id)
            .bind(h)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        }
        tx.commit().await.map_err(db_err)
    }

    async fn use_recovery_code(
        &self,
        user_id: &str,
        hash: &str,
        at: OffsetDateTime,
    ) -> Result<bool> {
        let res = query(
            "UPDATE recovery_codes SET used_at = ? WHERE user_id = ? AND hash = ? AND used_at IS NULL",
        )
        .bind(ms(at))
        .bind(user_id)
        .bind(hash)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(res.rows_affected() > 0)
    }

    async fn unused_recovery_codes(&self, user_id: &str) -> Result<u64> {
        let n: i64 = query_scalar(
            "SELECT CAST(COUNT(*) AS BIGINT) FROM recovery_codes WHERE user_id = ? AND used_at IS NULL",
        )
        .bind(user_id)
        .fetch_one(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(n.max(0) as u64)
    }

    async fn put_membership(&self, m: &MembershipRecord) -> Result<()> {
        query(
            "INSERT INTO memberships (account_id, user_id, role, created_at) VALUES (?, ?, ?, ?) \
             ON CONFLICT (account_id, user_id) DO UPDATE SET role = excluded.role",
        )
        .bind(&m.account_id)
        .bind(&m.user_id)
        .bind(&m.role)
        .bind(ms(m.created_at))
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn memberships_of_user(&self, user_id: &str) -> Result<Vec<MembershipRecord>> {
        Ok(query(
            "SELECT account_id, user_id, role, created_at FROM memberships WHERE user_id = ? \
             ORDER BY created_at, account_id",
        )
        .bind(user_id)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?
        .iter()
        .map(membership_from)
        .collect())
    }

    async fn members_of_account(&self, account_id: &str) -> Result<Vec<MembershipRecord>> {
        Ok(query(
            "SELECT account_id, user_id, role, created_at FROM memberships WHERE account_id = ? \
             ORDER BY created_at, user_id",
        )
        .bind(account_id)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?
        .iter()
        .map(membership_from)
        .collect())
    }

    async fn remove_membership(&self, account_id: &str, user_id: &str) -> Result<bool> {
        let res = query("DELETE FROM memberships WHERE account_id = ? AND user_id = ?")
            .bind(account_id)
            .bind(user_id)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(res.rows_affected() > 0)
    }

    async fn insert_session(&self, s: &SessionRecord) -> Result<()> {
        query(&format!(
            "INSERT INTO hub_sessions ({SESSION_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
        ))
        .bind(&s.id)
        .bind(&s.user_id)
        .bind(s.account_id.clone())
        .bind(&s.stage)
        .bind(ms(s.created_at))
        .bind(ms(s.seen_at))
        .bind(ms(s.expires_at))
        .bind(s.playground_key.clone())
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn session(&self, id: &str) -> Result<Option<SessionRecord>> {
        Ok(query(&format!(
            "SELECT {SESSION_COLUMNS} FROM hub_sessions WHERE id = ?"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?
        .as_ref()
        .map(session_from))
    }

    async fn update_session(&self, s: &SessionRecord) -> Result<()> {
        query(
            "UPDATE hub_sessions SET account_id = ?, stage = ?, seen_at = ?, expires_at = ?, \
             playground_key = ? WHERE id = ?",
        )
        .bind(s.account_id.clone())
        .bind(&s.stage)
        .bind(ms(s.seen_at))
        .bind(ms(s.expires_at))
        .bind(s.playground_key.clone())
        .bind(&s.id)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn delete_session(&self, id: &str) -> Result<bool> {
        let res = query("DELETE FROM hub_sessions WHERE id = ?")
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(res.rows_affected() > 0)
    }

    async fn delete_sessions_of(
        &self,
        user_id: &str,
        keep: Option<&str>,
    ) -> Result<Vec<SessionRecord>> {
        let keep = keep.unwrap_or("");
        Ok(query(&format!(
            "DELETE FROM hub_sessions WHERE user_id = ? AND id <> ? RETURNING {SESSION_COLUMNS}"
        ))
        .bind(user_id)
        .bind(keep)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?
        .iter()
        .map(session_from)
        .collect())
    }

    async fn delete_expired_sessions(
        &self,
        now: OffsetDateTime,
        idle_before: OffsetDateTime,
    ) -> Result<Vec<SessionRecord>> {
        Ok(query(&format!(
            "DELETE FROM hub_sessions WHERE expires_at <= ? OR seen_at < ? RETURNING {SESSION_COLUMNS}"
        ))
        .bind(ms(now))
        .bind(ms(idle_before))
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?
        .iter()
        .map(session_from)
        .collect())
    }

    async fn insert_invite(&self, i: &InviteRecord) -> Result<()> {
        query(&format!(
            "INSERT INTO invites ({INVITE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
        ))
        .bind(&i.id)
        .bind(&i.account_id)
        .bind(&i.email)
        .bind(&i.role)
        .bind(&i.token_hash)
        .bind(ms(i.created_at))
        .bind(ms(i.expires_at))
        .bind(i.accepted_at.map(ms))
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn invite_by_token(&self, token_hash: &str) -> Result<Option<InviteRecord>> {
        Ok(query(&format!(
            "SELECT {INVITE_COLUMNS} FROM invites WHERE token_hash = ?"
        ))
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?
        .as_ref()
        .map(invite_from))
    }

    async fn accept_invite(&self, id: &str, at: OffsetDateTime) -> Result<bool> {
        let res = query("UPDATE invites SET accepted_at = ? WHERE id = ? AND accepted_at IS NULL")
            .bind(ms(at))
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(res.rows_affected() > 0)
    }

    async fn invites_of(&self, account_id: &str) -> Result<Vec<InviteRecord>> {
        Ok(query(&format!(
            "SELECT {INVITE_COLUMNS} FROM invites WHERE account_id = ? ORDER BY created_at, id"
        ))
        .bind(account_id)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?
        .iter()
        .map(invite_from)
        .collect())
    }

    async fn delete_invite(&self, account_id: &str, id: &str) -> Result<bool> {
        let res = query("DELETE FROM invites WHERE account_id = ? AND id = ?")
            .bind(account_id)
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(res.rows_affected() > 0)
    }

    async fn guard(&self, subject: &str) -> Result<GuardState> {
        Ok(
            query("SELECT failures, locked_until FROM login_guards WHERE subject = ?")
                .bind(subject)
                .fetch_optional(&self.pool)
                .await
                .map_err(db_err)?
                .as_ref()
                .map(guard_from)
                .unwrap_or_default(),
        )
    }

    async fn fail_guard(
        &self,
        subject: &str,
        now: OffsetDateTime,
        window_ms: i64,
        max: i64,
        lock_ms: i64,
    ) -> Result<GuardState> {
        let now = ms(now);
        // One statement counts (a new window once the old one is over, or
        // after a lock ran out); parallel attempts each get their own count.
        let row = query(
            "INSERT INTO login_guards (subject, failures, first_at, locked_until) VALUES (?1, 1, ?2, NULL) \
             ON CONFLICT (subject) DO UPDATE SET \
               failures = CASE WHEN login_guards.first_at < ?3 \
                                 OR (login_guards.locked_until IS NOT NULL AND login_guards.locked_until <= ?2) \
                               THEN 1 ELSE login_guards.failures + 1 END, \
               first_at = CASE WHEN login_guards.first_at < ?3 \
                                 OR (login_guards.locked_until IS NOT NULL AND login_guards.locked_until <= ?2) \
                               THEN ?2 ELSE login_guards.first_at END, \
               locked_until = CASE WHEN login_guards.locked_until IS NOT NULL AND login_guards.locked_until <= ?2 \
                               THEN NULL ELSE login_guards.locked_until END \
             RETURNING failures, locked_until",
        )
        .bind(subject)
        .bind(now)
        .bind(now - window_ms)
        .fetch_one(&self.pool)
        .await
        .map_err(db_err)?;
        let mut state = guard_from(&row);
        if state.failures >= max && state.locked_until.is_none() {
            query("UPDATE login_guards SET locked_until = ? WHERE subject = ? AND locked_until IS NULL")
                .bind(now + lock_ms)
                .bind(subject)
                .execute(&self.pool)
                .await
                .map_err(db_err)?;
            state = self.guard(subject).await?;
        }
        Ok(state)
    }

    async fn clear_guard(&self, subject: &str) -> Result<()> {
        query("DELETE FROM login_guards WHERE subject = ?")
            .bind(subject)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(())
    }
}

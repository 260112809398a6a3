//! What the store keeps of the people who sign in to the hub: users,
//! memberships, sessions, invitations, recovery codes and sign-in guards.

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::Result;

/// A person who signs in to the hub.
#[derive(Debug, Clone, PartialEq)]
pub struct UserRecord {
    pub id: String,
    /// Lower case.
    pub email: String,
    /// Argon2id, in the PHC string format.
    pub password_hash: String,
    /// The confirmed TOTP secret, sealed under the master key.
    pub totp: Option<Vec<u8>>,
    /// A secret being enrolled (shown, not yet confirmed with a code).
    pub totp_pending: Option<Vec<u8>>,
    /// The last 30-second step a code was accepted at (each code works once).
    pub totp_step: i64,
    /// The operator's role (accounts, plans, credits, upstream health).
    pub operator: bool,
    pub created_at: OffsetDateTime,
}

/// A person's place in an account.
#[derive(Debug, Clone, PartialEq)]
pub struct MembershipRecord {
    pub account_id: String,
    pub user_id: String,
    /// `owner`, `developer`, `billing` or `read-only`.
    pub role: String,
    pub created_at: OffsetDateTime,
}

/// A signed-in browser, by the SHA-256 of its cookie's token.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionRecord {
    pub id: String,
    pub user_id: String,
    /// The account the hub shows (one of the user's memberships).
    pub account_id: Option<String>,
    /// `totp`: the password was right, the second factor is due;
    /// `full`: signed in.
    pub stage: String,
    pub created_at: OffsetDateTime,
    pub seen_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    /// The id of the session's short-lived playground key.
    pub playground_key: Option<String>,
}

/// An invitation to join an account.
#[derive(Debug, Clone, PartialEq)]
pub struct InviteRecord {
    pub id: String,
    pub account_id: String,
    pub email: String,
    pub role: String,
    pub token_hash: String,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    pub accepted_at: Option<OffsetDateTime>,
}

/// Failed attempts at one subject and the lock they set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GuardState {
    pub failures: i64,
    pub locked_until: Option<OffsetDateTime>,
}

#[async_trait]
pub trait PeopleStore: Send + Sync + 'static {
    /// Inserts a user; false when the e-mail is taken.
    async fn insert_user(&self, user: &UserRecord) -> Result<bool>;
    async fn user(&self, id: &str) -> Result<Option<UserRecord>>;
    async fn user_by_email(&self, email: &str) -> Result<Option<UserRecord>>;
    /// Writes the password hash, the TOTP secrets and the operator flag.
    async fn update_user(&self, user: &UserRecord) -> Result<()>;
    /// Every user, for the operator's view and key rotation.
    async fn users(&self) -> Result<Vec<UserRecord>>;

    /// Replaces the user's recovery codes (hashes) with these.
    async fn set_recovery_codes(&self, user_id: &str, hashes: &[String]) -> Result<()>;
    /// Uses an unused code; false when there is none with that hash.
    async fn use_recovery_code(
        &self,
        user_id: &str,
        hash: &str,
        at: OffsetDateTime,
    ) -> Result<bool>;
    async fn unused_recovery_codes(&self, user_id: &str) -> Result<u64>;

    /// Adds a membership or changes its role.
    async fn put_membership(&self, m: &MembershipRecord) -> Result<()>;
    async fn memberships_of_user(&self, user_id: &str) -> Result<Vec<MembershipRecord>>;
    async fn members_of_account(&self, account_id: &str) -> Result<Vec<MembershipRecord>>;
    /// False when there was none.
    async fn remove_membership(&self, account_id: &str, user_id: &str) -> Result<bool>;

    async fn insert_session(&self, s: &SessionRecord) -> Result<()>;
    async fn session(&self, id: &str) -> Result<Option<SessionRecord>>;
    /// Writes stage, account, seen and expiry times and the playground key.
    async fn update_session(&self, s: &SessionRecord) -> Result<()>;
    async fn delete_session(&self, id: &str) -> Result<bool>;
    /// Ends a user's sessions but `keep`; returns the ended ones (for their
    /// playground keys).
    async fn delete_sessions_of(
        &self,
        user_id: &str,
        keep: Option<&str>,
    ) -> Result<Vec<SessionRecord>>;

    /// Ends sessions past their expiry or idle since `idle_before`;
    /// returns them (for their playground keys).
    async fn delete_expired_sessions(
        &self,
        now: OffsetDateTime,
        idle_before: OffsetDateTime,
    ) -> Result<Vec<SessionRecord>>;

    async fn insert_invite(&self, i: &InviteRecord) -> Result<()>;
    async fn invite_by_token(&self, token_hash: &str) -> Result<Option<InviteRecord>>;
    /// Marks it accepted; false when it already was.
    async fn accept_invite(&self, id: &str, at: OffsetDateTime) -> Result<bool>;
    async fn invites_of(&self, account_id: &str) -> Result<Vec<InviteRecord>>;
    async fn delete_invite(&self, account_id: &str, id: &str) -> Result<bool>;

    async fn guard(&self, subject: &str) -> Result<GuardState>;
    /// Counts a failure (a new window after `window_ms` since its first),
    /// and locks until `now + lock_ms` when it reaches `max`; one statement
    /// per count, so attempts in parallel each count.
    async fn fail_guard(
        &self,
        subject: &str,
        now: OffsetDateTime,
        window_ms: i64,
        max: i64,
        lock_ms: i64,
    ) -> Result<GuardState>;
    async fn clear_guard(&self, subject: &str) -> Result<()>;
}

//! The people who sign in to the hub (issue 18): sign-up, passwords, the
//! TOTP second factor and recovery codes, server-side sessions, lock-outs
//! after repeated failures, and the members of an account with their roles.
//!
//! The hub's pages call these operations; what a member may do in an
//! account is [`Role::can`], checked by the operation or the page before
//! any account operation runs. A session is known by the SHA-256 of its
//! token; the token lives only in the browser's cookie.

pub mod password;
pub mod store;
pub mod totp;

use maximin_types::{ErrorCode, Plan};
use time::{Duration, OffsetDateTime};

use crate::store::Account;
use crate::{secrets, Error, Platform, Result};
use store::{GuardState, InviteRecord, MembershipRecord, SessionRecord, UserRecord};

/// A session ends after this long without a request…
pub const SESSION_IDLE: Duration = Duration::hours(12);
/// …and this long after it began, whatever its use.
pub const SESSION_MAX: Duration = Duration::days(7);
/// Between the password and the second factor.
pub const SECOND_FACTOR_WINDOW: Duration = Duration::minutes(10);
/// Failures in a window that lock a subject, the window, and the lock.
pub const GUARD_MAX: i64 = 5;
pub const GUARD_WINDOW: Duration = Duration::minutes(15);
pub const GUARD_LOCK: Duration = Duration::minutes(15);
/// How long an invitation link works.
pub const INVITE_TTL: Duration = Duration::days(7);
pub const RECOVERY_CODES: usize = 10;

/// A member's role in an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Owner,
    Developer,
    Billing,
    ReadOnly,
}

/// What a page or an action needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    /// Usage figures, the activity log, tasks.
    ViewUsage,
    /// The key list (never a secret).
    ViewKeys,
    /// Create and revoke keys.
    ManageKeys,
    /// The playground: requests on the account's bill.
    UseApi,
    /// Balance, credits, invoices.
    ViewBilling,
    /// The files list and downloads.
    ViewFiles,
    /// Deleting files.
    ManageFiles,
    /// Invitations, roles.
    ManageMembers,
    /// The privacy dashboard: export, deletion, debug logging, closure.
    ManagePrivacy,
    /// Support tickets.
    Support,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Owner, Role::Developer, Role::Billing, Role::ReadOnly];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Developer => "developer",
            Role::Billing => "billing",
            Role::ReadOnly => "read-only",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }

    pub fn can(self, p: Permission) -> bool {
        use Permission::*;
        match self {
            Role::Owner => true,
            Role::Developer => matches!(
                p,
                ViewUsage | ViewKeys | ManageKeys | UseApi | ViewFiles | ManageFiles | Support
            ),
            Role::Billing => matches!(p, ViewUsage | ViewBilling | Support),
            Role::ReadOnly => matches!(p, ViewUsage | ViewKeys | ViewBilling | ViewFiles),
        }
    }
}

/// Marks a request the hub's playground sends to the API in-process (a
/// request extension no client can set): its content is not kept, not even
/// under the account's debug logging.
#[derive(Debug, Clone, Copy)]
pub struct PlaygroundCall;

/// A new session's token, for the cookie, and whether it still needs the
/// second factor.
#[derive(Debug)]
pub struct SignedIn {
    pub token: String,
    pub needs_second_factor: bool,
}

/// A request's session: who, in which account, in which role.
#[derive(Debug, Clone)]
pub struct HubSession {
    pub user: UserRecord,
    pub record: SessionRecord,
    pub memberships: Vec<MembershipRecord>,
    pub account: Option<Account>,
    pub role: Option<Role>,
}

impl HubSession {
    /// Signed in with every factor.
    pub fn complete(&self) -> bool {
        self.record.stage == "full"
    }

    /// The account shown, when the member's role allows `p` in it.
    pub fn require(&self, p: Permission) -> Result<&Account> {
        match (&self.account, self.role) {
            (Some(a), Some(r)) if r.can(p) => Ok(a),
            (Some(_), Some(r)) => Err(Error::permission_denied(format!(
                "The '{}' role may not do this in this account.",
                r.as_str()
            ))),
            _ => Err(Error::permission_denied(
                "You are not a member of any account.",
            )),
        }
    }
}

/// An invitation just made: the record and the link's token (shown once).
#[derive(Debug)]
pub struct Invited {
    pub invite: InviteRecord,
    pub token: String,
}

fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
}

fn wrong_credentials() -> Error {
    Error::authentication("The e-mail address or the password is wrong.").with("field", "password")
}

fn locked(until: OffsetDateTime, now: OffsetDateTime) -> Error {
    let secs = (until - now).whole_seconds().max(1) as u64;
    let minutes = secs.div_ceil(60);
    let mut e = Error::new(
        ErrorCode::RateLimitExceeded,
        format!(
            "Too many failed attempts: signing in is locked for {minutes} more minute{}.",
            if minutes == 1 { "" } else { "s" }
        ),
    )
    .with("locked_until", until.unix_timestamp());
    e.retry_after = Some(secs);
    e
}

fn totp_aad(user_id: &str) -> Vec<u8> {
    format!("totp:{user_id}").into_bytes()
}

/// A recovery code as typed: lower case, no spaces or dashes.
fn recovery_digest(code: &str) -> String {
    let plain: String = code
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect::<String>()
        .to_lowercase();
    secrets::hash_secret(&format!("recovery:{plain}"))
}

/// `otpauth://` URI of a secret, what an authenticator app scans.
pub fn otpauth_uri(email: &str, secret_b32: &str) -> String {
    let label: String = format!("maximin:{email}")
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b':' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect();
    format!(
        "otpauth://totp/{label}?secret={secret_b32}&issuer=maximin&algorithm=SHA1&digits={}&period={}",
        totp::DIGITS,
        totp::STEP_SECONDS
    )
}

/// Rewraps every user's TOTP secret (confirmed or being enrolled) under
/// the current master key (`maximin files rotate-key`); returns how many.
pub async fn rewrap_totp(
    store: &dyn crate::store::Store,
    keys: &crate::crypto::MasterKeys,
) -> Result<u64> {
    let mut n = 0;
    for mut user in store.users().await? {
        let aad = totp_aad(&user.id);
        let mut changed = false;
        for sealed in [&mut user.totp, &mut user.totp_pending]
            .into_iter()
            .flatten()
        {
            *sealed = keys.rewrap_value(sealed, &aad)?;
            changed = true;
        }
        if changed {
            store.update_user(&user).await?;
            n += 1;
        }
    }
    Ok(n)
}

impl Platform {
    /// Refuses while `subject` is locked.
    async fn check_guard(&self, subject: &str) -> Result<()> {
        let now = self.clock.now();
        match self.store.guard(subject).await? {
            GuardState {
                locked_until: Some(until),
                ..
            } if until > now => Err(locked(until, now)),
            _ => Ok(()),
        }
    }

    /// Counts a failure; the error is the lock once it is set, else `err`.
    async fn fail_guard(&self, subject: &str, err: Error) -> Error {
        let now = self.clock.now();
        match self
            .store
            .fail_guard(
                subject,
                now,
                GUARD_WINDOW.whole_milliseconds() as i64,
                GUARD_MAX,
                GUARD_LOCK.whole_milliseconds() as i64,
            )
            .await
        {
            Ok(GuardState {
                locked_until: Some(until),
                ..
            }) if until > now => locked(until, now),
            Ok(_) => err,
            Err(e) => e,
        }
    }

    async fn new_session(&self, user: &UserRecord, stage: &str) -> Result<SignedIn> {
        let token = secrets::random_token(43);
        let now = self.clock.now();
        let account_id = self
            .store
            .memberships_of_user(&user.id)
            .await?
            .first()
            .map(|m| m.account_id.clone());
        let expires_at = if stage == "full" {
            now + SESSION_MAX
        } else {
            now + SECOND_FACTOR_WINDOW
        };
        self.store
            .insert_session(&SessionRecord {
                id: secrets::hash_secret(&token),
                user_id: user.id.clone(),
                account_id,
                stage: stage.into(),
                created_at: now,
                seen_at: now,
                expires_at,
                playground_key: None,
            })
            .await?;
        Ok(SignedIn {
            token,
            needs_second_factor: stage != "full",
        })
    }

    /// A new person with a new account they own (or, with an invitation's
    /// token, a member of the inviting account), signed in.
    pub async fn sign_up(
        &self,
        email: &str,
        password: &str,
        invite_token: Option<&str>,
    ) -> Result<SignedIn> {
        let email = normalize_email(email);
        if !crate::valid_email(&email) {
            return Err(Error::invalid(
                "email",
                format!("'{email}' is not an e-mail address."),
            ));
        }
        password::check(password, &email)?;
        if self.store.user_by_email(&email).await?.is_some() {
            return Err(Error::invalid(
                "email",
                "This e-mail address is already registered; log in instead.",
            ));
        }
        let invite = match invite_token {
            Some(t) => Some(self.open_invite(t, &email).await?),
            None => None,
        };
        let now = self.clock.now();
        let user = UserRecord {
            id: secrets::new_id("user"),
            email: email.clone(),
            password_hash: password::hash(password).await?,
            totp: None,
            totp_pending: None,
            totp_step: 0,
            operator: false,
            created_at: now,
        };
        let (account_id, role) = match &invite {
            Some(i) => (i.account_id.clone(), i.role.clone()),
            None => {
                let account = self
                    .create_account(&email, Plan::Payg, None, false)
                    .await
                    .map_err(|e| {
                        if e.details.get("field").and_then(|v| v.as_str()) == Some("email") {
                            Error::invalid(
                                "email",
                                "An account with this e-mail address exists; ask its owner for an invitation.",
                            )
                        } else {
                            e
                        }
                    })?;
                (account.id, Role::Owner.as_str().to_owned())
            }
        };
        if !self.store.insert_user(&user).await? {
            return Err(Error::invalid(
                "email",
                "This e-mail address is already registered; log in instead.",
            ));
        }
        if let Some(i) = &invite {
            self.store.accept_invite(&i.id, now).await?;
        }
        self.store
            .put_membership(&MembershipRecord {
                account_id,
                user_id: user.id.clone(),
                role,
                created_at: now,
            })
            .await?;
        self.new_session(&user, "full").await
    }

    /// The password step of signing in. Five failures in 15 minutes lock
    /// the address for 15 minutes, known or not.
    pub async fn log_in(&self, email: &str, password: &str) -> Result<SignedIn> {
        let email = normalize_email(email);
        let subject = format!("password:{email}");
        self.check_guard(&subject).await?;
        let user = self.store.user_by_email(&email).await?;
        let hash = user
            .as_ref()
            .map_or(password::decoy(), |u| u.password_hash.as_str());
        let matches = password::verify(password, hash).await?;
        let Some(user) = user.filter(|_| matches) else {
            return Err(self.fail_guard(&subject, wrong_credentials()).await);
        };
        self.store.clear_guard(&subject).await?;
        let stage = if user.totp.is_some() { "totp" } else { "full" };
        self.new_session(&user, stage).await
    }

    /// The second factor: a TOTP code or an unused recovery code. The
    /// session starts anew under a new token.
    pub async fn second_factor(&self, token: &str, code: &str) -> Result<SignedIn> {
        let id = secrets::hash_secret(token);
        let now = self.clock.now();
        let session = self
            .store
            .session(&id)
            .await?
            .filter(|s| s.stage == "totp" && s.expires_at > now)
            .ok_or_else(|| Error::authentication("Sign in with your password first."))?;
        let mut user = self
            .store
            .user(&session.user_id)
            .await?
            .ok_or_else(|| Error::authentication("Sign in with your password first."))?;
        let subject = format!("totp:{}", user.id);
        self.check_guard(&subject).await?;
        let sealed = user
            .totp
            .clone()
            .ok_or_else(|| Error::authentication("Sign in with your password first."))?;
        let secret = self.files.keys().open_value(&sealed, &totp_aad(&user.id))?;
        let digits: String = code.chars().filter(|c| !c.is_whitespace()).collect();
        let ok = if digits.len() == totp::DIGITS as usize {
            match totp::verify(&secret, &digits, now.unix_timestamp(), user.totp_step) {
                Some(step) => {
                    user.totp_step = step;
                    self.store.update_user(&user).await?;
                    true
                }
                None => false,
            }
        } else {
            self.store
                .use_recovery_code(&user.id, &recovery_digest(code), now)
                .await?
        };
        if !ok {
            let err = Error::authentication("The code is wrong or was used already.")
                .with("field", "code");
            return Err(self.fail_guard(&subject, err).await);
        }
        self.store.clear_guard(&subject).await?;
        self.store.delete_session(&id).await?;
        self.new_session(&user, "full").await
    }

    /// The session a cookie's token names, when it is live; a request
    /// keeps it alive (written at most once a minute).
    pub async fn hub_session(&self, token: &str) -> Result<Option<HubSession>> {
        let id = secrets::hash_secret(token);
        let Some(mut record) = self.store.session(&id).await? else {
            return Ok(None);
        };
        let now = self.clock.now();
        if record.expires_at <= now || record.seen_at + SESSION_IDLE <= now {
            self.end_sessions(vec![record.clone()]).await?;
            self.store.delete_session(&id).await?;
            return Ok(None);
        }
        let Some(user) = self.store.user(&record.user_id).await? else {
            self.store.delete_session(&id).await?;
            return Ok(None);
        };
        let memberships = self.store.memberships_of_user(&user.id).await?;
        let current = record
            .account_id
            .as_ref()
            .and_then(|a| memberships.iter().find(|m| &m.account_id == a))
            .or(memberships.first())
            .cloned();
        let mut changed = current.as_ref().map(|m| &m.account_id) != record.account_id.as_ref();
        record.account_id = current.as_ref().map(|m| m.account_id.clone());
        if now - record.seen_at >= Duration::minutes(1) {
            record.seen_at = now;
            changed = true;
        }
        if changed {
            self.store.update_session(&record).await?;
        }
        let account = match &current {
            Some(m) => self.store.account(&m.account_id).await?,
            None => None,
        };
        Ok(Some(HubSession {
            role: current.as_ref().and_then(|m| Role::parse(&m.role)),
            user,
            record,
            memberships,
            account,
        }))
    }

    /// Ends the session (its playground key with it).
    pub async fn log_out(&self, token: &str) -> Result<()> {
        let id = secrets::hash_secret(token);
        if let Some(s) = self.store.session(&id).await? {
            self.end_sessions(vec![s]).await?;
        }
        self.store.delete_session(&id).await?;
        Ok(())
    }

    /// What ends with sessions: their playground keys.
    async fn end_sessions(&self, sessions: Vec<SessionRecord>) -> Result<()> {
        for s in sessions {
            if let Some(key) = &s.playground_key {
                if self.store.revoke_key(key, self.clock.now()).await.is_err() {
                    tracing::warn!("a playground key could not be revoked");
                }
            }
        }
        Ok(())
    }

    /// Shows the account `account_id` in this session, if the user is a member.
    pub async fn switch_account(&self, s: &HubSession, account_id: &str) -> Result<()> {
        if !s.memberships.iter().any(|m| m.account_id == account_id) {
            return Err(Error::not_found("account", account_id));
        }
        let mut record = s.record.clone();
        record.account_id = Some(account_id.to_owned());
        self.store.update_session(&record).await
    }

    /// A new password, after the current one; every other session ends.
    pub async fn change_password(&self, s: &HubSession, current: &str, new: &str) -> Result<()> {
        let subject = format!("password:{}", s.user.email);
        self.check_guard(&subject).await?;
        if !password::verify(current, &s.user.password_hash).await? {
            let err = Error::invalid("current_password", "The current password is wrong.");
            return Err(self.fail_guard(&subject, err).await);
        }
        password::check(new, &s.user.email)?;
        let mut user = s.user.clone();
        user.password_hash = password::hash(new).await?;
        self.store.update_user(&user).await?;
        let ended = self
            .store
            .delete_sessions_of(&user.id, Some(&s.record.id))
            .await?;
        self.end_sessions(ended).await
    }

    /// Starts TOTP enrolment: a new secret (base32), kept sealed until a
    /// code confirms it.
    pub async fn totp_begin(&self, s: &HubSession) -> Result<String> {
        if s.user.totp.is_some() {
            return Err(Error::invalid(
                "totp",
                "Two-factor sign-in is on already; turn it off first to enrol again.",
            ));
        }
        let secret = totp::new_secret();
        let mut user = s.user.clone();
        user.totp_pending = Some(self.files.keys().seal_value(&secret, &totp_aad(&user.id))?);
        self.store.update_user(&user).await?;
        Ok(totp::base32(&secret))
    }

    /// The secret being enrolled, as base32, if enrolment has begun.
    pub fn totp_pending(&self, s: &HubSession) -> Result<Option<String>> {
        s.user
            .totp_pending
            .as_ref()
            .map(|sealed| {
                self.files
                    .keys()
                    .open_value(sealed, &totp_aad(&s.user.id))
                    .map(|secret| totp::base32(&secret))
            })
            .transpose()
    }

    /// Confirms enrolment with a code from the app; returns the recovery
    /// codes, which are shown this once.
    pub async fn totp_confirm(&self, s: &HubSession, code: &str) -> Result<Vec<String>> {
        let sealed = s.user.totp_pending.clone().ok_or_else(|| {
            Error::invalid(
                "code",
                "Start enrolment first: no secret is waiting for a code.",
            )
        })?;
        let secret = self
            .files
            .keys()
            .open_value(&sealed, &totp_aad(&s.user.id))?;
        let now = self.clock.now().unix_timestamp();
        let step = totp::verify(&secret, code, now, 0).ok_or_else(|| {
            Error::invalid(
                "code",
                "The code does not match; check the time on your device and type the current one.",
            )
        })?;
        let mut user = s.user.clone();
        user.totp = Some(sealed);
        user.totp_pending = None;
        user.totp_step = step;
        self.store.update_user(&user).await?;
        self.new_recovery_codes(&user.id).await
    }

    /// New recovery codes (the old ones stop working), shown once.
    pub async fn new_recovery_codes(&self, user_id: &str) -> Result<Vec<String>> {
        let codes: Vec<String> = (0..RECOVERY_CODES)
            .map(|_| {
                let raw = secrets::random_token(10).to_lowercase();
                format!("{}-{}", &raw[..5], &raw[5..])
            })
            .collect();
        let hashes: Vec<String> = codes.iter().map(|c| recovery_digest(c)).collect();
        self.store.set_recovery_codes(user_id, &hashes).await?;
        Ok(codes)
    }

    pub async fn recovery_codes_left(&self, user_id: &str) -> Result<u64> {
        self.store.unused_recovery_codes(user_id).await
    }

    /// Turns the second factor off, after the password.
    pub async fn totp_disable(&self, s: &HubSession, password_now: &str) -> Result<()> {
        if !password::verify(password_now, &s.user.password_hash).await? {
            return Err(Error::invalid("password", "The password is wrong."));
        }
        let mut user = s.user.clone();
        user.totp = None;
        user.totp_pending = None;
        self.store.update_user(&user).await?;
        self.store.set_recovery_codes(&user.id, &[]).await
    }

    /// An invitation to the session's account (owners only); the link's
    /// token is returned once.
    pub async fn invite_member(&self, s: &HubSession, email: &str, role: &str) -> Result<Invited> {
        let account = s.require(Permission::ManageMembers)?;
        self.invite(&account.id, email, role).await
    }

    /// An invitation to an account (the owner's page, or the operator's
    /// `maximin users invite`); the link's token is returned once.
    pub async fn invite(&self, account_id: &str, email: &str, role: &str) -> Result<Invited> {
        let account = self.account(account_id).await?;
        if account.closed_at.is_some() {
            return Err(Error::invalid("account", "This account is closed."));
        }
        let email = normalize_email(email);
        if !crate::valid_email(&email) {
            return Err(Error::invalid(
                "email",
                format!("'{email}' is not an e-mail address."),
            ));
        }
        let role = Role::parse(role).ok_or_else(|| {
            Error::invalid(
                "role",
                "The role is one of owner, developer, billing, read-only.",
            )
        })?;
        let token = secrets::random_token(43);
        let now = self.clock.now();
        let invite = InviteRecord {
            id: secrets::new_id("inv"),
            account_id: account.id.clone(),
            email,
            role: role.as_str().into(),
            token_hash: secrets::hash_secret(&token),
            created_at: now,
            expires_at: now + INVITE_TTL,
            accepted_at: None,
        };
        self.store.insert_invite(&invite).await?;
        Ok(Invited { invite, token })
    }

    /// The invitation a link names, if it still works (for `email`, when given).
    async fn open_invite(&self, token: &str, email: &str) -> Result<InviteRecord> {
        let invite = self.invitation(token).await?;
        if !email.is_empty() && invite.email != email {
            return Err(Error::invalid(
                "email",
                "This invitation was sent to another e-mail address.",
            ));
        }
        Ok(invite)
    }

    /// An invitation by its link's token, unused and unexpired.
    pub async fn invitation(&self, token: &str) -> Result<InviteRecord> {
        let now = self.clock.now();
        self.store
            .invite_by_token(&secrets::hash_secret(token))
            .await?
            .filter(|i| i.accepted_at.is_none() && i.expires_at > now)
            .ok_or_else(|| {
                Error::new(
                    ErrorCode::NotFound,
                    "This invitation link is unknown, used or expired.",
                )
            })
    }

    /// A signed-in user accepts an invitation sent to their address.
    pub async fn join(&self, s: &HubSession, token: &str) -> Result<String> {
        let invite = self.open_invite(token, &s.user.email).await?;
        if !self
            .store
            .accept_invite(&invite.id, self.clock.now())
            .await?
        {
            return Err(Error::new(
                ErrorCode::NotFound,
                "This invitation was used already.",
            ));
        }
        self.store
            .put_membership(&MembershipRecord {
                account_id: invite.account_id.clone(),
                user_id: s.user.id.clone(),
                role: invite.role,
                created_at: self.clock.now(),
            })
            .await?;
        let mut record = s.record.clone();
        record.account_id = Some(invite.account_id.clone());
        self.store.update_session(&record).await?;
        Ok(invite.account_id)
    }

    /// The members of the session's account with their e-mail addresses.
    pub async fn members(&self, s: &HubSession) -> Result<Vec<(MembershipRecord, String)>> {
        let account = s.require(Permission::ViewUsage)?;
        let mut out = Vec::new();
        for m in self.store.members_of_account(&account.id).await? {
            let email = self
                .store
                .user(&m.user_id)
                .await?
                .map(|u| u.email)
                .unwrap_or_default();
            out.push((m, email));
        }
        Ok(out)
    }

    pub async fn pending_invites(&self, s: &HubSession) -> Result<Vec<InviteRecord>> {
        let account = s.require(Permission::ManageMembers)?;
        let now = self.clock.now();
        Ok(self
            .store
            .invites_of(&account.id)
            .await?
            .into_iter()
            .filter(|i| i.accepted_at.is_none() && i.expires_at > now)
            .collect())
    }

    pub async fn cancel_invite(&self, s: &HubSession, id: &str) -> Result<()> {
        let account = s.require(Permission::ManageMembers)?;
        if !self.store.delete_invite(&account.id, id).await? {
            return Err(Error::not_found("invitation", id));
        }
        Ok(())
    }

    /// Changes a member's role, or removes them (`role` None); an account
    /// keeps at least one owner.
    pub async fn set_member(
        &self,
        s: &HubSession,
        user_id: &str,
        role: Option<&str>,
    ) -> Result<()> {
        let account = s.require(Permission::ManageMembers)?;
        let members = self.store.members_of_account(&account.id).await?;
        let Some(member) = members.iter().find(|m| m.user_id == user_id) else {
            return Err(Error::not_found("member", user_id));
        };
        let role = match role {
            Some(r) => Some(Role::parse(r).ok_or_else(|| {
                Error::invalid(
                    "role",
                    "The role is one of owner, developer, billing, read-only.",
                )
            })?),
            None => None,
        };
        let owners = members.iter().filter(|m| m.role == "owner").count();
        if member.role == "owner" && owners == 1 && role != Some(Role::Owner) {
            return Err(Error::invalid(
                "role",
                "An account keeps at least one owner; make another member owner first.",
            ));
        }
        match role {
            Some(r) => {
                self.store
                    .put_membership(&MembershipRecord {
                        role: r.as_str().into(),
                        ..member.clone()
                    })
                    .await
            }
            None => self
                .store
                .remove_membership(&account.id, user_id)
                .await
                .map(|_| ()),
        }
    }

    /// The account's members and open invitations as the privacy export
    /// holds them: never a password hash, a TOTP secret or a link token.
    pub(crate) async fn member_records(&self, account_id: &str) -> Result<Vec<serde_json::Value>> {
        let mut out = Vec::new();
        for m in self.store.members_of_account(account_id).await? {
            let Some(u) = self.store.user(&m.user_id).await? else {
                continue;
            };
            out.push(serde_json::json!({
                "kind": "member",
                "email": u.email,
                "role": m.role,
                "joined_at": crate::clock::iso8601(m.created_at),
                "two_factor": u.totp.is_some(),
            }));
        }
        let now = self.clock.now();
        for i in self.store.invites_of(account_id).await? {
            if i.accepted_at.is_none() && i.expires_at > now {
                out.push(serde_json::json!({
                    "kind": "invitation",
                    "email": i.email,
                    "role": i.role,
                    "created_at": crate::clock::iso8601(i.created_at),
                    "expires_at": crate::clock::iso8601(i.expires_at),
                }));
            }
        }
        Ok(out)
    }

    /// Gives or takes the operator's role (the CLI's `maximin users operator`).
    pub async fn set_operator(&self, email: &str, on: bool) -> Result<UserRecord> {
        let email = normalize_email(email);
        let mut user = self
            .store
            .user_by_email(&email)
            .await?
            .ok_or_else(|| Error::not_found("user", &email))?;
        user.operator = on;
        self.store.update_user(&user).await?;
        Ok(user)
    }

    /// Ends expired and idle sessions and revokes their playground keys
    /// (the retention sweep).
    pub async fn sweep_sessions(&self, now: OffsetDateTime) -> Result<u64> {
        let ended = self
            .store
            .delete_expired_sessions(now, now - SESSION_IDLE)
            .await?;
        let n = ended.len() as u64;
        self.end_sessions(ended).await?;
        Ok(n)
    }

    /// The secret of a session's playground key: derived from the cookie's
    /// token under the master key, so it is never stored and never in a
    /// page; only its hash is, as for every key.
    fn playground_secret(&self, token: &str) -> String {
        use hmac::{Hmac, Mac};
        const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
        let key = self.files.keys().derive("hub-playground-key");
        let mut body = String::with_capacity(40);
        let mut round = 0u32;
        while body.len() < 40 {
            let Ok(mut mac) = Hmac::<sha2::Sha256>::new_from_slice(&key) else {
                break;
            };
            mac.update(token.as_bytes());
            mac.update(&round.to_be_bytes());
            for b in mac.finalize().into_bytes() {
                if b < 248 && body.len() < 40 {
                    body.push(char::from(BASE62[usize::from(b % 62)]));
                }
            }
            round += 1;
        }
        format!("{}{body}", secrets::LIVE_PREFIX)
    }

    /// The session's short-lived playground key (made on first use in the
    /// account shown, revoked when the session ends): requests from the
    /// playground pass auth, limits and metering as any other.
    pub async fn playground_key(&self, s: &HubSession, token: &str) -> Result<String> {
        let account = s.require(Permission::UseApi)?;
        let secret = self.playground_secret(token);
        if let Some(id) = &s.record.playground_key {
            match self.key(Some(&account.id), id).await {
                Ok(k) if k.revoked_at.is_none() && k.hash == secrets::hash_secret(&secret) => {
                    return Ok(secret)
                }
                // Made in another account, or revoked by hand: retire it.
                _ => {
                    let _ = self.store.revoke_key(id, self.clock.now()).await;
                }
            }
        }
        let name: String = format!("Hub playground ({})", s.user.email)
            .chars()
            .take(100)
            .collect();
        let made = self
            .create_key_with_secret(
                &account.id,
                crate::NewKey {
                    name,
                    test: false,
                    scopes: Vec::new(),
                    models: Vec::new(),
                    regions: Vec::new(),
                    pii: None,
                    budget_usd: None,
                },
                secret.clone(),
            )
            .await?;
        let mut record = s.record.clone();
        record.playground_key = Some(made.key.id);
        self.store.update_session(&record).await?;
        Ok(secret)
    }

    /// Every person who signs in to the hub, with the accounts they are in.
    pub async fn users(&self) -> Result<Vec<(UserRecord, Vec<MembershipRecord>)>> {
        let mut out = Vec::new();
        for u in self.store.users().await? {
            let m = self.store.memberships_of_user(&u.id).await?;
            out.push((u, m));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_allow_what_they_name() {
        assert!(Role::ALL
            .iter()
            .all(|r| Role::parse(r.as_str()) == Some(*r)));
        assert!(Role::Owner.can(Permission::ManagePrivacy));
        assert!(!Role::Developer.can(Permission::ManagePrivacy));
        assert!(!Role::Developer.can(Permission::ViewBilling));
        assert!(Role::Billing.can(Permission::ViewBilling));
        assert!(!Role::Billing.can(Permission::ManageKeys));
        assert!(!Role::ReadOnly.can(Permission::ManageKeys));
        assert!(!Role::ReadOnly.can(Permission::UseApi));
        assert!(Role::ReadOnly.can(Permission::ViewKeys));
    }

    #[test]
    fn recovery_codes_read_the_same_however_typed() {
        assert_eq!(
            recovery_digest("abcde-12345"),
            recovery_digest(" ABCDE 12345 ")
        );
        assert_ne!(
            recovery_digest("abcde-12345"),
            recovery_digest("abcde-12346")
        );
    }

    #[test]
    fn otpauth_uri_escapes_the_label() {
        let uri = otpauth_uri("a+b@x.io", "ABC");
        assert!(uri.starts_with("otpauth://totp/maximin:a%2Bb%40x.io?secret=ABC&issuer=maximin"));
    }
}

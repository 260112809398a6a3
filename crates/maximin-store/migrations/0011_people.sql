-- People who sign in to the hub (issue 18): their logins, the accounts they
-- belong to and in which role, their sessions, invitations and the
-- lock-outs that stop guessing.
--
-- A person: the e-mail they sign in with (lower case), an Argon2id hash of
-- the password, the TOTP secret sealed under the master key once confirmed
-- (and the one being enrolled), the last time step a code was used at (a
-- code works once), the operator's role (set by the CLI).
CREATE TABLE users (
    id            TEXT   PRIMARY KEY,
    email         TEXT   NOT NULL UNIQUE,
    password_hash TEXT   NOT NULL,
    totp          BLOB,
    totp_pending  BLOB,
    totp_step     BIGINT NOT NULL DEFAULT 0,
    operator      BIGINT NOT NULL DEFAULT 0,
    created_at    BIGINT NOT NULL
);

-- One-time recovery codes, stored only as SHA-256 hashes.
CREATE TABLE recovery_codes (
    user_id  TEXT   NOT NULL,
    hash     TEXT   NOT NULL,
    used_at  BIGINT,
    PRIMARY KEY (user_id, hash)
);

-- Who belongs to which account, as owner, developer, billing or read-only.
CREATE TABLE memberships (
    account_id  TEXT   NOT NULL,
    user_id     TEXT   NOT NULL,
    role        TEXT   NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (account_id, user_id)
);
CREATE INDEX memberships_user ON memberships (user_id);

-- Server-side sessions, by the SHA-256 of the cookie's token. `stage` is
-- 'totp' between the password and the second factor, then 'full'.
CREATE TABLE hub_sessions (
    id          TEXT   PRIMARY KEY,
    user_id     TEXT   NOT NULL,
    account_id  TEXT,
    stage       TEXT   NOT NULL,
    created_at  BIGINT NOT NULL,
    seen_at     BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    playground_key TEXT
);
CREATE INDEX hub_sessions_user ON hub_sessions (user_id);

-- Invitations to join an account, by the SHA-256 of the link's token.
CREATE TABLE invites (
    id          TEXT   PRIMARY KEY,
    account_id  TEXT   NOT NULL,
    email       TEXT   NOT NULL,
    role        TEXT   NOT NULL,
    token_hash  TEXT   NOT NULL UNIQUE,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    accepted_at BIGINT
);
CREATE INDEX invites_account ON invites (account_id);

-- Failed sign-in attempts per subject ('password:EMAIL', 'totp:USER_ID')
-- in the current window, and the lock that repeated failures set.
CREATE TABLE login_guards (
    subject      TEXT   PRIMARY KEY,
    failures     BIGINT NOT NULL,
    first_at     BIGINT NOT NULL,
    locked_until BIGINT
);

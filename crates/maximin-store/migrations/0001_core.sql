-- Accounts, keys, usage events and idempotency records.
-- Times are Unix milliseconds (BIGINT) so that range queries and the PostgreSQL
-- port are plain integer comparisons.

CREATE TABLE accounts (
    id          TEXT PRIMARY KEY,
    email       TEXT NOT NULL UNIQUE,
    plan        TEXT NOT NULL,
    rpm         BIGINT,
    burst       BIGINT,
    created_at  BIGINT NOT NULL
);

CREATE TABLE api_keys (
    id                 TEXT PRIMARY KEY,
    account_id         TEXT NOT NULL REFERENCES accounts(id),
    name               TEXT NOT NULL,
    prefix             TEXT NOT NULL,
    hash               TEXT NOT NULL UNIQUE,
    test               BIGINT NOT NULL,
    scopes             TEXT NOT NULL,
    models             TEXT NOT NULL,
    created_at         BIGINT NOT NULL,
    revoked_at         BIGINT,
    last_used_at       BIGINT,
    requests           BIGINT NOT NULL DEFAULT 0,
    errors             BIGINT NOT NULL DEFAULT 0,
    prompt_tokens      BIGINT NOT NULL DEFAULT 0,
    completion_tokens  BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX api_keys_account ON api_keys(account_id);

-- Metadata of each authenticated request (the activity log). Never content.
CREATE TABLE usage_events (
    id                 INTEGER PRIMARY KEY,
    at                 BIGINT NOT NULL,
    account_id         TEXT NOT NULL,
    key_id             TEXT NOT NULL,
    request_id         TEXT NOT NULL,
    method             TEXT NOT NULL,
    endpoint           TEXT NOT NULL,
    status             BIGINT NOT NULL,
    model              TEXT,
    prompt_tokens      BIGINT NOT NULL,
    completion_tokens  BIGINT NOT NULL,
    latency_us         BIGINT NOT NULL,
    error_code         TEXT,
    client_ip          TEXT
);
CREATE INDEX usage_events_key_at ON usage_events(key_id, at);
CREATE INDEX usage_events_account_at ON usage_events(account_id, at);

-- Idempotency records: id and fingerprint are derived from the client's key,
-- the response is sealed under another key derived from it (see maximin-core).
CREATE TABLE idempotency (
    id           TEXT PRIMARY KEY,
    account_id   TEXT NOT NULL,
    fingerprint  TEXT NOT NULL,
    sealed       BLOB,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL
);
CREATE INDEX idempotency_expires ON idempotency(expires_at);

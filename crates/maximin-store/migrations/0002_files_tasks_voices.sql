-- Files (metadata; the bytes are encrypted blobs beside the database), durable
-- tasks and the accounts' own voices. Times are Unix milliseconds.

-- A file's bytes are sealed under its own data key; `wrapped_key` is that key
-- sealed under the master key `key_id` (rotating the master key rewraps these).
CREATE TABLE files (
    id           BIGINT PRIMARY KEY,
    account_id   TEXT NOT NULL,
    purpose      TEXT NOT NULL,
    filename     TEXT NOT NULL,
    kind         TEXT NOT NULL,
    bytes        BIGINT NOT NULL,
    key_id       TEXT NOT NULL,
    wrapped_key  BLOB NOT NULL,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT
);
CREATE INDEX files_account ON files(account_id, purpose, created_at);
CREATE INDEX files_expires ON files(expires_at);

-- Durable tasks: queued → processing → success | failed. `params` is the
-- request sealed under a data key wrapped by the master key (it may hold
-- text to speak); it is cleared when the task ends. A task whose lease ran
-- out while processing (a crash) is claimed again; `attempts` fences a stale
-- runner out of finishing it.
CREATE TABLE tasks (
    id             BIGINT PRIMARY KEY,
    account_id     TEXT NOT NULL,
    key_id         TEXT NOT NULL,
    kind           TEXT NOT NULL,
    status         TEXT NOT NULL,
    params         BLOB,
    file_id        BIGINT,
    result         TEXT,
    error_code     TEXT,
    error_message  TEXT,
    attempts       BIGINT NOT NULL DEFAULT 0,
    lease_until    BIGINT,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL
);
CREATE INDEX tasks_status ON tasks(status, created_at);
CREATE INDEX tasks_account ON tasks(account_id, created_at);

-- Designed and cloned voices: a profile of engine parameters (no audio, no
-- description text). Deleted ids stay as tombstones so they are never reused.
CREATE TABLE voices (
    account_id   TEXT NOT NULL,
    voice_id     TEXT NOT NULL,
    kind         TEXT NOT NULL,
    profile      TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    used_at      BIGINT,
    deleted_at   BIGINT,
    PRIMARY KEY (account_id, voice_id)
);

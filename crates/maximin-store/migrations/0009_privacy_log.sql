-- The privacy action log (issue 16): what was done to an account's data
-- and its access (keys made and revoked, routing and PII changes, and
-- later exports, deletions, debug logging, closure). Append-only: the
-- store has no statement that changes or removes a row, but the account's
-- purge. Metadata only, never content.
CREATE TABLE privacy_log (
    id          INTEGER PRIMARY KEY,
    account_id  TEXT   NOT NULL,
    at          BIGINT NOT NULL,
    action      TEXT   NOT NULL,
    subject     TEXT   NOT NULL DEFAULT '',
    detail      TEXT   NOT NULL DEFAULT '{}'
);
CREATE INDEX privacy_log_account ON privacy_log (account_id, at);

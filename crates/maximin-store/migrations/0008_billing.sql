-- Billing (issue 16). Money is integer micro-USD everywhere.
--
-- The balance an account may spend; `operator` marks the install's own
-- account, whose admin keys may grant credit to any account.
ALTER TABLE accounts ADD COLUMN balance_micro BIGINT NOT NULL DEFAULT 0;
ALTER TABLE accounts ADD COLUMN operator BIGINT NOT NULL DEFAULT 0;
-- An enterprise account's tokens per minute (default: the plan's).
ALTER TABLE accounts ADD COLUMN tpm BIGINT;
-- A key's optional monthly spending cap.
ALTER TABLE api_keys ADD COLUMN budget_micro BIGINT;
-- What each request cost (0 for sandbox keys and errors without output).
ALTER TABLE usage_events ADD COLUMN cost_micro BIGINT NOT NULL DEFAULT 0;

-- Credit added to an account: its starting credits and every grant, with
-- who granted it and why. A billing record (kept 7 years).
CREATE TABLE credit_ledger (
    id            INTEGER PRIMARY KEY,
    account_id    TEXT   NOT NULL,
    at            BIGINT NOT NULL,
    amount_micro  BIGINT NOT NULL,
    kind          TEXT   NOT NULL,
    note          TEXT   NOT NULL DEFAULT ''
);
CREATE INDEX credit_ledger_account ON credit_ledger (account_id, at);

-- Credit set aside for requests still running: an estimate reserved at
-- admission, removed when the request is metered (and charged what it
-- used). A hold whose process died lapses at `expires_at`.
CREATE TABLE credit_holds (
    id            TEXT   PRIMARY KEY,
    account_id    TEXT   NOT NULL,
    key_id        TEXT   NOT NULL,
    amount_micro  BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL
);
CREATE INDEX credit_holds_account ON credit_holds (account_id, expires_at);
CREATE INDEX credit_holds_key ON credit_holds (key_id, expires_at);

-- Spend per account, month ('2026-12'), key and model: the lines of the
-- monthly statements. A billing record (kept 7 years), unlike the usage
-- events it is summed from (12 months).
CREATE TABLE billing_monthly (
    account_id         TEXT   NOT NULL,
    month              TEXT   NOT NULL,
    key_id             TEXT   NOT NULL,
    model              TEXT   NOT NULL,
    sandbox            BIGINT NOT NULL,
    requests           BIGINT NOT NULL DEFAULT 0,
    prompt_tokens      BIGINT NOT NULL DEFAULT 0,
    completion_tokens  BIGINT NOT NULL DEFAULT 0,
    characters         BIGINT NOT NULL DEFAULT 0,
    images             BIGINT NOT NULL DEFAULT 0,
    media_ms           BIGINT NOT NULL DEFAULT 0,
    cost_micro         BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (account_id, month, key_id, model)
);

-- Accounts made before billing existed get the default starting credits
-- ($5), as a new one would, so an upgrade refuses nobody.
INSERT INTO credit_ledger (account_id, at, amount_micro, kind, note)
    SELECT id, created_at, 5000000, 'starting', 'starting credits' FROM accounts
    WHERE plan IN ('free', 'payg');
UPDATE accounts SET balance_micro = 5000000 WHERE plan IN ('free', 'payg');

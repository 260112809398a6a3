-- Fine-tunes (issue 19): training jobs, the private models they made, their
-- events and checkpoints. The files they name (training data, adapters,
-- checkpoints) are rows of `files`, purged with the account's files.
--
-- A job: who made it (account, key), the durable task that trains it, what
-- it trains (base model, training and validation files, hyperparameters as
-- JSON, suffix, seed), where it stands (queued, validating, running, then
-- succeeded, failed or cancelled, which it never leaves) and what it made
-- (`ft:BASE:SUFFIX:ID`, the adapter's file, tokens trained) or why it failed
-- (JSON). `model_deleted`: the owner deleted the model; the job stays listed.
CREATE TABLE fine_tunes (
    id               BIGINT PRIMARY KEY,
    account_id       TEXT   NOT NULL,
    key_id           TEXT   NOT NULL,
    task_id          BIGINT NOT NULL,
    base_model       TEXT   NOT NULL,
    training_file    BIGINT NOT NULL,
    validation_file  BIGINT,
    hyperparameters  TEXT   NOT NULL,
    suffix           TEXT,
    seed             BIGINT NOT NULL,
    status           TEXT   NOT NULL,
    fine_tuned_model TEXT,
    adapter_file     BIGINT,
    trained_tokens   BIGINT,
    error            TEXT,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    finished_at      BIGINT,
    model_deleted    BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX fine_tunes_account ON fine_tunes (account_id, created_at);
-- A model's name names one job (NULLs, jobs without a model, are many).
CREATE UNIQUE INDEX fine_tunes_model ON fine_tunes (fine_tuned_model);
CREATE INDEX fine_tunes_status ON fine_tunes (status);

-- A job's log, numbered 1, 2, 3… per job (a reader pages on `seq`); `data`
-- holds metrics as JSON.
CREATE TABLE fine_tune_events (
    job_id      BIGINT NOT NULL REFERENCES fine_tunes(id) ON DELETE CASCADE,
    seq         BIGINT NOT NULL,
    created_at  BIGINT NOT NULL,
    level       TEXT   NOT NULL,
    message     TEXT   NOT NULL,
    data        TEXT,
    PRIMARY KEY (job_id, seq)
);

-- The adapter as it stood at a step: a sealed file and its metrics (JSON).
CREATE TABLE fine_tune_checkpoints (
    job_id      BIGINT NOT NULL REFERENCES fine_tunes(id) ON DELETE CASCADE,
    step        BIGINT NOT NULL,
    file_id     BIGINT NOT NULL,
    metrics     TEXT   NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (job_id, step)
);

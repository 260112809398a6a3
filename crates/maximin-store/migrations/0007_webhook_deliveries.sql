-- Task webhook deliveries not yet taken by their receiver: retried from
-- here (by whichever runner holds the lease) until taken or 24 hours old,
-- so a restart loses none. The URL and body are sealed together.
CREATE TABLE webhook_deliveries (
    id          INTEGER PRIMARY KEY,
    account_id  TEXT    NOT NULL,
    payload     BLOB    NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    next_at     INTEGER NOT NULL,
    lease_until INTEGER NOT NULL DEFAULT 0,
    created_at  INTEGER NOT NULL
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_at);

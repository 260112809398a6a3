-- Accounts over their whole life (issue 16): closure, debug logging,
-- support tickets.
--
-- When the owner closed the account (every key revoked, files and voices
-- deleted then; the profile is purged 90 days later).
ALTER TABLE accounts ADD COLUMN closed_at BIGINT;
-- Until when request and response bodies are kept for debugging (the
-- owner's opt-in, at most 7 days); NULL: off.
ALTER TABLE accounts ADD COLUMN debug_until BIGINT;

-- Bodies kept while debug logging is on: sealed under a data key wrapped
-- by the master key, swept when the window ends.
CREATE TABLE debug_logs (
    id          INTEGER PRIMARY KEY,
    account_id  TEXT   NOT NULL,
    at          BIGINT NOT NULL,
    request_id  TEXT   NOT NULL,
    endpoint    TEXT   NOT NULL,
    status      BIGINT NOT NULL,
    sealed      BLOB   NOT NULL,
    expires_at  BIGINT NOT NULL
);
CREATE INDEX debug_logs_account ON debug_logs (account_id, at);
CREATE INDEX debug_logs_expires ON debug_logs (expires_at);

-- Support tickets and their messages (message bodies sealed at rest),
-- kept 2 years after the ticket closes.
CREATE TABLE support_tickets (
    id          TEXT   PRIMARY KEY,
    account_id  TEXT   NOT NULL,
    subject     BLOB   NOT NULL,
    status      TEXT   NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    closed_at   BIGINT
);
CREATE INDEX support_tickets_account ON support_tickets (account_id, created_at);
CREATE INDEX support_tickets_closed ON support_tickets (closed_at);

CREATE TABLE support_messages (
    id          INTEGER PRIMARY KEY,
    ticket_id   TEXT   NOT NULL REFERENCES support_tickets(id) ON DELETE CASCADE,
    account_id  TEXT   NOT NULL,
    at          BIGINT NOT NULL,
    author      TEXT   NOT NULL,
    body        BLOB   NOT NULL
);
CREATE INDEX support_messages_ticket ON support_messages (ticket_id, at);

-- Routing limits (issue 14): the regions an account's or a key's requests
-- may be served in and PII protection before upstreams, as JSON
-- ({"regions": [...], "pii": "redact", "pii_local": false}); '{}' is none.
ALTER TABLE accounts ADD COLUMN routing TEXT NOT NULL DEFAULT '{}';
ALTER TABLE api_keys ADD COLUMN routing TEXT NOT NULL DEFAULT '{}';

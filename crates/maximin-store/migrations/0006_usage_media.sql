-- Media is metered in its own units: images made, and milliseconds of video
-- or music, per event and per key, beside tokens and characters.
ALTER TABLE usage_events ADD COLUMN images BIGINT NOT NULL DEFAULT 0;
ALTER TABLE usage_events ADD COLUMN media_ms BIGINT NOT NULL DEFAULT 0;
ALTER TABLE api_keys ADD COLUMN images BIGINT NOT NULL DEFAULT 0;
ALTER TABLE api_keys ADD COLUMN media_ms BIGINT NOT NULL DEFAULT 0;

-- Speech is metered in characters, not tokens: a `characters` figure beside
-- the token counts, per event and per key. Speech requests recorded before
-- this migration carried their characters as prompt tokens; they move over
-- (the keys' running totals first, while the events still say how many).

ALTER TABLE usage_events ADD COLUMN characters BIGINT NOT NULL DEFAULT 0;
ALTER TABLE api_keys ADD COLUMN characters BIGINT NOT NULL DEFAULT 0;

UPDATE api_keys SET
    characters = (
        SELECT COALESCE(SUM(e.prompt_tokens), 0) FROM usage_events e
        WHERE e.key_id = api_keys.id AND e.endpoint IN (
            '/v1/t2a_v2', '/ws/v1/t2a_v2', '/v1/t2a_async_v2',
            '/openai/v1/audio/speech', '/v1/voice_design', '/v1/voice_clone')
    );
UPDATE api_keys SET prompt_tokens = prompt_tokens - characters WHERE characters > 0;

UPDATE usage_events SET characters = prompt_tokens, prompt_tokens = 0
WHERE endpoint IN (
    '/v1/t2a_v2', '/ws/v1/t2a_v2', '/v1/t2a_async_v2',
    '/openai/v1/audio/speech', '/v1/voice_design', '/v1/voice_clone');

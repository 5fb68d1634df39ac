-- +goose Up
-- Receipts, reactions, edits and revokes find a message by its WhatsApp id.
-- The unique index has the chat before the id, so without this one the
-- lookup walked every message of the session (found by a benchmark: 80 % of
-- the writer's time with a few thousand messages stored, and growing).
CREATE INDEX messages_session_wa_id ON messages (session_id, wa_id, id);

-- +goose Down
DROP INDEX messages_session_wa_id;

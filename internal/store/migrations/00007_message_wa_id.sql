-- +goose Up
-- Receipts, reactions, edits and revokes find a message by its WhatsApp id.
-- The unique index had the chat before the id, so the lookup walked every
-- message of the session (found by a benchmark: 80 % of the writer's time
-- with a few thousand messages stored, and growing). The same uniqueness
-- with the id second serves both the lookup and the de-duplication, with no
-- second index to write (each index keyed by the random WhatsApp id costs a
-- page write per message at commit).
DROP INDEX messages_wa_id;
CREATE UNIQUE INDEX messages_wa_id ON messages (session_id, wa_id, direction, chat);

-- +goose Down
DROP INDEX messages_wa_id;
CREATE UNIQUE INDEX messages_wa_id ON messages (session_id, direction, chat, wa_id);

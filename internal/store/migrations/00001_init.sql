-- +goose Up
-- Times are microseconds since the Unix epoch (BIGINT); booleans are INTEGER
-- 0/1; JSON is TEXT. The same DDL runs on SQLite and PostgreSQL.

CREATE TABLE counters (
    name  TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);

CREATE TABLE admin_tokens (
    id         TEXT PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL
);

CREATE TABLE sessions (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    engine        TEXT NOT NULL,
    status        TEXT NOT NULL,
    status_reason TEXT NOT NULL DEFAULT '',
    phone         TEXT NOT NULL DEFAULT '',
    push_name     TEXT NOT NULL DEFAULT '',
    device_jid    TEXT NOT NULL DEFAULT '',
    config        TEXT NOT NULL DEFAULT '{}',
    metadata      TEXT NOT NULL DEFAULT '{}',
    desired       INTEGER NOT NULL DEFAULT 0,
    token_hash    TEXT NOT NULL UNIQUE,
    event_seq     BIGINT NOT NULL DEFAULT 0,
    msg_seq       BIGINT NOT NULL DEFAULT 0,
    qr            TEXT NOT NULL DEFAULT '',
    qr_expires_at BIGINT NOT NULL DEFAULT 0,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    connected_at  BIGINT
);
CREATE INDEX sessions_status ON sessions (status, id);
CREATE INDEX sessions_phone ON sessions (phone);

CREATE TABLE events (
    id         TEXT PRIMARY KEY,
    session_id TEXT REFERENCES sessions (id) ON DELETE CASCADE,
    seq        BIGINT NOT NULL,
    type       TEXT NOT NULL,
    body       TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX events_session_seq ON events (session_id, seq);

CREATE TABLE idempotency_keys (
    scope        TEXT NOT NULL,
    key          TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    status       INTEGER NOT NULL,
    response     TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (scope, key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);

CREATE TABLE messages (
    id         TEXT PRIMARY KEY,
    session_id TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    seq        BIGINT NOT NULL,
    direction  TEXT NOT NULL,
    chat       TEXT NOT NULL,
    wa_id      TEXT NOT NULL,
    kind       TEXT NOT NULL,
    status     TEXT NOT NULL,
    unread     INTEGER NOT NULL DEFAULT 0,
    body       TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX messages_session_seq ON messages (session_id, seq);
CREATE UNIQUE INDEX messages_wa_id ON messages (session_id, direction, chat, wa_id);
CREATE INDEX messages_session_list ON messages (session_id, id);
CREATE INDEX messages_chat_list ON messages (session_id, chat, id);
CREATE INDEX messages_outbox ON messages (session_id, seq) WHERE status IN ('queued', 'sending');

CREATE TABLE contacts (
    session_id TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    jid        TEXT NOT NULL,
    phone      TEXT NOT NULL DEFAULT '',
    lid        TEXT NOT NULL DEFAULT '',
    push_name  TEXT NOT NULL DEFAULT '',
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (session_id, jid)
);

CREATE TABLE webhooks (
    id              TEXT PRIMARY KEY,
    session_id      TEXT REFERENCES sessions (id) ON DELETE CASCADE,
    url             TEXT NOT NULL,
    events          TEXT NOT NULL,
    enabled         INTEGER NOT NULL,
    description     TEXT NOT NULL DEFAULT '',
    disabled_reason TEXT NOT NULL DEFAULT '',
    secret          TEXT NOT NULL,
    old_secret      TEXT NOT NULL DEFAULT '',
    old_secret_until BIGINT NOT NULL DEFAULT 0,
    failing_since   BIGINT NOT NULL DEFAULT 0,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE INDEX webhooks_session ON webhooks (session_id);

CREATE TABLE deliveries (
    id              TEXT PRIMARY KEY,
    webhook_id      TEXT NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    event_id        TEXT NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    event_type      TEXT NOT NULL,
    status          TEXT NOT NULL,
    attempts        TEXT NOT NULL DEFAULT '[]',
    attempt_count   INTEGER NOT NULL DEFAULT 0,
    next_attempt_at BIGINT,
    claimed_until   BIGINT NOT NULL DEFAULT 0,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX deliveries_webhook ON deliveries (webhook_id, id);

CREATE TABLE sandbox_mailbox (
    id         TEXT PRIMARY KEY,
    to_phone   TEXT NOT NULL,
    body       TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX sandbox_mailbox_to ON sandbox_mailbox (to_phone, id);

-- +goose Down
DROP TABLE sandbox_mailbox;
DROP TABLE deliveries;
DROP TABLE webhooks;
DROP TABLE contacts;
DROP TABLE messages;
DROP TABLE idempotency_keys;
DROP TABLE events;
DROP TABLE sessions;
DROP TABLE admin_tokens;
DROP TABLE counters;

-- +goose Up
-- Many nodes: each node registers and heartbeats; each running session is
-- owned by one node through a lease whose token increases with every
-- acquisition (the fencing token). lease_log keeps who held what, when.
CREATE TABLE nodes (
    id           TEXT PRIMARY KEY,
    address      TEXT NOT NULL,
    capacity     INTEGER NOT NULL,
    started_at   BIGINT NOT NULL,
    heartbeat_at BIGINT NOT NULL,
    stopped      INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE session_leases (
    session_id  TEXT PRIMARY KEY REFERENCES sessions (id) ON DELETE CASCADE,
    node_id     TEXT NOT NULL,
    token       BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    acquired_at BIGINT NOT NULL
);
CREATE INDEX session_leases_node ON session_leases (node_id);

CREATE TABLE lease_log (
    id          TEXT PRIMARY KEY,
    session_id  TEXT NOT NULL,
    node_id     TEXT NOT NULL,
    token       BIGINT NOT NULL,
    acquired_at BIGINT NOT NULL,
    renewed_at  BIGINT NOT NULL,
    released_at BIGINT
);
CREATE INDEX lease_log_session ON lease_log (session_id, acquired_at);
CREATE INDEX lease_log_open ON lease_log (node_id) WHERE released_at IS NULL;

-- +goose Down
DROP TABLE lease_log;
DROP TABLE session_leases;
DROP TABLE nodes;

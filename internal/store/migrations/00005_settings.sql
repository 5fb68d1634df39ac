-- +goose Up
-- Server-wide settings shared by every node (such as the key that signs
-- media links).
CREATE TABLE settings (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- +goose Down
DROP TABLE settings;

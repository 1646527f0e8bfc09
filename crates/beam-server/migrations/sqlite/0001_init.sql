-- Tokens: only the SHA-256 of each token is kept.
CREATE TABLE tokens (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    hash         BLOB    NOT NULL UNIQUE,
    description  TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER,
    revoked_at   INTEGER,
    last_used_at INTEGER
);

-- Public names (subdomains, TCP ports) held by a tunnel or by its lease.
-- The primary key is what makes a name unique: claims are one atomic upsert.
CREATE TABLE reservations (
    kind       TEXT    NOT NULL,
    name       TEXT    NOT NULL,
    token_id   INTEGER NOT NULL REFERENCES tokens(id),
    lease_hash BLOB    NOT NULL,
    session    TEXT    NOT NULL,
    -- NULL while a connection holds the name; otherwise the end of the grace period.
    expires_at INTEGER,
    PRIMARY KEY (kind, name)
);

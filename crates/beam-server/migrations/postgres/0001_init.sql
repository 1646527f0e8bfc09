-- Tokens: only the SHA-256 of each token is kept.
CREATE TABLE tokens (
    id           BIGSERIAL PRIMARY KEY,
    hash         BYTEA  NOT NULL UNIQUE,
    description  TEXT   NOT NULL,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT,
    revoked_at   BIGINT,
    last_used_at BIGINT
);

-- Public names (subdomains, TCP ports) held by a tunnel or by its lease.
-- The primary key is what makes a name unique: claims are one atomic upsert.
CREATE TABLE reservations (
    kind       TEXT   NOT NULL,
    name       TEXT   NOT NULL,
    token_id   BIGINT NOT NULL REFERENCES tokens(id),
    lease_hash BYTEA  NOT NULL,
    session    TEXT   NOT NULL,
    -- NULL while a connection holds the name; otherwise the end of the grace period.
    expires_at BIGINT,
    PRIMARY KEY (kind, name)
);

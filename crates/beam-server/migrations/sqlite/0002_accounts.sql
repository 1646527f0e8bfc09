-- Accounts, organizations with plan limits, scoped tokens, tunnel records, custom
-- domains and request analytics. Byte counts and times are integers (bytes, unix ms).

CREATE TABLE organizations (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    name                TEXT   NOT NULL,
    created_at          BIGINT NOT NULL,
    -- Plan limits; NULL means unlimited.
    max_tunnels         BIGINT,
    max_custom_domains  BIGINT,
    max_members         BIGINT,
    -- Bytes in + out per calendar month (UTC).
    max_bandwidth_bytes BIGINT
);

CREATE TABLE users (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    email         TEXT   NOT NULL UNIQUE,
    name          TEXT   NOT NULL,
    -- argon2id PHC string; NULL for accounts that cannot log in with a password.
    password_hash TEXT,
    created_at    BIGINT NOT NULL
);

CREATE TABLE members (
    org_id     BIGINT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    user_id    BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    role       TEXT   NOT NULL CHECK (role IN ('owner', 'admin', 'member', 'viewer')),
    created_at BIGINT NOT NULL,
    PRIMARY KEY (org_id, user_id)
);

-- Tokens belong to a user acting in one organization. `kind` is 'api' (CLI, shown
-- once) or 'session' (login, short-lived) or 'reset' (password reset).
ALTER TABLE tokens ADD COLUMN user_id BIGINT REFERENCES users(id) ON DELETE CASCADE;
ALTER TABLE tokens ADD COLUMN org_id BIGINT REFERENCES organizations(id) ON DELETE CASCADE;
ALTER TABLE tokens ADD COLUMN scopes TEXT NOT NULL DEFAULT 'admin';
ALTER TABLE tokens ADD COLUMN kind TEXT NOT NULL DEFAULT 'api';
CREATE INDEX tokens_user ON tokens (user_id, kind);

-- A reservation made through the API (a reserved subdomain or port, a tunnel
-- definition) belongs to an organization and survives disconnects.
ALTER TABLE reservations ADD COLUMN org_id BIGINT;
ALTER TABLE reservations ADD COLUMN persistent INTEGER NOT NULL DEFAULT 0;

-- One row per (organization, kind, name): the tunnel's history, state and totals.
CREATE TABLE tunnels (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    org_id          BIGINT  NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    user_id         BIGINT  REFERENCES users(id) ON DELETE SET NULL,
    kind            TEXT    NOT NULL CHECK (kind IN ('http', 'tcp')),
    name            TEXT    NOT NULL,
    status          TEXT    NOT NULL CHECK (status IN ('connecting', 'connected', 'disconnected', 'error')),
    paused          INTEGER NOT NULL DEFAULT 0,
    reserved        INTEGER NOT NULL DEFAULT 0,
    public_url      TEXT    NOT NULL,
    config          TEXT    NOT NULL DEFAULT '{}',
    created_at      BIGINT  NOT NULL,
    connected_at    BIGINT,
    disconnected_at BIGINT,
    requests        BIGINT  NOT NULL DEFAULT 0,
    bytes_in        BIGINT  NOT NULL DEFAULT 0,
    bytes_out       BIGINT  NOT NULL DEFAULT 0,
    UNIQUE (org_id, kind, name)
);

CREATE TABLE domains (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    org_id             BIGINT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    hostname           TEXT   NOT NULL UNIQUE,
    kind               TEXT   NOT NULL CHECK (kind IN ('subdomain', 'custom')),
    status             TEXT   NOT NULL CHECK (status IN ('pending', 'active', 'expired', 'suspended')),
    -- Random per domain; published by the owner as TXT _beam-challenge.<hostname>.
    verification_token TEXT   NOT NULL,
    verified_at        BIGINT,
    checked_at         BIGINT,
    last_error         TEXT,
    tunnel_id          BIGINT REFERENCES tunnels(id) ON DELETE SET NULL,
    created_at         BIGINT NOT NULL
);
CREATE INDEX domains_org ON domains (org_id);

-- Per-request records: no query strings, sensitive headers redacted, visitor
-- address truncated to its network; deleted after the retention period.
CREATE TABLE requests (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    tunnel_id   BIGINT  NOT NULL REFERENCES tunnels(id) ON DELETE CASCADE,
    org_id      BIGINT  NOT NULL,
    ts          BIGINT  NOT NULL,
    method      TEXT    NOT NULL,
    path        TEXT    NOT NULL,
    status      INTEGER NOT NULL,
    duration_us BIGINT  NOT NULL,
    bytes_in    BIGINT  NOT NULL,
    bytes_out   BIGINT  NOT NULL,
    client_net  TEXT    NOT NULL,
    headers     TEXT    NOT NULL
);
CREATE INDEX requests_tunnel_at ON requests (tunnel_id, ts);
CREATE INDEX requests_org_at ON requests (org_id, ts);

-- Hourly totals per tunnel; additive, so nodes upsert their own counts.
CREATE TABLE request_hours (
    tunnel_id   BIGINT NOT NULL REFERENCES tunnels(id) ON DELETE CASCADE,
    org_id      BIGINT NOT NULL,
    hour        BIGINT NOT NULL,
    requests    BIGINT NOT NULL,
    errors      BIGINT NOT NULL,
    bytes_in    BIGINT NOT NULL,
    bytes_out   BIGINT NOT NULL,
    duration_us BIGINT NOT NULL,
    PRIMARY KEY (tunnel_id, hour)
);
CREATE INDEX request_hours_org ON request_hours (org_id, hour);

-- Who looked at what: every parity access and administrative change, one row
-- each, appended in batches and never updated (no route changes a row; the
-- only DELETE is retention). No foreign keys: an entry outlives the user,
-- token, organization or project it names, so names are kept as written.
CREATE TABLE audit_log (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    at          BIGINT NOT NULL,
    org_id      BIGINT NOT NULL,
    user_id     BIGINT,
    user_email  TEXT,
    token_id    BIGINT,
    kind        TEXT   NOT NULL,
    project     TEXT,
    environment TEXT,
    source      TEXT   NOT NULL,
    outcome     TEXT   NOT NULL,
    detail      TEXT   NOT NULL
);
-- Listing is newest first within an organization, optionally one user's.
CREATE INDEX audit_log_org ON audit_log (org_id, id);
CREATE INDEX audit_log_user ON audit_log (org_id, user_id, id);
-- Retention deletes by age.
CREATE INDEX audit_log_at ON audit_log (at);

-- Per-minute totals per tunnel, for the dashboard's charts and
-- /api/analytics/.../series with steps under an hour. Additive like
-- request_hours (every node upserts its own counts) and kept for at most two
-- days (and never longer than --retention); longer periods read request_hours.
CREATE TABLE request_minutes (
    tunnel_id   BIGINT NOT NULL REFERENCES tunnels(id) ON DELETE CASCADE,
    org_id      BIGINT NOT NULL,
    minute      BIGINT NOT NULL,
    requests    BIGINT NOT NULL,
    errors      BIGINT NOT NULL,
    bytes_in    BIGINT NOT NULL,
    bytes_out   BIGINT NOT NULL,
    duration_us BIGINT NOT NULL,
    PRIMARY KEY (tunnel_id, minute)
);
CREATE INDEX request_minutes_org ON request_minutes (org_id, minute);

-- The same totals per organization (every tunnel, including stopped ones),
-- so organization-wide charts read one row per step instead of one per
-- tunnel and step.
CREATE TABLE org_minutes (
    org_id      BIGINT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    minute      BIGINT NOT NULL,
    requests    BIGINT NOT NULL,
    errors      BIGINT NOT NULL,
    bytes_in    BIGINT NOT NULL,
    bytes_out   BIGINT NOT NULL,
    duration_us BIGINT NOT NULL,
    PRIMARY KEY (org_id, minute)
);
CREATE TABLE org_hours (
    org_id      BIGINT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    hour        BIGINT NOT NULL,
    requests    BIGINT NOT NULL,
    errors      BIGINT NOT NULL,
    bytes_in    BIGINT NOT NULL,
    bytes_out   BIGINT NOT NULL,
    duration_us BIGINT NOT NULL,
    PRIMARY KEY (org_id, hour)
);

-- Bytes per organization per calendar month (UTC), for the bandwidth limit. Kept
-- apart from the per-tunnel tables so that deleting or purging a tunnel does not
-- give its organization its month's bandwidth back.
CREATE TABLE org_usage (
    org_id BIGINT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    month  BIGINT NOT NULL,
    bytes  BIGINT NOT NULL,
    PRIMARY KEY (org_id, month)
);

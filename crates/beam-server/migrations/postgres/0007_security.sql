-- Accounts prove their e-mail address before they can create tokens or join
-- an organization. Accounts from before this rule are taken as proven (an
-- upgrade must not lock everyone out); the operator's account is proven by
-- construction.
ALTER TABLE users ADD COLUMN email_verified_at BIGINT;
UPDATE users SET email_verified_at = created_at;

-- Membership is an invitation the invitee accepts with a one-time token,
-- never an admin adding "whichever account holds that address".
CREATE TABLE invitations (
    id          BIGSERIAL PRIMARY KEY,
    org_id      BIGINT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    email       TEXT   NOT NULL,
    role        TEXT   NOT NULL CHECK (role IN ('owner', 'admin', 'member', 'viewer')),
    -- SHA-256 of the one-time accept token.
    token_hash  BYTEA   NOT NULL UNIQUE,
    invited_by  BIGINT REFERENCES users(id) ON DELETE SET NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    accepted_at BIGINT,
    revoked_at  BIGINT
);
CREATE INDEX invitations_org ON invitations (org_id);

-- Plan limits on TCP ports and reserved names (NULL = unlimited).
ALTER TABLE organizations ADD COLUMN max_tcp_ports BIGINT;
ALTER TABLE organizations ADD COLUMN max_reserved_names BIGINT;

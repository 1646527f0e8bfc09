-- Parity: projects and their environments (shop/production), and agent tokens
-- bound to one environment.
CREATE TABLE projects (
    id         BIGSERIAL PRIMARY KEY,
    org_id     BIGINT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    name       TEXT   NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (org_id, name)
);
CREATE TABLE environments (
    id         BIGSERIAL PRIMARY KEY,
    project_id BIGINT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    name       TEXT   NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (project_id, name)
);
ALTER TABLE tokens ADD COLUMN environment_id BIGINT REFERENCES environments(id) ON DELETE CASCADE;

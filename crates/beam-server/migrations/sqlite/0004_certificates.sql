-- Edge certificates for custom domains (issued by ACME or uploaded), shared by
-- every node; ACME account credentials per directory; pending HTTP-01 answers.
CREATE TABLE certificates (
    hostname   TEXT PRIMARY KEY,
    cert_pem   TEXT NOT NULL,
    key_pem    TEXT NOT NULL,
    not_after  BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE TABLE acme_accounts (
    directory   TEXT PRIMARY KEY,
    credentials TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE TABLE acme_challenges (
    token             TEXT PRIMARY KEY,
    key_authorization TEXT NOT NULL,
    expires_at        BIGINT NOT NULL
);

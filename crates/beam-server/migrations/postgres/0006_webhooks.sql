-- Parity webhooks: events stored durably with their raw bytes, developer
-- subscriptions, and which subscription acknowledged which event.
CREATE TABLE webhook_events (
    id             BIGSERIAL PRIMARY KEY,
    environment_id BIGINT NOT NULL REFERENCES environments(id) ON DELETE CASCADE,
    provider       TEXT   NOT NULL,
    event_id       TEXT,
    event_type     TEXT,
    method         TEXT   NOT NULL,
    path           TEXT   NOT NULL,
    query          TEXT,
    headers        TEXT   NOT NULL,
    body           BYTEA  NOT NULL,
    size           BIGINT NOT NULL,
    verified       BOOLEAN NOT NULL,
    received_at    BIGINT NOT NULL,
    -- Dedupe by the provider's event id (NULL ids never collide).
    UNIQUE (environment_id, provider, event_id)
);
CREATE INDEX webhook_events_env ON webhook_events (environment_id, id);
CREATE INDEX webhook_events_received ON webhook_events (received_at);
CREATE TABLE webhook_subscriptions (
    id             BIGSERIAL PRIMARY KEY,
    environment_id BIGINT NOT NULL REFERENCES environments(id) ON DELETE CASCADE,
    user_id        BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name           TEXT   NOT NULL,
    -- Events after this id are this subscription's.
    start_after    BIGINT NOT NULL,
    created_at     BIGINT NOT NULL,
    UNIQUE (environment_id, user_id, name)
);
CREATE TABLE webhook_acks (
    subscription_id BIGINT NOT NULL REFERENCES webhook_subscriptions(id) ON DELETE CASCADE,
    event_id        BIGINT NOT NULL REFERENCES webhook_events(id) ON DELETE CASCADE,
    status          INTEGER NOT NULL,
    acked_at        BIGINT NOT NULL,
    PRIMARY KEY (subscription_id, event_id)
);

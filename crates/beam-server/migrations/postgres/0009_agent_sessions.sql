-- Production agents connected to each node, so a parity call answered by any
-- node of a cluster reaches the environment's agent on the node it is
-- connected to. Rows of dead nodes go with them (release of orphans).
CREATE TABLE agent_sessions (
    session      TEXT   PRIMARY KEY,
    env_id       BIGINT NOT NULL,
    node_id      TEXT   NOT NULL,
    connected_at BIGINT NOT NULL
);
CREATE INDEX agent_sessions_env ON agent_sessions (env_id);

-- Each node reads its own tunnels' rows on every heartbeat (cross-node stop
-- and pause): an index, not a scan of every tunnel ever recorded.
CREATE INDEX tunnels_node ON tunnels (node_id);

-- The custom domain a connected tunnel serves, so any node finds the node
-- holding a custom domain's tunnel.
ALTER TABLE tunnels ADD COLUMN domain TEXT;
CREATE INDEX tunnels_domain ON tunnels (domain);

-- Analytics batches already written: a batch whose commit succeeded but whose
-- acknowledgement was lost (the connection cut at that moment) is retried
-- under the same id and skipped, instead of being counted twice.
CREATE TABLE analytics_batches (
    id         TEXT   PRIMARY KEY,
    written_at BIGINT NOT NULL
);

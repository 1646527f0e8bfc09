-- The server nodes sharing this database, each with a heartbeat lease. A node
-- whose heartbeat is older than the lease is dead: the live names and the
-- connected tunnels it held are released by whichever node notices, and a
-- node joining never touches what live nodes hold.
CREATE TABLE nodes (
    id           TEXT   PRIMARY KEY,
    addr         TEXT   NOT NULL DEFAULT '',
    started_at   BIGINT NOT NULL,
    heartbeat_at BIGINT NOT NULL
);

-- The node whose connection holds the name or the tunnel; NULL for rows from
-- before nodes were recorded (released like a dead node's).
ALTER TABLE reservations ADD COLUMN node_id TEXT;
ALTER TABLE tunnels ADD COLUMN node_id TEXT;

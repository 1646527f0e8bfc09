-- Several production agents (replicas) per environment, each with an instance
-- name: the newest connection of a name replaces the older one on every node
-- (its node sees its session gone from here and stops it). Rows from before
-- names existed get a unique one.
ALTER TABLE agent_sessions ADD COLUMN instance TEXT NOT NULL DEFAULT '';
UPDATE agent_sessions SET instance = 'session-' || session WHERE instance = '';
CREATE UNIQUE INDEX agent_sessions_instance ON agent_sessions (env_id, instance);

-- Each agent's event cursor and the time it was last seen, in a narrow table of their own.
-- Every event batch advances them for thousands of agents: in the agents rows that locked each
-- row until the batch committed (a command queued for the agent, which advances its command
-- sequence there, waited for the whole batch), and an index on last_seen_at ruled out heap-only
-- updates. Commands, registrations and operators' changes write the agents rows, batches this one.
CREATE TABLE agent_progress (
    agent_id      TEXT PRIMARY KEY,
    last_event_id BIGINT NOT NULL DEFAULT 0,
    last_seen_at  BIGINT
) WITH (fillfactor = 70);
INSERT INTO agent_progress (agent_id, last_event_id, last_seen_at)
    SELECT id, last_event_id, last_seen_at FROM agents;
DROP INDEX IF EXISTS agents_status_seen;
ALTER TABLE agents DROP COLUMN last_event_id;
ALTER TABLE agents DROP COLUMN last_seen_at;

-- Each agent's event cursor and the time it was last seen, in a narrow table of their own.
-- Every event batch advances them for thousands of agents: in the wide agents rows (and in an
-- index on last_seen_at) that rewrote a page per agent, where this table packs ~60 agents to a
-- page. Commands, registrations and operators' changes write the agents rows, batches this one.
CREATE TABLE agent_progress (
    agent_id      TEXT PRIMARY KEY,
    last_event_id BIGINT NOT NULL DEFAULT 0,
    last_seen_at  BIGINT
) WITHOUT ROWID;
INSERT INTO agent_progress (agent_id, last_event_id, last_seen_at)
    SELECT id, last_event_id, last_seen_at FROM agents;
DROP INDEX IF EXISTS agents_status_seen;
ALTER TABLE agents DROP COLUMN last_event_id;
ALTER TABLE agents DROP COLUMN last_seen_at;

-- What agents currently report: one row per DockFlare-labelled container
-- (or Swarm service), projected from their events.
CREATE TABLE agent_containers (
    agent_id      TEXT NOT NULL,
    container_id  TEXT NOT NULL,
    name          TEXT NOT NULL,
    service_id    TEXT NOT NULL DEFAULT '',
    service_name  TEXT NOT NULL DEFAULT '',
    status        TEXT NOT NULL DEFAULT '',
    payload       BYTEA NOT NULL,
    first_seen_at BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    PRIMARY KEY (agent_id, container_id)
);
CREATE INDEX agent_containers_service ON agent_containers (service_id);

ALTER TABLE agents ADD COLUMN label_prefix TEXT NOT NULL DEFAULT '';

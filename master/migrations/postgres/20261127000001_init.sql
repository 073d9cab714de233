-- DockFlare master state (PostgreSQL). Times are Unix milliseconds.
CREATE TABLE join_tokens (
    id          TEXT PRIMARY KEY,
    secret_hash TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    max_uses    BIGINT NOT NULL,
    uses        BIGINT NOT NULL DEFAULT 0,
    revoked_at  BIGINT
);

CREATE TABLE agents (
    id                     TEXT PRIMARY KEY,
    display_name           TEXT NOT NULL,
    hostname               TEXT NOT NULL DEFAULT '',
    status                 TEXT NOT NULL,
    docker_mode            TEXT NOT NULL DEFAULT '',
    node_id                TEXT NOT NULL DEFAULT '',
    node_role              TEXT NOT NULL DEFAULT '',
    version                TEXT NOT NULL DEFAULT '',
    tunnel_group           TEXT NOT NULL DEFAULT '',
    capabilities           TEXT NOT NULL DEFAULT '',
    join_token_id          TEXT NOT NULL,
    enrolled_at            BIGINT NOT NULL,
    last_seen_at           BIGINT,
    cert_serial            TEXT NOT NULL,
    cert_not_after         BIGINT NOT NULL,
    last_command_seq       BIGINT NOT NULL DEFAULT 0,
    last_acked_command_seq BIGINT NOT NULL DEFAULT 0,
    last_event_id          BIGINT NOT NULL DEFAULT 0,
    revoked_at             BIGINT
);
CREATE INDEX agents_status_seen ON agents (status, last_seen_at);

CREATE TABLE agent_commands (
    agent_id       TEXT NOT NULL,
    sequence       BIGINT NOT NULL,
    id             TEXT NOT NULL UNIQUE,
    kind           TEXT NOT NULL,
    payload        BYTEA NOT NULL,
    state          TEXT NOT NULL,
    error          TEXT NOT NULL DEFAULT '',
    created_at     BIGINT NOT NULL,
    delivered_at   BIGINT,
    acked_at       BIGINT,
    delivery_count BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (agent_id, sequence)
);

CREATE TABLE agent_events (
    agent_id    TEXT NOT NULL,
    event_id    BIGINT NOT NULL,
    kind        TEXT NOT NULL,
    occurred_at BIGINT NOT NULL,
    received_at BIGINT NOT NULL,
    payload     BYTEA NOT NULL,
    PRIMARY KEY (agent_id, event_id)
);
CREATE INDEX agent_events_received ON agent_events (received_at);

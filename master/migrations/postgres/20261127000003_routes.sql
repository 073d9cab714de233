-- The reconciler's state: routes with their claim status, manual routes,
-- tunnels, the ingress rules each tunnel got from this master, settings.
CREATE TABLE routes (
    hostname       TEXT NOT NULL,
    path           TEXT NOT NULL,
    owner          TEXT NOT NULL,
    source         TEXT NOT NULL,
    service        TEXT NOT NULL,
    origin_json    TEXT NOT NULL DEFAULT '{}',
    zone_name      TEXT NOT NULL DEFAULT '',
    agent_id       TEXT NOT NULL DEFAULT '',
    tunnel_key     TEXT NOT NULL DEFAULT '',
    container_id   TEXT NOT NULL DEFAULT '',
    container_name TEXT NOT NULL DEFAULT '',
    service_name   TEXT NOT NULL DEFAULT '',
    status         TEXT NOT NULL,
    reason         TEXT NOT NULL DEFAULT '',
    delete_at      BIGINT,
    first_seen_at  BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL,
    last_error     TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (hostname, path, owner)
);

CREATE TABLE manual_routes (
    hostname    TEXT NOT NULL,
    path        TEXT NOT NULL,
    service     TEXT NOT NULL,
    origin_json TEXT NOT NULL DEFAULT '{}',
    zone_name   TEXT NOT NULL DEFAULT '',
    tunnel_key  TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (hostname, path)
);

CREATE TABLE tunnels (
    tunnel_key      TEXT PRIMARY KEY,
    name            TEXT NOT NULL,
    tunnel_id       TEXT NOT NULL,
    status          TEXT NOT NULL DEFAULT '',
    connector_count BIGINT NOT NULL DEFAULT 0,
    last_error      TEXT NOT NULL DEFAULT '',
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);

CREATE TABLE tunnel_owned_rules (
    tunnel_id TEXT NOT NULL,
    hostname  TEXT NOT NULL,
    path      TEXT NOT NULL,
    PRIMARY KEY (tunnel_id, hostname, path)
);

CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

ALTER TABLE agents ADD COLUMN assigned_tunnel_id TEXT NOT NULL DEFAULT '';
ALTER TABLE agents ADD COLUMN removed_at BIGINT;

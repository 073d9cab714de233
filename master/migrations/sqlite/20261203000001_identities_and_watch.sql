-- Admin identities: client certificates the master's CA issued to operators and integrations
-- (AdminService), by certificate serial, with their role. Calls of a revoked one are refused.
CREATE TABLE admin_identities (
    serial       TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    role         TEXT NOT NULL,
    issued_at    BIGINT NOT NULL,
    issued_by    TEXT NOT NULL DEFAULT '',
    expires_at   BIGINT NOT NULL,
    last_used_at BIGINT,
    revoked_at   BIGINT
);
CREATE INDEX admin_identities_revoked_at ON admin_identities (revoked_at);

-- The connector each agent runs, as its latest tunnel_status event said (the AgentEvent, protobuf).
CREATE TABLE agent_connectors (
    agent_id    TEXT PRIMARY KEY,
    event_id    BIGINT NOT NULL,
    reported_at BIGINT NOT NULL,
    payload     BLOB NOT NULL
);

-- What AdminService.WatchChanges serves: the latest state of every watched object (a
-- WatchChangesResponse, protobuf) with the revision at which it last changed. Deleted objects
-- stay as tombstones until compacted, so a watcher that reconnects learns what went away.
CREATE TABLE watch_objects (
    kind       TEXT NOT NULL,
    object_key TEXT NOT NULL,
    agent_id   TEXT NOT NULL DEFAULT '',
    revision   BIGINT NOT NULL,
    changed_at BIGINT NOT NULL,
    deleted    BIGINT NOT NULL DEFAULT 0,
    payload    BLOB NOT NULL,
    PRIMARY KEY (kind, object_key)
);
CREATE INDEX watch_objects_revision ON watch_objects (revision);

-- The last revision given out, and the highest revision compacted away (a resume from before it
-- is refused).
CREATE TABLE watch_meta (
    id        BIGINT PRIMARY KEY,
    revision  BIGINT NOT NULL,
    compacted BIGINT NOT NULL
);
INSERT INTO watch_meta (id, revision, compacted) VALUES (1, 0, 0);

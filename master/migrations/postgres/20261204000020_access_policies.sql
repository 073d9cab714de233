-- Operator-defined Cloudflare Access policies (DockFlare's "Access Groups", declared): the name
-- container labels refer to, the decision, Cloudflare's rule objects as JSON arrays, and where
-- the definition comes from: `api` (PutAccessPolicy) or `file` (--access-policies; created_by
-- holds the file's path). revision counts the definition's changes; updated_at is Unix ms.
CREATE TABLE access_policies (
    name             TEXT PRIMARY KEY,
    decision         TEXT NOT NULL,
    include_json     TEXT NOT NULL,
    exclude_json     TEXT NOT NULL,
    require_json     TEXT NOT NULL,
    session_duration TEXT,
    source           TEXT NOT NULL,
    revision         BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    created_by       TEXT NOT NULL
);

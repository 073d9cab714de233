-- Cloudflare Access from labels. Each route keeps the Access labels it is published with
-- (`access_json`, "" for none): when its labels turn invalid, the last good state is kept.
-- `access_releases` holds the applications of this installation whose route went public (its
-- Access labels removed): the application stays until `delete_at`, the routes' grace period,
-- so a protected hostname never goes public by one mistaken deploy.
ALTER TABLE routes ADD COLUMN access_json TEXT NOT NULL DEFAULT '';

CREATE TABLE access_releases (
    domain     TEXT PRIMARY KEY,
    app_id     TEXT NOT NULL,
    delete_at  BIGINT NOT NULL
);

-- Whether a tunnel's connectors follow its configuration: the configuration version Cloudflare
-- holds, and the lowest version its connectors report having applied (read on drift passes).
ALTER TABLE tunnels ADD COLUMN config_version BIGINT NOT NULL DEFAULT 0;
ALTER TABLE tunnels ADD COLUMN connector_config_version BIGINT NOT NULL DEFAULT 0;

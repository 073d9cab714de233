-- What an agent's labels may route (common/src/hostname_policy.rs): allowed hostname patterns
-- (comma-separated; empty: any), wildcard and apex permission, a route quota (0: the master's
-- default). Join tokens carry it to the agents they enroll.
ALTER TABLE join_tokens ADD COLUMN allowed_hostnames TEXT NOT NULL DEFAULT '';
ALTER TABLE join_tokens ADD COLUMN allow_wildcards BIGINT NOT NULL DEFAULT 0;
ALTER TABLE join_tokens ADD COLUMN allow_apex BIGINT NOT NULL DEFAULT 0;
ALTER TABLE join_tokens ADD COLUMN max_routes BIGINT NOT NULL DEFAULT 0;
ALTER TABLE agents ADD COLUMN allowed_hostnames TEXT NOT NULL DEFAULT '';
ALTER TABLE agents ADD COLUMN allow_wildcards BIGINT NOT NULL DEFAULT 0;
ALTER TABLE agents ADD COLUMN allow_apex BIGINT NOT NULL DEFAULT 0;
ALTER TABLE agents ADD COLUMN max_routes BIGINT NOT NULL DEFAULT 0;
-- Agents admitted before policies existed keep what they could do (an operator narrows it).
UPDATE agents SET allow_wildcards = 1, allow_apex = 1;

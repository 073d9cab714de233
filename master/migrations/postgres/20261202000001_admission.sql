-- The tunnel group an agent is admitted to is the operator's decision: a join token carries it,
-- enrollment copies it onto the agent, and only the admin API changes it afterwards.
ALTER TABLE join_tokens ADD COLUMN tunnel_group TEXT NOT NULL DEFAULT '';

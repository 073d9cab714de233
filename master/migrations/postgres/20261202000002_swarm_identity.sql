-- Which swarm an agent's node is in, as the node saw it at its last Register: the cluster id
-- (managers see it) and the managers' node ids (comma-separated; every node sees them). Reports of
-- one Swarm service merge only from agents of the same swarm.
ALTER TABLE agents ADD COLUMN swarm_cluster_id TEXT NOT NULL DEFAULT '';
ALTER TABLE agents ADD COLUMN swarm_managers TEXT NOT NULL DEFAULT '';

//! The end-to-end suite: Docker → agent → master → Cloudflare (emulated) → connector (the local
//! edge) → origin, on a real Docker engine with real master and agent processes. Every scenario
//! ends by checking the emulated account, the master's admin API and a request through the local
//! edge. Scenarios share nothing but the engine (each has its own emulator, master, agents, scope
//! labels, networks and edge ports), so they run in parallel; `deploy/test.sh` runs this binary
//! with more test threads than cores because the scenarios mostly wait. The `dockerd` restart
//! scenario restarts the engine and lives in its own binary (`e2e_dockerd_restart.rs`).

#[path = "../support/mod.rs"]
mod support;

mod harness;

mod s1_label_to_request;
mod s2_grace_period;
mod s3_master_killed;
mod s4_agent_restarted;
mod s6_partition;
mod s7_two_masters;
mod s8_scopes_and_groups;
mod s9_access;

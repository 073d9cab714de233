//! The Cloudflare reconciler: desired state (routes claimed by reported containers and manual
//! routes) against Cloudflare's state (tunnels, their ingress configuration, DNS records),
//! diffed and applied.
//!
//! - [`task`]: the loop — when a pass runs (debounce, leadership, backoff, drift timer, the
//!   deadline the last pass reported). [`ReconcilerHandle`] talks to it.
//! - [`pass`]: one pass — observe, decide, apply, save. [`inputs`]: what of an agent's record
//!   it reads (a Register that changes none of it needs no pass).
//! - Per Cloudflare resource, a pure plan and an apply: [`tunnels`], [`ingress`], [`dns`],
//!   [`access_apps`] (Cloudflare Access applications and policies from labels).
//! - Pure planners of the route table: [`desired`] (what the store asks for), [`claims`],
//!   [`policy`] (hostname policies), [`route_table`] (grace period, conflicts), [`zones`],
//!   [`swarms`], [`fairness`], [`serving`] (whether anything serves a manual route's tunnel).
//!
//! A new reconciled resource is a directory beside `tunnels/` with `plan.rs` and `apply.rs`,
//! and one step in [`pass`].

mod access;
pub mod access_apps;
pub mod claims;
pub mod desired;
pub mod dns;
pub mod dry_run;
pub mod fairness;
mod handle;
pub mod ingress;
pub mod inputs;
mod noticed;
pub mod pass;
pub mod policy;
pub mod port;
pub mod route_table;
pub mod serving;
mod settings;
pub mod swarms;
pub mod task;
pub mod tunnels;
pub mod zones;

pub use desired::policy_refusals;
pub use handle::{ReconcilerHandle, ReconcilerInbox};
pub use pass::Reconciler;
pub use port::AgentCommands;
pub use settings::{last_pass_summary, PassReport, ReconcileSettings, DEFAULT_MAX_ROUTES_PER_AGENT, LAST_PASS_SETTING};
pub use tunnels::tunnel_health;

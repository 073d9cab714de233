//! The DockFlare master as a library: the binary (`main.rs`) parses flags
//! and calls [`server::start`]; tests start the same pieces.

pub mod admin_access;
pub mod admin_identities;
pub mod admin_service;
pub mod agent_budget;
pub mod agent_service;
pub mod auth;
pub mod bootstrap_token;
pub mod call_limits;
pub mod clock;
pub mod cloudflare_setup;
pub mod cluster;
pub mod command_seal;
pub mod commands;
pub mod convert;
pub mod enroll_guard;
pub mod event_writer;
pub mod fanout;
pub mod grpc_status;
pub mod health;
pub mod listener;
pub mod liveness;
pub mod manual_routes;
pub mod model;
pub mod pki_files;
pub mod projection;
pub mod reconcile;
pub mod retention;
pub mod server;
pub mod sessions;
pub mod state;
pub mod store;
pub mod supervisor;
pub mod tally;
pub mod tls;

//! The DockFlare agent as a library: the binary (`main.rs`) parses flags and
//! wires these pieces; tests drive them directly.

pub mod any_certificate;
pub mod applier;
pub mod connection;
pub mod connector;
pub mod docker;
pub mod edge;
pub mod enroll;
pub mod identity;
pub mod inventory;
pub mod ledger;
pub mod outbox;
pub mod renewal;
pub mod session;
pub mod status;
pub mod tunnel_state;

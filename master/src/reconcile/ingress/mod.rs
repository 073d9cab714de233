//! Tunnel ingress: [`plan`] merges the desired rules into what Cloudflare holds (pure),
//! [`apply`] reads, writes and remembers what was synced.

pub mod apply;
pub mod plan;

pub use plan::*;

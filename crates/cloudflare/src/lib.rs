//! Cloudflare API v4 as DockFlare uses it — an API boundary: the serde types of the calls it
//! makes and of their envelopes ([`types`], shared with the emulator and the agent's local
//! edge), the error codes it acts on ([`codes`]), and the HTTP client with its request budget
//! and retries ([`client`], behind the `client` feature).
//!
//! Must not know: the master's store, routes or reconciler; DockFlare's labels.

#[cfg(feature = "client")]
pub mod client;
pub mod codes;
pub mod types;

//! Cloudflare API v4: the serde types of the calls DockFlare makes and an
//! in-process emulator of those endpoints (offline mode and tests).

pub mod client;
pub mod codes;
pub mod emulator;
pub mod types;

//! Tunnels: [`plan`] decides which tunnels a pass needs, which agents must be told to run one,
//! and which tunnels nobody needs (pure); [`apply`] finds, creates, starts, deletes and reads
//! their health through the Cloudflare client.

pub mod apply;
pub mod plan;

pub use plan::tunnel_health;

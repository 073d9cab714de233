//! DNS records: [`plan`] decides (pure), [`apply`] writes them through the Cloudflare client.

pub mod apply;
pub mod plan;

//! A tunnel this master manages and an operator's manual route. Plain data.

/// A tunnel this master manages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TunnelRow {
    pub tunnel_key: String,
    pub name: String,
    pub tunnel_id: String,
    pub status: String,
    pub connector_count: i64,
    /// The version of the ingress configuration Cloudflare holds (0: none or not read yet).
    pub config_version: i64,
    /// The lowest configuration version the tunnel's connectors report having applied.
    pub connector_config_version: i64,
    pub last_error: String,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A manual route, as the operator added it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManualRoute {
    pub hostname: String,
    pub path: String,
    pub service: String,
    pub origin_json: String,
    pub zone_name: String,
    /// "agent:<id>" or "group:<name>".
    pub tunnel_key: String,
    pub created_at: i64,
}

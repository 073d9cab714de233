//! The emulated account's data: tunnels (soft-deleted ones kept), their
//! configurations and connectors, zones with their DNS records, Access
//! applications, policies, tags and identity providers; the snapshot the inspection API returns; ids
//! and timestamps. The rules that change the data live beside their
//! endpoints (`tunnels.rs`, `dns.rs`, `access.rs`) as `impl Data` blocks.

use dockflare_cloudflare::types::{
    encode_tunnel_token_with_endpoint, DnsRecord, Tunnel, TunnelClient, TunnelConfiguration, TunnelCredentials, Zone,
    ZoneAccount,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use time::OffsetDateTime;

/// The account name zones report.
pub(super) const ACCOUNT_NAME: &str = "Emulated account";

/// A fresh 32-hex id (zones, DNS records, token ids).
pub(super) fn hex32() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// A fresh lowercase UUID (tunnels, connectors, connections, Access).
pub(super) fn uuid() -> String {
    uuid::Uuid::new_v4().hyphenated().to_string()
}

/// Now as Cloudflare writes it: `2025-02-18T22:41:43.534395Z`.
pub(super) fn now() -> String {
    let t = OffsetDateTime::now_utc();
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.microsecond()
    )
}

/// The login method every fresh account has: One-time PIN.
pub(super) fn one_time_pin() -> Map<String, Value> {
    let mut idp = Map::new();
    idp.insert("id".into(), json!(uuid()));
    idp.insert("name".into(), json!("One-time PIN"));
    idp.insert("type".into(), json!("onetimepin"));
    idp.insert("config".into(), json!({}));
    idp
}

pub(super) struct Data {
    pub account_id: String,
    pub tunnels: Vec<TunnelEntry>,
    pub zones: Vec<ZoneEntry>,
    /// Access applications as stored: `policies` holds links `{id, precedence}` in precedence
    /// order (answers expand them; see `access`).
    pub access_apps: Vec<Map<String, Value>>,
    /// Reusable policies and app-scoped ones (`reusable: false`, the owning application's id
    /// under `app_id`, never answered).
    pub access_policies: Vec<Map<String, Value>>,
    /// Access tags (`name`, timestamps).
    pub access_tags: Vec<Map<String, Value>>,
    /// Login methods (`id`, `name`, `type`, `config`); a fresh account has One-time PIN.
    pub identity_providers: Vec<Map<String, Value>>,
    /// Written as `"e"` into every tunnel token ([`super::EmulatorConfig::public_url`]).
    pub public_url: Option<String>,
    /// Woken on every configuration change, tunnel deletion and successful API write (connector
    /// long-polls wait on it).
    pub changed: std::sync::Arc<tokio::sync::Notify>,
    /// Connectors registered through the connector endpoint: client id → (tunnel id, last request).
    pub connector_seen: std::collections::HashMap<String, (String, std::time::Instant)>,
    /// Set when the emulator stops: long-polls answer at once.
    pub closing: bool,
}

pub(super) struct TunnelEntry {
    pub id: String,
    pub name: String,
    pub config_src: String,
    pub secret: Vec<u8>,
    pub created_at: String,
    pub deleted_at: Option<String>,
    pub conns_active_at: Option<String>,
    pub conns_inactive_at: Option<String>,
    pub ever_connected: bool,
    pub clients: Vec<TunnelClient>,
    pub configuration: Option<TunnelConfiguration>,
}

impl TunnelEntry {
    pub fn is_live(&self) -> bool {
        self.deleted_at.is_none()
    }

    pub fn has_active_connections(&self) -> bool {
        self.clients.iter().any(|c| !c.conns.is_empty())
    }

    /// `healthy` with connections; `down` after having had some; `inactive` if never run.
    pub fn status(&self) -> &'static str {
        if self.has_active_connections() {
            "healthy"
        } else if self.ever_connected {
            "down"
        } else {
            "inactive"
        }
    }

    pub fn to_tunnel(&self, account_id: &str) -> Tunnel {
        Tunnel {
            id: self.id.clone(),
            account_tag: account_id.to_string(),
            name: self.name.clone(),
            created_at: self.created_at.clone(),
            deleted_at: self.deleted_at.clone(),
            conns_active_at: self.conns_active_at.clone(),
            conns_inactive_at: self.conns_inactive_at.clone(),
            status: self.status().to_string(),
            tun_type: "cfd_tunnel".to_string(),
            remote_config: self.config_src == "cloudflare",
            config_src: Some(self.config_src.clone()),
            metadata: json!({}),
            connections: self.clients.iter().flat_map(|c| c.conns.iter().cloned()).collect(),
        }
    }

    /// The connector token; `endpoint` is its `"e"` field.
    pub fn token(&self, account_id: &str, endpoint: Option<&str>) -> String {
        encode_tunnel_token_with_endpoint(account_id, &self.id, &self.secret, endpoint)
    }

    pub fn credentials(&self, account_id: &str) -> TunnelCredentials {
        use base64::Engine as _;
        TunnelCredentials {
            account_tag: account_id.to_string(),
            tunnel_id: self.id.clone(),
            tunnel_name: self.name.clone(),
            tunnel_secret: base64::engine::general_purpose::STANDARD.encode(&self.secret),
        }
    }
}

pub(super) struct ZoneEntry {
    pub zone: Zone,
    pub records: Vec<DnsRecord>,
}

/// A DNS record with the zone it belongs to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ZoneDnsRecord {
    pub zone_id: String,
    pub zone_name: String,
    pub record: DnsRecord,
}

/// Everything the emulated account holds (`GET /__emulator/state`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub account_id: String,
    /// Every tunnel in creation order, soft-deleted ones included.
    pub tunnels: Vec<Tunnel>,
    /// One per tunnel that has had a configuration PUT (deleted tunnels' too).
    pub configurations: Vec<TunnelConfiguration>,
    pub zones: Vec<Zone>,
    /// Every record of every zone, zone by zone, in creation order.
    pub dns_records: Vec<ZoneDnsRecord>,
    /// As stored: `policies` are links `{id, precedence}`.
    pub access_apps: Vec<Value>,
    /// Reusable and app-scoped policies.
    pub access_policies: Vec<Value>,
    #[serde(default)]
    pub access_tags: Vec<Value>,
    #[serde(default)]
    pub identity_providers: Vec<Value>,
}

impl Snapshot {
    /// The live (not deleted) tunnel named `name`.
    pub fn live_tunnel(&self, name: &str) -> Option<&Tunnel> {
        self.tunnels.iter().find(|t| t.name == name && t.deleted_at.is_none())
    }

    /// The configuration of tunnel `tunnel_id`.
    pub fn configuration(&self, tunnel_id: &str) -> Option<&TunnelConfiguration> {
        self.configurations.iter().find(|c| c.tunnel_id == tunnel_id)
    }

    /// The DNS records named `name` (any zone, any type).
    pub fn dns_records_named(&self, name: &str) -> Vec<&DnsRecord> {
        self.dns_records.iter().map(|r| &r.record).filter(|r| r.name.eq_ignore_ascii_case(name)).collect()
    }
}

impl Data {
    pub fn new(account_id: &str, zone_names: &[String]) -> Data {
        let created = now();
        let zones = zone_names
            .iter()
            .map(|name| name.trim().trim_end_matches('.').to_ascii_lowercase())
            .filter(|name| !name.is_empty())
            .map(|name| {
                let mut extra = Map::new();
                extra.insert("paused".into(), json!(false));
                extra.insert("type".into(), json!("full"));
                extra.insert("development_mode".into(), json!(0));
                extra.insert("name_servers".into(), json!(["ada.ns.cloudflare.com", "bob.ns.cloudflare.com"]));
                extra.insert("original_name_servers".into(), json!([]));
                extra.insert("created_on".into(), json!(created));
                extra.insert("modified_on".into(), json!(created));
                extra.insert("activated_on".into(), json!(created));
                extra.insert("meta".into(), json!({}));
                extra.insert("owner".into(), json!({"id": null, "type": "organization", "email": null}));
                extra.insert("permissions".into(), json!(["#dns_records:edit", "#dns_records:read", "#zone:read"]));
                extra.insert("plan".into(), json!({"id": "0feeeeeeeeeeeeeeeeeeeeeeeeeeeeee", "name": "Free Website"}));
                ZoneEntry {
                    zone: Zone {
                        id: hex32(),
                        name,
                        status: "active".into(),
                        account: ZoneAccount { id: account_id.to_string(), name: ACCOUNT_NAME.into() },
                        extra,
                    },
                    records: Vec::new(),
                }
            })
            .collect();
        Data {
            account_id: account_id.to_string(),
            tunnels: Vec::new(),
            zones,
            access_apps: Vec::new(),
            access_policies: Vec::new(),
            access_tags: Vec::new(),
            identity_providers: vec![one_time_pin()],
            public_url: None,
            changed: std::sync::Arc::new(tokio::sync::Notify::new()),
            connector_seen: std::collections::HashMap::new(),
            closing: false,
        }
    }

    pub fn zone_by_name(&self, name: &str) -> Option<&ZoneEntry> {
        let name = name.trim_end_matches('.');
        self.zones.iter().find(|z| z.zone.name.eq_ignore_ascii_case(name))
    }

    /// A zone by id, or by name.
    pub fn zone_index(&self, id_or_name: &str) -> Option<usize> {
        self.zones.iter().position(|z| z.zone.id == id_or_name).or_else(|| {
            let name = id_or_name.trim_end_matches('.');
            self.zones.iter().position(|z| z.zone.name.eq_ignore_ascii_case(name))
        })
    }

    pub fn tunnel_index(&self, tunnel_id: &str) -> Option<usize> {
        let wanted = tunnel_id.to_ascii_lowercase();
        self.tunnels.iter().position(|t| t.id == wanted)
    }

    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            account_id: self.account_id.clone(),
            tunnels: self.tunnels.iter().map(|t| t.to_tunnel(&self.account_id)).collect(),
            configurations: self.tunnels.iter().filter_map(|t| t.configuration.clone()).collect(),
            zones: self.zones.iter().map(|z| z.zone.clone()).collect(),
            dns_records: self
                .zones
                .iter()
                .flat_map(|z| {
                    z.records.iter().map(|r| ZoneDnsRecord {
                        zone_id: z.zone.id.clone(),
                        zone_name: z.zone.name.clone(),
                        record: r.clone(),
                    })
                })
                .collect(),
            access_apps: self.access_apps.iter().cloned().map(Value::Object).collect(),
            access_policies: self.access_policies.iter().cloned().map(Value::Object).collect(),
            access_tags: self.access_tags.iter().cloned().map(Value::Object).collect(),
            identity_providers: self.identity_providers.iter().cloned().map(Value::Object).collect(),
        }
    }
}

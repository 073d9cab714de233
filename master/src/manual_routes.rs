//! Validating a manual route from the admin API: the same checks as labels (and, for its
//! tunnel group, as an agent's group), so that invalid routes never reach Cloudflare; then what
//! the master knows of the fleet and the account: something must serve its tunnel
//! ([`served`]), and a zone must take its hostname when the zones are known ([`in_a_zone`]).

use crate::model::AgentRecord;
use crate::reconcile::claims::origin_json;
use crate::reconcile::serving;
use crate::reconcile::zones::{self, KnownZones, ZoneSetting};
use crate::store::ManualRoute;
use dockflare::v1::AddManualRouteRequest;
use dockflare_common::labels::values;
use std::collections::HashMap;
use tonic::Status;

fn invalid(field: &str, reason: impl std::fmt::Display) -> Status {
    Status::invalid_argument(format!("{field}: {reason}"))
}

/// A manual route from the request, or INVALID_ARGUMENT naming the field.
pub fn validate(request: &AddManualRouteRequest, now: i64) -> Result<ManualRoute, Status> {
    let hostname = values::hostname(&request.hostname).map_err(|r| invalid("hostname", r))?;
    let path = values::path(&request.path).map_err(|r| invalid("path", r))?;
    let (service, _) = values::service(&request.service).map_err(|r| invalid("service", r))?;
    let zone_name = if request.zone_name.trim().is_empty() {
        String::new()
    } else {
        let zone = values::hostname(&request.zone_name).map_err(|r| invalid("zone_name", r))?;
        if hostname.strip_prefix("*.").unwrap_or(&hostname) != zone && !hostname.ends_with(&format!(".{zone}")) {
            return Err(invalid("zone_name", format!("{hostname} is not in zone {zone}")));
        }
        zone
    };
    let tunnel_key = match (request.agent_id.trim(), request.tunnel_group.trim()) {
        (agent, "") if !agent.is_empty() => format!("agent:{agent}"),
        ("", group) if !group.is_empty() => {
            // The rules of an agent's group (CreateJoinToken, SetAgentTunnelGroup, Register).
            crate::agent_service::validate::tunnel_group("tunnel_group", group)
                .map_err(|e| Status::invalid_argument(e.to_string()))?;
            format!("group:{group}")
        }
        _ => return Err(invalid("agent_id", "set exactly one of agent_id and tunnel_group")),
    };
    let origin = request.origin_request.as_ref().map(crate::convert::origin_options).unwrap_or_default();
    for (field, duration) in [
        ("origin_request.connect_timeout", &origin.connect_timeout),
        ("origin_request.tls_timeout", &origin.tls_timeout),
        ("origin_request.tcp_keep_alive", &origin.tcp_keep_alive),
        ("origin_request.keep_alive_timeout", &origin.keep_alive_timeout),
    ] {
        if let Some(duration) = duration {
            values::duration(duration).map_err(|r| invalid(field, r))?;
        }
    }
    if let Some(proxy_type) = &origin.proxy_type {
        if !proxy_type.is_empty() && proxy_type != "socks" {
            return Err(invalid("origin_request.proxy_type", "must be empty or \"socks\""));
        }
    }
    Ok(ManualRoute {
        hostname,
        path,
        service,
        origin_json: origin_json(&origin),
        zone_name,
        tunnel_key,
        created_at: now,
    })
}

/// FAILED_PRECONDITION naming the field when nothing would serve the route's tunnel: its agent
/// is unknown, removed or revoked, or no enrolled agent is in its group.
pub fn served(route: &ManualRoute, agents: &HashMap<String, AgentRecord>) -> Result<(), Status> {
    match serving::unserved(&route.tunnel_key, agents) {
        None => Ok(()),
        Some(why) => Err(Status::failed_precondition(format!("{}: {why}", why.field()))),
    }
}

/// INVALID_ARGUMENT when no zone of the account (as `known`, the last pass, lists them) takes the
/// route's hostname: naming `zone_name` when it names a zone the account lacks, else `hostname`.
pub fn in_a_zone(route: &ManualRoute, known: &KnownZones) -> Result<(), Status> {
    let default = known.default_zone_id.as_deref();
    match zones::zone_for(&route.hostname, &route.zone_name, ZoneSetting::ManualRoute, &known.zones, default) {
        Ok(_) => Ok(()),
        Err(reason) if !route.zone_name.is_empty() => Err(invalid("zone_name", reason)),
        Err(reason) => Err(invalid("hostname", reason)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(hostname: &str, service: &str) -> AddManualRouteRequest {
        AddManualRouteRequest {
            hostname: hostname.into(),
            service: service.into(),
            tunnel_group: "edge".into(),
            ..Default::default()
        }
    }

    #[test]
    fn invalid_manual_routes_name_the_field() {
        let message =
            |r: AddManualRouteRequest| validate(&r, 0).err().map(|s| s.message().to_string()).unwrap_or_default();
        assert!(message(request("bad/host.example.com", "http://a:1")).starts_with("hostname:"));
        assert!(message(request("a.example.com", "ftp://a")).starts_with("service:"));
        let mut both = request("a.example.com", "http://a:1");
        both.agent_id = "x".into();
        assert!(message(both).starts_with("agent_id:"));
        let mut zone = request("a.example.com", "http://a:1");
        zone.zone_name = "other.org".into();
        assert!(message(zone).starts_with("zone_name:"));
        let ok = validate(&request("A.Example.com", "http://a:1"), 5).map_err(|s| s.to_string());
        assert_eq!(ok.map(|r| (r.hostname, r.tunnel_key)), Ok(("a.example.com".into(), "group:edge".into())));
    }

    #[test]
    fn a_tunnel_group_follows_the_rules_of_an_agents_group() {
        for group in ["my group", "edge/1", "édge", &"g".repeat(64)] {
            let mut bad = request("a.example.com", "http://a:1");
            bad.tunnel_group = group.to_string();
            let status = validate(&bad, 0).err().unwrap_or_else(|| Status::ok(""));
            assert_eq!(status.code(), tonic::Code::InvalidArgument, "{group}");
            assert_eq!(status.message(), "tunnel_group: use at most 63 characters of a-z, A-Z, 0-9, '-' and '_'");
        }
        let mut fine = request("a.example.com", "http://a:1");
        fine.tunnel_group = "Edge_1-b".into();
        assert!(validate(&fine, 0).is_ok());
    }

    #[test]
    fn origin_timeouts_are_whole_seconds() {
        let mut sub_second = request("a.example.com", "http://a:1");
        sub_second.origin_request =
            Some(dockflare::v1::OriginRequest { tls_timeout: Some("500ms".into()), ..Default::default() });
        let message = validate(&sub_second, 0).err().map(|s| s.message().to_string()).unwrap_or_default();
        assert!(message.starts_with("origin_request.tls_timeout: \"500ms\" is not a whole number of seconds"));
        let mut whole = sub_second.clone();
        whole.origin_request =
            Some(dockflare::v1::OriginRequest { tls_timeout: Some("1m30s".into()), ..Default::default() });
        let stored = validate(&whole, 0).map(|r| r.origin_json).unwrap_or_default();
        assert_eq!(stored, r#"{"tlsTimeout":90}"#);
    }

    #[test]
    fn a_hostname_no_known_zone_takes_is_refused_naming_the_field() {
        let known = KnownZones {
            zones: vec![zones::ZoneRef { id: "z1".into(), name: "example.com".into() }],
            default_zone_id: None,
        };
        let route = |hostname: &str, zone: &str| {
            let mut request = request(hostname, "http://a:1");
            request.zone_name = zone.into();
            validate(&request, 0)
        };
        let refusal = |hostname: &str, zone: &str| {
            route(hostname, zone).and_then(|r| in_a_zone(&r, &known)).err().map(|s| s.message().to_string())
        };
        assert_eq!(route("a.example.com", "").and_then(|r| in_a_zone(&r, &known)).ok(), Some(()));
        let unknown = refusal("a.unknown.net", "").unwrap_or_default();
        assert!(unknown.starts_with("hostname: no zone of the Cloudflare account contains a.unknown.net"), "{unknown}");
        assert!(unknown.contains("zone_name") && !unknown.contains("zonename label"), "{unknown}");
        let named = refusal("a.unknown.net", "unknown.net").unwrap_or_default();
        assert!(named.starts_with("zone_name: zone unknown.net (from the route's zone_name) is not in"), "{named}");
    }
}

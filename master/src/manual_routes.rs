//! Validating a manual route from the admin API: the same checks as labels,
//! so that invalid routes never reach Cloudflare.

use crate::reconcile::claims::origin_json;
use crate::store::ManualRoute;
use dockflare::v1::AddManualRouteRequest;
use dockflare_common::labels::values;
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
        ("", group) if !group.is_empty() => format!("group:{group}"),
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
}

//! Which Cloudflare zone a hostname's DNS record goes in: the zone named by
//! the `zonename` label; else the longest zone of the account that the
//! hostname ends with; else the default zone (`CF_ZONE_ID`) — for agent
//! routes too (DockFlare #293, #377).

use crate::model::{AgentRecord, RouteRow, Source, Status};
use std::collections::HashMap;

/// A zone of the account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneRef {
    pub id: String,
    pub name: String,
}

/// Picks the zone for `hostname`, or says why none fits.
pub fn zone_for(
    hostname: &str,
    zone_name: &str,
    zones: &[ZoneRef],
    default_zone_id: Option<&str>,
) -> Result<ZoneRef, String> {
    let bare = hostname.strip_prefix("*.").unwrap_or(hostname);
    let inside = |zone: &str| bare == zone || bare.ends_with(&format!(".{zone}"));
    if !zone_name.is_empty() {
        return zones
            .iter()
            .find(|zone| zone.name == zone_name)
            .cloned()
            .ok_or_else(|| format!("zone {zone_name} (from the zonename label) is not in the Cloudflare account"));
    }
    if let Some(zone) = zones.iter().filter(|zone| inside(&zone.name)).max_by_key(|zone| zone.name.len()) {
        return Ok(zone.clone());
    }
    match default_zone_id {
        Some(id) => {
            let zone = zones.iter().find(|zone| zone.id == id);
            match zone {
                Some(zone) if !inside(&zone.name) => Err(format!(
                    "{hostname} is not inside the default zone {} (CF_ZONE_ID); add its zone to the account or set zonename",
                    zone.name
                )),
                Some(zone) => Ok(zone.clone()),
                // The token may not list zones; trust the operator's zone id.
                None => Ok(ZoneRef { id: id.to_string(), name: String::new() }),
            }
        }
        None => Err(format!(
            "no zone of the Cloudflare account contains {hostname}; add the zone, or set the zonename label or CF_ZONE_ID"
        )),
    }
}

/// Where each routed hostname's record goes, decided for the rows: a routed row with no zone that
/// fits, or (labels) with an apex its agent's policy refuses, becomes `invalid` with the reason.
/// Rows that left or are no longer routed get their zone too, where one fits: their record of
/// ours may have to go. Pure.
pub fn assign(
    rows: &mut [RouteRow],
    removed: &[RouteRow],
    agents: &HashMap<String, AgentRecord>,
    zones: &[ZoneRef],
    default_zone_id: Option<&str>,
) -> HashMap<String, ZoneRef> {
    let mut zone_of: HashMap<String, ZoneRef> = HashMap::new();
    // (Rows are `invalid` here only when withheld: the route table re-asks every claim.)
    for row in rows.iter_mut().filter(|r| r.status.is_routed()) {
        match zone_for(&row.spec.hostname, &row.spec.zone_name, zones, default_zone_id) {
            Ok(zone) => {
                let apex = agents
                    .get(&row.spec.agent_id)
                    .filter(|_| row.source == Source::Labels)
                    .and_then(|agent| agent.policy.apex_refusal(&row.spec.hostname, &zone.name));
                if let Some(reason) = apex {
                    row.status = Status::Invalid;
                    row.reason = reason;
                    continue;
                }
                zone_of.insert(row.spec.hostname.clone(), zone);
            }
            Err(reason) => {
                row.status = Status::Invalid;
                row.reason = reason;
            }
        }
    }
    // Where records may have to go: routes that left, and routes no longer routed (withheld,
    // conflicts), whose record of ours must not keep their hostname published.
    for row in removed.iter().chain(rows.iter().filter(|r| !r.status.is_routed())) {
        if let Ok(zone) = zone_for(&row.spec.hostname, &row.spec.zone_name, zones, default_zone_id) {
            zone_of.entry(row.spec.hostname.clone()).or_insert(zone);
        }
    }
    zone_of
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zones() -> Vec<ZoneRef> {
        vec![
            ZoneRef { id: "z1".into(), name: "example.com".into() },
            ZoneRef { id: "z2".into(), name: "dev.example.com".into() },
            ZoneRef { id: "z3".into(), name: "other.org".into() },
        ]
    }

    #[test]
    fn zones_are_chosen_by_label_then_longest_suffix_then_default() {
        let pick =
            |host: &str, label: &str, default: Option<&str>| zone_for(host, label, &zones(), default).map(|z| z.id);
        assert_eq!(pick("app.example.com", "", None), Ok("z1".into()));
        assert_eq!(pick("app.dev.example.com", "", None), Ok("z2".into()));
        assert_eq!(pick("*.dev.example.com", "", None), Ok("z2".into()));
        assert_eq!(pick("dev.example.com", "", None), Ok("z2".into()));
        assert_eq!(pick("app.dev.example.com", "example.com", None), Ok("z1".into()));
        assert_eq!(pick("app.other.org", "", Some("z1")), Ok("z3".into()));
        assert!(pick("app.unknown.net", "", None).err().unwrap_or_default().contains("no zone"));
        assert!(pick("app.unknown.net", "", Some("z1"))
            .err()
            .unwrap_or_default()
            .contains("not inside the default zone"));
        assert_eq!(pick("app.unknown.net", "", Some("zx")), Ok("zx".into()));
        assert!(pick("a.example.com", "nope.com", None).err().unwrap_or_default().contains("zonename label"));
    }
}

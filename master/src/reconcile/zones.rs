//! Which Cloudflare zone a hostname's DNS record goes in: the zone named by
//! the `zonename` label (a manual route's `zone_name`); else the longest zone
//! of the account that the hostname ends with; else the default zone
//! (`CF_ZONE_ID`) — for agent routes too (DockFlare #293, #377). Each pass
//! stores the zones it listed ([`KnownZones`]), so AddManualRoute can refuse a
//! hostname no zone takes, with the same decision.

use crate::model::{AgentRecord, RouteRow, Source, Status};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// A zone of the account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ZoneRef {
    pub id: String,
    pub name: String,
}

/// The zones the last pass listed and the default zone: what [`zone_for`] needs, stored (as JSON,
/// under [`KnownZones::SETTING`]) for the masters' admin APIs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KnownZones {
    pub zones: Vec<ZoneRef>,
    pub default_zone_id: Option<String>,
}

impl KnownZones {
    /// The settings key they are stored under.
    pub const SETTING: &'static str = "cloudflare_zones";
}

/// Where a route names its zone, for reasons that tell the operator what to set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ZoneSetting {
    /// The `zonename` label of a container.
    Label,
    /// The `zone_name` field of AddManualRoute.
    ManualRoute,
}

impl ZoneSetting {
    pub fn of(source: Source) -> ZoneSetting {
        match source {
            Source::Labels => ZoneSetting::Label,
            Source::Manual => ZoneSetting::ManualRoute,
        }
    }

    fn name(self) -> &'static str {
        match self {
            ZoneSetting::Label => "the zonename label",
            ZoneSetting::ManualRoute => "the route's zone_name",
        }
    }
}

/// At most this many of the account's zones are named in a reason.
const ZONES_NAMED: usize = 5;

/// The account's zones, for a reason: "example.com, other.org" (the first few).
fn zone_list(zones: &[ZoneRef]) -> String {
    let mut names: Vec<&str> = zones.iter().map(|zone| zone.name.as_str()).take(ZONES_NAMED).collect();
    if zones.len() > ZONES_NAMED {
        names.push("…");
    }
    if names.is_empty() {
        "none".to_string()
    } else {
        names.join(", ")
    }
}

/// Picks the zone for `hostname`, or says why none fits (naming `setting`, where the route names
/// its zone).
pub fn zone_for(
    hostname: &str,
    zone_name: &str,
    setting: ZoneSetting,
    zones: &[ZoneRef],
    default_zone_id: Option<&str>,
) -> Result<ZoneRef, String> {
    let bare = hostname.strip_prefix("*.").unwrap_or(hostname);
    let inside = |zone: &str| bare == zone || bare.ends_with(&format!(".{zone}"));
    if !zone_name.is_empty() {
        return zones.iter().find(|zone| zone.name == zone_name).cloned().ok_or_else(|| {
            format!(
                "zone {zone_name} (from {}) is not in the Cloudflare account (its zones: {})",
                setting.name(),
                zone_list(zones)
            )
        });
    }
    if let Some(zone) = zones.iter().filter(|zone| inside(&zone.name)).max_by_key(|zone| zone.name.len()) {
        return Ok(zone.clone());
    }
    match default_zone_id {
        Some(id) => {
            let zone = zones.iter().find(|zone| zone.id == id);
            match zone {
                Some(zone) if !inside(&zone.name) => Err(format!(
                    "{hostname} is not inside the default zone {} (CF_ZONE_ID); add its zone to the account and \
                     name it in {}",
                    zone.name,
                    setting.name()
                )),
                Some(zone) => Ok(zone.clone()),
                // The token may not list zones; trust the operator's zone id.
                None => Ok(ZoneRef { id: id.to_string(), name: String::new() }),
            }
        }
        None => Err(format!(
            "no zone of the Cloudflare account contains {hostname} (its zones: {}); add the zone to the account \
             (and name it in {} if you like), or set CF_ZONE_ID",
            zone_list(zones),
            setting.name()
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
        match zone_for(&row.spec.hostname, &row.spec.zone_name, ZoneSetting::of(row.source), zones, default_zone_id) {
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
        if let Ok(zone) =
            zone_for(&row.spec.hostname, &row.spec.zone_name, ZoneSetting::of(row.source), zones, default_zone_id)
        {
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
        let pick = |host: &str, label: &str, default: Option<&str>| {
            zone_for(host, label, ZoneSetting::Label, &zones(), default).map(|z| z.id)
        };
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

    #[test]
    fn a_manual_route_is_told_about_its_zone_name_field_not_a_label() {
        let refusal = |host: &str, zone_name: &str, default: Option<&str>| {
            zone_for(host, zone_name, ZoneSetting::ManualRoute, &zones(), default).err().unwrap_or_default()
        };
        assert_eq!(
            refusal("app.unknown.net", "", None),
            "no zone of the Cloudflare account contains app.unknown.net (its zones: example.com, dev.example.com, \
             other.org); add the zone to the account (and name it in the route's zone_name if you like), or set \
             CF_ZONE_ID"
        );
        assert_eq!(
            refusal("a.nope.com", "nope.com", None),
            "zone nope.com (from the route's zone_name) is not in the Cloudflare account (its zones: example.com, \
             dev.example.com, other.org)"
        );
        assert!(refusal("app.unknown.net", "", Some("z1")).ends_with("name it in the route's zone_name"));
        for reason in [refusal("app.unknown.net", "", None), refusal("a.nope.com", "nope.com", None)] {
            assert!(!reason.contains("zonename label"), "{reason}");
        }
        let many: Vec<ZoneRef> =
            (0..7).map(|i| ZoneRef { id: format!("z{i}"), name: format!("zone{i}.com") }).collect();
        let reason = zone_for("a.b.net", "", ZoneSetting::ManualRoute, &many, None).err().unwrap_or_default();
        assert!(reason.contains("(its zones: zone0.com, zone1.com, zone2.com, zone3.com, zone4.com, …)"), "{reason}");
    }

    #[test]
    fn known_zones_round_trip_as_json() {
        let known = KnownZones { zones: zones(), default_zone_id: Some("z1".into()) };
        let json = serde_json::to_string(&known).unwrap_or_default();
        assert_eq!(serde_json::from_str::<KnownZones>(&json).ok(), Some(known));
    }
}

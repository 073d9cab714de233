//! DNS decisions, as plain values: which hostnames a pass wants pointed where and which no
//! longer ([`Hostnames`]), and the steps for one hostname ([`plan`]). A record is this
//! master's only when its comment carries this installation's marker; a record it cannot prove
//! it owns is never updated or deleted — wanting its hostname is a conflict, with the reason.

use crate::model::{RouteRow, Status, TunnelRow};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// A record found at the hostname.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundRecord {
    pub id: String,
    pub record_type: String,
    pub content: String,
    pub proxied: bool,
    pub comment: String,
}

/// What to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DnsAction {
    Create,
    Update {
        id: String,
    },
    Delete {
        id: String,
    },
    /// Someone else's record holds the hostname.
    Conflict(String),
}

/// The comment this installation writes on its records.
pub fn marker_comment(installation_id: &str) -> String {
    format!("managed by DockFlare ({})", owner_tag(installation_id))
}

/// The proof of ownership searched for in comments.
pub fn owner_tag(installation_id: &str) -> String {
    format!("dockflare:{installation_id}")
}

/// The CNAME target of a tunnel.
pub fn tunnel_target(tunnel_id: &str) -> String {
    format!("{tunnel_id}.cfargotunnel.com")
}

/// Steps for `hostname`: `want` is the CNAME target it should have, or
/// `None` when no route needs it any more.
pub fn plan(hostname: &str, want: Option<&str>, found: &[FoundRecord], installation_id: &str) -> Vec<DnsAction> {
    let tag = owner_tag(installation_id);
    let (mine, theirs): (Vec<&FoundRecord>, Vec<&FoundRecord>) =
        found.iter().partition(|r| r.record_type == "CNAME" && r.comment.contains(&tag));
    let blocking: Vec<&FoundRecord> =
        theirs.iter().copied().filter(|r| matches!(r.record_type.as_str(), "A" | "AAAA" | "CNAME")).collect();
    let Some(target) = want else {
        return mine.iter().map(|r| DnsAction::Delete { id: r.id.clone() }).collect();
    };
    if let Some(foreign) = blocking.first() {
        // Nothing changes, ours included: a CNAME cannot coexist with it anyway.
        return vec![DnsAction::Conflict(format!(
            "a {} record for {hostname} ({}) exists that this DockFlare did not create; it is left unchanged",
            foreign.record_type, foreign.content
        ))];
    }
    let mut actions = Vec::new();
    match mine.split_first() {
        None => actions.push(DnsAction::Create),
        Some((first, rest)) => {
            if !first.content.eq_ignore_ascii_case(target) || !first.proxied {
                actions.push(DnsAction::Update { id: first.id.clone() });
            }
            actions.extend(rest.iter().map(|r| DnsAction::Delete { id: r.id.clone() }));
        }
    }
    actions
}

/// The hostnames of a pass: `wanted` (hostname → CNAME target) and `unwanted` (no route needs
/// a record there any more).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Hostnames {
    pub wanted: BTreeMap<String, String>,
    pub unwanted: BTreeSet<String>,
}

impl Hostnames {
    /// Every routed hostname whose tunnel exists this pass points to it; the hostnames of rows
    /// that left may lose their record. Pure.
    pub fn of(rows: &[RouteRow], removed: &[RouteRow], tunnels: &HashMap<String, TunnelRow>) -> Hostnames {
        let wanted = rows
            .iter()
            .filter(|r| r.status.is_routed())
            .filter_map(|r| {
                tunnels.get(&r.spec.tunnel_key).map(|t| (r.spec.hostname.clone(), tunnel_target(&t.tunnel_id)))
            })
            .collect();
        let mut hostnames = Hostnames { wanted, unwanted: removed.iter().map(|r| r.spec.hostname.clone()).collect() };
        hostnames.narrow(rows);
        hostnames
    }

    /// `wanted` narrowed to the hostnames a row still routes after a step that can turn routes
    /// into conflicts; the hostnames no longer routed join `unwanted`. A hostname some row still
    /// routes is never unwanted, even when it is not wanted this pass (its tunnel could not be
    /// set up): its record stays until the route really goes.
    pub fn narrow(&mut self, rows: &[RouteRow]) {
        let routed: BTreeSet<&str> =
            rows.iter().filter(|r| r.status.is_routed()).map(|r| r.spec.hostname.as_str()).collect();
        self.wanted.retain(|hostname, _| routed.contains(hostname.as_str()));
        self.unwanted.extend(rows.iter().filter(|r| !r.status.is_routed()).map(|r| r.spec.hostname.clone()));
        self.unwanted.retain(|hostname| !routed.contains(hostname.as_str()));
    }

    /// Every hostname a record may be written or removed at.
    pub fn all(&self) -> impl Iterator<Item = &String> {
        self.wanted.keys().chain(self.unwanted.iter())
    }
}

/// A foreign record at a wanted hostname makes its routes conflicts before anything is written
/// for them (no ingress rule either). `found` holds the records by lower-case name. Pure.
pub fn mark_foreign_records(
    rows: &mut [RouteRow],
    hostnames: &Hostnames,
    found: &HashMap<String, Vec<FoundRecord>>,
    installation_id: &str,
) {
    for row in rows.iter_mut().filter(|r| r.status.is_routed()) {
        let Some(target) = hostnames.wanted.get(&row.spec.hostname) else { continue };
        let existing = found.get(&row.spec.hostname).map(Vec::as_slice).unwrap_or(&[]);
        for action in plan(&row.spec.hostname, Some(target), existing, installation_id) {
            if let DnsAction::Conflict(reason) = action {
                row.status = Status::Conflict;
                row.reason = reason;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ME: &str = "inst1";

    fn record(id: &str, kind: &str, content: &str, comment: &str) -> FoundRecord {
        FoundRecord {
            id: id.into(),
            record_type: kind.into(),
            content: content.into(),
            proxied: true,
            comment: comment.into(),
        }
    }

    /// (name, wanted target, records found, expected actions)
    type Case = (&'static str, Option<&'static str>, Vec<FoundRecord>, Vec<DnsAction>);

    #[test]
    fn ownership_decides_everything() {
        let ours = marker_comment(ME);
        let cases: Vec<Case> = vec![
            ("new hostname", Some("t1.cfargotunnel.com"), vec![], vec![DnsAction::Create]),
            ("ours, right", Some("t1.cfargotunnel.com"), vec![record("r1", "CNAME", "t1.cfargotunnel.com", &ours)], vec![]),
            (
                "ours, retargeted",
                Some("t2.cfargotunnel.com"),
                vec![record("r1", "CNAME", "t1.cfargotunnel.com", &ours)],
                vec![DnsAction::Update { id: "r1".into() }],
            ),
            (
                "foreign CNAME",
                Some("t1.cfargotunnel.com"),
                vec![record("x", "CNAME", "elsewhere.example.net", "")],
                vec![DnsAction::Conflict(
                    "a CNAME record for app.example.com (elsewhere.example.net) exists that this DockFlare did not create; it is left unchanged".into(),
                )],
            ),
            (
                "another installation's record is foreign",
                Some("t1.cfargotunnel.com"),
                vec![record("x", "CNAME", "t9.cfargotunnel.com", &marker_comment("other"))],
                vec![DnsAction::Conflict(
                    "a CNAME record for app.example.com (t9.cfargotunnel.com) exists that this DockFlare did not create; it is left unchanged".into(),
                )],
            ),
            ("a TXT record does not block", Some("t1.cfargotunnel.com"), vec![record("x", "TXT", "v=spf1", "")], vec![DnsAction::Create]),
            ("removal deletes only ours", None, vec![record("r1", "CNAME", "t1.cfargotunnel.com", &ours), record("x", "A", "1.2.3.4", "")], vec![DnsAction::Delete { id: "r1".into() }]),
            ("removal of a foreign record: nothing", None, vec![record("x", "CNAME", "t1.cfargotunnel.com", "")], vec![]),
            (
                "our duplicates are cleaned",
                Some("t1.cfargotunnel.com"),
                vec![record("r1", "CNAME", "t1.cfargotunnel.com", &ours), record("r2", "CNAME", "t1.cfargotunnel.com", &ours)],
                vec![DnsAction::Delete { id: "r2".into() }],
            ),
        ];
        for (name, want, found, expected) in cases {
            assert_eq!(plan("app.example.com", want, &found, ME), expected, "{name}");
        }
    }

    fn row(hostname: &str, owner: &str, status: Status) -> RouteRow {
        let mut row = crate::model::route::test_row(hostname, owner);
        row.status = status;
        row
    }

    #[test]
    fn a_hostname_still_routed_keeps_its_record_even_without_a_tunnel_this_pass() {
        // "kept" is routed but its tunnel failed this pass (not wanted); a removed row and a
        // conflicting row share its hostname. "gone" is only conflicting.
        let rows = vec![
            row("kept.example.com", "c1", Status::Active),
            row("kept.example.com", "c2", Status::Conflict),
            row("gone.example.com", "c3", Status::Conflict),
        ];
        let mut hostnames = Hostnames { wanted: BTreeMap::new(), unwanted: ["kept.example.com".to_string()].into() };
        hostnames.narrow(&rows);
        assert!(hostnames.wanted.is_empty());
        assert_eq!(hostnames.unwanted, ["gone.example.com".to_string()].into());
    }

    #[test]
    fn a_hostname_that_turned_into_a_conflict_leaves_wanted_for_unwanted() {
        let rows = vec![row("app.example.com", "c1", Status::Conflict)];
        let mut hostnames = Hostnames {
            wanted: [("app.example.com".to_string(), "t.cfargotunnel.com".to_string())].into(),
            unwanted: BTreeSet::new(),
        };
        hostnames.narrow(&rows);
        assert!(hostnames.wanted.is_empty());
        assert_eq!(hostnames.unwanted, ["app.example.com".to_string()].into());
    }
}

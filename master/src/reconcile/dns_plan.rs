//! DNS decisions for one hostname, as plain values. A record is this
//! master's only when its comment carries this installation's marker; a
//! record it cannot prove it owns is never updated or deleted — wanting its
//! hostname is a conflict, with the reason.

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
}

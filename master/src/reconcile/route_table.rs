//! The route table's next state: claims (what containers and operators ask
//! for now) against the stored rows. Pure; the reconciler stores the result.
//!
//! - A claim is keyed by hostname + path + owner (a container, a Swarm
//!   service — so a task moving between nodes keeps its claim — or the
//!   operator for manual routes).
//! - A label route whose owner stops asking becomes `pending_deletion` with a
//!   deadline, returns to `active` if the owner asks again, and is removed
//!   when the deadline passes. Manual routes go only when deleted.
//! - One hostname + path is routed once: manual claims win over labels; a
//!   live claim on the *same tunnel* takes over a pending one at once (a
//!   container recreated under a new id — `docker compose up` after an image or
//!   label change — instead of waiting out the old one's grace period), and
//!   inherits its seniority; otherwise the oldest claim (first seen, persisted,
//!   so no flapping) keeps it, and the others are `conflict` with the reason.
//!   So another agent's claim never takes a hostname whose owner is only
//!   restarting: the owner keeps it until its grace period ends. A pending
//!   route that lost its hostname is no longer routed and leaves at once.

use std::collections::{BTreeMap, HashMap};

pub use crate::model::route::{RouteRow, RouteSpec, Source, Status};

/// What someone asks for now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub owner: String,
    pub source: Source,
    pub spec: RouteSpec,
    /// Why the route must not be published although it is asked for (it asks for protection
    /// this DockFlare cannot give, say): the row is `invalid` with this reason. It still holds
    /// its hostname like any claim, so nothing else goes public in its place by accident.
    pub withheld: Option<String>,
}

/// The next table, and the rows that leave it (their Cloudflare side must go).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct RoutePlan {
    pub rows: Vec<RouteRow>,
    pub removed: Vec<RouteRow>,
}

/// Computes the next route table.
pub fn plan(now: i64, grace_ms: i64, claims: Vec<Claim>, existing: Vec<RouteRow>) -> RoutePlan {
    let mut stored: HashMap<(String, String, String), RouteRow> = existing
        .into_iter()
        .map(|row| ((row.spec.hostname.clone(), row.spec.path.clone(), row.owner.clone()), row))
        .collect();
    let mut rows = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for claim in claims {
        let id = (claim.spec.hostname.clone(), claim.spec.path.clone(), claim.owner.clone());
        if !seen.insert(id.clone()) {
            continue; // the same owner asked twice (a service reported by several agents)
        }
        let (status, reason) = match claim.withheld {
            Some(reason) => (Status::Invalid, reason),
            None => (Status::Active, String::new()),
        };
        let row = match stored.remove(&id) {
            Some(mut row) => {
                if row.spec != claim.spec {
                    row.updated_at = now;
                }
                row.spec = claim.spec;
                row.source = claim.source;
                row.status = status;
                if status == Status::Invalid {
                    row.reason = reason;
                }
                row.delete_at = None;
                row
            }
            None => RouteRow {
                owner: claim.owner,
                source: claim.source,
                spec: claim.spec,
                status,
                reason,
                delete_at: None,
                first_seen_at: now,
                updated_at: now,
                last_error: String::new(),
            },
        };
        rows.push(row);
    }

    let mut removed = Vec::new();
    for (_, mut row) in stored {
        match (row.source, row.status) {
            (Source::Manual, _) | (Source::Labels, Status::Conflict | Status::Invalid) => removed.push(row),
            (Source::Labels, Status::PendingDeletion) if row.delete_at.is_some_and(|at| at <= now) => removed.push(row),
            (Source::Labels, Status::PendingDeletion) => rows.push(row),
            (Source::Labels, Status::Active) => {
                row.status = Status::PendingDeletion;
                row.delete_at = Some(now + grace_ms);
                row.updated_at = now;
                rows.push(row);
            }
        }
    }

    resolve_conflicts(&mut rows);
    // A pending route that just lost its hostname (to a manual route or a live container) is not
    // routed any more and nobody claims it: it leaves now rather than with the next pass.
    let (kept, lost): (Vec<RouteRow>, Vec<RouteRow>) = rows.into_iter().partition(|row| {
        row.source == Source::Manual
            || row.status != Status::Conflict
            || seen.contains(&(row.spec.hostname.clone(), row.spec.path.clone(), row.owner.clone()))
    });
    let mut rows = kept;
    removed.extend(lost);
    rows.sort_by(|a, b| (&a.spec.hostname, &a.spec.path, &a.owner).cmp(&(&b.spec.hostname, &b.spec.path, &b.owner)));
    removed.sort_by(|a, b| (&a.spec.hostname, &a.spec.path, &a.owner).cmp(&(&b.spec.hostname, &b.spec.path, &b.owner)));
    RoutePlan { rows, removed }
}

/// Marks every claim but the winner of each hostname + path as a conflict.
fn resolve_conflicts(rows: &mut [RouteRow]) {
    let mut groups: BTreeMap<(String, String), Vec<usize>> = BTreeMap::new();
    for (index, row) in rows.iter().enumerate() {
        groups.entry((row.spec.hostname.clone(), row.spec.path.clone())).or_default().push(index);
    }
    for indexes in groups.values() {
        let Some(&winner) = indexes.iter().min_by_key(|&&i| rank(rows, indexes, i)) else {
            continue;
        };
        // A successor keeps the seniority it inherited, so the hostname stays its own (no flapping
        // once the pending route it took over has gone).
        rows[winner].first_seen_at = rank(rows, indexes, winner).2;
        // A withheld holder keeps the hostname without publishing it.
        let (held, routed_to, holder) = match rows[winner].status {
            Status::Invalid => (
                "is claimed by",
                "is now claimed by",
                format!("{}, whose route is withheld ({})", describe_owner(&rows[winner]), rows[winner].reason),
            ),
            _ => ("is already routed to", "is now routed to", describe_owner(&rows[winner])),
        };
        for &index in indexes {
            let row = &mut rows[index];
            if index == winner {
                if row.status == Status::Conflict {
                    row.status = Status::Active;
                }
                if row.status != Status::Invalid {
                    row.reason.clear();
                }
            } else if row.status != Status::PendingDeletion {
                row.status = Status::Conflict;
                row.reason = format!("{}{} {held} {holder}", row.spec.hostname, row.spec.path);
            } else {
                // A pending route that lost its claim (a manual route or a live
                // container took the hostname): it is not routed any more.
                row.status = Status::Conflict;
                row.delete_at = None;
                row.reason = format!("{}{} {routed_to} {holder}", row.spec.hostname, row.spec.path);
            }
        }
    }
}

/// Who wins a hostname + path among the rows at `indexes` (lowest first): manual routes, then by
/// seniority. A pending route that has a live successor *on its own tunnel* (the container
/// recreated, a task moved) steps aside at once, and the successor inherits its seniority; against
/// other agents' claims a pending route keeps its hostname until its grace period ends.
fn rank(rows: &[RouteRow], indexes: &[usize], index: usize) -> (bool, bool, i64, String) {
    let row = &rows[index];
    let same_tunnel = |other: &RouteRow| other.source == Source::Labels && other.spec.tunnel_key == row.spec.tunnel_key;
    let (stepping_aside, seniority) = if row.status == Status::PendingDeletion {
        let successor = indexes.iter().any(|&i| {
            let other = &rows[i];
            i != index && other.status != Status::PendingDeletion && same_tunnel(other)
        });
        (successor, row.first_seen_at)
    } else {
        let inherited = indexes
            .iter()
            .map(|&i| &rows[i])
            .filter(|other| other.status == Status::PendingDeletion && same_tunnel(other))
            .map(|other| other.first_seen_at)
            .min();
        (false, inherited.map_or(row.first_seen_at, |at| at.min(row.first_seen_at)))
    };
    (row.source != Source::Manual, stepping_aside, seniority, row.owner.clone())
}

fn describe_owner(row: &RouteRow) -> String {
    match row.source {
        Source::Manual => "a manual route".to_string(),
        Source::Labels => {
            let name = if row.spec.service_name.is_empty() { &row.spec.container_name } else { &row.spec.service_name };
            format!("{name} (agent {}), which claimed it first", row.spec.agent_id)
        }
    }
}

/// One hostname, one tunnel: its CNAME can point to only one. Manual routes first, then the
/// oldest claim; a routed row of the same hostname on another tunnel becomes a conflict. Pure.
pub fn one_tunnel_per_hostname(rows: &mut [RouteRow]) {
    let mut hostname_tunnel: BTreeMap<String, String> = BTreeMap::new();
    let mut order: Vec<usize> = (0..rows.len()).collect();
    order.sort_by_key(|&i| (rows[i].source != Source::Manual, rows[i].first_seen_at));
    for index in order {
        let row = &mut rows[index];
        if !row.status.is_routed() {
            continue;
        }
        match hostname_tunnel.get(&row.spec.hostname) {
            None => {
                hostname_tunnel.insert(row.spec.hostname.clone(), row.spec.tunnel_key.clone());
            }
            Some(key) if *key == row.spec.tunnel_key => {}
            Some(key) => {
                row.status = Status::Conflict;
                row.reason = format!("{} is already served by tunnel {key}", row.spec.hostname);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GRACE: i64 = 1_000;

    fn claim(owner: &str, hostname: &str, source: Source) -> Claim {
        Claim {
            owner: owner.into(),
            source,
            spec: RouteSpec {
                hostname: hostname.into(),
                path: String::new(),
                service: format!("http://{owner}:80"),
                origin_json: "{}".into(),
                zone_name: String::new(),
                agent_id: "agent-1".into(),
                tunnel_key: "agent:agent-1".into(),
                container_id: owner.into(),
                container_name: owner.into(),
                service_name: String::new(),
                access_json: String::new(),
            },
            withheld: None,
        }
    }

    fn withheld(owner: &str, hostname: &str) -> Claim {
        Claim { withheld: Some("protected, cannot be published".into()), ..claim(owner, hostname, Source::Labels) }
    }

    fn statuses(plan: &RoutePlan) -> Vec<(String, &'static str)> {
        plan.rows.iter().map(|r| (r.owner.clone(), r.status.as_str())).collect()
    }

    #[test]
    fn stored_text_parses_strictly() {
        for status in [Status::Active, Status::PendingDeletion, Status::Conflict, Status::Invalid] {
            assert_eq!(Status::parse(status.as_str()), Some(status));
        }
        for source in [Source::Labels, Source::Manual] {
            assert_eq!(Source::parse(source.as_str()), Some(source));
        }
        assert_eq!(Status::parse("frozen"), None, "unknown text is not taken as active");
        assert_eq!(Status::parse(""), None);
        assert_eq!(Source::parse("robots"), None, "unknown text is not taken as labels");
    }

    #[test]
    fn a_stopped_container_goes_pending_then_away_unless_it_returns() {
        let first = plan(0, GRACE, vec![claim("web", "a.example.com", Source::Labels)], vec![]);
        assert_eq!(statuses(&first), vec![("web".into(), "active")]);

        let stopped = plan(100, GRACE, vec![], first.rows.clone());
        assert_eq!(statuses(&stopped), vec![("web".into(), "pending_deletion")]);
        assert_eq!(stopped.rows[0].delete_at, Some(1_100));

        let back = plan(500, GRACE, vec![claim("web", "a.example.com", Source::Labels)], stopped.rows.clone());
        assert_eq!(statuses(&back), vec![("web".into(), "active")]);
        assert_eq!(back.rows[0].delete_at, None);
        assert_eq!(back.rows[0].first_seen_at, 0);

        let still_pending = plan(1_099, GRACE, vec![], stopped.rows.clone());
        assert_eq!(still_pending.rows.len(), 1);
        let expired = plan(1_100, GRACE, vec![], stopped.rows);
        assert!(expired.rows.is_empty());
        assert_eq!(expired.removed.len(), 1);
    }

    #[test]
    fn the_first_claim_keeps_a_hostname_and_manual_routes_win() {
        let a = plan(0, GRACE, vec![claim("a", "x.example.com", Source::Labels)], vec![]);
        let both = plan(
            10,
            GRACE,
            vec![claim("b", "x.example.com", Source::Labels), claim("a", "x.example.com", Source::Labels)],
            a.rows,
        );
        assert_eq!(statuses(&both), vec![("a".into(), "active"), ("b".into(), "conflict")]);
        assert!(both.rows[1].reason.contains("already routed to a"), "{}", both.rows[1].reason);

        // No flapping: the same claims again change nothing.
        let again = plan(
            20,
            GRACE,
            vec![claim("a", "x.example.com", Source::Labels), claim("b", "x.example.com", Source::Labels)],
            both.rows.clone(),
        );
        assert_eq!(again.rows, both.rows);

        let manual = plan(
            30,
            GRACE,
            vec![
                claim("a", "x.example.com", Source::Labels),
                claim("b", "x.example.com", Source::Labels),
                claim("manual", "x.example.com", Source::Manual),
            ],
            again.rows,
        );
        assert_eq!(
            statuses(&manual),
            vec![("a".into(), "conflict"), ("b".into(), "conflict"), ("manual".into(), "active")]
        );
    }

    #[test]
    fn a_live_claim_takes_over_a_pending_route_without_flapping() {
        // `a` stops (pending); `b`, a recreated container with another id, asks for the hostname.
        let a = plan(0, GRACE, vec![claim("a", "x.example.com", Source::Labels)], vec![]);
        let pending = plan(10, GRACE, vec![], a.rows);
        assert_eq!(statuses(&pending), vec![("a".into(), "pending_deletion")]);
        let taken = plan(20, GRACE, vec![claim("b", "x.example.com", Source::Labels)], pending.rows);
        assert_eq!(statuses(&taken), vec![("b".into(), "active")]);
        // The old claim leaves at once, without waiting for its deadline.
        assert_eq!(taken.removed.iter().map(|r| r.owner.as_str()).collect::<Vec<_>>(), vec!["a"]);
        let next = plan(30, GRACE, vec![claim("b", "x.example.com", Source::Labels)], taken.rows);
        assert_eq!(statuses(&next), vec![("b".into(), "active")]);
        assert!(next.removed.is_empty());

        // `a` coming back finds the hostname taken: it does not win it back.
        let back = plan(
            40,
            GRACE,
            vec![claim("a", "x.example.com", Source::Labels), claim("b", "x.example.com", Source::Labels)],
            next.rows,
        );
        assert_eq!(statuses(&back), vec![("a".into(), "conflict"), ("b".into(), "active")]);
    }

    fn on_agent(agent: &str, claim: Claim) -> Claim {
        let mut claim = claim;
        claim.spec.agent_id = agent.into();
        claim.spec.tunnel_key = format!("agent:{agent}");
        claim
    }

    #[test]
    fn another_agent_does_not_take_a_hostname_whose_owner_is_restarting() {
        let owner = || on_agent("agent-1", claim("web-1", "x.example.com", Source::Labels));
        let intruder = || on_agent("agent-2", claim("evil", "x.example.com", Source::Labels));
        let active = plan(0, GRACE, vec![owner()], vec![]);
        // The owner's container stops for a second; another agent's claim arrives meanwhile.
        let pending = plan(10, GRACE, vec![intruder()], active.rows);
        assert_eq!(statuses(&pending), vec![("evil".into(), "conflict"), ("web-1".into(), "pending_deletion")]);
        assert!(
            pending.rows[0].reason.contains("already routed to web-1 (agent agent-1)"),
            "{}",
            pending.rows[0].reason
        );
        assert!(pending.removed.is_empty());
        // The owner comes back under a new container id: it is the owner's again, not a conflict.
        let recreated = || on_agent("agent-1", claim("web-2", "x.example.com", Source::Labels));
        let back = plan(20, GRACE, vec![intruder(), recreated()], pending.rows);
        assert_eq!(statuses(&back), vec![("evil".into(), "conflict"), ("web-2".into(), "active")]);
        assert_eq!(back.removed.iter().map(|r| r.owner.as_str()).collect::<Vec<_>>(), vec!["web-1"]);
        let stable = plan(30, GRACE, vec![intruder(), recreated()], back.rows.clone());
        assert_eq!(stable.rows, back.rows, "no flapping");
        // Had the owner not come back, the other claim gets it when the grace period ends.
        let pending = plan(10, GRACE, vec![intruder()], plan(0, GRACE, vec![owner()], vec![]).rows);
        let expired = plan(10 + GRACE, GRACE, vec![intruder()], pending.rows);
        assert_eq!(statuses(&expired), vec![("evil".into(), "active")]);
    }

    #[test]
    fn when_the_holder_stops_the_live_runner_up_takes_over() {
        // `b` lost to `a` while both ran; `a` stops: `b` (live) takes over.
        let both = plan(
            0,
            GRACE,
            vec![claim("a", "x.example.com", Source::Labels), claim("b", "x.example.com", Source::Labels)],
            vec![],
        );
        let a_stopped = plan(10, GRACE, vec![claim("b", "x.example.com", Source::Labels)], both.rows);
        assert_eq!(statuses(&a_stopped), vec![("b".into(), "active")]);
        assert_eq!(a_stopped.removed.iter().map(|r| r.owner.as_str()).collect::<Vec<_>>(), vec!["a"]);
    }

    #[test]
    fn manual_routes_go_at_once_and_conflicts_leave_without_grace() {
        let both = plan(
            0,
            GRACE,
            vec![claim("m", "x.example.com", Source::Manual), claim("c", "x.example.com", Source::Labels)],
            vec![],
        );
        let gone = plan(5, GRACE, vec![], both.rows);
        assert!(gone.rows.is_empty());
        assert_eq!(gone.removed.len(), 2);
    }

    #[test]
    fn a_withheld_claim_is_invalid_and_never_routed() {
        let first = plan(0, GRACE, vec![withheld("web", "a.example.com")], vec![]);
        assert_eq!(statuses(&first), vec![("web".into(), "invalid")]);
        assert_eq!(first.rows[0].reason, "protected, cannot be published");
        assert!(!first.rows[0].status.is_routed());
        // It stays so pass after pass, and leaves at once when its container stops.
        let again = plan(10, GRACE, vec![withheld("web", "a.example.com")], first.rows.clone());
        assert_eq!(again.rows, first.rows);
        let stopped = plan(20, GRACE, vec![], again.rows);
        assert!(stopped.rows.is_empty());
        assert_eq!(stopped.removed.len(), 1);
    }

    #[test]
    fn a_published_route_that_gains_access_labels_is_withdrawn() {
        // The same owner (a Swarm service updated with --label-add) asks again, now protected.
        let public = plan(0, GRACE, vec![claim("svc", "a.example.com", Source::Labels)], vec![]);
        assert_eq!(statuses(&public), vec![("svc".into(), "active")]);
        let protected = plan(10, GRACE, vec![withheld("svc", "a.example.com")], public.rows);
        assert_eq!(statuses(&protected), vec![("svc".into(), "invalid")]);
        // A container recreated with the labels (a new owner) takes the hostname over from the
        // pending public one, which leaves at once: nothing keeps it published.
        let public = plan(0, GRACE, vec![claim("old", "b.example.com", Source::Labels)], vec![]);
        let recreated = plan(10, GRACE, vec![withheld("new", "b.example.com")], public.rows);
        assert_eq!(statuses(&recreated), vec![("new".into(), "invalid")]);
        assert_eq!(recreated.removed.iter().map(|r| r.owner.as_str()).collect::<Vec<_>>(), vec!["old"]);
        // Whoever comes later learns why the hostname is not theirs.
        let later = plan(
            20,
            GRACE,
            vec![withheld("new", "b.example.com"), claim("other", "b.example.com", Source::Labels)],
            recreated.rows,
        );
        assert_eq!(statuses(&later), vec![("new".into(), "invalid"), ("other".into(), "conflict")]);
        assert!(later.rows[1].reason.contains("is claimed by new"), "{}", later.rows[1].reason);
        assert!(later.rows[1].reason.contains("withheld"), "{}", later.rows[1].reason);
    }
}

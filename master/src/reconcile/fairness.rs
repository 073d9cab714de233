//! One agent's backlog must not delay another's change by more than a pass.
//! Cloudflare's request budget is shared: written in hostname order, 300 new
//! routes of one agent would go before another agent's one new record. So the
//! DNS step takes hostnames round-robin across agents (and the operator's
//! manual routes): every agent's first change comes first; and a pass writes
//! at most [`WRITES_PER_HOLDER`] records per agent, the rest going in the
//! passes right after — so a pass stays short, and a change that arrives
//! during one waits for that short pass only. Pure.

/// DNS writes per agent (or for manual routes) in one pass.
pub const WRITES_PER_HOLDER: u32 = 20;

use super::route_table::{RouteRow, Source};
use std::collections::BTreeMap;

/// `wanted` (hostname → target), ordered round-robin by the agent whose routed row holds each
/// hostname ("agent:<id>", or "manual"), as (holder, hostname, target); within one agent,
/// hostname order.
pub fn round_robin(wanted: &BTreeMap<String, String>, rows: &[RouteRow]) -> Vec<(String, String, String)> {
    let mut holder: BTreeMap<&str, String> = BTreeMap::new();
    for row in rows.iter().filter(|r| r.status.is_routed()) {
        let who = match row.source {
            Source::Manual => "manual".to_string(),
            Source::Labels => format!("agent:{}", row.spec.agent_id),
        };
        holder.entry(row.spec.hostname.as_str()).or_insert(who);
    }
    let mut queues: BTreeMap<String, Vec<(String, String, String)>> = BTreeMap::new();
    for (hostname, target) in wanted {
        let who = holder.get(hostname.as_str()).cloned().unwrap_or_default();
        queues.entry(who.clone()).or_default().push((who, hostname.clone(), target.clone()));
    }
    let mut queues: Vec<std::vec::IntoIter<(String, String, String)>> =
        queues.into_values().map(Vec::into_iter).collect();
    let mut ordered = Vec::with_capacity(wanted.len());
    loop {
        let before = ordered.len();
        for queue in &mut queues {
            ordered.extend(queue.next());
        }
        if ordered.len() == before {
            return ordered;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::route::test_spec;
    use crate::reconcile::route_table::Status;

    fn row(agent: &str, hostname: &str) -> RouteRow {
        RouteRow {
            owner: format!("container:{agent}:{hostname}"),
            source: Source::Labels,
            spec: test_spec(agent, hostname, hostname),
            status: Status::Active,
            reason: String::new(),
            delete_at: None,
            first_seen_at: 0,
            updated_at: 0,
            last_error: String::new(),
        }
    }

    #[test]
    fn a_flooding_agent_does_not_go_first_with_everything() {
        let mut rows: Vec<RouteRow> = (0..300).map(|n| row("flood", &format!("a{n:03}.example.com"))).collect();
        rows.push(row("quiet", "z.example.com"));
        let wanted: BTreeMap<String, String> =
            rows.iter().map(|r| (r.spec.hostname.clone(), "t.cfargotunnel.com".to_string())).collect();
        let ordered = round_robin(&wanted, &rows);
        assert_eq!(ordered.len(), 301);
        let position = ordered.iter().position(|(_, h, _)| h == "z.example.com");
        assert_eq!(position, Some(1), "the quiet agent's record is second, not 301st");
        assert_eq!((ordered[0].0.as_str(), ordered[0].1.as_str()), ("agent:flood", "a000.example.com"));
        assert_eq!((ordered[1].0.as_str(), ordered[2].1.as_str()), ("agent:quiet", "a001.example.com"));
    }
}

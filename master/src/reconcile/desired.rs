//! The desired side of a pass: what the store holds (agents, reported containers, manual
//! routes, the route table, the tunnels) read once ([`Observed::read`]), and the next route
//! table decided from it ([`decide`], pure): claims from containers screened by the agents'
//! hostname policies, manual claims, corrupt rows left alone, then the grace-period planner.

use super::policy::{self, Refusal};
use super::{claims, route_table};
use crate::model::{AgentRecord, ContainerRow, ManualRoute, RouteRow, Status, TunnelRow};
use crate::store::{CorruptRoute, Store, StoreError};
use std::collections::{BTreeSet, HashMap};

/// What the store holds at the start of a pass.
#[derive(Debug, Default)]
pub struct Observed {
    pub agents: HashMap<String, AgentRecord>,
    pub containers: Vec<ContainerRow>,
    pub manual: Vec<ManualRoute>,
    /// The stored route table, readable rows.
    pub routes: Vec<RouteRow>,
    /// Rows this master cannot read: left alone.
    pub corrupt: Vec<CorruptRoute>,
    /// Stored tunnels by key.
    pub tunnels: HashMap<String, TunnelRow>,
}

impl Observed {
    pub async fn read(store: &Store) -> Result<Observed, StoreError> {
        let agents = load_agents(store).await?;
        let containers = store.list_containers(None).await?;
        let manual = store.list_manual_routes().await?;
        let table = store.load_route_table().await?;
        let tunnels = store.list_tunnels().await?.into_iter().map(|t| (t.tunnel_key.clone(), t)).collect();
        Ok(Observed { agents, containers, manual, routes: table.rows, corrupt: table.corrupt, tunnels })
    }
}

/// The next route table and the claims the policies refused.
#[derive(Debug)]
pub struct Decided {
    pub rows: Vec<RouteRow>,
    /// Rows that leave the table (grace period over, owner gone).
    pub removed: Vec<RouteRow>,
    pub refusals: Vec<Refusal>,
}

/// Decides the route table at `now`. Pure.
pub fn decide(observed: &Observed, now: i64, grace_ms: i64, default_quota: u32) -> Decided {
    let (mut claims, refusals) = policy::screen(
        claims::from_containers(&observed.containers, &observed.agents),
        &observed.agents,
        &policy::established(&observed.routes),
        default_quota,
    );
    claims.extend(claims::from_manual(&observed.manual, &observed.agents));
    // A row this master cannot read is left alone: nothing claims its hostname and path.
    let untouchable: BTreeSet<(&str, &str)> =
        observed.corrupt.iter().map(|c| (c.hostname.as_str(), c.path.as_str())).collect();
    claims.retain(|c| !untouchable.contains(&(c.spec.hostname.as_str(), c.spec.path.as_str())));
    let plan = route_table::plan(now, grace_ms, claims, observed.routes.clone());
    Decided { rows: plan.rows, removed: plan.removed, refusals }
}

/// The label routes the agents' hostname policies refuse now (for ListDiagnostics; the
/// reconciler computes the same each pass), and the apex routes the last pass refused (zones are
/// known there: they are stored `invalid` with the reason). `containers` are those the caller
/// lists (one agent's, or all): quotas are per agent, so one agent's containers suffice for it.
/// `existing` is the stored route table.
pub async fn policy_refusals(
    store: &Store,
    containers: &[ContainerRow],
    existing: &[RouteRow],
    default_quota: u32,
) -> Result<Vec<Refusal>, StoreError> {
    let agents = load_agents(store).await?;
    let (_, mut refusals) = policy::screen(
        claims::from_containers(containers, &agents),
        &agents,
        &policy::established(existing),
        default_quota,
    );
    let apex = existing.iter().filter(|row| row.status == Status::Invalid && row.reason.starts_with(policy::REFUSED));
    refusals.extend(apex.map(|row| Refusal {
        agent_id: row.spec.agent_id.clone(),
        owner: row.owner.clone(),
        container_id: row.spec.container_id.clone(),
        container_name: row.spec.container_name.clone(),
        hostname: row.spec.hostname.clone(),
        path: row.spec.path.clone(),
        reason: row.reason.clone(),
    }));
    Ok(refusals)
}

async fn load_agents(store: &Store) -> Result<HashMap<String, AgentRecord>, StoreError> {
    let mut agents = HashMap::new();
    let mut after = String::new();
    loop {
        let page = store.list_agents(&after, 1000).await?;
        let Some(last) = page.last() else { break };
        after = last.id.clone();
        agents.extend(page.into_iter().map(|agent| (agent.id.clone(), agent)));
    }
    Ok(agents)
}

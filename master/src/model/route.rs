//! The master's model of a route: what it is ([`RouteSpec`]), where it comes
//! from ([`Source`]), its state ([`Status`]), and the stored row ([`RouteRow`]).
//! Plain types: the store persists them, the reconciler plans with them, the
//! services show them; none of those layers owns them.

/// Where a claim comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    Labels,
    Manual,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Labels => "labels",
            Source::Manual => "manual",
        }
    }

    /// `None` for text this master does not know (a corrupt row, or a newer master's).
    pub fn parse(text: &str) -> Option<Source> {
        match text {
            "labels" => Some(Source::Labels),
            "manual" => Some(Source::Manual),
            _ => None,
        }
    }
}

/// A route's claim state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Active,
    PendingDeletion,
    Conflict,
    /// Cannot be routed as asked (no zone for the hostname, say): see reason.
    Invalid,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Active => "active",
            Status::PendingDeletion => "pending_deletion",
            Status::Conflict => "conflict",
            Status::Invalid => "invalid",
        }
    }

    /// `None` for text this master does not know (a corrupt row, or a newer master's).
    pub fn parse(text: &str) -> Option<Status> {
        match text {
            "active" => Some(Status::Active),
            "pending_deletion" => Some(Status::PendingDeletion),
            "conflict" => Some(Status::Conflict),
            "invalid" => Some(Status::Invalid),
            _ => None,
        }
    }

    /// Whether the route is carried by its tunnel (ingress rule and DNS record).
    pub fn is_routed(self) -> bool {
        matches!(self, Status::Active | Status::PendingDeletion)
    }
}

/// What a route is: everything but its claim state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteSpec {
    pub hostname: String,
    pub path: String,
    pub service: String,
    /// cloudflared originRequest options, as Cloudflare's JSON (may be "{}").
    pub origin_json: String,
    /// Zone named by a label, if any.
    pub zone_name: String,
    /// The agent that reports (or, for manual routes, serves) it.
    pub agent_id: String,
    /// The tunnel that carries it: "agent:<id>" or "group:<name>".
    pub tunnel_key: String,
    pub container_id: String,
    pub container_name: String,
    pub service_name: String,
    /// The Cloudflare Access labels the route is published with, as JSON (`{"policy":
    /// {"label": …, "value": …}, …}`; "" when it asks for no protection). See `reconcile::access_apps`.
    pub access_json: String,
}

/// A stored route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteRow {
    pub owner: String,
    pub source: Source,
    pub spec: RouteSpec,
    pub status: Status,
    pub reason: String,
    /// Unix ms; set while pending deletion.
    pub delete_at: Option<i64>,
    pub first_seen_at: i64,
    pub updated_at: i64,
    /// The last Cloudflare error for this route ("" when fine).
    pub last_error: String,
}

impl RouteRow {
    pub fn key(&self) -> (&str, &str) {
        (&self.spec.hostname, &self.spec.path)
    }
}

/// A label route of `agent`'s `container` for `hostname` (tests of the planners).
#[cfg(test)]
pub(crate) fn test_spec(agent: &str, container: &str, hostname: &str) -> RouteSpec {
    RouteSpec {
        hostname: hostname.into(),
        path: String::new(),
        service: "http://web:80".into(),
        origin_json: "{}".into(),
        zone_name: String::new(),
        agent_id: agent.into(),
        tunnel_key: format!("agent:{agent}"),
        container_id: container.into(),
        container_name: container.into(),
        service_name: String::new(),
        access_json: String::new(),
    }
}

/// An active label route of agent `a1`'s container `owner` for `hostname` (tests of the planners).
#[cfg(test)]
pub(crate) fn test_row(hostname: &str, owner: &str) -> RouteRow {
    RouteRow {
        owner: owner.into(),
        source: Source::Labels,
        spec: test_spec("a1", owner, hostname),
        status: Status::Active,
        reason: String::new(),
        delete_at: None,
        first_seen_at: 0,
        updated_at: 0,
        last_error: String::new(),
    }
}

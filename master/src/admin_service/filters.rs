//! What ListRoutes' filters admit: an agent, a status and a source (UNSPECIFIED: any), a
//! hostname (exactly, any case). Each filter is checked once, naming the field it came from.

use dockflare::v1;
use tonic::Status;

/// ListRoutes' filters, checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteFilter {
    /// "" for every agent.
    pub agent_id: String,
    status: Option<v1::RouteStatus>,
    source: Option<v1::RouteSource>,
    hostname: Option<String>,
}

impl RouteFilter {
    /// The filters of `request`, or INVALID_ARGUMENT naming the field.
    pub fn of(request: &v1::ListRoutesRequest) -> Result<RouteFilter, Status> {
        let status = match v1::RouteStatus::try_from(request.status) {
            Ok(v1::RouteStatus::Unspecified) => None,
            Ok(status) => Some(status),
            Err(_) => return Err(unknown("status", request.status)),
        };
        let source = match v1::RouteSource::try_from(request.source) {
            Ok(v1::RouteSource::Unspecified) => None,
            Ok(source) => Some(source),
            Err(_) => return Err(unknown("source", request.source)),
        };
        let hostname = match request.hostname.trim() {
            "" => None,
            name => Some(
                dockflare_common::labels::values::hostname(name)
                    .map_err(|reason| Status::invalid_argument(format!("hostname: {reason}")))?,
            ),
        };
        Ok(RouteFilter { agent_id: request.agent_id.trim().to_string(), status, source, hostname })
    }

    /// Whether `route` (as ListRoutes shows it; `agent_id` of the row it comes from) passes.
    pub fn admits(&self, route: &v1::Route) -> bool {
        (self.agent_id.is_empty() || route.agent_id == self.agent_id)
            && self.status.is_none_or(|status| route.status == status as i32)
            && self.source.is_none_or(|source| route.source == source as i32)
            && self.hostname.as_ref().is_none_or(|hostname| &route.hostname == hostname)
    }
}

fn unknown(field: &str, value: i32) -> Status {
    Status::invalid_argument(format!("{field}: unknown value {value}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(hostname: &str, agent: &str, status: v1::RouteStatus, source: v1::RouteSource) -> v1::Route {
        v1::Route {
            hostname: hostname.into(),
            agent_id: agent.into(),
            status: status as i32,
            source: source as i32,
            ..Default::default()
        }
    }

    #[test]
    fn filters_admit_what_they_name_and_unset_ones_admit_everything() {
        let routes = [
            route("a.example.com", "a1", v1::RouteStatus::Active, v1::RouteSource::Labels),
            route("b.example.com", "a2", v1::RouteStatus::Conflict, v1::RouteSource::Labels),
            route("c.example.com", "", v1::RouteStatus::Active, v1::RouteSource::Manual),
            // A row this master cannot read: no status, no source.
            route("d.example.com", "", v1::RouteStatus::Unspecified, v1::RouteSource::Unspecified),
        ];
        let admitted = |request: v1::ListRoutesRequest| {
            let filter = RouteFilter::of(&request).map_err(|s| s.message().to_string());
            filter.map(|f| routes.iter().filter(|r| f.admits(r)).map(|r| r.hostname.clone()).collect::<Vec<_>>())
        };
        let all = ["a.example.com", "b.example.com", "c.example.com", "d.example.com"].map(String::from);
        assert_eq!(admitted(v1::ListRoutesRequest::default()), Ok(all.to_vec()));
        let active = v1::ListRoutesRequest { status: v1::RouteStatus::Active as i32, ..Default::default() };
        assert_eq!(admitted(active), Ok(vec!["a.example.com".into(), "c.example.com".into()]));
        let manual = v1::ListRoutesRequest { source: v1::RouteSource::Manual as i32, ..Default::default() };
        assert_eq!(admitted(manual), Ok(vec!["c.example.com".into()]));
        let named = v1::ListRoutesRequest { hostname: " B.Example.com. ".into(), ..Default::default() };
        assert_eq!(admitted(named), Ok(vec!["b.example.com".into()]));
        let agent = v1::ListRoutesRequest { agent_id: "a2".into(), ..Default::default() };
        assert_eq!(admitted(agent), Ok(vec!["b.example.com".into()]));
        let bad = v1::ListRoutesRequest { status: 42, ..Default::default() };
        assert_eq!(admitted(bad), Err("status: unknown value 42".into()));
        let bad = v1::ListRoutesRequest { source: 7, ..Default::default() };
        assert_eq!(admitted(bad), Err("source: unknown value 7".into()));
        let bad = v1::ListRoutesRequest { hostname: "https://x.example.com".into(), ..Default::default() };
        assert!(admitted(bad).err().unwrap_or_default().starts_with("hostname: "));
    }
}

//! Protobuf values in words for tables: enum values ("pending deletion", not
//! `ROUTE_STATUS_PENDING_DELETION`) with the tone of each status, times as ages ("3m ago",
//! "in 7h59m") or RFC 3339, spans ("7h59m").

use super::style::Tone;
use super::table::Cell;
use dockflare::v1;
use std::time::{Duration, SystemTime};

/// `AGENT_STATUS_ONLINE` with prefix `AGENT_STATUS_` → "online".
pub fn enum_word(name: &str, prefix: &str) -> String {
    name.strip_prefix(prefix).unwrap_or(name).to_lowercase().replace('_', " ")
}

/// An enum field's value in words; an unknown number as itself.
macro_rules! word_fn {
    ($name:ident, $enum:ty, $prefix:literal) => {
        pub fn $name(value: i32) -> String {
            match <$enum>::try_from(value) {
                Ok(known) => enum_word(known.as_str_name(), $prefix),
                Err(_) => format!("unknown ({value})"),
            }
        }
    };
}

word_fn!(agent_status_word, v1::AgentStatus, "AGENT_STATUS_");
word_fn!(route_status_word, v1::RouteStatus, "ROUTE_STATUS_");
word_fn!(route_source_word, v1::RouteSource, "ROUTE_SOURCE_");
word_fn!(command_state_word, v1::CommandState, "COMMAND_STATE_");
word_fn!(docker_mode_word, v1::DockerMode, "DOCKER_MODE_");
word_fn!(role_word, v1::AdminRole, "ADMIN_ROLE_");
word_fn!(access_policy_source, v1::AccessPolicySource, "ACCESS_POLICY_SOURCE_");
word_fn!(change_type_word, v1::ChangeType, "CHANGE_TYPE_");
word_fn!(resource_kind_word, v1::ResourceKind, "RESOURCE_KIND_");
word_fn!(connector_state_word, v1::ConnectorState, "CONNECTOR_STATE_");

pub fn agent_status(value: i32) -> Cell {
    use v1::AgentStatus::*;
    let tone = match v1::AgentStatus::try_from(value) {
        Ok(Online) => Tone::Good,
        Ok(Offline) => Tone::Warn,
        Ok(Revoked) => Tone::Bad,
        _ => Tone::Plain,
    };
    Cell::toned(agent_status_word(value), tone)
}

/// A route's status; pending deletion says when.
pub fn route_status(route: &v1::Route, now: SystemTime) -> Cell {
    use v1::RouteStatus::*;
    let status = v1::RouteStatus::try_from(route.status);
    let tone = match status {
        Ok(Active) => Tone::Good,
        Ok(PendingDeletion) => Tone::Warn,
        Ok(Conflict | Invalid | Error) => Tone::Bad,
        _ => Tone::Plain,
    };
    let mut text = route_status_word(route.status);
    if let (Ok(PendingDeletion), Some(at)) = (status, &route.delete_at) {
        text = format!("{text} ({})", age(at, now));
    }
    Cell::toned(text, tone)
}

pub fn command_state(value: i32) -> Cell {
    use v1::CommandState::*;
    let tone = match v1::CommandState::try_from(value) {
        Ok(Acked) => Tone::Good,
        Ok(Queued | Delivered) => Tone::Warn,
        Ok(Failed) => Tone::Bad,
        _ => Tone::Plain,
    };
    Cell::toned(command_state_word(value), tone)
}

/// A join token's state: revoked, expired, used up or active.
pub fn token_state(token: &v1::JoinToken, now: SystemTime) -> Cell {
    if token.revoked {
        return Cell::toned("revoked", Tone::Bad);
    }
    if token.expires_at.as_ref().and_then(system_time).is_some_and(|at| at <= now) {
        return Cell::toned("expired", Tone::Warn);
    }
    if token.max_uses > 0 && token.uses >= token.max_uses {
        return Cell::toned("used up", Tone::Warn);
    }
    Cell::toned("active", Tone::Good)
}

/// An admin identity's state: revoked, expired or active.
pub fn identity_state(identity: &v1::AdminIdentity, now: SystemTime) -> Cell {
    if identity.revoked {
        return Cell::toned("revoked", Tone::Bad);
    }
    if identity.expires_at.as_ref().and_then(system_time).is_some_and(|at| at <= now) {
        return Cell::toned("expired", Tone::Warn);
    }
    Cell::toned("active", Tone::Good)
}

pub fn system_time(timestamp: &prost_types::Timestamp) -> Option<SystemTime> {
    SystemTime::try_from(*timestamp).ok()
}

/// "3m ago", "in 7h59m", "now".
pub fn age(timestamp: &prost_types::Timestamp, now: SystemTime) -> String {
    let Some(at) = system_time(timestamp) else { return "?".into() };
    match now.duration_since(at) {
        Ok(past) if past >= Duration::from_secs(1) => format!("{} ago", span(past)),
        Ok(_) => "now".into(),
        Err(future) if future.duration() >= Duration::from_secs(1) => format!("in {}", span(future.duration())),
        Err(_) => "now".into(),
    }
}

/// An optional time as an age, "" when unset.
pub fn age_of(timestamp: Option<&prost_types::Timestamp>, now: SystemTime) -> String {
    timestamp.map(|t| age(t, now)).unwrap_or_default()
}

/// RFC 3339 to the second, "" when unset.
pub fn rfc3339(timestamp: Option<&prost_types::Timestamp>) -> String {
    timestamp.and_then(system_time).map(|t| humantime::format_rfc3339_seconds(t).to_string()).unwrap_or_default()
}

/// The two largest units of a duration: "45s", "3m12s", "7h59m", "12d3h".
pub fn span(duration: Duration) -> String {
    let seconds = duration.as_secs();
    let (days, hours, minutes, secs) = (seconds / 86_400, seconds / 3_600 % 24, seconds / 60 % 60, seconds % 60);
    match (days, hours, minutes) {
        (0, 0, 0) => format!("{secs}s"),
        (0, 0, _) if secs == 0 => format!("{minutes}m"),
        (0, 0, _) => format!("{minutes}m{secs}s"),
        (0, _, 0) => format!("{hours}h"),
        (0, _, _) => format!("{hours}h{minutes}m"),
        (_, 0, _) => format!("{days}d"),
        _ => format!("{days}d{hours}h"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> prost_types::Timestamp {
        prost_types::Timestamp { seconds, nanos: 0 }
    }

    #[test]
    fn enum_values_in_words() {
        assert_eq!(route_status_word(v1::RouteStatus::PendingDeletion as i32), "pending deletion");
        assert_eq!(agent_status_word(v1::AgentStatus::Online as i32), "online");
        assert_eq!(role_word(v1::AdminRole::Operator as i32), "operator");
        assert_eq!(change_type_word(v1::ChangeType::Synced as i32), "synced");
        assert_eq!(agent_status_word(99), "unknown (99)");
    }

    #[test]
    fn statuses_carry_their_tone() {
        assert_eq!(agent_status(v1::AgentStatus::Revoked as i32).tone, Tone::Bad);
        assert_eq!(command_state(v1::CommandState::Acked as i32).tone, Tone::Good);
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let route = v1::Route {
            status: v1::RouteStatus::PendingDeletion as i32,
            delete_at: Some(at(1_000_000 + 7 * 3600 + 59 * 60)),
            ..Default::default()
        };
        assert_eq!(route_status(&route, now), Cell::toned("pending deletion (in 7h59m)", Tone::Warn));
        let token = v1::JoinToken { max_uses: 1, uses: 1, expires_at: Some(at(2_000_000)), ..Default::default() };
        assert_eq!(token_state(&token, now).text, "used up");
        let expired = v1::JoinToken { expires_at: Some(at(10)), ..Default::default() };
        assert_eq!(token_state(&expired, now).text, "expired");
    }

    #[test]
    fn ages_and_spans() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(100_000);
        assert_eq!(age(&at(100_000 - 192), now), "3m12s ago");
        assert_eq!(age(&at(100_000), now), "now");
        assert_eq!(age(&at(100_000 + 3 * 86_400 + 7200), now), "in 3d2h");
        assert_eq!(span(Duration::from_secs(45)), "45s");
        assert_eq!(span(Duration::from_secs(120)), "2m");
        assert_eq!(span(Duration::from_secs(3600)), "1h");
        assert_eq!(span(Duration::from_secs(86_400 * 2)), "2d");
        assert_eq!(rfc3339(Some(&at(0))), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(None), "");
    }
}

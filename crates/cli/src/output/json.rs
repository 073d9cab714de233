//! The protobuf canonical JSON mapping of a response, as grpcurl prints it (proto field names,
//! enum value names, 64-bit integers as strings, RFC 3339 timestamps) — with default values
//! included, so scripts always find every scalar field. It goes through `prost-reflect` over the
//! descriptor set the `dockflare` crate embeds, not hand-written serializers.

use anyhow::{anyhow, Context, Result};
use dockflare::v1;
use prost_reflect::{DescriptorPool, DynamicMessage, SerializeOptions};
use std::sync::OnceLock;

/// A generated message and its full protobuf name.
pub trait Proto: prost::Message + Sized {
    const NAME: &'static str;
}

macro_rules! proto_names {
    ($($message:ident),* $(,)?) => {
        $(impl Proto for v1::$message {
            const NAME: &'static str = concat!("dockflare.v1.", stringify!($message));
        })*
        /// Every message named above (for the test that checks each name).
        #[cfg(test)]
        const NAMED: &[&str] = &[$(concat!("dockflare.v1.", stringify!($message))),*];
    };
}

proto_names!(
    ListAgentsResponse,
    GetAgentResponse,
    RevokeAgentResponse,
    RemoveAgentResponse,
    SetAgentTunnelGroupResponse,
    SetAgentPolicyResponse,
    ListRoutesResponse,
    AddManualRouteResponse,
    DeleteManualRouteResponse,
    ListTunnelsResponse,
    ListContainersResponse,
    ListDiagnosticsResponse,
    ListJoinTokensResponse,
    CreateJoinTokenResponse,
    RevokeJoinTokenResponse,
    ListCommandsResponse,
    SendCommandResponse,
    ListEventsResponse,
    ListAdminIdentitiesResponse,
    IssueAdminIdentityResponse,
    RevokeAdminIdentityResponse,
    ReconcileResponse,
    PlanChangesResponse,
    WatchChangesResponse,
    WhoAmIResponse,
    ListAccessPoliciesResponse,
    GetAccessPolicyResponse,
    PutAccessPolicyResponse,
    DeleteAccessPolicyResponse,
);

fn pool() -> Result<&'static DescriptorPool> {
    static POOL: OnceLock<Result<DescriptorPool, String>> = OnceLock::new();
    POOL.get_or_init(|| DescriptorPool::decode(dockflare::FILE_DESCRIPTOR_SET).map_err(|error| error.to_string()))
        .as_ref()
        .map_err(|error| anyhow!("the embedded descriptor set does not decode: {error}"))
}

/// `message` as a JSON value.
pub fn to_value<M: Proto>(message: &M) -> Result<serde_json::Value> {
    let descriptor = pool()?
        .get_message_by_name(M::NAME)
        .with_context(|| format!("no message {} in the descriptor set", M::NAME))?;
    let dynamic = DynamicMessage::decode(descriptor, message.encode_to_vec().as_slice())
        .with_context(|| format!("re-reading a {}", M::NAME))?;
    let options = SerializeOptions::new().use_proto_field_name(true).skip_default_fields(false);
    Ok(dynamic.serialize_with_options(serde_json::value::Serializer, &options)?)
}

/// `message` as JSON text: indented, or on one line.
pub fn render<M: Proto>(message: &M, pretty: bool) -> Result<String> {
    let value = to_value(message)?;
    Ok(if pretty { serde_json::to_string_pretty(&value)? } else { serde_json::to_string(&value)? })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_named_message_is_in_the_descriptor_set() {
        let pool = pool().unwrap();
        for name in NAMED {
            assert!(pool.get_message_by_name(name).is_some(), "{name}");
        }
    }

    #[test]
    fn the_mapping_is_grpcurls() {
        let response = v1::ListRoutesResponse {
            routes: vec![v1::Route {
                hostname: "app.example.test".into(),
                status: v1::RouteStatus::PendingDeletion as i32,
                source: v1::RouteSource::Manual as i32,
                revision: 42,
                delete_at: Some(prost_types::Timestamp { seconds: 1_800_000_000, nanos: 0 }),
                ..Default::default()
            }],
            ..Default::default()
        };
        let value = to_value(&response).unwrap();
        let route = &value["routes"][0];
        assert_eq!(route["hostname"], "app.example.test");
        assert_eq!(route["status"], "ROUTE_STATUS_PENDING_DELETION");
        assert_eq!(route["source"], "ROUTE_SOURCE_MANUAL");
        assert_eq!(route["revision"], "42", "64-bit integers are strings");
        assert_eq!(route["delete_at"], "2027-01-15T08:00:00Z");
        assert_eq!(route["agent_id"], "", "defaults are included");
        assert!(route.get("origin_request").is_none(), "unset messages are left out");
        let line = render(&response, false).unwrap();
        assert!(!line.contains('\n'), "{line}");
    }

    #[test]
    fn oneofs_carry_their_field_name() {
        let change = v1::WatchChangesResponse {
            r#type: v1::ChangeType::Upsert as i32,
            kind: v1::ResourceKind::Agent as i32,
            key: "a1".into(),
            object: Some(v1::watch_changes_response::Object::Agent(v1::Agent {
                id: "a1".into(),
                ..Default::default()
            })),
            ..Default::default()
        };
        let value = to_value(&change).unwrap();
        assert_eq!(value["type"], "CHANGE_TYPE_UPSERT");
        assert_eq!(value["agent"]["id"], "a1");
    }
}

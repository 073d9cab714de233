//! Plain types the layers share — routes, agents, containers, tunnels, operator-defined Access
//! policies (the clock is [`crate::clock`]): no I/O, no gRPC, no SQL. The store persists them, the reconciler plans with
//! them, the services show them; none of those layers owns them.

pub mod access_policy;
pub mod agent;
pub mod container;
pub mod route;
pub mod tunnel;

pub use access_policy::{OperatorPolicy, PolicySource, StoredAccessPolicy};
pub use agent::{AgentRecord, STATUS_OFFLINE, STATUS_ONLINE, STATUS_REVOKED};
pub use container::ContainerRow;
pub use route::{RouteRow, RouteSpec, Source, Status};
pub use tunnel::{ManualRoute, TunnelRow};

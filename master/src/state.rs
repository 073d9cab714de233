//! What every request handler shares: the store, live sessions, the event
//! writer, the CA, the authenticator and the tunables.

use crate::auth::Authenticator;
use crate::commands::CommandQueue;
use crate::event_writer::EventWriter;
use crate::fanout::Fanout;
use crate::sessions::Sessions;
use crate::store::Store;
use dockflare_common::pki::CertificateAuthority;
use std::sync::Arc;
use std::time::Duration;

/// Tunables of the agent protocol.
#[derive(Debug, Clone)]
pub struct ProtocolSettings {
    /// How often agents must heartbeat.
    pub heartbeat_interval: Duration,
    /// After how long without an event an agent counts as offline.
    pub heartbeat_timeout: Duration,
    /// Lifetime of agent certificates.
    pub agent_certificate_lifetime: Duration,
    /// Longest the master waits for a slow agent to take a command before it
    /// ends that agent's command stream (the agent reconnects and replays).
    pub command_send_timeout: Duration,
    /// How long stored agent events are kept.
    pub event_retention: Duration,
}

impl Default for ProtocolSettings {
    fn default() -> Self {
        ProtocolSettings {
            heartbeat_interval: Duration::from_secs(10),
            heartbeat_timeout: Duration::from_secs(35),
            agent_certificate_lifetime: Duration::from_secs(7 * 24 * 3600),
            command_send_timeout: Duration::from_secs(30),
            event_retention: Duration::from_secs(30 * 24 * 3600),
        }
    }
}

/// Shared state of the master's gRPC services.
pub struct MasterState {
    pub store: Store,
    pub sessions: Sessions,
    /// The sealed command log (queue and read back).
    pub commands: CommandQueue,
    pub events: EventWriter,
    pub ca: CertificateAuthority,
    pub auth: Authenticator,
    /// Admin identities: recorded, revoked, last used ([`crate::admin_identities`]).
    pub admins: crate::admin_identities::AdminRegistry,
    /// The change feed WatchChanges serves ([`crate::watch`]).
    pub watch: crate::watch::WatchHub,
    pub settings: ProtocolSettings,
    /// Reconcile passes, command wake-ups and revocations, here and on the other masters
    /// (the reconciler: real Cloudflare, or the built-in emulator offline).
    pub fanout: Fanout,
    /// Routes per agent when its hostname policy says 0 (`--max-routes-per-agent`).
    pub route_quota: u32,
    /// What each agent's event stream may cost ([`crate::agent_budget`]).
    pub agent_budget: crate::agent_budget::AgentBudget,
    /// Failed enrollments per source (Enroll refuses a source that keeps failing).
    pub enroll_guard: crate::enroll_guard::EnrollGuard,
    /// Registrations in progress; over `--max-concurrent-registrations` Register is refused
    /// with a retry hint ([`crate::register_gate`]).
    pub registrations: crate::register_gate::RegisterGate,
    /// The single writer of registrations (group commit, [`crate::registration_writer`]).
    pub registration_writer: crate::registration_writer::RegistrationWriter,
}

pub type SharedState = Arc<MasterState>;

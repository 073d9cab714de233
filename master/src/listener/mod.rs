//! The master's listening socket: which connections it takes and how long
//! they may take to prove themselves, before tonic sees them.
//!
//! Each accepted connection is first admitted ([`admission`]: a total and a
//! per-source limit; a refused one is closed at once and counted in an
//! aggregate log line). Then:
//! 1. the ClientHello must arrive within `hello_timeout`. Waiting for it
//!    costs a task and a descriptor, no handshake slot, so peers that never
//!    speak cannot hold up anyone else's handshake;
//! 2. the rest of the handshake takes one of [`MAX_CONCURRENT_HANDSHAKES`]
//!    slots (bounds the CPU of thousands of agents reconnecting at once) and
//!    must finish within `handshake_timeout`;
//! 3. the connection then lives while the peer keeps sending something within
//!    `idle_timeout` ([`idle`]).

pub mod admission;
pub mod idle;

use crate::supervisor::Supervisor;
use crate::tally::Tally;
use admission::Admission;
use idle::AdmittedTcp;
use rustls::ServerConfig;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, Semaphore};
use tokio_rustls::server::TlsStream;
use tokio_rustls::LazyConfigAcceptor;
use tokio_stream::wrappers::ReceiverStream;

/// Handshakes past their ClientHello at once; more wait for a slot.
pub const MAX_CONCURRENT_HANDSHAKES: usize = 256;

/// The connection limits (flags of `dockflare-master`).
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    /// Open connections at most (`--max-connections`).
    pub max_connections: usize,
    /// Open connections per source address (IPv6: per /64) at most.
    pub max_connections_per_source: usize,
    /// Longest wait for a new connection's TLS ClientHello.
    pub hello_timeout: Duration,
    /// Longest the rest of the TLS handshake may take.
    pub handshake_timeout: Duration,
    /// A connection whose peer sends nothing for this long is closed.
    pub idle_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            max_connections: admission::default_max_connections(4096),
            max_connections_per_source: 1024,
            hello_timeout: Duration::from_secs(5),
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
        }
    }
}

/// A finished handshake, ready for tonic.
pub type Connection = TlsStream<AdmittedTcp>;

/// Handshakes that did not finish, by reason (`dockflare_tls_handshake_failures_total`).
#[derive(Clone)]
struct HandshakeFailures {
    hello_unreadable: metrics::Counter,
    hello_timeout: metrics::Counter,
    failed: metrics::Counter,
    timed_out: metrics::Counter,
}

impl HandshakeFailures {
    fn new() -> HandshakeFailures {
        let counter =
            |reason: &'static str| metrics::counter!("dockflare_tls_handshake_failures_total", "reason" => reason);
        HandshakeFailures {
            hello_unreadable: counter("hello_unreadable"),
            hello_timeout: counter("hello_timeout"),
            failed: counter("handshake_error"),
            timed_out: counter("handshake_timeout"),
        }
    }
}

/// Accepts connections within `limits` and yields finished TLS handshakes.
/// Failed and slow handshakes are counted ([`HandshakeFailures`]), logged at debug level and
/// dropped; refused connections are counted ("Refused connections." every few seconds).
pub fn incoming(
    listener: TcpListener,
    config: Arc<ServerConfig>,
    limits: ConnectionLimits,
    supervisor: &Supervisor,
) -> ReceiverStream<Result<Connection, std::io::Error>> {
    let (tx, rx) = mpsc::channel(MAX_CONCURRENT_HANDSHAKES);
    let slots = Arc::new(Semaphore::new(MAX_CONCURRENT_HANDSHAKES));
    let admission = Admission::new(limits.max_connections, limits.max_connections_per_source);
    let refused = Tally::spawn("Refused connections (connection limits reached).");
    let failures = HandshakeFailures::new();
    supervisor.spawn("listener", async move {
        loop {
            let (tcp, peer) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(pair) => pair,
                    Err(error) => {
                        // EMFILE and friends: back off briefly instead of spinning.
                        tracing::warn!(message = "Accepting a connection failed.", %error, open = admission.open_connections());
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                _ = tx.closed() => return,
            };
            let slot = match admission.admit(peer.ip()) {
                Ok(slot) => slot,
                Err(refusal) => {
                    refused.record(refusal.as_str(), peer.ip());
                    drop(tcp);
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            let tcp = AdmittedTcp::new(tcp, limits.idle_timeout, slot);
            let (config, slots, tx, limits) = (config.clone(), slots.clone(), tx.clone(), limits.clone());
            let failures = failures.clone();
            tokio::spawn(async move {
                let hello = LazyConfigAcceptor::new(rustls::server::Acceptor::default(), tcp);
                let start = match tokio::time::timeout(limits.hello_timeout, hello).await {
                    Ok(Ok(start)) => start,
                    Ok(Err(error)) => {
                        failures.hello_unreadable.increment(1);
                        return tracing::debug!(message = "TLS ClientHello unreadable.", %peer, %error);
                    }
                    Err(_) => {
                        failures.hello_timeout.increment(1);
                        return tracing::debug!(message = "No TLS ClientHello in time.", %peer);
                    }
                };
                let finished = {
                    let Ok(_slot) = slots.acquire_owned().await else { return };
                    tokio::time::timeout(limits.handshake_timeout, start.into_stream(config)).await
                };
                match finished {
                    Ok(Ok(stream)) => {
                        let _ = tx.send(Ok(stream)).await;
                    }
                    Ok(Err(error)) => {
                        failures.failed.increment(1);
                        tracing::debug!(message = "TLS handshake failed.", %peer, %error)
                    }
                    Err(_) => {
                        failures.timed_out.increment(1);
                        tracing::debug!(message = "TLS handshake timed out.", %peer)
                    }
                }
            });
        }
    });
    ReceiverStream::new(rx)
}

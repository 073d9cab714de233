//! The floor's accept loop: plain TCP with `TCP_NODELAY`, one task per TLS handshake, finished
//! streams handed to tonic through a bounded channel. Unlike the master's listener
//! (`dockflare_master::listener`) it admits every connection and has no idle timeout: only the
//! handshake has the master's deadline, so that a stuck peer cannot hold a task forever.

use rustls::ServerConfig;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tokio_stream::wrappers::ReceiverStream;

/// Finished handshakes waiting for tonic (the master's `MAX_CONCURRENT_HANDSHAKES`).
const HANDOVER_BUFFER: usize = 256;
/// Longest a TLS handshake may take (the master's default `--handshake-timeout`).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause after a failed accept (EMFILE and friends) instead of spinning.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// A finished handshake, ready for tonic (its `Connected` impl gives calls the peer certificates).
pub type Connection = TlsStream<TcpStream>;

/// Accepts connections on `listener` and yields their finished TLS handshakes. Failed handshakes
/// are dropped silently; the loop ends when tonic drops the stream.
pub fn incoming(
    listener: TcpListener,
    config: Arc<ServerConfig>,
) -> ReceiverStream<Result<Connection, std::io::Error>> {
    let (tx, rx) = mpsc::channel(HANDOVER_BUFFER);
    let acceptor = TlsAcceptor::from(config);
    tokio::spawn(async move {
        loop {
            let tcp = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((tcp, _peer)) => tcp,
                    Err(error) => {
                        eprintln!("floor_server: accepting a connection failed: {error}");
                        tokio::time::sleep(ACCEPT_BACKOFF).await;
                        continue;
                    }
                },
                _ = tx.closed() => return,
            };
            let _ = tcp.set_nodelay(true);
            let (acceptor, tx) = (acceptor.clone(), tx.clone());
            tokio::spawn(async move {
                if let Ok(Ok(stream)) = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                    let _ = tx.send(Ok(stream)).await;
                }
            });
        }
    });
    ReceiverStream::new(rx)
}

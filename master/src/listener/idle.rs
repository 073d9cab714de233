//! An admitted TCP connection: it holds its [`ConnectionSlot`] for as long
//! as it lives, and fails with `TimedOut` once the peer has sent nothing for
//! the idle timeout. Live peers always send within it: the server pings
//! every HTTP/2 connection (`http2_keepalive_interval`), and a client that
//! answers pings is alive. Silent peers (no ClientHello, no HTTP/2 preface,
//! no answer to pings) are closed.

use super::admission::ConnectionSlot;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};
use tonic::transport::server::{Connected, TcpConnectInfo};

/// A TCP stream with an idle timeout and a connection slot.
#[derive(Debug)]
pub struct AdmittedTcp {
    inner: TcpStream,
    idle_timeout: Duration,
    /// When the peer last sent something.
    last_read: Instant,
    /// Fires at `last_read + idle_timeout` at the earliest (re-armed lazily).
    idle: Pin<Box<Sleep>>,
    _slot: ConnectionSlot,
}

impl AdmittedTcp {
    pub fn new(inner: TcpStream, idle_timeout: Duration, slot: ConnectionSlot) -> AdmittedTcp {
        let now = Instant::now();
        AdmittedTcp {
            inner,
            idle_timeout,
            last_read: now,
            idle: Box::pin(tokio::time::sleep_until(now + idle_timeout)),
            _slot: slot,
        }
    }

    /// True (and the connection is done) when the idle deadline has passed;
    /// otherwise the timer is armed for the current deadline.
    fn idle_expired(&mut self, cx: &mut Context<'_>) -> bool {
        loop {
            let deadline = self.last_read + self.idle_timeout;
            if self.idle.deadline() != deadline {
                self.idle.as_mut().reset(deadline);
            }
            if self.idle.as_mut().poll(cx).is_pending() {
                return false;
            }
            if self.last_read + self.idle_timeout <= Instant::now() {
                return true;
            }
        }
    }
}

impl AsyncRead for AdmittedTcp {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    self.last_read = Instant::now();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(error)) => Poll::Ready(Err(error)),
            Poll::Pending => {
                if self.idle_expired(cx) {
                    Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the peer sent nothing within the idle timeout",
                    )))
                } else {
                    Poll::Pending
                }
            }
        }
    }
}

impl AsyncWrite for AdmittedTcp {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl Connected for AdmittedTcp {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        TcpConnectInfo { local_addr: self.inner.local_addr().ok(), remote_addr: self.inner.peer_addr().ok() }
    }
}

#[cfg(test)]
mod tests {
    use super::super::admission::Admission;
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn pair(idle: Duration) -> (AdmittedTcp, TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let client = TcpStream::connect(listener.local_addr().expect("addr")).await.expect("connect");
        let (server, peer) = listener.accept().await.expect("accept");
        let slot = Admission::new(10, 10).admit(peer.ip()).expect("slot");
        (AdmittedTcp::new(server, idle, slot), client)
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_peer_is_timed_out_and_a_talking_one_is_not() {
        let (mut server, mut client) = pair(Duration::from_secs(60)).await;
        let mut byte = [0u8; 1];
        for _ in 0..3 {
            client.write_all(b"x").await.expect("write");
            tokio::time::advance(Duration::from_secs(40)).await;
            assert_eq!(server.read(&mut byte).await.expect("still open"), 1);
        }
        let started = Instant::now();
        let error = server.read(&mut byte).await.expect_err("idle");
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        assert_eq!(started.elapsed(), Duration::from_secs(60));
    }
}

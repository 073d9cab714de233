//! The connector's readiness: cloudflared's metrics server answers
//! `GET /ready` with 200 once it holds a connection to the edge. A minimal
//! HTTP/1.0 request over TCP, with a short deadline.

use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Whether `http://ip:port/ready` answers 200.
pub async fn probe(ip: &str, port: u16) -> bool {
    let attempt = async {
        let mut stream = TcpStream::connect((ip, port)).await?;
        stream.write_all(b"GET /ready HTTP/1.0\r\nHost: connector\r\n\r\n").await?;
        let mut head = [0u8; 16];
        let read = stream.read(&mut head).await?;
        std::io::Result::Ok(status_is_ok(&head[..read]))
    };
    matches!(tokio::time::timeout(PROBE_TIMEOUT, attempt).await, Ok(Ok(true)))
}

fn status_is_ok(head: &[u8]) -> bool {
    head.starts_with(b"HTTP/1.0 200") || head.starts_with(b"HTTP/1.1 200")
}

#[cfg(test)]
mod tests {
    #[test]
    fn status_lines() {
        assert!(super::status_is_ok(b"HTTP/1.1 200 OK\r\n"));
        assert!(!super::status_is_ok(b"HTTP/1.1 503 Service Unavailable"));
        assert!(!super::status_is_ok(b""));
    }
}

//! The `healthcheck` subcommand's client: one HTTP/1.0 GET over a plain TCP connection, with a
//! deadline, answering whether the status was 200. No HTTP library and no shell: it runs in a
//! `FROM scratch` image as the image's `HEALTHCHECK`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// Why a probe failed.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("cannot reach {addr}: {error}")]
    Connect { addr: SocketAddr, error: std::io::Error },
    #[error("talking to {addr}: {error}")]
    Io { addr: SocketAddr, error: std::io::Error },
    #[error("{addr} did not answer HTTP")]
    NotHttp { addr: SocketAddr },
    #[error("{path} answered {status}: {body}")]
    Status { path: String, status: u16, body: String },
}

/// GETs `path` from `addr`; `Ok(body)` on 200.
pub fn get(addr: SocketAddr, path: &str, timeout: Duration) -> Result<String, ProbeError> {
    // A wildcard listen address is reached on loopback.
    let addr = match addr.ip() {
        ip if ip.is_unspecified() && ip.is_ipv4() => SocketAddr::from(([127, 0, 0, 1], addr.port())),
        ip if ip.is_unspecified() => SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, addr.port())),
        _ => addr,
    };
    let mut stream = TcpStream::connect_timeout(&addr, timeout).map_err(|error| ProbeError::Connect { addr, error })?;
    let io = |error| ProbeError::Io { addr, error };
    stream.set_read_timeout(Some(timeout)).map_err(io)?;
    stream.set_write_timeout(Some(timeout)).map_err(io)?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\nConnection: close\r\n\r\n").map_err(io)?;
    let mut answer = Vec::new();
    stream.take(64 * 1024).read_to_end(&mut answer).map_err(io)?;
    let text = String::from_utf8_lossy(&answer);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .lines()
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|code| code.parse::<u16>().ok())
        .ok_or(ProbeError::NotHttp { addr })?;
    if status == 200 {
        Ok(body.to_string())
    } else {
        Err(ProbeError::Status { path: path.to_string(), status, body: body.trim().to_string() })
    }
}

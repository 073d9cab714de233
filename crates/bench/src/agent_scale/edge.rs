//! The local edge as a client sees it: `GET /` with a `Host` header on its published port, and
//! waiting until each of many hostnames first answers 200 (a route is live when the edge serves
//! it). A few pollers share the hostnames still waiting, each sweeping its share and pausing
//! between sweeps, so that a hundred hostnames do not turn into thousands of requests a second
//! on the machine being measured.

use anyhow::{bail, Result};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Pollers sweeping the hostnames that wait.
const POLLERS: usize = 4;
/// Pause between two sweeps of one poller.
const SWEEP_PAUSE: Duration = Duration::from_millis(10);
/// Longest wait for one answer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// The HTTP status of `GET /` for `host` through the edge at `edge`; `None` when nothing answered.
pub async fn status(edge: SocketAddr, host: &str) -> Option<u16> {
    let exchange = async {
        let mut stream = TcpStream::connect(edge).await.ok()?;
        let request = format!("GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut head = [0u8; 16];
        let mut read = 0;
        while read < head.len() {
            match stream.read(&mut head[read..]).await.ok()? {
                0 => break,
                n => read += n,
            }
        }
        parse_status(&head[..read])
    };
    tokio::time::timeout(REQUEST_TIMEOUT, exchange).await.ok().flatten()
}

/// The status code of an HTTP/1.x status line's start (`HTTP/1.1 200 …`).
fn parse_status(head: &[u8]) -> Option<u16> {
    let text = std::str::from_utf8(head).ok()?;
    let code = text.strip_prefix("HTTP/1.")?.get(2..5)?;
    code.parse().ok()
}

/// Waits until the edge answers at all (any status), at most `within`.
pub async fn wait_answering(edge: SocketAddr, within: Duration) -> Result<()> {
    let what = format!("the local edge on {edge} answering");
    dockflare_testsupport::eventually(&what, within, || async { Ok(status(edge, "nobody.invalid").await.map(|_| ())) })
        .await
}

/// When each hostname first answered 200, polling all of them until then (at most `within`).
pub async fn first_200(edge: SocketAddr, hosts: &[String], within: Duration) -> Result<BTreeMap<String, Instant>> {
    let deadline = Instant::now() + within;
    let mut pollers = tokio::task::JoinSet::new();
    for share in 0..POLLERS {
        let mine: Vec<String> = hosts.iter().skip(share).step_by(POLLERS).cloned().collect();
        pollers.spawn(async move {
            let mut waiting = mine;
            let mut live = BTreeMap::new();
            let mut last = BTreeMap::new();
            while !waiting.is_empty() && Instant::now() < deadline {
                let mut still = Vec::with_capacity(waiting.len());
                for host in waiting {
                    let answer = status(edge, &host).await;
                    if answer == Some(200) {
                        live.insert(host, Instant::now());
                    } else {
                        last.insert(host.clone(), answer);
                        still.push(host);
                    }
                }
                waiting = still;
                tokio::time::sleep(SWEEP_PAUSE).await;
            }
            let missing: Vec<String> =
                waiting.iter().map(|h| format!("{h} (last: {:?})", last.get(h).copied().flatten())).collect();
            (live, missing)
        });
    }
    let (mut live, mut missing) = (BTreeMap::new(), Vec::new());
    while let Some(joined) = pollers.join_next().await {
        let (found, not) = joined?;
        live.extend(found);
        missing.extend(not);
    }
    if !missing.is_empty() {
        bail!(
            "{} of {} hostnames never answered 200 within {within:?}: {}",
            missing.len(),
            hosts.len(),
            missing.join(", ")
        );
    }
    Ok(live)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines_are_parsed() {
        assert_eq!(parse_status(b"HTTP/1.1 200 OK\r\n"), Some(200));
        assert_eq!(parse_status(b"HTTP/1.0 503 Serv"), Some(503));
        assert_eq!(parse_status(b"HTTP/1.1 20"), None);
        assert_eq!(parse_status(b"SSH-2.0-x"), None);
    }
}

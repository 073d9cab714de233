//! Limits on calls from callers without a valid client certificate (Enroll,
//! health, reflection — or anyone pretending), applied before a byte of the
//! request is decoded:
//! - each request message may announce at most `max_unauthenticated_message`
//!   bytes (a join token and a CSR fit in a few KiB), so a stalled "16 MiB
//!   Enroll" costs nothing: tonic would otherwise reserve the announced size;
//! - at most `max_unauthenticated_calls` of them run at once, and at most
//!   `max_unauthenticated_calls_per_source` from one address.
//!
//! Enroll gets the small message limit even with a certificate. A call over
//! a limit is refused with `RESOURCE_EXHAUSTED` saying which; refusals are
//! counted in an aggregate log line.
//!
//! The chain is verified here ([`Authenticator::verify_chain`]) and the
//! identity handed to the handlers in the request's extensions, so a call is
//! verified once.

use crate::auth::Authenticator;
use crate::listener::admission::{source_key, Admission, ConnectionSlot, Refusal};
use crate::tally::Tally;
use bytes::{Buf, Bytes};
use futures::future::BoxFuture;
use http_body::{Body as HttpBody, Frame, SizeHint};
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tonic::body::Body;
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
use tonic::Status;

/// The gRPC path of Enroll (small messages, even with a certificate).
pub const ENROLL_PATH: &str = "/dockflare.v1.AgentService/Enroll";

/// The limits on calls (flags of `dockflare-master`).
#[derive(Debug, Clone)]
pub struct CallLimits {
    /// Largest message an agent may send (a status report of a whole host).
    pub max_agent_message: usize,
    /// Failed enrollments per source address and minute before Enroll refuses it.
    pub enroll_failures_per_minute: u32,
    /// Bytes per second one agent's events may cost, sustained ([`crate::agent_budget`]).
    pub agent_event_rate: u32,
    /// … and at once.
    pub agent_event_burst: u32,
    /// Largest request message of a call without a valid certificate, and of Enroll.
    pub max_unauthenticated_message: usize,
    /// Calls without a valid certificate in progress at once.
    pub max_unauthenticated_calls: usize,
    /// ... of which from one source address (IPv6: one /64).
    pub max_unauthenticated_calls_per_source: usize,
    /// Register calls in progress at once; more are refused with a retry hint.
    pub max_concurrent_registrations: usize,
}

impl Default for CallLimits {
    fn default() -> Self {
        CallLimits {
            max_agent_message: 4 * 1024 * 1024,
            enroll_failures_per_minute: 30,
            agent_event_rate: 256 * 1024,
            agent_event_burst: 8 * 1024 * 1024,
            max_unauthenticated_message: 64 * 1024,
            max_unauthenticated_calls: 256,
            max_unauthenticated_calls_per_source: 16,
            max_concurrent_registrations: crate::register_gate::DEFAULT_MAX_CONCURRENT_REGISTRATIONS,
        }
    }
}

/// The tower layer (see the module docs).
#[derive(Clone)]
pub struct CallLimitsLayer {
    limits: CallLimits,
    auth: Authenticator,
    /// Calls in progress, in total and per source (the same counting as connections).
    in_flight: Admission,
    refused: Tally,
}

impl CallLimitsLayer {
    pub fn new(limits: CallLimits, auth: Authenticator) -> CallLimitsLayer {
        CallLimitsLayer {
            in_flight: Admission::new(limits.max_unauthenticated_calls, limits.max_unauthenticated_calls_per_source),
            limits,
            auth,
            refused: Tally::spawn("Refused calls without a client certificate (call limits reached)."),
        }
    }

    /// Takes room for an unauthenticated call from `source`, or says why there is none.
    fn enter(&self, source: Option<IpAddr>) -> Result<ConnectionSlot, Status> {
        let source = source.unwrap_or(IpAddr::from([0, 0, 0, 0]));
        self.in_flight.admit(source).map_err(|refusal| {
            self.refused.record(refusal_reason(refusal), source_key(source));
            match refusal {
                Refusal::TotalLimit => Status::resource_exhausted(format!(
                    "{} calls without a client certificate are in progress (--max-unauthenticated-calls); retry shortly",
                    self.limits.max_unauthenticated_calls
                )),
                Refusal::PerSourceLimit => Status::resource_exhausted(format!(
                    "{} calls without a client certificate are in progress from {} \
                     (--max-unauthenticated-calls-per-source); retry shortly",
                    self.limits.max_unauthenticated_calls_per_source,
                    source_key(source)
                )),
            }
        })
    }
}

fn refusal_reason(refusal: Refusal) -> &'static str {
    match refusal {
        Refusal::TotalLimit => "max_unauthenticated_calls",
        Refusal::PerSourceLimit => "max_unauthenticated_calls_per_source",
    }
}

impl<S> tower::Layer<S> for CallLimitsLayer {
    type Service = CallLimitsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CallLimitsService { layer: self.clone(), inner }
    }
}

/// The service [`CallLimitsLayer`] wraps around tonic's router.
#[derive(Clone)]
pub struct CallLimitsService<S> {
    layer: CallLimitsLayer,
    inner: S,
}

impl<S> tower::Service<http::Request<Body>> for CallLimitsService<S>
where
    S: tower::Service<http::Request<Body>, Response = http::Response<Body>> + Send,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<Body>) -> Self::Future {
        let connection = request.extensions().get::<TlsConnectInfo<TcpConnectInfo>>().cloned();
        let identity = connection
            .as_ref()
            .and_then(TlsConnectInfo::peer_certs)
            .and_then(|certs| self.layer.auth.verify_chain(&certs).ok());
        let authenticated = identity.is_some();
        if let Some(identity) = identity {
            request.extensions_mut().insert(identity);
        }
        if authenticated && request.uri().path() != ENROLL_PATH {
            let future = self.inner.call(request);
            return Box::pin(future);
        }
        let source = connection.as_ref().and_then(|c| c.get_ref().remote_addr()).map(|addr| addr.ip());
        let permit = match self.layer.enter(source) {
            Ok(permit) => Arc::new(permit),
            Err(status) => return Box::pin(std::future::ready(Ok(status.into_http()))),
        };
        let limit = self.layer.limits.max_unauthenticated_message;
        let request = request.map(|body| {
            Body::new(FrameLimited { inner: body, scanner: FrameScanner::new(limit), _permit: permit.clone() })
        });
        let future = self.inner.call(request);
        Box::pin(async move {
            let response = future.await;
            drop(permit);
            response
        })
    }
}

/// Follows the gRPC length-prefixed framing of a request body and fails as
/// soon as a message announces more than the limit. Pure.
#[derive(Debug, Clone)]
pub struct FrameScanner {
    limit: usize,
    header: [u8; 5],
    header_len: usize,
    /// Bytes of the current message still to come.
    remaining: usize,
}

impl FrameScanner {
    pub fn new(limit: usize) -> FrameScanner {
        FrameScanner { limit, header: [0; 5], header_len: 0, remaining: 0 }
    }

    /// Feeds the next bytes of the body; `Err(announced length)` when a message is too large.
    pub fn feed(&mut self, mut bytes: &[u8]) -> Result<(), usize> {
        while !bytes.is_empty() {
            if self.remaining > 0 {
                let take = self.remaining.min(bytes.len());
                self.remaining -= take;
                bytes = &bytes[take..];
                continue;
            }
            let take = (5 - self.header_len).min(bytes.len());
            self.header[self.header_len..self.header_len + take].copy_from_slice(&bytes[..take]);
            self.header_len += take;
            bytes = &bytes[take..];
            if self.header_len == 5 {
                let announced =
                    u32::from_be_bytes([self.header[1], self.header[2], self.header[3], self.header[4]]) as usize;
                if announced > self.limit {
                    return Err(announced);
                }
                self.header_len = 0;
                self.remaining = announced;
            }
        }
        Ok(())
    }
}

/// A request body checked by a [`FrameScanner`].
struct FrameLimited {
    inner: Body,
    scanner: FrameScanner,
    _permit: Arc<ConnectionSlot>,
}

impl HttpBody for FrameLimited {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let frame = match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => frame,
            other => return other,
        };
        if let Some(data) = frame.data_ref() {
            let limit = self.scanner.limit;
            if let Err(announced) = self.scanner.feed(data.chunk()) {
                return Poll::Ready(Some(Err(Status::resource_exhausted(format!(
                    "request message of {announced} bytes: calls without a client certificate, and Enroll, \
                     may send at most {limit} bytes (--max-unauthenticated-message)"
                )))));
            }
        }
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(len: u32) -> Vec<u8> {
        let mut bytes = vec![0];
        bytes.extend_from_slice(&len.to_be_bytes());
        bytes.extend(std::iter::repeat_n(7u8, len as usize));
        bytes
    }

    #[test]
    fn messages_within_the_limit_pass_in_any_split() {
        let body: Vec<u8> = [frame(10), frame(0), frame(100)].concat();
        for chunk in [1, 2, 3, 5, 7, 64, body.len()] {
            let mut scanner = FrameScanner::new(100);
            for piece in body.chunks(chunk) {
                scanner.feed(piece).expect("within the limit");
            }
        }
    }

    #[test]
    fn an_announced_length_over_the_limit_fails_before_its_bytes_arrive() {
        let mut scanner = FrameScanner::new(100);
        scanner.feed(&frame(100)).expect("at the limit");
        // Only the header of a 16 MiB message: refused at once.
        assert_eq!(scanner.feed(&[0, 1, 0, 0]), Ok(()));
        assert_eq!(scanner.feed(&[0]), Err(16 * 1024 * 1024));
    }
}

//! Why a reconnect attempt failed, in the few classes the storm's figures count, and the retry
//! hint (`grpc-retry-pushback-ms`) a refusal carried. Pure: it reads the error's chain.

use dockflare_common::retry_pushback;
use std::time::Duration;

/// The class of a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Class {
    /// Nothing listens (the master is down).
    Refused,
    /// The TCP connection or its handshake took longer than the connect timeout.
    ConnectTimeout,
    /// TCP connected but TLS did not finish (an alert, or the master closed the connection).
    TlsHandshake,
    /// A call answered `UNAVAILABLE` (the master is busy, or the connection broke).
    Unavailable,
    /// A call answered `RESOURCE_EXHAUSTED`.
    ResourceExhausted,
    /// A call answered another status.
    OtherStatus,
    /// A stream ended before the first event receipt.
    StreamEnded,
    /// Anything else.
    Other,
}

impl Class {
    pub const ALL: [Class; 8] = [
        Class::Refused,
        Class::ConnectTimeout,
        Class::TlsHandshake,
        Class::Unavailable,
        Class::ResourceExhausted,
        Class::OtherStatus,
        Class::StreamEnded,
        Class::Other,
    ];

    /// The name in the figures.
    pub fn name(self) -> &'static str {
        match self {
            Class::Refused => "connection_refused",
            Class::ConnectTimeout => "connect_timeout",
            Class::TlsHandshake => "tls_handshake",
            Class::Unavailable => "unavailable",
            Class::ResourceExhausted => "resource_exhausted",
            Class::OtherStatus => "other_status",
            Class::StreamEnded => "stream_ended",
            Class::Other => "other",
        }
    }

    pub fn index(self) -> usize {
        Class::ALL.iter().position(|class| *class == self).unwrap_or(Class::ALL.len() - 1)
    }
}

/// A failed attempt: its class and, when the master gave one, how long it asked us to wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failure {
    pub class: Class,
    pub hint: Option<Duration>,
}

/// The retry hint of a status: its `grpc-retry-pushback-ms` metadata, when parsable.
pub fn retry_hint(status: &tonic::Status) -> Option<Duration> {
    status.metadata().get(retry_pushback::RETRY_PUSHBACK_KEY)?.to_str().ok().and_then(retry_pushback::parse)
}

/// The class of a status code.
fn status_class(status: &tonic::Status) -> Class {
    match status.code() {
        tonic::Code::Unavailable => Class::Unavailable,
        tonic::Code::ResourceExhausted => Class::ResourceExhausted,
        _ => Class::OtherStatus,
    }
}

/// Classifies a failed attempt (opening the channel, a call, or the wait for the receipt).
pub fn classify(error: &anyhow::Error) -> Failure {
    if let Some(status) = error.chain().find_map(|cause| cause.downcast_ref::<tonic::Status>()) {
        // A status made on this side from a broken connection carries the transport error.
        return Failure { class: status_class(status), hint: retry_hint(status) };
    }
    if error.chain().any(|cause| cause.downcast_ref::<StreamEnded>().is_some()) {
        return Failure { class: Class::StreamEnded, hint: None };
    }
    Failure { class: transport_class(error), hint: None }
}

/// A stream of the new connection ended before the first receipt (FakeAgent says why in words).
#[derive(Debug, thiserror::Error)]
#[error("a stream ended before the first receipt: {0}")]
pub struct StreamEnded(pub String);

/// The class of an error opening the channel: TCP, then TLS.
fn transport_class(error: &anyhow::Error) -> Class {
    for cause in error.chain() {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            match io.kind() {
                std::io::ErrorKind::ConnectionRefused => return Class::Refused,
                std::io::ErrorKind::TimedOut => return Class::ConnectTimeout,
                _ => {}
            }
            if io.get_ref().is_some_and(|inner| inner.is::<rustls::Error>()) {
                return Class::TlsHandshake;
            }
        }
        if cause.is::<rustls::Error>() {
            return Class::TlsHandshake;
        }
    }
    let text = format!("{error:#}").to_ascii_lowercase();
    if text.contains("connection refused") {
        Class::Refused
    } else if text.contains("timed out") || text.contains("timeout") || text.contains("elapsed") {
        Class::ConnectTimeout
    } else if ["tls", "handshake", "certificate", "reset by peer", "eof", "broken pipe", "connection closed"]
        .iter()
        .any(|word| text.contains(word))
    {
        // TCP connected (a refusal would have said so): the handshake is what did not finish.
        Class::TlsHandshake
    } else {
        Class::Other
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::{anyhow, Context};

    fn io(kind: std::io::ErrorKind, text: &str) -> anyhow::Error {
        anyhow::Error::new(std::io::Error::new(kind, text.to_string())).context("connecting to the master")
    }

    #[test]
    fn transport_errors_are_told_apart() {
        let refused = io(std::io::ErrorKind::ConnectionRefused, "Connection refused (os error 111)");
        assert_eq!(classify(&refused).class, Class::Refused);
        assert_eq!(classify(&io(std::io::ErrorKind::TimedOut, "timed out")).class, Class::ConnectTimeout);
        let alert = std::io::Error::new(std::io::ErrorKind::InvalidData, rustls::Error::DecryptError);
        assert_eq!(classify(&anyhow::Error::new(alert).context("tls")).class, Class::TlsHandshake);
        let eof = io(std::io::ErrorKind::UnexpectedEof, "tls handshake eof");
        assert_eq!(classify(&eof).class, Class::TlsHandshake);
        assert_eq!(classify(&anyhow!("transport error: connection refused")).class, Class::Refused);
        assert_eq!(classify(&anyhow!("something odd")).class, Class::Other);
    }

    #[test]
    fn statuses_carry_their_hint() {
        let mut busy = tonic::Status::unavailable("the master is busy");
        busy.metadata_mut().insert(retry_pushback::RETRY_PUSHBACK_KEY, tonic::metadata::MetadataValue::from(1500u64));
        let failure = classify(&anyhow::Error::new(busy).context("Register"));
        assert_eq!(failure, Failure { class: Class::Unavailable, hint: Some(Duration::from_millis(1500)) });

        let mut malformed = tonic::Status::resource_exhausted("later");
        malformed.metadata_mut().insert(retry_pushback::RETRY_PUSHBACK_KEY, tonic::metadata::MetadataValue::from(-3));
        assert_eq!(classify(&anyhow::Error::new(malformed)), Failure { class: Class::ResourceExhausted, hint: None });
        let other = classify(&anyhow::Error::new(tonic::Status::permission_denied("revoked")));
        assert_eq!(other, Failure { class: Class::OtherStatus, hint: None });
    }

    #[test]
    fn an_early_stream_end_is_its_own_class() {
        let ended = Err::<(), _>(StreamEnded("ReportEvents: Unavailable".into())).context("first receipt");
        assert_eq!(classify(&ended.unwrap_err()).class, Class::StreamEnded);
    }

    #[test]
    fn every_class_has_its_index() {
        for (index, class) in Class::ALL.iter().enumerate() {
            assert_eq!(class.index(), index);
        }
    }
}

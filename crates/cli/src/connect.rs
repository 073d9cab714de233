//! The mutual-TLS channel to the master: reads the CA and the identity files the context named,
//! connects (trusting only that CA), and says in words why a connection failed — an address
//! nobody answers on, or a master whose certificate the CA did not sign.

use crate::config::{Field, Resolved};
use crate::errors::{self, ConnectProblem};
use crate::exit::{Exit, Failure};
use dockflare::v1::admin_service_client::AdminServiceClient;
use std::error::Error as StdError;
use std::path::Path;
use std::time::Duration;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

/// How long the TCP and TLS handshakes may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// An AdminService client over a connected channel.
pub type Client = AdminServiceClient<Channel>;

/// Connects to the master `resolved` names, as the identity it names.
pub async fn connect(resolved: &Resolved) -> Result<Client, Failure> {
    let ca = read_pem(&resolved.ca_cert.value, "CA certificate", &resolved.ca_cert.source.describe(Field::CaCert))?;
    let cert_origin = resolved.cert.source.describe(Field::Cert);
    let cert = read_pem(&resolved.cert.value, "client certificate", &cert_origin)?;
    let key = read_pem(&resolved.key, "client key", &resolved.cert.source.describe(Field::Key))?;
    let tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca)).identity(Identity::from_pem(cert, key));
    let url = &resolved.master.value;
    let endpoint = Endpoint::from_shared(url.clone())
        .map_err(|error| {
            Failure::new(Exit::InvalidArgument, format!("the master address {url} is not usable: {error}"))
        })?
        .tls_config(tls)
        .map_err(|error| {
            Failure::new(
                Exit::Unauthenticated,
                format!(
                    "cannot use the identity {} / {} with the CA {}: {}; check that they are PEM files",
                    resolved.cert.value.display(),
                    resolved.key.display(),
                    resolved.ca_cert.value.display(),
                    chain_text(&error)
                ),
            )
        })?
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_nodelay(true)
        // A watch that outlives its master notices within half a minute.
        .http2_keep_alive_interval(Duration::from_secs(20))
        .keep_alive_timeout(Duration::from_secs(10))
        .keep_alive_while_idle(true);
    let channel = endpoint.connect().await.map_err(|error| {
        let (problem, detail) = classify(&error);
        errors::connect_failure(problem, &detail, resolved)
    })?;
    Ok(AdminServiceClient::new(channel))
}

/// Reads a PEM file the context named; a missing or unreadable one is "not authenticated",
/// with where its path came from.
fn read_pem(path: &Path, what: &str, origin: &str) -> Result<String, Failure> {
    std::fs::read_to_string(path).map_err(|error| {
        Failure::new(
            Exit::Unauthenticated,
            format!(
                "cannot read the {what} {} (from {origin}): {error}; pass --master, --ca-cert, --cert and --key, \
                 set DOCKFLARE_MASTER, DOCKFLARE_CA_CERT, DOCKFLARE_CERT and DOCKFLARE_KEY, or run `dockflare login`",
                path.display()
            ),
        )
    })
}

/// Why a connection failed, from the error's chain of causes, and the words for it.
pub fn classify(error: &(dyn StdError + 'static)) -> (ConnectProblem, String) {
    let mut cause: Option<&(dyn StdError + 'static)> = Some(error);
    let mut deepest = error.to_string();
    while let Some(current) = cause {
        if let Some(tls) = as_rustls(current) {
            return match tls {
                rustls::Error::InvalidCertificate(why) => (ConnectProblem::ServerCertificate, format!("{why:?}")),
                rustls::Error::AlertReceived(alert) => (ConnectProblem::ClientCertificate, format!("{alert:?}")),
                other => (ConnectProblem::Tls, other.to_string()),
            };
        }
        if let Some(io) = current.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind;
            match io.kind() {
                ErrorKind::ConnectionRefused => return (ConnectProblem::Unreachable, "connection refused".into()),
                ErrorKind::TimedOut => return (ConnectProblem::Unreachable, "timed out".into()),
                _ => {}
            }
        }
        let text = current.to_string();
        if !text.is_empty() {
            deepest = text;
        }
        cause = current.source();
    }
    if deepest.contains("timed out") || deepest.contains("elapsed") {
        return (ConnectProblem::Unreachable, "timed out".into());
    }
    (ConnectProblem::Unreachable, deepest)
}

/// A rustls error, directly or inside the `io::Error` tokio-rustls wraps it in.
fn as_rustls<'a>(error: &'a (dyn StdError + 'static)) -> Option<&'a rustls::Error> {
    error.downcast_ref::<rustls::Error>().or_else(|| {
        error.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref()).and_then(|inner| inner.downcast_ref())
    })
}

/// Every message of an error's chain, joined.
pub fn chain_text(error: &(dyn StdError + 'static)) -> String {
    let mut parts = vec![error.to_string()];
    let mut cause = error.source();
    while let Some(current) = cause {
        let text = current.to_string();
        if parts.last() != Some(&text) {
            parts.push(text);
        }
        cause = current.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fmt;

    #[derive(Debug)]
    struct Wrapper(&'static str, Box<dyn StdError + Send + Sync>);
    impl fmt::Display for Wrapper {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)
        }
    }
    impl StdError for Wrapper {
        fn source(&self) -> Option<&(dyn StdError + 'static)> {
            Some(self.1.as_ref())
        }
    }

    #[test]
    fn causes_are_classified_through_the_chain() {
        let refused = Wrapper(
            "transport error",
            Box::new(std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "Connection refused (os error 111)")),
        );
        assert_eq!(classify(&refused), (ConnectProblem::Unreachable, "connection refused".into()));

        let untrusted = Wrapper(
            "transport error",
            Box::new(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
            )),
        );
        assert_eq!(classify(&untrusted).0, ConnectProblem::ServerCertificate);

        let other = Wrapper("transport error", Box::new(std::io::Error::other("dns error: no such host")));
        assert_eq!(classify(&other), (ConnectProblem::Unreachable, "dns error: no such host".into()));
        assert_eq!(chain_text(&other), "transport error: dns error: no such host");
    }
}

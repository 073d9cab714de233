//! The words of every failure that comes from the master or the way to it: what was wrong and
//! what to do. An unreachable address names itself and where it came from; a refused
//! certificate names the file; a missing role or an invalid field passes on the master's own
//! message (it names the role or the field). Exit codes come from [`crate::exit::exit_for`].

use crate::config::{Field, Resolved};
use crate::exit::{exit_for, Exit, Failure};
use tonic::Code;

/// Why a connection could not be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectProblem {
    /// Nothing answered (refused, timed out, no such host, …).
    Unreachable,
    /// The master's certificate is not signed by the CA the CLI trusts (or not for that name).
    ServerCertificate,
    /// The master ended the handshake over our certificate.
    ClientCertificate,
    /// Another TLS failure.
    Tls,
}

const WHERE_TO_FIX_MASTER: &str = "check --master / DOCKFLARE_MASTER / `dockflare login`";
const WHERE_TO_FIX_IDENTITY: &str = "check --cert and --key / DOCKFLARE_CERT and DOCKFLARE_KEY / `dockflare login`";

/// The failure for a connection that could not be made.
pub fn connect_failure(problem: ConnectProblem, detail: &str, resolved: &Resolved) -> Failure {
    let url = &resolved.master.value;
    let from = resolved.master_origin();
    match problem {
        ConnectProblem::Unreachable => Failure::new(
            Exit::Unreachable,
            format!("cannot reach the master at {url} (from {from}): {detail}; is it running? {WHERE_TO_FIX_MASTER}"),
        ),
        ConnectProblem::ServerCertificate => Failure::new(
            Exit::Unauthenticated,
            format!(
                "the master at {url} showed a certificate the CA {} (from {}) did not sign for that name ({detail}); \
                 use that master's pki/ca.crt: check --ca-cert / DOCKFLARE_CA_CERT / `dockflare login`, and that \
                 --master names it as its certificate does (its --server-name)",
                resolved.ca_cert.value.display(),
                resolved.ca_cert.source.describe(Field::CaCert),
            ),
        ),
        ConnectProblem::ClientCertificate => Failure::new(
            Exit::Unauthenticated,
            format!(
                "the master at {url} refused the certificate {} (from {}) during the handshake ({detail}); \
                 {WHERE_TO_FIX_IDENTITY}",
                resolved.cert.value.display(),
                resolved.cert.source.describe(Field::Cert),
            ),
        ),
        ConnectProblem::Tls => Failure::new(
            Exit::Unreachable,
            format!("the TLS handshake with the master at {url} (from {from}) failed: {detail}; {WHERE_TO_FIX_MASTER}"),
        ),
    }
}

/// The code that says what happened: a status the master sent, as it is; one tonic made from a
/// broken connection (code UNKNOWN with the transport error as its source, e.g. "h2 protocol
/// error: error reading a body from connection" when the master was killed) is UNAVAILABLE.
pub fn code_of(status: &tonic::Status) -> Code {
    match status.code() {
        Code::Unknown if std::error::Error::source(status).is_some() => Code::Unavailable,
        code => code,
    }
}

/// The failure for an RPC the master answered with an error status.
pub fn rpc_failure(call: &str, status: &tonic::Status, resolved: &Resolved) -> Failure {
    let message = status.message();
    let url = &resolved.master.value;
    let code = code_of(status);
    let text = match code {
        Code::Unavailable => format!(
            "cannot reach the master at {url} (from {}): {message}; is it running? {WHERE_TO_FIX_MASTER}",
            resolved.master_origin()
        ),
        Code::DeadlineExceeded => format!("{call}: the master at {url} did not answer in time: {message}"),
        Code::Unauthenticated => format!(
            "the master at {url} refused the identity {} (from {}): {message}; use a certificate issued by this \
             master's CA ({WHERE_TO_FIX_IDENTITY})",
            resolved.cert.value.display(),
            resolved.cert.source.describe(Field::Cert),
        ),
        Code::PermissionDenied => format!("{call}: permission denied: {message}"),
        Code::InvalidArgument => format!("{call}: invalid argument: {message}"),
        Code::NotFound => format!("{call}: not found: {message}"),
        Code::AlreadyExists => format!("{call}: already exists: {message}"),
        Code::FailedPrecondition | Code::Aborted | Code::OutOfRange => format!("{call}: refused: {message}"),
        Code::Unimplemented => format!(
            "{call}: the master at {url} does not implement this call ({message}); it may be older than this CLI: \
             upgrade the master"
        ),
        Code::ResourceExhausted => format!("{call}: a limit of the master was reached: {message}"),
        code => format!("{call} failed ({}): {message}", code.description()),
    };
    Failure::new(exit_for(code), text)
}

/// The answer of a unary call, or its failure in words.
pub fn answer<T>(
    call: &str,
    resolved: &Resolved,
    result: Result<tonic::Response<T>, tonic::Status>,
) -> Result<T, Failure> {
    result.map(tonic::Response::into_inner).map_err(|status| rpc_failure(call, &status, resolved))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Setting, Source};
    use std::path::PathBuf;

    fn resolved() -> Resolved {
        Resolved {
            master: Setting { value: "https://m.example:8443".into(), source: Source::Env },
            ca_cert: Setting { value: PathBuf::from("/c/ca.crt"), source: Source::Flags },
            cert: Setting { value: PathBuf::from("/c/me.crt"), source: Source::Flags },
            key: PathBuf::from("/c/me.key"),
        }
    }

    #[test]
    fn an_unreachable_master_is_named_with_where_its_address_came_from() {
        let failure = connect_failure(ConnectProblem::Unreachable, "connection refused", &resolved());
        assert_eq!(failure.exit, Exit::Unreachable);
        assert_eq!(
            failure.message,
            "cannot reach the master at https://m.example:8443 (from DOCKFLARE_MASTER): connection refused; is it \
             running? check --master / DOCKFLARE_MASTER / `dockflare login`"
        );
    }

    #[test]
    fn certificate_problems_name_the_file() {
        let failure = connect_failure(ConnectProblem::ServerCertificate, "UnknownIssuer", &resolved());
        assert_eq!(failure.exit, Exit::Unauthenticated);
        assert!(failure.message.contains("/c/ca.crt (from --ca-cert)"), "{}", failure.message);
        let status = tonic::Status::unauthenticated("client certificate rejected: not issued by this master's CA");
        let failure = rpc_failure("ListAgents", &status, &resolved());
        assert_eq!(failure.exit, Exit::Unauthenticated);
        assert!(failure.message.contains("/c/me.crt (from --cert)"), "{}", failure.message);
        assert!(failure.message.contains("not issued by this master's CA"), "{}", failure.message);
    }

    #[test]
    fn the_masters_words_are_passed_on_with_the_call() {
        let cases = [
            (
                tonic::Status::permission_denied("AddManualRoute needs role operator; you are viewer"),
                Exit::PermissionDenied,
                "AddManualRoute: permission denied: AddManualRoute needs role operator; you are viewer",
            ),
            (
                tonic::Status::invalid_argument("service: not a URL"),
                Exit::InvalidArgument,
                "AddManualRoute: invalid argument: service: not a URL",
            ),
            (
                tonic::Status::not_found("no manual route a.example.test"),
                Exit::NotFound,
                "AddManualRoute: not found: no manual route a.example.test",
            ),
            (
                tonic::Status::failed_precondition("agent is revoked"),
                Exit::Conflict,
                "AddManualRoute: refused: agent is revoked",
            ),
            (tonic::Status::internal("boom"), Exit::Failure, "AddManualRoute failed (Internal error): boom"),
        ];
        for (status, exit, message) in cases {
            let failure = rpc_failure("AddManualRoute", &status, &resolved());
            assert_eq!((failure.exit, failure.message.as_str()), (exit, message));
        }
        let broken = tonic::Status::from_error(Box::new(std::io::Error::other("error reading a body from connection")));
        assert_eq!(broken.code(), Code::Unknown);
        assert_eq!(rpc_failure("WatchChanges", &broken, &resolved()).exit, Exit::Unreachable);
        assert_eq!(rpc_failure("X", &tonic::Status::unknown("sent by the master"), &resolved()).exit, Exit::Failure);
        let failure = rpc_failure("WhoAmI", &tonic::Status::unimplemented(""), &resolved());
        assert!(failure.message.contains("does not implement"), "{}", failure.message);
    }
}

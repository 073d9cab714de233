//! Exit codes scripts can rely on: the one table of them (also printed by `dockflare --help`),
//! the one mapping from gRPC status codes to them, and [`Failure`], the error that carries its
//! exit code up to `main`.

use std::fmt;

/// How the process ends. The numbers are a contract: never renumber, only add.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// Done.
    Ok = 0,
    /// Anything not listed below (the message says what).
    Failure = 1,
    /// The command line is wrong (clap's own exit code for usage errors).
    Usage = 2,
    /// The master could not be reached: not running, wrong address, network.
    Unreachable = 3,
    /// No usable identity, the master refused the client certificate, or the master's own
    /// certificate is not signed by the CA the CLI trusts.
    Unauthenticated = 4,
    /// The identity's role does not allow the call.
    PermissionDenied = 5,
    /// The request was refused as invalid (the message names the field).
    InvalidArgument = 6,
    /// What the command names does not exist.
    NotFound = 7,
    /// A precondition failed or the request conflicts with what exists.
    Conflict = 8,
}

impl Exit {
    /// Every exit code, in order (for the help text and its test).
    pub const ALL: [Exit; 9] = [
        Exit::Ok,
        Exit::Failure,
        Exit::Usage,
        Exit::Unreachable,
        Exit::Unauthenticated,
        Exit::PermissionDenied,
        Exit::InvalidArgument,
        Exit::NotFound,
        Exit::Conflict,
    ];

    pub fn code(self) -> u8 {
        self as u8
    }

    /// What the code means, as `--help` and the README say it.
    pub fn meaning(self) -> &'static str {
        match self {
            Exit::Ok => "success",
            Exit::Failure => "any other failure (the message says what)",
            Exit::Usage => "usage error: unknown command or flag, missing or malformed argument",
            Exit::Unreachable => "the master is unreachable (not running, wrong address, network)",
            Exit::Unauthenticated => {
                "not authenticated: no usable identity, the master refused the certificate, \
                 or the master's certificate is not signed by the trusted CA"
            }
            Exit::PermissionDenied => {
                "permission denied: the identity's role may not do this (the message names the role)"
            }
            Exit::InvalidArgument => "invalid argument (the message names the field)",
            Exit::NotFound => "not found",
            Exit::Conflict => "failed precondition or conflict (e.g. already exists, resume revision too old)",
        }
    }
}

/// The exit-code table appended to `dockflare --help`.
pub fn help_text() -> String {
    let mut text = String::from("Exit codes:\n");
    for exit in Exit::ALL {
        text.push_str(&format!("  {}  {}\n", exit.code(), exit.meaning()));
    }
    text
}

/// The exit code for a gRPC status code — the only place this mapping lives.
pub fn exit_for(code: tonic::Code) -> Exit {
    use tonic::Code;
    match code {
        Code::Ok => Exit::Ok,
        Code::Unavailable | Code::DeadlineExceeded => Exit::Unreachable,
        Code::Unauthenticated => Exit::Unauthenticated,
        Code::PermissionDenied => Exit::PermissionDenied,
        Code::InvalidArgument => Exit::InvalidArgument,
        Code::NotFound => Exit::NotFound,
        Code::FailedPrecondition | Code::AlreadyExists | Code::Aborted | Code::OutOfRange => Exit::Conflict,
        Code::Cancelled
        | Code::Unknown
        | Code::ResourceExhausted
        | Code::Unimplemented
        | Code::Internal
        | Code::DataLoss => Exit::Failure,
    }
}

/// An error that knows how the process should end. Anything else ends it with [`Exit::Failure`].
#[derive(Debug)]
pub struct Failure {
    pub exit: Exit,
    pub message: String,
}

impl Failure {
    pub fn new(exit: Exit, message: impl Into<String>) -> Failure {
        Failure { exit, message: message.into() }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

/// The exit code an error ends the process with: that of the first [`Failure`] in its chain.
pub fn exit_of(error: &anyhow::Error) -> Exit {
    error.chain().find_map(|cause| cause.downcast_ref::<Failure>()).map_or(Exit::Failure, |failure| failure.exit)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Code;

    #[test]
    fn grpc_codes_map_to_the_documented_exit_codes() {
        let cases = [
            (Code::Ok, 0),
            (Code::Cancelled, 1),
            (Code::Unknown, 1),
            (Code::InvalidArgument, 6),
            (Code::DeadlineExceeded, 3),
            (Code::NotFound, 7),
            (Code::AlreadyExists, 8),
            (Code::PermissionDenied, 5),
            (Code::ResourceExhausted, 1),
            (Code::FailedPrecondition, 8),
            (Code::Aborted, 8),
            (Code::OutOfRange, 8),
            (Code::Unimplemented, 1),
            (Code::Internal, 1),
            (Code::Unavailable, 3),
            (Code::DataLoss, 1),
            (Code::Unauthenticated, 4),
        ];
        for (code, expected) in cases {
            assert_eq!(exit_for(code).code(), expected, "{code:?}");
        }
    }

    #[test]
    fn the_help_text_lists_every_code_once() {
        let text = help_text();
        for exit in Exit::ALL {
            let line = format!("  {}  {}", exit.code(), exit.meaning());
            assert_eq!(text.matches(&line).count(), 1, "{exit:?} in:\n{text}");
        }
        // Usage errors are clap's: its exit code must be the one documented.
        assert_eq!(
            Exit::Usage.code() as i32,
            clap::error::Error::<clap::error::DefaultFormatter>::new(clap::error::ErrorKind::UnknownArgument)
                .exit_code()
        );
    }

    #[test]
    fn the_first_failure_in_the_chain_decides() {
        let plain = anyhow::anyhow!("boom");
        assert_eq!(exit_of(&plain), Exit::Failure);
        let failure = anyhow::Error::new(Failure::new(Exit::NotFound, "no agent x"));
        assert_eq!(exit_of(&failure), Exit::NotFound);
        let wrapped = failure.context("while listing");
        assert_eq!(exit_of(&wrapped), Exit::NotFound);
    }
}

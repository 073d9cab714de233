//! DockFlare's shared model: who is who (identities), how agents join (join
//! tokens), the certificates that prove it (PKI), and what containers ask
//! for (labels → routes, with diagnostics), errors as one log line, and the
//! retry hint a busy master gives (`retry_pushback`).
//!
//! **Architecture invariant:** this crate does no I/O, except `secret_file`
//! (atomic 0600 writes, shared so both binaries write secrets one way).
//! Sockets, Docker and databases belong to the binaries; everything here is
//! a plain function over values, tested with tables of cases.

pub mod error_text;
pub mod hostname_policy;
pub mod identity;
pub mod join_token;
pub mod labels;
pub mod pki;
pub mod retry_pushback;
pub mod secret_file;
pub mod tls;

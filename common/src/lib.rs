//! DockFlare's shared model: who is who (identities), how agents join (join
//! tokens), the certificates that prove it (PKI), and — in later modules —
//! labels and routes.
//!
//! **Architecture invariant:** this crate does no I/O. Files, sockets, Docker
//! and databases belong to the binaries; everything here is a plain function
//! over values, tested with tables of cases.

pub mod identity;
pub mod join_token;
pub mod pki;

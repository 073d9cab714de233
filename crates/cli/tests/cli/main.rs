//! The `dockflare` binary as an operator runs it: a real master (the `dockflare-master`
//! binary, built by `cargo build --workspace --bins`), the CLI as a process with flags and
//! environment, its stdout, stderr and exit code checked. Waits have deadlines.

mod access;
mod context;
mod fleet;
mod listing;
mod paging;
mod plan;
mod refusals;
mod roles;
mod support;
mod watch;

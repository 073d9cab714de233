//! The DockFlare master as a library: the binary (`main.rs`) parses flags
//! and calls [`server::run`]; tests and benchmarks start the same pieces.

pub mod store;

//! (scenario being written)

//! The agent's edge to the Docker engine: connecting (with API version
//! negotiation), telling standalone from Swarm, turning Docker's objects into
//! reported containers, and the watch loop that keeps the inventory true.

pub mod attach;
pub mod engine;
pub mod network;
pub mod observe;
pub mod reachability;
pub mod watcher;

//! Plain types the layers share (routes; the clock is [`crate::clock`]): no I/O, no gRPC, no SQL.

pub mod route;

//! DockFlare's gRPC contract: the generated messages, clients and servers of
//! `proto/dockflare/v1`, and the encoded file descriptor set for server
//! reflection. Other services depend on this crate to integrate with a master.
//!
//! Messages that carry secrets (join tokens, tunnel tokens) print
//! `[redacted]` in their `Debug` output.

/// `dockflare.v1`: the agent and admin services and their messages.
pub mod v1 {
    #![allow(clippy::doc_lazy_continuation, clippy::large_enum_variant)]
    tonic::include_proto!("dockflare.v1");
}

pub mod codec;
mod redacted_debug;

/// The encoded `FileDescriptorSet` of every `.proto` file under `proto/`,
/// for `tonic-reflection`.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("dockflare_descriptor");

//! Compiles `proto/` into the `dockflare` crate with protox (no system protoc
//! needed) and tonic-prost-build, and writes the encoded descriptor set that
//! server reflection serves.

use prost::Message;
use std::{env, fs, path::PathBuf};

/// Messages whose `Debug` is written by hand to redact a secret field.
const REDACTED_DEBUG: &[&str] =
    &[".dockflare.v1.EnrollRequest", ".dockflare.v1.StartTunnel", ".dockflare.v1.CreateJoinTokenResponse"];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = ["proto/dockflare/v1/types.proto", "proto/dockflare/v1/agent.proto", "proto/dockflare/v1/admin.proto"];
    println!("cargo:rerun-if-changed=proto");
    let descriptors = protox::compile(protos, ["proto"])?;
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    fs::write(out_dir.join("dockflare_descriptor.bin"), descriptors.encode_to_vec())?;

    // Decode errors are INVALID_ARGUMENT, not INTERNAL (src/codec.rs).
    let mut builder =
        tonic_prost_build::configure().build_client(true).build_server(true).codec_path("crate::codec::ProtoCodec");
    for path in REDACTED_DEBUG {
        builder = builder.skip_debug([*path]);
    }
    builder.compile_fds(descriptors)?;
    Ok(())
}

//! Compiles `proto/floor.proto` (the floor baseline's control service) with protox and
//! tonic-prost-build, as the root build script compiles `proto/`: the `dockflare.v1` messages it
//! uses are the `dockflare` crate's (`extern_path`), only the service is generated here.

use std::error::Error;

fn main() -> Result<(), Box<dyn Error>> {
    println!("cargo:rerun-if-changed=proto");
    println!("cargo:rerun-if-changed=../../proto/dockflare/v1");
    let mut descriptors = protox::compile(["floor.proto"], ["proto", "../../proto"])?;
    // The imports are compiled into the `dockflare` crate already.
    descriptors.file.retain(|file| file.package() == "dockflare.bench.v1");
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .extern_path(".dockflare.v1", "::dockflare::v1")
        .codec_path("::dockflare::codec::ProtoCodec")
        .compile_fds(descriptors)?;
    Ok(())
}

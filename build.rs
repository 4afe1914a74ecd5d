//! Compiles `proto/` into Rust with a pure-Rust protobuf compiler (protox), so that no
//! system `protoc` is needed.

use std::{env, fs, path::PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "proto/entente/v1/report.proto",
        "proto/entente/v1/watchlist.proto",
        "proto/entente/v1/lifecycle.proto",
        "proto/entente/v1/item.proto",
        "proto/entente/v1/envelope.proto",
        "proto/entente/v1/keys.proto",
        "proto/entente/v1/peer.proto",
        "proto/entente/v1/control.proto",
    ];
    for file in &files {
        println!("cargo:rerun-if-changed={file}");
    }
    let descriptors = protox::compile(files, ["proto"])?;
    let out = PathBuf::from(env::var("OUT_DIR")?);
    fs::write(
        out.join("entente_descriptor.bin"),
        prost::Message::encode_to_vec(&descriptors),
    )?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(descriptors)?;
    Ok(())
}

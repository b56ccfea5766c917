//! Compiles the `.proto` files with `protox` (pure Rust), so building needs no system `protoc`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "hotpocket/v1/common.proto",
        "hotpocket/v1/consensusd.proto",
        "hotpocket/v1/execd.proto",
        "hotpocket/v1/userd.proto",
        "hotpocket/v1/supervisor.proto",
        "hotpocket/v1/peer.proto",
    ];
    for file in files {
        println!("cargo:rerun-if-changed={file}");
    }
    let descriptors = protox::compile(files, ["."])?;
    tonic_prost_build::configure().bytes(".").compile_fds(descriptors)?;
    Ok(())
}

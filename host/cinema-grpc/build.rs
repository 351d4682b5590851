//! Compiles proto/cinema.proto with protox (pure Rust), so building needs
//! no system `protoc`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto_dir = "../../proto";
    let file_descriptors = protox::compile(["cinema.proto"], [proto_dir])?;
    tonic_prost_build::configure().compile_fds(file_descriptors)?;
    println!("cargo:rerun-if-changed={proto_dir}/cinema.proto");
    Ok(())
}

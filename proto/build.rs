//! Compiles the control API's .proto into Rust (client and server), with protoc from the system.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=ephemerd/v1/control.proto");
    tonic_prost_build::configure().compile_protos(&["ephemerd/v1/control.proto"], &["."])?;
    Ok(())
}

//! Compiles the .proto contracts into Rust with protox, a protobuf compiler written in Rust that carries
//! the well-known types: no system protoc is needed, on any platform. The control API (client and server)
//! is always built; containerd's API (clients only) with the `containerd` feature, and the worker's Dispatch
//! API (client and server) with the `dispatch` feature, which only the daemon enables.

const CONTROL: &[&str] = &["ephemerd/v1/control.proto"];
const DISPATCH: &[&str] = &["ephemerd/dispatch/v1/dispatch.proto"];
const CONTAINERD: &[&str] = &[
    "containerd/services/containers.proto",
    "containerd/services/content.proto",
    "containerd/services/diff.proto",
    "containerd/services/images.proto",
    "containerd/services/introspection.proto",
    "containerd/services/leases.proto",
    "containerd/services/snapshots.proto",
    "containerd/services/tasks.proto",
    "containerd/services/version.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    for dir in ["ephemerd", "containerd", "google"] {
        println!("cargo:rerun-if-changed={dir}");
    }
    let control = protox::compile(CONTROL, ["."])?;
    tonic_prost_build::configure().compile_fds(control)?;
    if std::env::var_os("CARGO_FEATURE_DISPATCH").is_some() {
        let dispatch = protox::compile(DISPATCH, ["."])?;
        tonic_prost_build::configure().compile_fds(dispatch)?;
    }
    if std::env::var_os("CARGO_FEATURE_CONTAINERD").is_some() {
        let containerd = protox::compile(CONTAINERD, ["."])?;
        tonic_prost_build::configure().build_server(false).compile_fds(containerd)?;
    }
    Ok(())
}

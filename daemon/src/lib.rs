//! ephemerd: runs forge CI jobs on your own machine, one fresh, isolated container per job.
//!
//! The library holds everything; `main.rs` only parses the command line and reports errors.
//! See ARCHITECTURE.md at the repository root for the map.

pub mod config;
pub mod control;
pub mod dispatch;
pub mod forge;
pub mod history;
pub mod instance;
pub mod job;
pub mod platform;
pub mod runner;
/// Containers on this machine's containerd: Linux only (elsewhere jobs run in a Linux worker).
#[cfg(target_os = "linux")]
pub mod runtime;
pub mod scheduler;
pub mod secrets;
#[cfg(target_os = "linux")]
pub mod secrets_systemd;
pub mod serve;
pub mod service;
pub mod store;
pub mod target;
pub mod webhook;
pub mod worker;
pub mod workflow;

/// Installs the process-wide TLS crypto provider (ring) that the HTTP clients (registry, GitHub, runner
/// download) need; calling it again is a no-op.
pub fn install_tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

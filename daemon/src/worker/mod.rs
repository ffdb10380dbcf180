//! Linux workers this daemon boots and drives over Dispatch. A [`Host`] boots one worker and says whether
//! it still runs: [`namespace::NamespaceHost`] here on Linux (the stand-in for the WSL distro, in
//! namespaces and a root of its own); the WSL distro and the VM are its other sides to come.
//! [`WorkerTarget`] is the [`Target`](crate::target::Target) over whichever host: it boots the worker
//! when a job needs it and again after it died, and speaks to it through a
//! [`RemoteTarget`](crate::dispatch::RemoteTarget).

#[cfg(target_os = "linux")]
pub mod enter;
#[cfg(target_os = "linux")]
pub mod link;
#[cfg(target_os = "linux")]
pub mod namespace;
pub mod target;

pub use target::WorkerTarget;

use crate::dispatch::auth::Token;

#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("the worker's root filesystem {path}: {message}")]
    Rootfs { path: std::path::PathBuf, message: String },
    #[cfg(target_os = "linux")]
    #[error(transparent)]
    Link(#[from] link::LinkError),
    #[error("the worker did not start: {0}")]
    Start(String),
    #[error("{0}")]
    Io(String),
}

/// A booted worker: where its Dispatch service is, and its boot's token.
pub struct Booted {
    pub addr: String,
    pub token: Token,
}

/// Boots a Linux worker and watches it.
#[async_trait::async_trait]
pub trait Host: Send + Sync {
    /// What the worker is, for messages (`namespace worker`).
    fn kind(&self) -> &'static str;
    /// Boots a fresh worker, stopping one still there (of an earlier boot, or of a crashed daemon).
    async fn boot(&self) -> Result<Booted, HostError>;
    /// Whether the worker booted last still runs.
    fn alive(&self) -> bool;
    /// Stops the worker (gracefully, then hard) and removes every host object of it. Idempotent.
    async fn stop(&self) -> Result<(), HostError>;
}

//! Linux workers this daemon boots and drives over Dispatch. A [`Host`] boots one worker and says whether
//! it still runs: [`namespace::NamespaceHost`] here on Linux (the stand-in for the WSL distro, in
//! namespaces and a root of its own), [`vm::VmHost`] (a VM, on Linux under QEMU); the WSL distro is
//! its other side to come.
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
pub mod vm;

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

/// Where a worker is, as `ephemerd status` and the tray show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkerState {
    Stopped,
    Booting,
    Ready,
    Stopping,
}

/// A worker as `ephemerd status` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerStatus {
    /// What it is (`worker VM`).
    pub name: String,
    pub state: WorkerState,
    /// False when the worker that was ready has died (the next job boots another).
    pub healthy: bool,
    /// What runs it, and when it stops (`qemu (tcg) · stops after 5m idle`).
    pub detail: String,
}

/// Boots a Linux worker and watches it.
#[async_trait::async_trait]
pub trait Host: Send + Sync {
    /// What the worker is, for messages (`namespace worker`).
    fn kind(&self) -> &'static str;
    /// What runs it, for `ephemerd status` (`qemu (tcg)`).
    fn backend(&self) -> String;
    /// Boots a fresh worker, stopping one still there (of an earlier boot, or of a crashed daemon).
    async fn boot(&self) -> Result<Booted, HostError>;
    /// Whether the worker booted last still runs.
    fn alive(&self) -> bool;
    /// Stops the worker (gracefully, then hard) and removes every host object of it. Idempotent.
    async fn stop(&self) -> Result<(), HostError>;
    /// Whether every boot starts from a clean disk (a VM's throwaway overlay), so a worker that is not
    /// running has left nothing of its jobs to reconcile.
    fn clean_each_boot(&self) -> bool {
        false
    }
    /// Whether anything of a worker is on this machine (a crashed daemon's, for `ephemerd cleanup`).
    async fn present(&self) -> bool;
}

/// A host, and a line saying what it is.
pub type Described = (std::sync::Arc<dyn Host>, String);

/// Every worker `cfg` asks for: the one of `[worker] mode` (`None` for local jobs), and the worker VM of
/// the profiles with `isolation = "vm"` when the mode's worker is not that VM already.
#[cfg(target_os = "linux")]
pub struct Hosts {
    pub mode: Option<Described>,
    pub vm: Option<Described>,
}

#[cfg(target_os = "linux")]
pub fn hosts_of(
    cfg: &crate::config::Config,
    dirs: &crate::platform::DataDirs,
    log_level: &str,
) -> Result<Hosts, HostError> {
    use crate::config::WorkerMode;
    let mode = host_of(cfg, cfg.worker.mode, dirs, log_level)?;
    let vm = match cfg.worker.mode != WorkerMode::Vm && cfg.wants_vm() {
        true => host_of(cfg, WorkerMode::Vm, dirs, log_level)?,
        false => None,
    };
    Ok(Hosts { mode, vm })
}

/// The worker of `mode`, as `cfg` sets it up (`None` for local jobs), and a line saying what it is.
#[cfg(target_os = "linux")]
pub fn host_of(
    cfg: &crate::config::Config,
    mode: crate::config::WorkerMode,
    dirs: &crate::platform::DataDirs,
    log_level: &str,
) -> Result<Option<Described>, HostError> {
    use crate::config::WorkerMode;
    match mode {
        WorkerMode::Local => Ok(None),
        WorkerMode::Namespace => {
            let host = namespace::NamespaceHost::new(cfg, dirs, log_level)?;
            let what = format!("a namespace worker on {}", host.link().net);
            Ok(Some((std::sync::Arc::new(host), what)))
        }
        WorkerMode::Vm => {
            let dir = cfg.worker.vm_image.clone().unwrap_or_default();
            let set = vm::qemu::BootSet::in_dir(&dir)?;
            let (accel, why) = vm::qemu::pick_accel(vm::qemu::Accel::wanted(cfg.worker.accel));
            let id = crate::runtime::instance::Instance::of(dirs).id().to_string();
            let qemu = vm::qemu::QemuVm::new(dirs.root.join("vm"), format!("ephemerd-{id}-vm"), set, accel);
            let host = vm::VmHost::new(Box::new(qemu), cfg, dirs, log_level)?;
            let what = format!("a worker VM under QEMU with {why}, on {}", host.link().net);
            Ok(Some((std::sync::Arc::new(host), what)))
        }
        WorkerMode::Wsl => Err(HostError::Start("worker.mode \"wsl\" is not built yet".into())),
    }
}

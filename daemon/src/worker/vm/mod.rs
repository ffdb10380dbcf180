//! The worker VM: the worker rootfs booted as a Linux VM of its own, on demand. [`LinuxVm`] is the seam
//! between what every VM backend does alike (here: the boot config and its one-shot disk, the host disk,
//! the link, waiting for the worker, the state a user sees) and the hypervisor calls of one backend:
//! [`qemu::QemuVm`] on Linux; the macOS Virtualization.framework backend is its other side to come.
//! [`VmHost`] is the [`Host`] over any `LinuxVm`, so the [`WorkerTarget`](super::WorkerTarget) boots and
//! drives a VM exactly as it does a namespace worker.

pub mod boot;
#[cfg(target_os = "linux")]
pub mod guest;
#[cfg(target_os = "linux")]
pub mod hostdisk;
#[cfg(target_os = "linux")]
pub mod qemu;
#[cfg(target_os = "linux")]
pub mod store;

use std::path::PathBuf;

use super::HostError;

/// One boot's machine and its devices (the token travels on `boot_disk`, never here).
#[derive(Debug, Clone)]
pub struct VmSpec {
    pub cpus: u32,
    pub memory_mib: u64,
    /// The read-only host disk (see `hostdisk`).
    pub host_disk: PathBuf,
    /// The one-shot config disk (see [`boot`]).
    pub boot_disk: PathBuf,
    /// The image store (see `store`): attached itself when `prepare_store`, else the boot gets a
    /// throwaway overlay of it.
    pub store: PathBuf,
    pub prepare_store: bool,
    /// Where the guest's console goes.
    pub console: PathBuf,
    /// The tap device of the link.
    pub tap: String,
}

/// A hypervisor backend: starts and stops one VM of an instance.
#[async_trait::async_trait]
pub trait LinuxVm: Send + Sync {
    /// What runs the VM, for messages and `doctor` (`qemu (kvm)`).
    fn backend(&self) -> &'static str;
    /// Starts the VM on fresh copy-on-write overlays of the base disk and (unless it prepares it) the
    /// image store.
    async fn start(&self, spec: &VmSpec) -> Result<(), HostError>;
    /// Whether the VM started last still runs; why not otherwise.
    fn running(&self) -> Result<(), String>;
    /// What the hypervisor said when it exited.
    async fn exit_reason(&self) -> String;
    /// Stops the VM (gracefully, then hard), also one a crashed daemon left, and deletes its overlays.
    async fn stop(&self) -> Result<(), HostError>;
    /// The files a running VM has (all gone once stopped).
    fn files(&self) -> Vec<PathBuf>;
}

#[cfg(target_os = "linux")]
mod host;
#[cfg(target_os = "linux")]
pub use host::VmHost;

//! What a VM boot is told, and how: the boot config (its token, its address on the link, its resolvers,
//! its data dir and the worker's config) travels on a one-shot config disk, a small raw image attached
//! read-write with the virtio serial [`SERIAL`]. The guest's `vm-init` reads it, then zeroes it; the host
//! deletes the file once the worker answers. Never the kernel command line, never an environment.
//! Platform-independent, shared by every [`LinuxVm`](super::LinuxVm) backend.

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

/// The config disk's virtio serial number.
pub const SERIAL: &str = "ephemerd-boot";
/// The config disk's size: the JSON, then zeros.
pub const DISK_SIZE: usize = 64 * 1024;
/// What a boot that prepared the image store writes at the start of its config disk once it is done.
pub const PREPARED: &[u8] = b"ephemerd image store prepared\n";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BootConfig {
    /// The boot's token, hex (the one secret here).
    pub token: String,
    /// The guest's address on the link, its prefix length and its gateway (this machine's end).
    pub address: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Ipv4Addr,
    pub dns: Vec<Ipv4Addr>,
    pub hostname: String,
    /// The Dispatch port the worker listens on, on `address`.
    pub port: u16,
    /// The worker's data dir in the guest, and its config file's text.
    pub data_dir: String,
    pub config: String,
    pub log_level: String,
    /// Image archives to import, as paths in the guest (only when `prepare_store`).
    pub imports: Vec<String>,
    /// This boot prepares the image store and runs no job: it formats the blank store disk, imports
    /// `imports` onto it, writes [`PREPARED`] on the config disk and powers off. Otherwise the boot
    /// mounts its overlay of the prepared store as the worker's containerd root.
    pub prepare_store: bool,
    /// This machine's clock at boot (ns since the epoch): the guest starts from it.
    pub time_nanos: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum BootError {
    #[error("the boot config does not fit its disk ({0} bytes, at most {DISK_SIZE})")]
    TooBig(usize),
    #[error("the config disk holds no boot config (it was read already, or never written)")]
    Empty,
    #[error("the boot config is not valid: {0}")]
    Invalid(String),
}

impl BootConfig {
    /// The config disk's bytes (pure; tested below).
    pub fn to_disk(&self) -> Result<Vec<u8>, BootError> {
        let mut bytes = serde_json::to_vec(self).map_err(|e| BootError::Invalid(e.to_string()))?;
        if bytes.len() >= DISK_SIZE {
            return Err(BootError::TooBig(bytes.len()));
        }
        bytes.resize(DISK_SIZE, 0);
        Ok(bytes)
    }

    /// Reads it back from the disk's bytes (up to the first zero byte).
    pub fn from_disk(bytes: &[u8]) -> Result<Self, BootError> {
        let end = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
        if end == 0 {
            return Err(BootError::Empty);
        }
        serde_json::from_slice(&bytes[..end]).map_err(|e| BootError::Invalid(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> BootConfig {
        BootConfig {
            token: "ab".repeat(32),
            address: Ipv4Addr::new(10, 230, 7, 2),
            prefix: 30,
            gateway: Ipv4Addr::new(10, 230, 7, 1),
            dns: vec![Ipv4Addr::new(10, 255, 255, 53)],
            hostname: "ephemerd-worker".into(),
            port: 7411,
            data_dir: "/var/lib/ephemerd/abc".into(),
            config: "[network]\nsubnet = \"10.99.0.0/24\"\n".into(),
            log_level: "info".into(),
            imports: vec!["/usr/lib/ephemerd/host/images/0.tar".into()],
            prepare_store: true,
            time_nanos: 1_700_000_000_000_000_000,
        }
    }

    #[test]
    fn the_boot_config_goes_through_its_disk_and_a_zeroed_disk_holds_none() {
        let c = config();
        let disk = c.to_disk().unwrap();
        assert_eq!(disk.len(), DISK_SIZE);
        assert_eq!(BootConfig::from_disk(&disk).unwrap(), c);
        assert!(matches!(BootConfig::from_disk(&vec![0; DISK_SIZE]), Err(BootError::Empty)));
        assert!(matches!(BootConfig::from_disk(b"{\"token\": 1}\0"), Err(BootError::Invalid(_))));
    }

    #[test]
    fn a_boot_config_too_big_for_its_disk_is_refused() {
        let mut c = config();
        c.config = "x".repeat(DISK_SIZE);
        assert!(matches!(c.to_disk(), Err(BootError::TooBig(_))));
    }
}

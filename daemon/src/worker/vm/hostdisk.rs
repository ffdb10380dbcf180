//! The host disk: what the VM takes from this machine, on a read-only ext4 image attached with the virtio
//! serial `ephemerd-host`: the daemon's own binary (`/ephemerd`, which the guest runs as its pid 1 and
//! its worker), the runner tree (`/runner`) and the image archives to import (`/images/<n>.tar`). It is
//! made again only when one of those changed (a stamp of their paths, sizes and times), so a boot pays
//! nothing for it. No share of this machine's file system is open to the guest.

use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use sha2::{Digest, Sha256};

use super::super::HostError;

/// The host disk's virtio serial.
pub const SERIAL: &str = "ephemerd-host";

/// What goes on the host disk.
pub struct Inputs<'a> {
    pub exe: &'a Path,
    pub runner: Option<&'a Path>,
    pub images: &'a [PathBuf],
}

impl Inputs<'_> {
    /// The image archives' paths in the guest.
    pub fn imports(&self) -> Vec<String> {
        (0..self.images.len()).map(|n| format!("{}/images/{n}.tar", super::guest::HOST_DIR)).collect()
    }

    /// A digest of every input's path, size and modification time.
    fn stamp(&self) -> std::io::Result<String> {
        let mut h = Sha256::new();
        let mut add = |p: &Path| identify(&mut h, p);
        add(self.exe)?;
        if let Some(r) = self.runner {
            for p in walk(r)? {
                add(&p)?;
            }
        }
        for i in self.images {
            add(i)?;
        }
        Ok(hex::encode(h.finalize()))
    }
}

/// Adds a file's path, size and modification time to `h`.
pub(super) fn identify(h: &mut Sha256, p: &Path) -> std::io::Result<()> {
    let m = std::fs::symlink_metadata(p)?;
    let t = m.modified().ok().and_then(|t| t.duration_since(UNIX_EPOCH).ok()).unwrap_or_default();
    h.update(format!("{}\0{}\0{}\n", p.display(), m.len(), t.as_nanos()));
    Ok(())
}

fn walk(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out = vec![dir.to_path_buf()];
    let mut i = 0;
    while i < out.len() {
        let p = out[i].clone();
        i += 1;
        if std::fs::symlink_metadata(&p)?.is_dir() {
            let mut entries: Vec<PathBuf> = std::fs::read_dir(&p)?.flatten().map(|e| e.path()).collect();
            entries.sort();
            out.extend(entries);
        }
    }
    Ok(out)
}

pub(super) fn err(path: &Path, message: impl std::fmt::Display) -> HostError {
    HostError::Rootfs { path: path.to_path_buf(), message: format!("the VM's host disk: {message}") }
}

async fn run(cmd: &mut tokio::process::Command, what: &str, disk: &Path) -> Result<(), HostError> {
    let out = cmd.output().await.map_err(|e| err(disk, format!("cannot run {what}: {e}")))?;
    if !out.status.success() {
        return Err(err(disk, format!("{what}: {}", String::from_utf8_lossy(&out.stderr).trim())));
    }
    Ok(())
}

/// Makes `disk` from `inputs` unless it was made from these very inputs.
pub async fn ensure(disk: &Path, inputs: &Inputs<'_>) -> Result<(), HostError> {
    let stamp_path = disk.with_extension("stamp");
    let stamp = inputs.stamp().map_err(|e| err(disk, format!("reading its inputs: {e}")))?;
    if disk.is_file() && std::fs::read_to_string(&stamp_path).is_ok_and(|s| s.trim() == stamp) {
        return Ok(());
    }
    tracing::info!(disk = %disk.display(), "making the VM's host disk");
    let staging = disk.with_extension("staging");
    if staging.exists() {
        std::fs::remove_dir_all(&staging).map_err(|e| err(&staging, e))?;
    }
    std::fs::create_dir_all(staging.join("images")).map_err(|e| err(&staging, e))?;
    let copy = |from: &Path, to: PathBuf| {
        let mut c = tokio::process::Command::new("cp");
        c.args(["-a", "--reflink=auto"]).arg(from).arg(to);
        c
    };
    run(&mut copy(inputs.exe, staging.join("ephemerd")), "cp", disk).await?;
    if let Some(r) = inputs.runner {
        run(&mut copy(r, staging.join("runner")), "cp", disk).await?;
    }
    for (n, img) in inputs.images.iter().enumerate() {
        run(&mut copy(img, staging.join(format!("images/{n}.tar"))), "cp", disk).await?;
    }
    let used: u64 = walk(&staging)
        .map_err(|e| err(&staging, e))?
        .iter()
        .filter_map(|p| std::fs::symlink_metadata(p).ok())
        .map(|m| m.len().div_ceil(4096) * 4096 + 256)
        .sum();
    let size = (used + used / 8 + (32 << 20)).div_ceil(1 << 20);
    let tmp = disk.with_extension("new");
    let _ = std::fs::remove_file(&tmp);
    let mut mkfs = tokio::process::Command::new("mkfs.ext4");
    mkfs.args(["-q", "-F", "-O", "^has_journal", "-m", "0", "-L", "ephemerd-host", "-d"])
        .arg(&staging)
        .arg(&tmp)
        .arg(format!("{size}M"));
    let made = run(&mut mkfs, "mkfs.ext4", disk).await;
    let _ = std::fs::remove_dir_all(&staging);
    made?;
    std::fs::rename(&tmp, disk).map_err(|e| err(disk, e))?;
    std::fs::write(&stamp_path, format!("{stamp}\n")).map_err(|e| err(&stamp_path, e))?;
    Ok(())
}

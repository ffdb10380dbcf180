//! The image store: the worker VM's containerd root (its content, snapshots and metadata) on a disk of
//! its own, `DATA/vm/store.img` (raw ext4, sparse, `[worker] disk` in size), attached with the virtio
//! serial [`SERIAL`]. The job images are imported onto it once, by a boot that runs no job (the
//! `prepare_store` boot); every job boot then runs on a throwaway qcow2 overlay of it, so its images are
//! there at once, and what its jobs write goes away with the overlay. No job ever runs in a VM that can
//! write the store itself. The store is made again only when what it was made from changed: the base
//! disk, the binary that imported the images, the image archives and the disk size (its stamp).

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::hostdisk::{self, Inputs};
use crate::worker::HostError;

/// The store disk's virtio serial.
pub const SERIAL: &str = "ephemerd-store";

/// The stamp of a store made from `base` (the boot set's base disk) and `inputs`, `size` bytes big.
pub fn stamp(base: &Path, inputs: &Inputs<'_>, size: u64) -> Result<String, HostError> {
    let mut h = Sha256::new();
    let mut add = |p: &Path| hostdisk::identify(&mut h, p).map_err(|e| hostdisk::err(p, e));
    add(base)?;
    add(inputs.exe)?;
    for i in inputs.images {
        add(i)?;
    }
    h.update(format!("size {size}\n"));
    Ok(hex::encode(h.finalize()))
}

fn stamp_path(store: &Path) -> PathBuf {
    store.with_extension("stamp")
}

/// Whether `store` is there and was made with this very stamp.
pub fn current(store: &Path, stamp: &str) -> bool {
    store.is_file() && std::fs::read_to_string(stamp_path(store)).is_ok_and(|s| s.trim() == stamp)
}

/// A blank (sparse) disk of `size` bytes at `path`, for a `prepare_store` boot to format.
pub fn blank(path: &Path, size: u64) -> Result<(), HostError> {
    let io = |e: std::io::Error| HostError::Io(format!("making the image store {}: {e}", path.display()));
    let _ = std::fs::remove_file(path);
    let f = std::fs::OpenOptions::new().write(true).create_new(true).open(path).map_err(io)?;
    f.set_len(size).map_err(io)
}

/// Puts the store `prepared` in place as `store`, made with `stamp`.
pub fn install(prepared: &Path, store: &Path, stamp: &str) -> Result<(), HostError> {
    let io = |p: &Path, e: std::io::Error| HostError::Io(format!("{}: {e}", p.display()));
    let stamp_file = stamp_path(store);
    let _ = std::fs::remove_file(&stamp_file);
    std::fs::rename(prepared, store).map_err(|e| io(store, e))?;
    std::fs::write(&stamp_file, format!("{stamp}\n")).map_err(|e| io(&stamp_file, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_is_current_only_with_its_own_stamp_and_changes_with_its_inputs() {
        let d = tempfile::tempdir().unwrap();
        let (base, exe, img) = (d.path().join("base.img"), d.path().join("ephemerd"), d.path().join("0.tar"));
        for f in [&base, &exe, &img] {
            std::fs::write(f, "x").unwrap();
        }
        let images = vec![img.clone()];
        let inputs = Inputs { exe: &exe, runner: None, images: &images };
        let s = stamp(&base, &inputs, 1 << 30).unwrap();
        assert_ne!(s, stamp(&base, &inputs, 2 << 30).unwrap(), "the size is in the stamp");
        let store = d.path().join("store.img");
        assert!(!current(&store, &s));
        let new = d.path().join("store.new");
        blank(&new, 1 << 30).unwrap();
        assert_eq!(std::fs::metadata(&new).unwrap().len(), 1 << 30);
        install(&new, &store, &s).unwrap();
        assert!(current(&store, &s));
        std::fs::write(&img, "another image").unwrap();
        assert!(!current(&store, &stamp(&base, &inputs, 1 << 30).unwrap()), "a changed image makes it stale");
    }
}

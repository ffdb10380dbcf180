//! Remapped image snapshots, for jobs in a user namespace: the image's unpacked top snapshot with every
//! file's owner shifted up by the instance's uid base (root's files become the base's, and so on), made
//! once per image and base and kept as a committed snapshot of its own. Every job's rootfs is then
//! prepared on it, so inside the job the files belong to the job's root, and on the host to an
//! unprivileged uid. The image's config blob carries a GC reference to it, so it lives exactly as long as
//! the image does. containerd 1.6 has no remapping snapshotter; this is what its Go client's
//! `WithRemappedSnapshot` does, client-side: prepare, mount, chown, commit.

use std::collections::HashMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use ephemerd_proto::ctr::snapshots::v1::{
    CommitSnapshotRequest, PrepareSnapshotRequest, RemoveSnapshotRequest, StatSnapshotRequest,
};
use ephemerd_proto::ctr::types::Mount;
use nix::mount::{MntFlags, MsFlags};
use oci_spec::image::ImageManifest;

use super::client::{Containerd, CtrError, SNAPSHOTTER};
use super::{Image, content};

/// How many ids the job's user namespace maps (0..65536 inside).
pub const RANGE: u32 = crate::instance::UID_RANGE;

#[derive(Debug, thiserror::Error)]
pub enum RemapError {
    #[error(transparent)]
    Ctr(#[from] CtrError),
    #[error("remapping image {image} for uid {base}: {message}")]
    Io { image: String, base: u32, message: String },
}

/// The name of an image's remapped snapshot for `base`.
pub fn snapshot_name(chain_id: &str, base: u32) -> String {
    format!("{chain_id}-remap-{base}")
}

/// The remapped snapshot of `image` for `base`, made if it is not there yet. Callers serialise calls for
/// one image (two concurrent makers would both do the work; the second commit is then dropped).
/// `scratch` is a directory of ours to mount the snapshot under while it is shifted.
pub async fn ensure(
    ctr: &Containerd,
    image: &Image,
    base: u32,
    lease: &str,
    scratch: &Path,
) -> Result<String, RemapError> {
    let name = snapshot_name(&image.chain_id, base);
    let stat =
        ctr.snapshots().stat(ctr.req(StatSnapshotRequest { snapshotter: SNAPSHOTTER.into(), key: name.clone() })).await;
    match stat {
        Ok(_) => return Ok(name),
        Err(s) if s.code() == tonic::Code::NotFound => {}
        Err(s) => return Err(CtrError::rpc("stat remapped snapshot")(s).into()),
    }
    let io = |message: String| RemapError::Io { image: image.name.clone(), base, message };
    let key = format!("{name}-making-{:08x}", rand::random::<u32>());
    let mounts = ctr
        .snapshots()
        .prepare(ctr.leased(
            PrepareSnapshotRequest {
                snapshotter: SNAPSHOTTER.into(),
                key: key.clone(),
                parent: image.chain_id.clone(),
                labels: HashMap::new(),
            },
            lease,
        ))
        .await
        .map_err(CtrError::rpc("prepare snapshot to remap"))?
        .into_inner()
        .mounts;
    let started = std::time::Instant::now();
    let target = scratch.join(format!("remap-{:08x}", rand::random::<u32>()));
    let shifted = tokio::task::spawn_blocking(move || shift_mounted(&mounts, base, &target))
        .await
        .map_err(|e| io(e.to_string()))
        .and_then(|r| r.map_err(io));
    let remove = || async {
        let _ = ctr
            .snapshots()
            .remove(ctr.req(RemoveSnapshotRequest { snapshotter: SNAPSHOTTER.into(), key: key.clone() }))
            .await;
    };
    let files = match shifted {
        Ok(n) => n,
        Err(e) => {
            remove().await;
            return Err(e);
        }
    };
    let commit = ctr
        .snapshots()
        .commit(ctr.leased(
            CommitSnapshotRequest {
                snapshotter: SNAPSHOTTER.into(),
                name: name.clone(),
                key: key.clone(),
                labels: HashMap::new(),
            },
            lease,
        ))
        .await;
    match commit {
        Ok(_) => {}
        Err(s) if s.code() == tonic::Code::AlreadyExists => remove().await,
        Err(s) => {
            remove().await;
            return Err(CtrError::rpc("commit remapped snapshot")(s).into());
        }
    }
    // The image's config keeps the remapped snapshot alive (and lets it go with the image).
    let manifest: ImageManifest = serde_json::from_slice(&content::read_all(ctr, &image.manifest_digest).await?)
        .map_err(|e| io(format!("manifest: {e}")))?;
    let label = format!("containerd.io/gc.ref.snapshot.{SNAPSHOTTER}/remap-{base}");
    content::set_labels(ctr, manifest.config().digest().as_ref(), HashMap::from([(label, name.clone())])).await?;
    tracing::info!(image = %image.name, base, files, ms = started.elapsed().as_millis() as u64, "image remapped for user namespaces");
    Ok(name)
}

/// Mounts the prepared snapshot on a temporary directory, shifts every owner, unmounts. Returns the number
/// of entries shifted.
fn shift_mounted(mounts: &[Mount], base: u32, target: &Path) -> Result<u64, String> {
    std::fs::create_dir_all(target).map_err(|e| format!("{}: {e}", target.display()))?;
    let r = shift_mounted_at(mounts, base, target);
    let _ = std::fs::remove_dir(target);
    r
}

fn shift_mounted_at(mounts: &[Mount], base: u32, target: &Path) -> Result<u64, String> {
    let m = mounts.first().ok_or("containerd gave no mount for the snapshot")?;
    let flags =
        if m.options.iter().any(|o| o == "rbind") { MsFlags::MS_BIND | MsFlags::MS_REC } else { MsFlags::empty() };
    let data: Vec<&str> =
        m.options.iter().map(String::as_str).filter(|o| !matches!(*o, "rbind" | "bind" | "rw")).collect();
    let data = data.join(",");
    let fstype = if m.r#type == "bind" { None } else { Some(m.r#type.as_str()) };
    let flags = if m.r#type == "bind" { flags | MsFlags::MS_BIND } else { flags };
    nix::mount::mount(Some(m.source.as_str()), target, fstype, flags, (!data.is_empty()).then_some(data.as_str()))
        .map_err(|e| format!("mounting the snapshot ({}): {e}", m.r#type))?;
    let shifted = shift_tree(target, base);
    let unmounted = nix::mount::umount2(target, MntFlags::empty()).map_err(|e| format!("unmounting: {e}"));
    let n = shifted?;
    unmounted?;
    Ok(n)
}

/// The id a file's owner gets: shifted into the job's range; one already there (or beyond the range) stays.
pub fn shifted(id: u32, base: u32) -> u32 {
    if id < RANGE { id + base } else { id }
}

/// Shifts the owner of `root` and everything under it (symlinks themselves, never their targets), keeping
/// setuid/setgid bits, which a chown clears.
pub fn shift_tree(root: &Path, base: u32) -> Result<u64, String> {
    let mut stack: Vec<PathBuf> = vec![root.to_path_buf()];
    let mut n = 0u64;
    while let Some(p) = stack.pop() {
        let md = std::fs::symlink_metadata(&p).map_err(|e| format!("{}: {e}", p.display()))?;
        let (uid, gid) = (shifted(md.uid(), base), shifted(md.gid(), base));
        if (uid, gid) != (md.uid(), md.gid()) {
            std::os::unix::fs::lchown(&p, Some(uid), Some(gid)).map_err(|e| format!("chown {}: {e}", p.display()))?;
            let mode = md.mode() & 0o7777;
            if !md.file_type().is_symlink() && mode & 0o6000 != 0 {
                std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode))
                    .map_err(|e| format!("chmod {}: {e}", p.display()))?;
            }
            n += 1;
        }
        if md.is_dir() {
            for e in std::fs::read_dir(&p).map_err(|e| format!("{}: {e}", p.display()))? {
                stack.push(e.map_err(|e| e.to_string())?.path());
            }
        }
    }
    Ok(n)
}

/// What a tree looks like, cheaply: entries, bytes and the newest change, with the path it was read from.
fn fingerprint(root: &Path) -> Result<String, String> {
    let (mut entries, mut bytes, mut newest) = (0u64, 0u64, 0i64);
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        let md = std::fs::symlink_metadata(&p).map_err(|e| format!("{}: {e}", p.display()))?;
        entries += 1;
        bytes += md.size();
        newest = newest.max(md.mtime()).max(md.ctime());
        if md.is_dir() {
            for e in std::fs::read_dir(&p).map_err(|e| format!("{}: {e}", p.display()))? {
                stack.push(e.map_err(|e| e.to_string())?.path());
            }
        }
    }
    Ok(format!("{} {entries} {bytes} {newest}", root.display()))
}

/// A copy of the tree at `src` at `dst`, owners shifted by `base`, for jobs in a user namespace to use as
/// an overlay's lower layer (a host-owned tree would be nobody's inside, and unwritable through the
/// overlay). Made again only when `src` changed since the last copy.
pub fn shifted_copy(src: &Path, dst: &Path, base: u32) -> Result<(), String> {
    let stamp = dst.with_extension("source");
    let want = fingerprint(src)?;
    if dst.is_dir() && std::fs::read_to_string(&stamp).is_ok_and(|s| s == want) {
        return Ok(());
    }
    if dst.exists() {
        std::fs::remove_dir_all(dst).map_err(|e| format!("{}: {e}", dst.display()))?;
    }
    copy_tree(src, dst)?;
    shift_tree(dst, base)?;
    std::fs::write(&stamp, want).map_err(|e| format!("{}: {e}", stamp.display()))
}

fn copy_tree(src: &Path, dst: &Path) -> Result<(), String> {
    let err = |p: &Path, e: std::io::Error| format!("copying {}: {e}", p.display());
    let md = std::fs::symlink_metadata(src).map_err(|e| err(src, e))?;
    if md.file_type().is_symlink() {
        std::os::unix::fs::symlink(std::fs::read_link(src).map_err(|e| err(src, e))?, dst).map_err(|e| err(dst, e))?;
    } else if md.is_dir() {
        std::fs::create_dir(dst).map_err(|e| err(dst, e))?;
        for e in std::fs::read_dir(src).map_err(|e| err(src, e))? {
            let e = e.map_err(|e| err(src, e))?;
            copy_tree(&e.path(), &dst.join(e.file_name()))?;
        }
        std::fs::set_permissions(dst, std::fs::Permissions::from_mode(md.mode() & 0o7777)).map_err(|e| err(dst, e))?;
    } else if md.is_file() {
        std::fs::copy(src, dst).map_err(|e| err(src, e))?;
    }
    // Sockets, fifos and devices have no place in a runner tree: left out.
    if !md.file_type().is_symlink() && dst.exists() {
        std::os::unix::fs::lchown(dst, Some(md.uid()), Some(md.gid())).map_err(|e| err(dst, e))?;
        std::fs::set_permissions(dst, std::fs::Permissions::from_mode(md.mode() & 0o7777)).map_err(|e| err(dst, e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_shift_into_the_range_once() {
        assert_eq!(shifted(0, 1 << 30), 1 << 30);
        assert_eq!(shifted(1000, 1 << 30), (1 << 30) + 1000);
        assert_eq!(shifted((1 << 30) + 5, 1 << 30), (1 << 30) + 5, "already shifted");
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("bin")).unwrap();
        std::fs::write(d.path().join("bin/tool"), "x").unwrap();
        std::fs::set_permissions(d.path().join("bin/tool"), std::fs::Permissions::from_mode(0o4755)).unwrap();
        std::os::unix::fs::symlink("bin/tool", d.path().join("link")).unwrap();
        let base = 300_000;
        if !nix::unistd::geteuid().is_root() {
            return; // chown needs root; the end-to-end tests run as root
        }
        assert_eq!(shift_tree(d.path(), base).unwrap(), 4);
        let md = std::fs::symlink_metadata(d.path().join("bin/tool")).unwrap();
        assert_eq!((md.uid(), md.gid(), md.mode() & 0o7777), (base, base, 0o4755), "setuid kept");
        assert_eq!(std::fs::symlink_metadata(d.path().join("link")).unwrap().uid(), base);
        assert_eq!(shift_tree(d.path(), base).unwrap(), 0, "a second pass changes nothing");
    }

    #[test]
    fn a_shifted_copy_is_made_again_only_when_the_source_changes() {
        if !nix::unistd::geteuid().is_root() {
            return;
        }
        let src = tempfile::tempdir().unwrap();
        std::fs::create_dir(src.path().join("bin")).unwrap();
        std::fs::write(src.path().join("bin/run.sh"), "v1").unwrap();
        std::os::unix::fs::symlink("bin/run.sh", src.path().join("run")).unwrap();
        let out = tempfile::tempdir().unwrap();
        let dst = out.path().join("runner");
        shifted_copy(src.path(), &dst, 400_000).unwrap();
        assert_eq!(std::fs::read_to_string(dst.join("run")).unwrap(), "v1");
        assert_eq!(std::fs::metadata(dst.join("bin/run.sh")).unwrap().uid(), 400_000);
        assert_eq!(std::fs::metadata(src.path().join("bin/run.sh")).unwrap().uid(), 0, "the source is untouched");
        std::fs::write(dst.join("bin/extra"), "kept while the source stays").unwrap();
        shifted_copy(src.path(), &dst, 400_000).unwrap();
        assert!(dst.join("bin/extra").exists(), "unchanged source: the copy is reused");
        std::fs::write(src.path().join("bin/run.sh"), "v2, longer").unwrap();
        shifted_copy(src.path(), &dst, 400_000).unwrap();
        assert_eq!(std::fs::read_to_string(dst.join("bin/run.sh")).unwrap(), "v2, longer");
        assert!(!dst.join("bin/extra").exists());
    }
}

//! Named network namespaces: a new namespace kept alive by a bind mount of its nsfs file onto a path under
//! the daemon's run dir (what `ip netns add` does, without shelling out).

use std::io;
use std::path::Path;

use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::{CloneFlags, unshare};

/// Creates a network namespace bound at `path`. Idempotent: an existing namespace there is kept.
pub fn create(path: &Path) -> io::Result<()> {
    if is_mounted(path) {
        return Ok(());
    }
    std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(path)?;
    let target = path.to_path_buf();
    // unshare() moves the calling thread: do it on a thread of its own that ends right after.
    let r = std::thread::spawn(move || -> io::Result<()> {
        unshare(CloneFlags::CLONE_NEWNET).map_err(io::Error::from)?;
        let tid = nix::unistd::gettid();
        let src = format!("/proc/self/task/{tid}/ns/net");
        mount(Some(src.as_str()), &target, None::<&str>, MsFlags::MS_BIND, None::<&str>).map_err(io::Error::from)
    })
    .join()
    .map_err(|_| io::Error::other("netns thread panicked"))?;
    if r.is_err() {
        let _ = std::fs::remove_file(path);
    }
    r
}

/// Removes the namespace bound at `path`. Idempotent.
pub fn remove(path: &Path) -> io::Result<()> {
    match umount2(path, MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
        Err(e) => return Err(e.into()),
    }
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Whether something is mounted on `path` (a live namespace binding).
pub fn is_mounted(path: &Path) -> bool {
    let Ok(mi) = std::fs::read_to_string("/proc/self/mountinfo") else { return false };
    let p = path.display().to_string();
    mi.lines().any(|l| l.split(' ').nth(4) == Some(p.as_str()))
}

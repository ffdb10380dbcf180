//! Named network namespaces: a new namespace kept alive by a bind mount of its nsfs file onto a path under
//! the daemon's run dir (what `ip netns add` does, without shelling out), with the job network's sysctls
//! written from inside it before anything is attached: IPv6 off for every interface made later (the
//! firewall speaks IPv4 only, so a job gets no IPv6 path to the host or its peers, not even link-local;
//! loopback, made with the namespace, keeps `::1`), and ICMP echo sockets for any gid, so `ping` works
//! without CAP_NET_RAW. Written here rather than by runc: a job in a user namespace may not write the
//! sysctls of a namespace the host made.

use std::io;
use std::path::Path;

use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::{CloneFlags, unshare};

/// The sysctls of a job's network namespace (keys as `sysctl` spells them). The IPv6 ones only where the
/// host kernel has IPv6.
pub fn job_sysctls(host_ipv6: bool) -> Vec<(&'static str, &'static str)> {
    let mut s = vec![("net.ipv4.ping_group_range", "0 2147483647")];
    if host_ipv6 {
        s.push(("net.ipv6.conf.default.disable_ipv6", "1"));
    }
    s
}

/// Creates a network namespace bound at `path` and writes `sysctls` in it. Idempotent: an existing
/// namespace there is kept (as it is).
pub fn create(path: &Path, sysctls: &[(&'static str, &'static str)]) -> io::Result<()> {
    if is_mounted(path) {
        return Ok(());
    }
    std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(path)?;
    let target = path.to_path_buf();
    let sysctls = sysctls.to_vec();
    // unshare() moves the calling thread: do it on a thread of its own that ends right after.
    let r = std::thread::spawn(move || -> io::Result<()> {
        unshare(CloneFlags::CLONE_NEWNET).map_err(io::Error::from)?;
        // /proc/sys/net is the calling thread's namespace's: this one's now.
        for (key, value) in &sysctls {
            let file = format!("/proc/sys/{}", key.replace('.', "/"));
            std::fs::write(&file, value).map_err(|e| io::Error::new(e.kind(), format!("sysctl {key}: {e}")))?;
        }
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

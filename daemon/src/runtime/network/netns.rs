//! Named network namespaces: a job's namespace, made by runc with the container (so that the job's user
//! namespace owns it: runc can then mount sysfs in it, and `exec` can join it from inside the user
//! namespace), kept alive and reachable by a bind mount of its nsfs file onto a path under the daemon's run
//! dir, as `ip netns` does. Its sysctls are written from the host before anything is attached: IPv6 off for
//! every interface made later (the firewall speaks IPv4 only, so a job gets no IPv6 path to the host or its
//! peers, not even link-local; loopback keeps `::1`), and ICMP echo sockets for any gid, so `ping` works
//! without CAP_NET_RAW.

use std::io;
use std::path::Path;

use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::{CloneFlags, setns};

/// The sysctls of a job's network namespace (keys as `sysctl` spells them). The IPv6 ones only where the
/// host kernel has IPv6.
pub fn job_sysctls(host_ipv6: bool) -> Vec<(&'static str, &'static str)> {
    let mut s = vec![("net.ipv4.ping_group_range", "0 2147483647")];
    if host_ipv6 {
        s.push(("net.ipv6.conf.default.disable_ipv6", "1"));
    }
    s
}

/// Binds the network namespace of process `pid` (a created, not yet started, container) at `path` and
/// writes `sysctls` in it. Idempotent: a namespace already bound there is kept as it is.
pub fn adopt(pid: u32, path: &Path, sysctls: &[(&'static str, &'static str)]) -> io::Result<()> {
    if is_mounted(path) {
        return Ok(());
    }
    std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(path)?;
    let r = mount(Some(format!("/proc/{pid}/ns/net").as_str()), path, None::<&str>, MsFlags::MS_BIND, None::<&str>)
        .map_err(io::Error::from)
        .and_then(|()| write_sysctls(path, sysctls));
    if r.is_err() {
        let _ = remove(path);
    }
    r
}

/// Writes `sysctls` in the namespace bound at `path`, from a thread that joins it and ends right after
/// (`/proc/sys/net` is the calling thread's namespace's).
fn write_sysctls(path: &Path, sysctls: &[(&'static str, &'static str)]) -> io::Result<()> {
    let ns = std::fs::File::open(path)?;
    let sysctls = sysctls.to_vec();
    std::thread::spawn(move || -> io::Result<()> {
        setns(ns, CloneFlags::CLONE_NEWNET).map_err(io::Error::from)?;
        for (key, value) in &sysctls {
            let file = format!("/proc/sys/{}", key.replace('.', "/"));
            std::fs::write(&file, value).map_err(|e| io::Error::new(e.kind(), format!("sysctl {key}: {e}")))?;
        }
        Ok(())
    })
    .join()
    .map_err(|_| io::Error::other("netns thread panicked"))?
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

//! The worker's side of a namespace boot (`ephemerd worker --root R --netns N`), run before anything
//! else in the process, while it has one thread. It joins the network namespace the daemon made, makes
//! mount, pid and UTS namespaces of its own, and forks pid 1 of the new pid namespace. Pid 1 mounts the
//! worker's `/proc`, `/sys`, `/dev`, cgroups, `/run` and `/tmp` under R, binds what the daemon hands over,
//! pivots into R and forks once more: it stays as the namespace's init (reaping orphans such as
//! containerd's shims and passing SIGTERM and SIGINT on) while its child execs R's `/usr/bin/ephemerd
//! worker`, the token still unread on stdin. The first process waits in the daemon's pid namespace and
//! passes signals on too, so the daemon stops the worker as it stops any child; when pid 1 dies the
//! kernel kills everything in the namespace, and pid 1 dies with its parent (`PR_SET_PDEATHSIG`).

use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, Ordering};

use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::{CloneFlags, setns, unshare};
use std::os::fd::AsFd;

use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid, fork, pivot_root};

/// The hostname, and the worker id it reports in Hello.
pub const HOSTNAME: &str = "ephemerd-worker";

/// Where the worker's binary is in its root.
pub const BINARY: &str = "/usr/bin/ephemerd";

/// A file or directory of this machine made visible in the worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bind {
    pub source: PathBuf,
    /// Inside the worker's root.
    pub target: PathBuf,
    pub read_only: bool,
}

impl Bind {
    /// `SOURCE=TARGET`, as on the command line.
    pub fn parse(s: &str, read_only: bool) -> Result<Self, String> {
        let (a, b) = s.split_once('=').ok_or_else(|| format!("`{s}` is not SOURCE=TARGET"))?;
        let (source, target) = (PathBuf::from(a), PathBuf::from(b));
        if !source.is_absolute() || !target.is_absolute() {
            return Err(format!("`{s}`: both paths must be absolute"));
        }
        Ok(Self { source, target, read_only })
    }

    pub fn arg(&self) -> String {
        format!("{}={}", self.source.display(), self.target.display())
    }
}

/// What the first process is told.
pub struct Boot {
    pub root: PathBuf,
    pub netns: PathBuf,
    pub binds: Vec<Bind>,
    /// The arguments of the exec'd worker (after the program name).
    pub args: Vec<String>,
}

static FORWARD_TO: AtomicI32 = AtomicI32::new(0);

#[allow(unsafe_code)]
extern "C" fn forward(sig: libc::c_int) {
    let pid = FORWARD_TO.load(Ordering::SeqCst);
    if pid > 0 {
        // SAFETY: kill(2) is async-signal-safe.
        unsafe { libc::kill(pid, sig) };
    }
}

#[allow(unsafe_code)]
fn forward_signals_to(pid: Pid) -> nix::Result<()> {
    FORWARD_TO.store(pid.as_raw(), Ordering::SeqCst);
    let action = SigAction::new(SigHandler::Handler(forward), SaFlags::SA_RESTART, SigSet::empty());
    for sig in [Signal::SIGTERM, Signal::SIGINT] {
        // SAFETY: the handler only reads an atomic and calls kill(2).
        unsafe { sigaction(sig, &action) }?;
    }
    Ok(())
}

fn exit_code(status: WaitStatus) -> i32 {
    match status {
        WaitStatus::Exited(_, code) => code,
        WaitStatus::Signaled(_, sig, _) => 128 + sig as i32,
        _ => 125,
    }
}

/// Boots the worker; returns only with what failed (every process but the last exits or execs).
pub fn boot(b: &Boot) -> std::io::Error {
    match boot_inner(b) {
        Ok(never) => match never {},
        Err(e) => e,
    }
}

enum Never {}

fn io(what: &str, e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(format!("{what}: {e}"))
}

#[allow(unsafe_code)]
fn boot_inner(b: &Boot) -> Result<Never, std::io::Error> {
    let ns =
        std::fs::File::open(&b.netns).map_err(|e| io(&format!("the network namespace {}", b.netns.display()), e))?;
    setns(&ns, CloneFlags::CLONE_NEWNET).map_err(|e| io("joining the worker's network namespace", e))?;
    drop(ns);
    unshare(CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWPID | CloneFlags::CLONE_NEWUTS)
        .map_err(|e| io("making the worker's namespaces", e))?;
    // Pid 1 sees the first process die by this pipe's far end closing (its pid is not visible there).
    let (alive_r, alive_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| io("pipe", e))?;
    // SAFETY: one thread so far (called before the async runtime starts).
    match unsafe { fork() }.map_err(|e| io("fork", e))? {
        ForkResult::Parent { child } => {
            drop(alive_r);
            let _keep = alive_w;
            forward_signals_to(child).map_err(|e| io("signal handlers", e))?;
            let status = loop {
                match waitpid(child, None) {
                    Ok(s @ (WaitStatus::Exited(..) | WaitStatus::Signaled(..))) => break s,
                    Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
                    Err(e) => return Err(io("waiting for the worker's init", e)),
                }
            };
            std::process::exit(exit_code(status));
        }
        ForkResult::Child => {}
    }
    // Pid 1 of the worker's pid namespace: it dies with the first process.
    // SAFETY: prctl(PR_SET_PDEATHSIG) takes no pointers.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
    drop(alive_w);
    let mut fds = [nix::poll::PollFd::new(alive_r.as_fd(), nix::poll::PollFlags::POLLIN)];
    if nix::poll::poll(&mut fds, nix::poll::PollTimeout::ZERO).is_ok_and(|n| n > 0) {
        // Hung up: the first process died before the death signal was armed.
        std::process::exit(125);
    }
    drop(alive_r);
    if let Err(e) = setup_root(b) {
        eprintln!("ephemerd worker: {e}");
        std::process::exit(125);
    }
    // SAFETY: still one thread.
    match unsafe { fork() }.map_err(|e| io("fork", e))? {
        ForkResult::Parent { child } => {
            forward_signals_to(child).map_err(|e| io("signal handlers", e))?;
            std::process::exit(init(child));
        }
        ForkResult::Child => {}
    }
    let program = CString::new(BINARY).map_err(|e| io("the worker binary", e))?;
    let mut argv = vec![program.clone()];
    for a in &b.args {
        argv.push(CString::new(a.as_str()).map_err(|e| io("an argument", e))?);
    }
    let e = nix::unistd::execv(&program, &argv).unwrap_err();
    Err(io(&format!("cannot run {BINARY} in the worker's root"), e))
}

/// Reaps every child until `worker` ends; its exit code.
fn init(worker: Pid) -> i32 {
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::__WALL)) {
            Ok(s @ (WaitStatus::Exited(pid, _) | WaitStatus::Signaled(pid, _, _))) if pid == worker => {
                return exit_code(s);
            }
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(_) => return 125,
        }
    }
}

fn path_in(root: &Path, p: &Path) -> PathBuf {
    root.join(p.strip_prefix("/").unwrap_or(p))
}

fn mnt(
    src: Option<&Path>,
    target: &Path,
    fstype: Option<&str>,
    flags: MsFlags,
    data: Option<&str>,
) -> std::io::Result<()> {
    mount(src, target, fstype, flags, data).map_err(|e| io(&format!("mounting {}", target.display()), e))
}

/// Mounts the worker's tree under the root and pivots into it.
fn setup_root(b: &Boot) -> std::io::Result<()> {
    let root = &b.root;
    let none: Option<&Path> = None;
    mnt(none, Path::new("/"), None, MsFlags::MS_REC | MsFlags::MS_PRIVATE, None)?;
    mnt(Some(root), root, None, MsFlags::MS_BIND | MsFlags::MS_REC, None)?;
    let nosuid = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    for (dir, fstype, flags, data) in [
        ("proc", "proc", nosuid, None),
        ("sys", "sysfs", nosuid, None),
        ("run", "tmpfs", MsFlags::MS_NOSUID | MsFlags::MS_NODEV, Some("mode=755")),
        ("tmp", "tmpfs", MsFlags::MS_NOSUID | MsFlags::MS_NODEV, Some("mode=1777")),
    ] {
        let target = root.join(dir);
        std::fs::create_dir_all(&target)?;
        mnt(Some(Path::new(fstype)), &target, Some(fstype), flags, data)?;
    }
    for dir in ["/dev", "/sys/fs/cgroup"] {
        let target = path_in(root, Path::new(dir));
        std::fs::create_dir_all(&target)?;
        mnt(Some(Path::new(dir)), &target, None, MsFlags::MS_BIND | MsFlags::MS_REC, None)?;
    }
    for bind in &b.binds {
        let target = path_in(root, &bind.target);
        if bind.source.is_dir() {
            std::fs::create_dir_all(&target)?;
        } else {
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent)?;
            }
            if !target.exists() {
                std::fs::File::create(&target)?;
            }
        }
        mnt(Some(&bind.source), &target, None, MsFlags::MS_BIND | MsFlags::MS_REC, None)?;
        if bind.read_only {
            let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | MsFlags::MS_REC;
            mnt(none, &target, None, flags, None)?;
        }
    }
    nix::unistd::sethostname(HOSTNAME).map_err(|e| io("sethostname", e))?;
    let old = root.join(".oldroot");
    std::fs::create_dir_all(&old)?;
    pivot_root(root, &old).map_err(|e| io(&format!("pivot_root into {}", root.display()), e))?;
    nix::unistd::chdir("/").map_err(|e| io("chdir /", e))?;
    umount2("/.oldroot", MntFlags::MNT_DETACH).map_err(|e| io("unmounting the old root", e))?;
    std::fs::remove_dir("/.oldroot")?;
    Ok(())
}

/// The exec'd worker's arguments: ours without the boot's own flags (pure; tested below).
pub fn worker_args(args: &[String]) -> Vec<String> {
    const BOOT_FLAGS: [&str; 4] = ["--root", "--netns", "--bind", "--bind-ro"];
    let mut out = Vec::new();
    let mut skip = false;
    for a in args {
        if std::mem::take(&mut skip) {
            continue;
        }
        if BOOT_FLAGS.contains(&a.as_str()) {
            skip = true;
        } else if !BOOT_FLAGS.iter().any(|f| a.starts_with(&format!("{f}="))) {
            out.push(a.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binds_parse_from_their_argument_and_refuse_relative_paths() {
        let b = Bind::parse("/a/b=/opt/x", true).unwrap();
        assert_eq!(b, Bind { source: "/a/b".into(), target: "/opt/x".into(), read_only: true });
        assert_eq!(Bind::parse(&b.arg(), true).unwrap(), b);
        assert!(Bind::parse("a=/x", false).unwrap_err().contains("absolute"));
        assert!(Bind::parse("/a", false).unwrap_err().contains("SOURCE=TARGET"));
    }

    #[test]
    fn the_execd_worker_gets_every_argument_but_the_boots() {
        let args: Vec<String> = ["--data-dir", "/d", "worker", "--root", "/r", "--bind-ro=/a=/b", "--netns", "/n"]
            .into_iter()
            .chain(["--bind", "/x=/y", "--listen", "10.0.0.2:1"])
            .map(String::from)
            .collect();
        assert_eq!(worker_args(&args), ["--data-dir", "/d", "worker", "--listen", "10.0.0.2:1"]);
    }

    #[test]
    fn a_path_in_the_root_never_escapes_it() {
        assert_eq!(path_in(Path::new("/r"), Path::new("/etc/x")), PathBuf::from("/r/etc/x"));
        assert_eq!(path_in(Path::new("/r"), Path::new("etc")), PathBuf::from("/r/etc"));
    }
}

//! `ephemerd vm-init`: pid 1 of the worker VM, exec'd by the initramfs (`rootfs/vm-init.sh`) from the
//! host disk once the root and the host disk are mounted. It mounts the rest (`/proc`, `/sys`, cgroups,
//! `/run`, `/tmp`), loads the network and balloon drivers, reads the boot config from its one-shot disk
//! and zeroes that disk, sets the clock, the hostname, the resolvers and the link address, mounts its
//! overlay of the image store (`store`) as containerd's root, and starts `ephemerd worker` with the token
//! on its stdin. A boot that prepares the image store formats it, imports the images onto it, says so on
//! the config disk and powers off instead. Then it reaps orphans (containerd's shims) until the
//! worker ends, and powers the VM off: a VM lives as long as its worker. Blocking std code, before any
//! async runtime.

use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use nix::mount::{MsFlags, mount};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

use super::boot::{self, BootConfig};

/// Where the initramfs mounts the host disk, and what is on it.
pub const HOST_DIR: &str = "/usr/lib/ephemerd/host";
pub const HOST_BINARY: &str = "/usr/lib/ephemerd/host/ephemerd";
pub const HOST_RUNNER: &str = "/usr/lib/ephemerd/host/runner";
/// Where the runner tree is seen in the worker (as in the namespace worker).
pub use super::super::namespace::RUNNER_IN;
const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

fn io(what: &str, e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(format!("{what}: {e}"))
}

/// Runs pid 1; returns only if booting failed (the caller then powers off).
pub fn run() -> std::io::Error {
    match boot() {
        Ok(Booted::Worker(worker)) => {
            let code = reap_until(worker);
            eprintln!("ephemerd vm-init: the worker ended (exit {code}): powering off");
        }
        Ok(Booted::StorePrepared) => eprintln!("ephemerd vm-init: the image store is prepared: powering off"),
        Err(e) => eprintln!("ephemerd vm-init: {e}"),
    }
    power_off()
}

/// What a boot came to.
enum Booted {
    /// The worker runs, as this pid.
    Worker(Pid),
    /// The boot prepared the image store (and ran no worker).
    StorePrepared,
}

/// Syncs and powers the VM off.
pub fn power_off() -> std::io::Error {
    nix::unistd::sync();
    match nix::sys::reboot::reboot(nix::sys::reboot::RebootMode::RB_POWER_OFF) {
        Ok(never) => match never {},
        Err(e) => io("power off", e),
    }
}

fn mnt(fstype: &str, target: &str, flags: MsFlags, data: Option<&str>) -> std::io::Result<()> {
    std::fs::create_dir_all(target)?;
    mount(Some(fstype), target, Some(fstype), flags, data).map_err(|e| io(&format!("mounting {target}"), e))
}

fn run_cmd(program: &str, args: &[&str]) -> std::io::Result<()> {
    let out = Command::new(program).args(args).env_clear().env("PATH", PATH).output()?;
    if !out.status.success() {
        return Err(io(&format!("{program} {}", args.join(" ")), String::from_utf8_lossy(&out.stderr).trim()));
    }
    Ok(())
}

fn boot() -> std::io::Result<Booted> {
    let nosuid = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mnt("proc", "/proc", nosuid, None)?;
    mnt("sysfs", "/sys", nosuid, None)?;
    mnt("cgroup2", "/sys/fs/cgroup", nosuid, Some("nsdelegate"))?;
    mnt("tmpfs", "/run", MsFlags::MS_NOSUID | MsFlags::MS_NODEV, Some("mode=755"))?;
    mnt("tmpfs", "/tmp", MsFlags::MS_NOSUID | MsFlags::MS_NODEV, Some("mode=1777"))?;
    mnt("devpts", "/dev/pts", MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC, Some("newinstance,ptmxmode=0666,mode=620"))?;
    mnt("tmpfs", "/dev/shm", nosuid, Some("mode=1777"))?;
    for m in ["virtio_net", "virtio_balloon", "virtio_rng"] {
        if let Err(e) = run_cmd("modprobe", &[m]) {
            eprintln!("ephemerd vm-init: {e}");
        }
    }
    let disk = disk_with_serial(boot::SERIAL)?;
    let cfg = read_and_zero(&disk)?;
    set_clock(cfg.time_nanos);
    nix::unistd::sethostname(&cfg.hostname).map_err(|e| io("sethostname", e))?;
    std::fs::write("/etc/hostname", format!("{}\n", cfg.hostname))?;
    std::fs::write("/etc/resolv.conf", crate::runtime::network::render_resolv_conf(&cfg.dns, &[]))?;
    let addr = format!("{}/{}", cfg.address, cfg.prefix);
    let gw = cfg.gateway.to_string();
    run_cmd("ip", &["link", "set", "lo", "up"])?;
    run_cmd("ip", &["addr", "add", &addr, "dev", "eth0"])?;
    run_cmd("ip", &["link", "set", "eth0", "up"])?;
    run_cmd("ip", &["route", "add", "default", "via", &gw])?;
    let data = Path::new(&cfg.data_dir);
    std::fs::create_dir_all(data)?;
    std::fs::write(data.join("config.toml"), &cfg.config)?;
    if Path::new(HOST_RUNNER).is_dir() {
        std::fs::create_dir_all(RUNNER_IN)?;
        mount(Some(HOST_RUNNER), RUNNER_IN, None::<&str>, MsFlags::MS_BIND, None::<&str>)
            .map_err(|e| io("binding the runner tree", e))?;
    }
    // The runner tree first: the worker's config names it, and `image import` checks it.
    let containerd_root = crate::platform::DataDirs::new(data).containerd_root();
    std::fs::create_dir_all(&containerd_root)?;
    let store = disk_with_serial(super::store::SERIAL)?;
    let root = containerd_root.display().to_string();
    if cfg.prepare_store {
        prepare_store(&store, &root, &cfg, data)?;
        let mut f = std::fs::OpenOptions::new().write(true).open(&disk)?;
        f.write_all(boot::PREPARED)?;
        f.sync_all()?;
        return Ok(Booted::StorePrepared);
    }
    mount_store(&store, &root)?;
    let mut cmd = Command::new(HOST_BINARY);
    cmd.env_clear()
        .env("PATH", PATH)
        .arg("--data-dir")
        .arg(&cfg.data_dir)
        .arg("--config")
        .arg(data.join("config.toml"))
        .arg("--log-level")
        .arg(&cfg.log_level)
        .arg("worker")
        .arg("--own-clock")
        .arg("--listen")
        .arg(format!("{}:{}", cfg.address, cfg.port));
    let mut child = cmd.stdin(Stdio::piped()).spawn().map_err(|e| io(&format!("starting {HOST_BINARY}"), e))?;
    let mut stdin = child.stdin.take().ok_or_else(|| io("the worker's stdin", "missing"))?;
    stdin.write_all(format!("{}\n", cfg.token).as_bytes())?;
    drop(stdin);
    Ok(Booted::Worker(Pid::from_raw(child.id() as i32)))
}

/// Mounts the image store (or a boot's overlay of it) on containerd's root.
fn mount_store(store: &Path, root: &str) -> std::io::Result<()> {
    mount(Some(store), root, Some("ext4"), MsFlags::MS_NOATIME, None::<&str>)
        .map_err(|e| io(&format!("mounting the image store {} on {root}", store.display()), e))
}

/// Formats the blank store disk, mounts it on containerd's root, imports the images onto it with
/// `ephemerd image import --remap-ahead` (its containerd started and stopped each time; each image's
/// snapshot for jobs' user namespaces made too, which a job boot would otherwise make for its first job),
/// and unmounts it, all written.
fn prepare_store(store: &Path, root: &str, cfg: &BootConfig, data: &Path) -> std::io::Result<()> {
    let dev = store.display().to_string();
    run_cmd(
        "mkfs.ext4",
        &[
            "-q",
            "-F",
            "-m",
            "0",
            "-O",
            "^has_journal",
            "-E",
            "lazy_itable_init=1,nodiscard",
            "-L",
            "ephemerd-store",
            &dev,
        ],
    )?;
    mount_store(store, root)?;
    let config = data.join("config.toml");
    for file in &cfg.imports {
        let data_dir = data.display().to_string();
        let config = config.display().to_string();
        let args = [
            "--data-dir",
            &data_dir,
            "--config",
            &config,
            "--log-level",
            &cfg.log_level,
            "image",
            "import",
            "--remap-ahead",
            file,
        ];
        run_cmd(HOST_BINARY, &args)?;
        eprintln!("ephemerd vm-init: imported {file} into the image store");
    }
    nix::unistd::sync();
    nix::mount::umount(root).map_err(|e| io(&format!("unmounting the image store from {root}"), e))
}

/// The block device whose virtio serial is `serial` (waiting up to 5 s for it to appear).
fn disk_with_serial(serial: &str) -> std::io::Result<PathBuf> {
    for _ in 0..500 {
        for e in std::fs::read_dir("/sys/block")?.flatten() {
            let s = std::fs::read_to_string(e.path().join("serial")).unwrap_or_default();
            if s.trim() == serial {
                return Ok(Path::new("/dev").join(e.file_name()));
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    Err(io("the VM's disks", format!("no disk has the serial {serial}")))
}

/// Reads the boot config and overwrites it with zeros, so it is read once.
fn read_and_zero(disk: &Path) -> std::io::Result<BootConfig> {
    let mut f = std::fs::OpenOptions::new().read(true).write(true).open(disk)?;
    let mut bytes = vec![0u8; boot::DISK_SIZE];
    f.read_exact(&mut bytes)?;
    let cfg = BootConfig::from_disk(&bytes).map_err(|e| io(&disk.display().to_string(), e))?;
    f.rewind()?;
    f.write_all(&vec![0u8; boot::DISK_SIZE])?;
    f.sync_all()?;
    Ok(cfg)
}

fn set_clock(nanos: i64) {
    let ts = nix::sys::time::TimeSpec::new(nanos / 1_000_000_000, nanos % 1_000_000_000);
    if let Err(e) = nix::time::clock_settime(nix::time::ClockId::CLOCK_REALTIME, ts) {
        eprintln!("ephemerd vm-init: cannot set the clock: {e}");
    }
}

/// Reaps every child until `worker` ends; its exit code.
fn reap_until(worker: Pid) -> i32 {
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::__WALL)) {
            Ok(WaitStatus::Exited(pid, code)) if pid == worker => return code,
            Ok(WaitStatus::Signaled(pid, sig, _)) if pid == worker => return 128 + sig as i32,
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(_) => return 125,
        }
    }
}

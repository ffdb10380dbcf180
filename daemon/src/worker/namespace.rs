//! The namespace worker: Linux's stand-in for the WSL distro. Its root is the worker rootfs tarball
//! (`rootfs/build-worker-rootfs.sh`), unpacked once per tarball into `DATA/worker/rootfs`; it boots in
//! network, mount, pid and UTS namespaces of its own (see [`super::enter`]), on the instance's veth link
//! (see [`super::link`]), and runs its own containerd there. The daemon's binary is bound over the
//! root's `/usr/bin/ephemerd`, the runner tree and the image archives to import are bound read-only, and
//! the worker's config (its job network, limits and security, derived from ours) is written into its root.
//! Its environment is empty but for `PATH`: it sees no forge credential. Its boot token goes on its stdin.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

use super::enter::{BINARY, Bind};
use super::link::Link;
use super::{Booted, Host, HostError};
use crate::config::{Config, Ipv4Net};
use crate::dispatch::auth::Token;
use crate::platform::DataDirs;
use crate::runtime::instance::Instance;

/// The worker's Dispatch port on its end of the link.
pub const PORT: u16 = 7411;
/// Where the runner tree is in the worker.
pub const RUNNER_IN: &str = "/opt/ephemerd/runner";
/// How long a boot may take (the image imports come first).
const BOOT_WAIT: Duration = Duration::from_secs(180);
/// How long a stopping worker gets before it is killed.
const STOP_WAIT: Duration = Duration::from_secs(30);

pub struct NamespaceHost {
    dirs: DataDirs,
    link: Link,
    rootfs_tar: PathBuf,
    images: Vec<PathBuf>,
    runner_dir: Option<PathBuf>,
    worker_config: String,
    dns: Vec<Ipv4Addr>,
    host_ports: Vec<u16>,
    log_level: String,
    /// The worker's data dir, as the worker sees it: one per instance, so its own instance (and so its
    /// cgroups and uid range) differs from every other worker's.
    data_in: String,
    child: std::sync::Mutex<Option<tokio::process::Child>>,
}

impl NamespaceHost {
    /// The namespace worker of the instance at `dirs`, as `cfg` configures it (`cfg.runner.dir` resolved).
    pub fn new(cfg: &Config, dirs: &DataDirs, log_level: &str) -> Result<Self, HostError> {
        let instance = Instance::of(dirs);
        let net = match &cfg.worker.link {
            Some(l) => Ipv4Net::parse(l).map_err(HostError::Io)?,
            None => Link::default_net(&instance),
        };
        let link = Link::new(&instance, net);
        let rootfs_tar = cfg.worker.rootfs.clone().ok_or_else(|| HostError::Rootfs {
            path: PathBuf::new(),
            message: "[worker] rootfs is not set (rootfs/build-worker-rootfs.sh builds it)".into(),
        })?;
        let dns = crate::runtime::network::resolvers(&cfg.network.dns);
        let worker_config = worker_config(cfg, &link, &dns);
        Ok(Self {
            dirs: dirs.clone(),
            data_in: format!("/var/lib/ephemerd/{}", instance.id()),
            link,
            rootfs_tar,
            images: cfg.worker.images.clone(),
            runner_dir: cfg.runner.dir.clone(),
            worker_config,
            dns,
            host_ports: cfg.network.allow_host_ports.clone(),
            log_level: log_level.to_string(),
            child: std::sync::Mutex::new(None),
        })
    }

    pub fn link(&self) -> &Link {
        &self.link
    }

    fn dir(&self) -> PathBuf {
        self.dirs.root.join("worker")
    }

    pub fn rootfs(&self) -> PathBuf {
        self.dir().join("rootfs")
    }

    /// The worker's stderr, kept across boots (appended).
    pub fn log_path(&self) -> PathBuf {
        self.dir().join("worker.log")
    }

    fn pid_path(&self) -> PathBuf {
        self.dir().join("worker.pid")
    }

    /// Unpacks the rootfs tarball unless the tree there came from this very tarball.
    async fn ensure_rootfs(&self) -> Result<(), HostError> {
        let tar = self.rootfs_tar.clone();
        let err = |message: String| HostError::Rootfs { path: tar.clone(), message };
        let hashed = tar.clone();
        let sha = tokio::task::spawn_blocking(move || sha256_file(&hashed))
            .await
            .map_err(|e| err(e.to_string()))?
            .map_err(|e| err(format!("cannot read it: {e}")))?;
        let (root, stamp) = (self.rootfs(), self.dir().join("rootfs.sha256"));
        if std::fs::read_to_string(&stamp).is_ok_and(|s| s.trim() == sha) && root.join("etc/ephemerd-rootfs").is_file()
        {
            return Ok(());
        }
        tracing::info!(tarball = %tar.display(), "unpacking the worker's root filesystem");
        let tmp = self.dir().join("rootfs.new");
        for d in [&tmp, &root] {
            if d.exists() {
                std::fs::remove_dir_all(d).map_err(|e| err(format!("cannot remove {}: {e}", d.display())))?;
            }
        }
        std::fs::create_dir_all(&tmp).map_err(|e| err(format!("cannot create {}: {e}", tmp.display())))?;
        let out = tokio::process::Command::new("tar")
            .arg("-xzf")
            .arg(&tar)
            .arg("-C")
            .arg(&tmp)
            .args(["--numeric-owner", "--same-permissions"])
            .output()
            .await
            .map_err(|e| err(format!("cannot run tar: {e}")))?;
        if !out.status.success() {
            return Err(err(format!("tar: {}", String::from_utf8_lossy(&out.stderr).trim())));
        }
        if !tmp.join("etc/ephemerd-rootfs").is_file() {
            return Err(err("it is not a worker rootfs (no /etc/ephemerd-rootfs)".into()));
        }
        std::fs::rename(&tmp, &root).map_err(|e| err(e.to_string()))?;
        std::fs::write(&stamp, format!("{sha}\n")).map_err(|e| err(e.to_string()))?;
        Ok(())
    }

    /// Writes what the worker reads at boot: its config and its resolvers.
    fn write_boot_files(&self) -> Result<(), HostError> {
        let root = self.rootfs();
        let data = root.join(self.data_in.trim_start_matches('/'));
        let io = |e: std::io::Error| HostError::Io(format!("writing the worker's boot files: {e}"));
        std::fs::create_dir_all(&data).map_err(io)?;
        std::fs::write(data.join("config.toml"), &self.worker_config).map_err(io)?;
        let resolv = crate::runtime::network::render_resolv_conf(&self.dns, &[]);
        std::fs::write(root.join("etc/resolv.conf"), resolv).map_err(io)?;
        std::fs::write(root.join("etc/hostname"), format!("{}\n", super::enter::HOSTNAME)).map_err(io)?;
        Ok(())
    }

    /// The pid of a worker a crashed daemon left (by its pid file, if the pid is still that worker).
    pub fn orphan(&self) -> Option<i32> {
        let pid = std::fs::read_to_string(self.pid_path()).ok()?.trim().parse::<i32>().ok()?;
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let root = self.rootfs();
        cmdline.split(|b| *b == 0).any(|a| a == root.as_os_str().as_encoded_bytes()).then_some(pid)
    }

    /// Kills a worker a crashed daemon left.
    async fn kill_orphan(&self) {
        let Some(pid) = self.orphan() else { return };
        tracing::warn!(pid, "stopping the worker a previous daemon left");
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
        for _ in 0..100 {
            if !Path::new(&format!("/proc/{pid}")).exists() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Removes the cgroups a killed worker's jobs left (only empty ones can go; the worker's own instance).
    fn sweep_cgroups(&self) {
        let inst = Instance::at(Path::new(&self.data_in));
        for parent in inst.cgroup_parent_dirs() {
            if let Ok(entries) = std::fs::read_dir(&parent) {
                for e in entries.flatten() {
                    if e.path().is_dir() {
                        let _ = std::fs::remove_dir(e.path());
                    }
                }
            }
            let _ = std::fs::remove_dir(&parent);
        }
    }

    #[allow(unsafe_code)]
    fn spawn(&self) -> Result<tokio::process::Child, HostError> {
        let exe = std::env::current_exe().map_err(|e| HostError::Start(format!("cannot find our own binary: {e}")))?;
        let mut binds = vec![Bind { source: exe.clone(), target: BINARY.into(), read_only: true }];
        if let Some(r) = &self.runner_dir {
            binds.push(Bind { source: r.clone(), target: RUNNER_IN.into(), read_only: true });
        }
        let mut imports = Vec::new();
        for (n, img) in self.images.iter().enumerate() {
            let inside = PathBuf::from(format!("/var/lib/ephemerd-import/{n}.tar"));
            binds.push(Bind { source: img.clone(), target: inside.clone(), read_only: true });
            imports.push(inside);
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .map_err(|e| HostError::Start(format!("cannot open {}: {e}", self.log_path().display())))?;
        let mut cmd = tokio::process::Command::new(&exe);
        cmd.env_clear()
            .env("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
            .arg("--data-dir")
            .arg(&self.data_in)
            .arg("--config")
            .arg(format!("{}/config.toml", self.data_in))
            .arg("--log-level")
            .arg(&self.log_level)
            .arg("worker")
            .arg("--listen")
            .arg(format!("{}:{PORT}", self.link.worker_ip()));
        for i in &imports {
            cmd.arg("--import").arg(i);
        }
        cmd.arg("--root").arg(self.rootfs()).arg("--netns").arg(self.link.netns_path());
        for b in &binds {
            cmd.arg(if b.read_only { "--bind-ro" } else { "--bind" }).arg(b.arg());
        }
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::from(log)).kill_on_drop(true);
        // SAFETY: prctl(PR_SET_PDEATHSIG) takes no pointers; the worker dies with the daemon.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        spawn_on_lasting_thread(cmd).map_err(|e| HostError::Start(format!("cannot run {}: {e}", exe.display())))
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(5)..].join(" | ")
    }
}

#[async_trait::async_trait]
impl Host for NamespaceHost {
    fn kind(&self) -> &'static str {
        "namespace worker"
    }

    fn backend(&self) -> String {
        "namespaces".into()
    }

    async fn boot(&self) -> Result<Booted, HostError> {
        self.stop().await?;
        std::fs::create_dir_all(self.dir()).map_err(|e| HostError::Io(format!("{}: {e}", self.dir().display())))?;
        self.ensure_rootfs().await?;
        self.write_boot_files()?;
        self.link.up(&self.dns, &self.host_ports).await?;
        let mut child = self.spawn()?;
        if let Some(pid) = child.id() {
            let _ = std::fs::write(self.pid_path(), format!("{pid}\n"));
        }
        let token = Token::generate();
        let booted = async {
            let mut stdin = child.stdin.take().ok_or_else(|| HostError::Start("no stdin".into()))?;
            let line = format!("{}\n", token.expose_hex());
            stdin
                .write_all(line.as_bytes())
                .await
                .map_err(|e| HostError::Start(format!("handing the token over: {e}")))?;
            drop(stdin);
            let stdout = child.stdout.take().ok_or_else(|| HostError::Start("no stdout".into()))?;
            let mut first = String::new();
            let mut stdout = tokio::io::BufReader::new(stdout);
            let read = stdout.read_line(&mut first);
            match tokio::time::timeout(BOOT_WAIT, read).await {
                Ok(Ok(n)) if n > 0 => {}
                Ok(_) => return Err(HostError::Start(format!("it exited: {}", self.log_tail()))),
                Err(_) => return Err(HostError::Start(format!("not up after {} s", BOOT_WAIT.as_secs()))),
            }
            first
                .trim()
                .strip_prefix("worker listening on ")
                .map(String::from)
                .ok_or_else(|| HostError::Start(format!("it said {first:?}: {}", self.log_tail())))
        }
        .await;
        *self.child.lock().unwrap_or_else(|e| e.into_inner()) = Some(child);
        match booted {
            Ok(addr) => {
                tracing::info!(%addr, "namespace worker up");
                Ok(Booted { addr, token })
            }
            Err(e) => {
                let _ = self.stop().await;
                Err(e)
            }
        }
    }

    fn alive(&self) -> bool {
        let mut c = self.child.lock().unwrap_or_else(|e| e.into_inner());
        c.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    async fn present(&self) -> bool {
        self.link.present().await || self.orphan().is_some()
    }

    async fn stop(&self) -> Result<(), HostError> {
        let child = self.child.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(mut child) = child {
            if let Some(pid) = child.id() {
                let pid = nix::unistd::Pid::from_raw(pid as i32);
                let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            }
            match tokio::time::timeout(STOP_WAIT, child.wait()).await {
                Ok(_) => {}
                Err(_) => {
                    tracing::warn!("the worker did not stop in {} s: killing it", STOP_WAIT.as_secs());
                    let _ = child.kill().await;
                }
            }
        }
        self.kill_orphan().await;
        self.sweep_cgroups();
        self.link.down().await?;
        let _ = std::fs::remove_file(self.pid_path());
        Ok(())
    }
}

type SpawnRequest = (tokio::process::Command, std::sync::mpsc::SyncSender<std::io::Result<tokio::process::Child>>);

/// Spawns `cmd` from a thread that lasts as long as the process. The death signal a child asks for
/// (`PR_SET_PDEATHSIG`) follows the thread that forked it, and a runtime thread may end (a blocking-pool
/// thread after it idles): the worker must die with the daemon, not with that thread.
pub(crate) fn spawn_on_lasting_thread(cmd: tokio::process::Command) -> std::io::Result<tokio::process::Child> {
    static SPAWNER: std::sync::OnceLock<std::io::Result<std::sync::mpsc::Sender<SpawnRequest>>> =
        std::sync::OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let handle = tokio::runtime::Handle::current();
        let (tx, rx) = std::sync::mpsc::channel::<SpawnRequest>();
        std::thread::Builder::new().name("ephemerd-spawner".into()).spawn(move || {
            for (mut cmd, reply) in rx {
                let _in_runtime = handle.enter();
                let _ = reply.send(cmd.spawn());
            }
        })?;
        Ok(tx)
    });
    let tx = spawner.as_ref().map_err(|e| std::io::Error::other(format!("cannot start the spawner thread: {e}")))?;
    let (reply, answer) = std::sync::mpsc::sync_channel(1);
    tx.send((cmd, reply)).map_err(|_| std::io::Error::other("the spawner thread has gone"))?;
    answer.recv().map_err(|_| std::io::Error::other("the spawner thread has gone"))?
}

pub(crate) fn sha256_file(p: &Path) -> std::io::Result<String> {
    let mut f = std::fs::File::open(p)?;
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h)?;
    Ok(hex::encode(h.finalize()))
}

/// The worker's config: its own job network (in its namespace, so the daemon's subnet is free to reuse),
/// this machine's end of the link among the private destinations its jobs may reach (INPUT on the link
/// then admits only `network.allow_host_ports`), and our limits and security settings (pure; tested below).
pub fn worker_config(cfg: &Config, link: &Link, dns: &[Ipv4Addr]) -> String {
    let q = |s: &str| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""));
    let list = |v: Vec<String>| format!("[{}]", v.join(", "));
    let mut allow = vec![q(&format!("{}/32", link.host_ip()))];
    allow.extend(cfg.network.allow_cidrs.iter().map(|c| q(c)));
    let mut out = String::from("# Written by the daemon at each boot of this worker.\n[network]\n");
    out += &format!("subnet = {}\n", q(&cfg.network.subnet));
    out += &format!("dns = {}\n", list(dns.iter().map(|d| q(&d.to_string())).collect()));
    out += &format!("allow_cidrs = {}\n", list(allow));
    out += &format!(
        "[limits]\ncpus = {:?}\nmemory = {}\npids = {}\n",
        cfg.limits.cpus, cfg.limits.memory.0, cfg.limits.pids
    );
    out += &format!(
        "[security]\nuser_namespace = {}\nallow_nested_namespaces = {}\n",
        cfg.security.user_namespace, cfg.security.allow_nested_namespaces
    );
    if cfg.runner.dir.is_some() {
        out += &format!("[runner]\ndir = {}\n", q(RUNNER_IN));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_worker_config_parses_and_carries_our_limits_and_the_link() {
        let cfg = Config::parse(
            "[network]\nsubnet = \"10.99.0.0/24\"\nallow_cidrs = [\"192.168.5.0/24\"]\nallow_host_ports = [8080]\n\
             [limits]\ncpus = 1.5\nmemory = \"512MiB\"\n[runner]\ndir = \"/srv/runner\"\n",
        )
        .unwrap();
        cfg.validate().unwrap();
        let link = Link::new(&Instance::at(Path::new("/d")), Ipv4Net::parse("10.230.7.0/30").unwrap());
        let text = worker_config(&cfg, &link, &[Ipv4Addr::new(10, 255, 255, 53)]);
        let w = Config::parse(&text).unwrap();
        w.validate().unwrap();
        assert_eq!(w.network.subnet, "10.99.0.0/24");
        assert_eq!(w.network.allow_cidrs, ["10.230.7.1/32", "192.168.5.0/24"]);
        assert!(w.network.allow_host_ports.is_empty(), "the worker's own ports are closed to its jobs");
        assert_eq!(w.network.dns, [Ipv4Addr::new(10, 255, 255, 53)]);
        assert_eq!((w.limits.cpus, w.limits.memory.0), (1.5, 512 << 20));
        assert_eq!(w.runner.dir.as_deref(), Some(Path::new(RUNNER_IN)));
        assert!(w.github.is_empty() && w.webhook.listen.is_none(), "no forge, no secret: {text}");
    }
}

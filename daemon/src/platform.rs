//! The only home of OS differences: default paths and the layout of the daemon's data dir.

use std::path::{Path, PathBuf};

/// Whether this process runs as root (never on Windows, where the daemon runs in the user's session).
pub fn is_root() -> bool {
    #[cfg(unix)]
    return nix::unistd::geteuid().is_root();
    #[cfg(not(unix))]
    return false;
}

/// This machine's name ("host" when it has none that is text).
pub fn hostname() -> String {
    #[cfg(unix)]
    let name = nix::unistd::gethostname().ok().and_then(|h| h.into_string().ok());
    #[cfg(not(unix))]
    let name = std::env::var("COMPUTERNAME").ok();
    name.filter(|n| !n.is_empty()).unwrap_or_else(|| "host".into())
}

/// The default data dir: `/var/lib/ephemerd` for root, else `$XDG_DATA_HOME/ephemerd`; on Windows
/// `%LOCALAPPDATA%\ephemerd`.
pub fn default_data_dir() -> PathBuf {
    #[cfg(windows)]
    if let Some(d) = std::env::var_os("LOCALAPPDATA") {
        return PathBuf::from(d).join("ephemerd");
    }
    if is_root() {
        return PathBuf::from("/var/lib/ephemerd");
    }
    if let Some(x) = std::env::var_os("XDG_DATA_HOME") {
        return PathBuf::from(x).join("ephemerd");
    }
    match std::env::var_os("HOME") {
        Some(h) => PathBuf::from(h).join(".local/share/ephemerd"),
        None => PathBuf::from("/var/lib/ephemerd"),
    }
}

/// The default config file: `/etc/ephemerd/config.toml` for root, else
/// `$XDG_CONFIG_HOME/ephemerd/config.toml`. Read when it exists and no `--config` is given; the settings
/// window saves forges there.
pub fn default_config_path() -> PathBuf {
    #[cfg(windows)]
    if let Some(d) = std::env::var_os("APPDATA") {
        return PathBuf::from(d).join("ephemerd").join("config.toml");
    }
    if is_root() {
        return PathBuf::from("/etc/ephemerd/config.toml");
    }
    if let Some(x) = std::env::var_os("XDG_CONFIG_HOME") {
        return PathBuf::from(x).join("ephemerd/config.toml");
    }
    match std::env::var_os("HOME") {
        Some(h) => PathBuf::from(h).join(".config/ephemerd/config.toml"),
        None => PathBuf::from("/etc/ephemerd/config.toml"),
    }
}

/// Where things live under the data dir. One struct, so no module invents its own paths.
#[derive(Debug, Clone)]
pub struct DataDirs {
    pub root: PathBuf,
}

impl DataDirs {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// containerd's persistent root (content store, snapshots, metadata).
    pub fn containerd_root(&self) -> PathBuf {
        self.root.join("containerd/root")
    }
    /// containerd's state dir (bundles, shim state).
    pub fn containerd_state(&self) -> PathBuf {
        self.root.join("containerd/state")
    }
    pub fn containerd_config(&self) -> PathBuf {
        self.root.join("containerd/config.toml")
    }
    pub fn containerd_log(&self) -> PathBuf {
        self.root.join("containerd/containerd.log")
    }
    pub fn run_dir(&self) -> PathBuf {
        self.root.join("run")
    }
    /// containerd's gRPC socket (paths over 107 bytes are rejected by the kernel: see `check_socket_path`).
    pub fn containerd_socket(&self) -> PathBuf {
        self.run_dir().join("containerd.sock")
    }
    pub fn containerd_pid(&self) -> PathBuf {
        self.run_dir().join("containerd.pid")
    }
    /// Named network namespaces of jobs (bind mounts of `/proc/<tid>/ns/net`).
    pub fn netns_dir(&self) -> PathBuf {
        self.run_dir().join("netns")
    }
    pub fn cni_dir(&self) -> PathBuf {
        self.root.join("cni")
    }
    /// host-local IPAM leases (one file per leased address, holding the job id).
    pub fn ipam_dir(&self) -> PathBuf {
        self.cni_dir().join("ipam")
    }
    /// Per-job scratch dirs (workspace, runner overlay, resolv.conf, hosts); removed with the job.
    pub fn jobs_dir(&self) -> PathBuf {
        self.root.join("jobs")
    }
    pub fn job_dir(&self, job_id: &str) -> PathBuf {
        self.jobs_dir().join(job_id)
    }
    /// Job logs, kept after the job as its history.
    pub fn logs_dir(&self) -> PathBuf {
        self.root.join("logs")
    }
    pub fn job_log(&self, job_id: &str) -> PathBuf {
        self.logs_dir().join(format!("{job_id}.log"))
    }
    pub fn journal(&self) -> PathBuf {
        self.root.join("ephemerd.db")
    }

    /// Creates the directories the daemon writes to, private to root.
    pub fn create(&self) -> std::io::Result<()> {
        let mut b = std::fs::DirBuilder::new();
        b.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
        for d in
            [self.root.clone(), self.run_dir(), self.netns_dir(), self.ipam_dir(), self.jobs_dir(), self.logs_dir()]
        {
            b.create(&d)?;
        }
        b.create(self.root.join("containerd"))?;
        Ok(())
    }
}

/// Unix socket paths are limited to 107 bytes; a longer one is a clear error rather than a bind failure.
pub fn check_socket_path(p: &Path) -> Result<(), String> {
    let len = p.as_os_str().len();
    if len > 107 {
        return Err(format!(
            "socket path {} is {len} bytes, over the 107-byte limit of unix sockets; use a shorter data_dir",
            p.display()
        ));
    }
    Ok(())
}

/// An exclusive lock on a data dir: one ephemerd (and so one containerd) per data dir.
pub struct DataDirLock {
    _lock: std::fs::File,
}

impl DataDirLock {
    /// Takes the lock, or says which process holds it.
    pub fn acquire(dirs: &DataDirs) -> Result<Self, String> {
        use std::io::Write;
        let path = dirs.root.join("lock");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        // flock(2) on Unix, LockFileEx on Windows; released when the file is closed (or the process dies).
        match file.try_lock() {
            Ok(()) => {
                let mut lock = file;
                let _ = lock.set_len(0);
                let _ = writeln!(lock, "{}", std::process::id());
                Ok(Self { _lock: lock })
            }
            Err(_) => {
                let holder = std::fs::read_to_string(&path).unwrap_or_default();
                Err(format!(
                    "data dir {} is in use by another ephemerd (pid {}); stop it or use another --data-dir",
                    dirs.root.display(),
                    holder.trim()
                ))
            }
        }
    }
}

//! The daemon's TOML configuration: typed sections, defaults per OS, and validation whose messages name
//! the offending key. A config file never holds a secret: where a secret is needed, the config names the
//! environment variable that carries it.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::platform;

/// Everything that can go wrong while loading a config file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("invalid config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid config: `{key}`: {message}")]
    Invalid { key: &'static str, message: String },
}

/// The whole configuration, as read from TOML (all sections optional).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where the daemon keeps containerd's root and state, the journal, job logs and caches.
    pub data_dir: Option<PathBuf>,
    pub containerd: ContainerdConfig,
    pub network: NetworkConfig,
    pub image: ImageConfig,
    pub limits: Limits,
    pub security: SecurityConfig,
    pub runner: RunnerConfig,
    /// Per-registry settings, keyed by registry host (with port), e.g. `"ghcr.io"` or `"localhost:5000"`.
    pub registries: BTreeMap<String, RegistryConfig>,
    pub scheduler: SchedulerConfig,
    pub webhook: WebhookConfig,
    pub control: ControlConfig,
    pub history: HistoryConfig,
    pub worker: WorkerConfig,
    /// GitHub owners to take jobs from (`[[github]]`, one per owner).
    pub github: Vec<crate::forge::github::GithubConfig>,
}

/// How much job history (journal records and logs) is kept.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HistoryConfig {
    /// Finished jobs older than this are forgotten, with their logs.
    #[serde(with = "humantime_serde_compat")]
    pub keep_for: Duration,
    /// At most this many finished jobs are kept (the oldest go first).
    pub keep_jobs: u32,
    /// A job's log is cut to this size when it ends (its first and last halves are kept).
    pub log_max: ByteSize,
}

impl Default for HistoryConfig {
    fn default() -> Self {
        Self { keep_for: Duration::from_secs(30 * 86400), keep_jobs: 1000, log_max: ByteSize(16 << 20) }
    }
}

/// The control API's socket (`DATA_DIR/run/control.sock`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ControlConfig {
    /// A group whose members may use the socket (the CLI and the tray app without root). Unset: root only.
    pub group: Option<String>,
}

/// The HTTP endpoint forges deliver webhooks to.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookConfig {
    /// Address to listen on, e.g. `"127.0.0.1:8089"` (behind a tunnel or reverse proxy); unset: no webhooks.
    pub listen: Option<std::net::SocketAddr>,
}

/// How `ephemerd serve` schedules forge jobs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SchedulerConfig {
    /// Jobs running at once.
    pub max_concurrent: usize,
    /// How long a started runner may wait for the forge to give it its job before it is removed.
    #[serde(with = "humantime_serde_compat")]
    pub pickup_timeout: Duration,
    /// The longest a job may run.
    #[serde(with = "humantime_serde_compat")]
    pub job_timeout: Duration,
    /// How long `drain` waits for running jobs before stopping them.
    #[serde(with = "humantime_serde_compat")]
    pub drain_timeout: Duration,
    /// Runner names start with this (`<prefix>-<host>-<job id>`); runners so named that no job owns are
    /// removed at start, and swept again every `sweep_interval` (the forge refuses to remove a runner it
    /// still thinks busy, e.g. after a crash, until it gives up on the runner's job).
    pub runner_prefix: String,
    #[serde(with = "humantime_serde_compat")]
    pub sweep_interval: Duration,
    /// Label profiles: jobs asking for all of a profile's labels run with its image and limits.
    pub profiles: Vec<ProfileConfig>,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        Self {
            max_concurrent: 2,
            pickup_timeout: Duration::from_secs(300),
            job_timeout: Duration::from_secs(6 * 3600),
            drain_timeout: Duration::from_secs(3600),
            runner_prefix: "ephemerd".into(),
            sweep_interval: Duration::from_secs(60),
            profiles: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileConfig {
    pub name: String,
    pub labels: Vec<String>,
    pub image: Option<String>,
    /// For images that carry their own runner: the command that starts it (the JIT config is in its
    /// environment). Default: `/actions-runner/run.sh` from the runner tree.
    pub runner_cmd: Option<Vec<String>>,
    pub cpus: Option<f64>,
    pub memory: Option<ByteSize>,
    pub pids: Option<i64>,
    /// Where the profile's jobs run: "container" (this machine's containerd) or "vm" (the worker VM,
    /// as `[worker]` sets it up). Default: where `[worker] mode` runs every job.
    pub isolation: Option<Isolation>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Isolation {
    /// A container on this machine's containerd (its own kernel is this machine's).
    Container,
    /// A container in the worker VM, with a kernel of its own.
    Vm,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ContainerdConfig {
    /// A directory holding `containerd`, `containerd-shim-runc-v2` and `runc`; searched after the bundle
    /// next to the ephemerd executable and before `PATH`.
    pub bin_dir: Option<PathBuf>,
    /// How long to wait for containerd to answer after starting it.
    #[serde(with = "humantime_serde_compat")]
    pub start_timeout: Duration,
}

impl Default for ContainerdConfig {
    fn default() -> Self {
        Self { bin_dir: None, start_timeout: Duration::from_secs(30) }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NetworkConfig {
    /// Name of the Linux bridge job containers are attached to.
    pub bridge: String,
    /// IPv4 subnet (CIDR) the job containers get their addresses from.
    pub subnet: String,
    /// Directory holding the CNI plugins (`bridge`, `host-local`, `firewall`, `loopback`); searched after
    /// the bundle and before the distribution's directories.
    pub cni_bin_dir: Option<PathBuf>,
    /// DNS servers for job containers; empty means the host's non-loopback resolvers.
    pub dns: Vec<Ipv4Addr>,
    /// TCP ports on the host that job containers may connect to (everything else on the host is refused).
    pub allow_host_ports: Vec<u16>,
    /// Private destinations (CIDRs) that job containers may reach despite the private-range block.
    pub allow_cidrs: Vec<String>,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        Self {
            bridge: "ephemerd0".into(),
            subnet: "10.231.0.0/16".into(),
            cni_bin_dir: None,
            dns: Vec::new(),
            allow_host_ports: Vec::new(),
            allow_cidrs: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ImageConfig {
    /// The image jobs run in when nothing else names one.
    pub default: String,
}

impl Default for ImageConfig {
    fn default() -> Self {
        Self { default: "docker.io/library/buildpack-deps:bookworm-scm".into() }
    }
}

/// Resource limits applied to every job container.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// CPUs (may be fractional); 0 means unlimited.
    pub cpus: f64,
    /// Memory limit, e.g. `"4GiB"` or `"512MiB"`; swap is not allowed on top of it.
    pub memory: ByteSize,
    /// Maximum number of processes/threads.
    pub pids: i64,
}

impl Default for Limits {
    fn default() -> Self {
        Self { cpus: 2.0, memory: ByteSize(4 << 30), pids: 4096 }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SecurityConfig {
    /// Path to a seccomp profile in the containers/Docker JSON format, or `"unconfined"`. By default the
    /// bundle's `seccomp.json`, else the distribution's `/usr/share/containers/seccomp.json`.
    pub seccomp_profile: Option<String>,
    /// Let jobs create namespaces (`unshare`, `clone` with CLONE_NEW*), as rootless container tools inside
    /// a job need. Off by default: a user namespace gives a job every capability over what it mounts.
    pub allow_nested_namespaces: bool,
    /// Run every job in a user namespace (the default): its root is an unprivileged host uid (the
    /// instance's range of 65536 ids), so even a breakout lands without privileges. The image is remapped
    /// once (a chowned copy of its snapshot); the first job on an image pays for that.
    pub user_namespace: bool,
}

impl Default for SecurityConfig {
    fn default() -> Self {
        Self { seccomp_profile: None, allow_nested_namespaces: false, user_namespace: true }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunnerConfig {
    /// A host directory holding a runner tree; mounted at `/actions-runner` in every job with a per-job
    /// writable overlay, so jobs never alter the shared copy.
    pub dir: Option<PathBuf>,
    /// Or: a runner release archive (`.tar.gz`) to download, verify against `sha256`, unpack and cache.
    pub url: Option<String>,
    /// The archive's SHA-256 (hex), required with `url`.
    pub sha256: Option<String>,
}

/// Where `serve` runs its jobs: on this machine's containerd, or in a Linux worker it drives over Dispatch.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorkerConfig {
    pub mode: WorkerMode,
    /// The worker's root filesystem, the tarball `rootfs/build-worker-rootfs.sh` builds (namespace mode).
    pub rootfs: Option<PathBuf>,
    /// Image archives (OCI or docker-archive tars) the worker imports when it boots, for images no
    /// registry serves.
    pub images: Vec<PathBuf>,
    /// The /30 of the link between this machine and the worker (namespace mode); by default one of
    /// 10.230.0.0/16 picked by the instance id.
    pub link: Option<String>,
    /// The VM's boot set: the directory `rootfs/build-vm-image.sh` writes (vmlinuz, initrd.img, base.img).
    pub vm_image: Option<PathBuf>,
    /// The VM's virtual CPUs and memory.
    pub cpus: u32,
    pub memory: ByteSize,
    /// The VM's disk for images and jobs (its image store, sparse: it takes what is written).
    pub disk: ByteSize,
    /// How the VM runs: "auto" (KVM where this machine has hardware virtualization, else TCG), "kvm", "tcg".
    pub accel: VmAccel,
    /// The worker (VM or namespace) stops once no job has run for this long, and boots again for the next.
    #[serde(with = "humantime_serde_compat")]
    pub idle_stop: Duration,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            mode: WorkerMode::Local,
            rootfs: None,
            images: Vec::new(),
            link: None,
            vm_image: None,
            cpus: 2,
            memory: ByteSize(2 << 30),
            disk: ByteSize(16 << 30),
            accel: VmAccel::Auto,
            idle_stop: Duration::from_secs(300),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VmAccel {
    #[default]
    Auto,
    Kvm,
    Tcg,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WorkerMode {
    /// Jobs run on this machine's containerd.
    #[default]
    Local,
    /// Jobs run in a Linux worker in network, mount and pid namespaces of its own, on its own veth and in
    /// its own root filesystem: the Linux stand-in for the WSL distro.
    Namespace,
    /// A WSL2 distro (Windows).
    Wsl,
    /// A Linux VM.
    Vm,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RegistryConfig {
    /// Speak plain HTTP to this registry (always the case for loopback hosts).
    pub insecure: bool,
    /// User name for basic auth or the token exchange.
    pub username: Option<String>,
    /// Name of the environment variable that holds the password or token (never the secret itself).
    pub password_env: Option<String>,
}

/// A byte size written as an integer or a string with a unit (`"512MiB"`, `"4GiB"`, `"1G"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSize(pub u64);

impl ByteSize {
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (num, unit) = s.split_at(split);
        let n: u64 = num.parse().map_err(|_| format!("`{s}` is not a size like \"512MiB\""))?;
        let mult: u64 = match unit.trim() {
            "" | "B" => 1,
            "K" | "KB" | "k" => 1000,
            "KiB" | "Ki" => 1 << 10,
            "M" | "MB" => 1_000_000,
            "MiB" | "Mi" => 1 << 20,
            "G" | "GB" => 1_000_000_000,
            "GiB" | "Gi" => 1 << 30,
            "TiB" | "Ti" => 1 << 40,
            other => return Err(format!("unknown size unit `{other}` (use B, KiB, MiB, GiB)")),
        };
        n.checked_mul(mult).map(ByteSize).ok_or_else(|| format!("`{s}` is too large"))
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(u64),
            S(String),
        }
        match Raw::deserialize(d)? {
            Raw::N(n) => Ok(ByteSize(n)),
            Raw::S(s) => ByteSize::parse(&s).map_err(serde::de::Error::custom),
        }
    }
}

/// Durations are written as humantime strings (`"30s"`, `"2m"`); use with `#[serde(with = ...)]`.
pub(crate) mod humantime_serde_compat {
    use serde::Deserialize;
    use std::time::Duration;

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(&s).map_err(|e| serde::de::Error::custom(format!("`{s}`: {e}")))
    }
}

/// An IPv4 network in CIDR notation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Net {
    pub addr: Ipv4Addr,
    pub prefix: u8,
}

impl Ipv4Net {
    pub fn parse(s: &str) -> Result<Self, String> {
        let (a, p) = s.split_once('/').ok_or_else(|| format!("`{s}` is not a CIDR like 10.231.0.0/16"))?;
        let addr: Ipv4Addr = a.parse().map_err(|_| format!("`{a}` is not an IPv4 address"))?;
        let prefix: u8 = p.parse().map_err(|_| format!("`{p}` is not a prefix length"))?;
        if prefix > 32 {
            return Err(format!("prefix length {prefix} is over 32"));
        }
        Ok(Self { addr: Ipv4Addr::from(u32::from(addr) & Self::mask(prefix)), prefix })
    }

    fn mask(prefix: u8) -> u32 {
        if prefix == 0 { 0 } else { u32::MAX << (32 - u32::from(prefix)) }
    }

    /// The first host address, used as the bridge gateway.
    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) + 1)
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & Self::mask(self.prefix) == u32::from(self.addr)
    }

    /// Whether the two networks share an address.
    pub fn overlaps(&self, other: &Ipv4Net) -> bool {
        self.contains(other.addr) || other.contains(self.addr)
    }
}

impl std::fmt::Display for Ipv4Net {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl Config {
    /// Reads and validates a config file; `None` gives the defaults.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let cfg = match path {
            None => Config::default(),
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
                Self::parse(&text).map_err(|message| ConfigError::Parse { path: path.to_owned(), message })?
            }
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// Parses TOML text; the message of an error names the key and the line.
    pub fn parse(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|e| e.to_string().trim_end().replace('\n', " "))
    }

    /// Checks values that parse but make no sense.
    /// Whether any job may run in the worker VM: `[worker] mode = "vm"`, or a profile's
    /// `isolation = "vm"`.
    pub fn wants_vm(&self) -> bool {
        self.worker.mode == WorkerMode::Vm || self.scheduler.profiles.iter().any(|p| p.isolation == Some(Isolation::Vm))
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let subnet = Ipv4Net::parse(&self.network.subnet)
            .map_err(|message| ConfigError::Invalid { key: "network.subnet", message })?;
        if subnet.prefix > 28 {
            return Err(ConfigError::Invalid {
                key: "network.subnet",
                message: format!("{subnet} is too small for job containers (use /28 or larger)"),
            });
        }
        for c in &self.network.allow_cidrs {
            Ipv4Net::parse(c).map_err(|message| ConfigError::Invalid { key: "network.allow_cidrs", message })?;
        }
        let b = &self.network.bridge;
        if b.is_empty() || b.len() > 15 || !b.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            return Err(ConfigError::Invalid {
                key: "network.bridge",
                message: format!("`{b}` is not a valid interface name (1-15 letters, digits, - or _)"),
            });
        }
        if self.history.log_max.0 < 4096 {
            return Err(ConfigError::Invalid { key: "history.log_max", message: "must be at least 4KiB".into() });
        }
        if self.history.keep_jobs == 0 {
            return Err(ConfigError::Invalid { key: "history.keep_jobs", message: "must be at least 1".into() });
        }
        if self.limits.cpus < 0.0 || !self.limits.cpus.is_finite() {
            return Err(ConfigError::Invalid { key: "limits.cpus", message: "must be 0 (unlimited) or more".into() });
        }
        if self.limits.memory.0 != 0 && self.limits.memory.0 < (6 << 20) {
            return Err(ConfigError::Invalid {
                key: "limits.memory",
                message: "must be at least 6MiB (or 0 for unlimited)".into(),
            });
        }
        if self.limits.pids < 0 {
            return Err(ConfigError::Invalid { key: "limits.pids", message: "must be 0 (unlimited) or more".into() });
        }
        if self.image.default.trim().is_empty() {
            return Err(ConfigError::Invalid { key: "image.default", message: "must name an image".into() });
        }
        match (&self.runner.dir, &self.runner.url, &self.runner.sha256) {
            (Some(_), Some(_), _) => {
                return Err(ConfigError::Invalid {
                    key: "runner.url",
                    message: "give runner.dir or runner.url, not both".into(),
                });
            }
            (_, Some(_), None) => {
                return Err(ConfigError::Invalid {
                    key: "runner.sha256",
                    message: "runner.url needs the archive's sha256".into(),
                });
            }
            (_, _, Some(h)) if h.len() != 64 || !h.chars().all(|c| c.is_ascii_hexdigit()) => {
                return Err(ConfigError::Invalid {
                    key: "runner.sha256",
                    message: format!("`{h}` is not a hex SHA-256"),
                });
            }
            _ => {}
        }
        match self.worker.mode {
            WorkerMode::Local => {}
            WorkerMode::Namespace => {
                if self.worker.rootfs.is_none() {
                    return Err(ConfigError::Invalid {
                        key: "worker.rootfs",
                        message: "mode = \"namespace\" needs the worker's rootfs tarball (rootfs/build-worker-rootfs.sh builds it)".into(),
                    });
                }
            }
            WorkerMode::Vm => {}
            WorkerMode::Wsl => {
                return Err(ConfigError::Invalid {
                    key: "worker.mode",
                    message: "\"wsl\" workers are not built yet: use \"local\", \"namespace\" or \"vm\"".into(),
                });
            }
        }
        if self.wants_vm() {
            if self.worker.mode == WorkerMode::Namespace {
                return Err(ConfigError::Invalid {
                    key: "scheduler.profiles.isolation",
                    message:
                        "isolation = \"vm\" needs worker.mode \"local\" or \"vm\": the namespace worker and the VM \
                              would share worker.link"
                            .into(),
                });
            }
            if self.worker.vm_image.is_none() {
                return Err(ConfigError::Invalid {
                    key: "worker.vm_image",
                    message: "the worker VM (mode = \"vm\", or a profile's isolation = \"vm\") needs its boot set \
                              (rootfs/build-vm-image.sh builds it)"
                        .into(),
                });
            }
            if self.worker.cpus == 0 || self.worker.memory.0 < 256 << 20 {
                return Err(ConfigError::Invalid {
                    key: "worker.memory",
                    message: "the VM needs at least 1 CPU and 256 MiB of memory".into(),
                });
            }
            if self.worker.disk.0 < 1 << 30 {
                return Err(ConfigError::Invalid {
                    key: "worker.disk",
                    message: "the VM's disk needs at least 1 GiB (its images and every running job's files)".into(),
                });
            }
        }
        if let Some(l) = &self.worker.link {
            let net = Ipv4Net::parse(l).map_err(|message| ConfigError::Invalid { key: "worker.link", message })?;
            if net.prefix != 30 {
                return Err(ConfigError::Invalid { key: "worker.link", message: format!("{net} must be a /30") });
            }
        }
        if self.scheduler.max_concurrent == 0 {
            return Err(ConfigError::Invalid { key: "scheduler.max_concurrent", message: "must be at least 1".into() });
        }
        let p = &self.scheduler.runner_prefix;
        if p.is_empty() || !p.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            return Err(ConfigError::Invalid {
                key: "scheduler.runner_prefix",
                message: format!("`{p}` must be letters, digits, - or _"),
            });
        }
        for pr in &self.scheduler.profiles {
            if pr.labels.is_empty() {
                return Err(ConfigError::Invalid {
                    key: "scheduler.profiles.labels",
                    message: format!("profile `{}` needs at least one label", pr.name),
                });
            }
        }
        for g in &self.github {
            if g.owner.trim().is_empty() {
                return Err(ConfigError::Invalid {
                    key: "github.owner",
                    message: "must name a user or organization".into(),
                });
            }
            if !(g.api_url.starts_with("https://") || g.api_url.starts_with("http://")) {
                return Err(ConfigError::Invalid {
                    key: "github.api_url",
                    message: format!("`{}` is not an http(s) URL", g.api_url),
                });
            }
        }
        for (host, r) in &self.registries {
            if r.password_env.is_some() && r.username.is_none() {
                return Err(ConfigError::Invalid {
                    key: "registries.*.username",
                    message: format!("registry `{host}` has password_env but no username"),
                });
            }
        }
        Ok(())
    }

    pub fn subnet(&self) -> Ipv4Net {
        // validate() has checked it; fall back to the default rather than panic.
        Ipv4Net::parse(&self.network.subnet).unwrap_or(Ipv4Net { addr: Ipv4Addr::new(10, 231, 0, 0), prefix: 16 })
    }

    /// The data dir: the configured one, else the OS default.
    pub fn data_dir(&self) -> PathBuf {
        self.data_dir.clone().unwrap_or_else(platform::default_data_dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_key_is_named() {
        let err = Config::parse("[network]\nbrige = \"x\"\n").unwrap_err();
        assert!(err.contains("brige"), "{err}");
    }

    #[test]
    fn bad_values_name_their_key() {
        let cases = [
            ("[network]\nsubnet = \"10.0.0.0\"", "network.subnet"),
            ("[network]\nsubnet = \"10.0.0.0/30\"", "network.subnet"),
            ("[network]\nbridge = \"a bridge name that is too long\"", "network.bridge"),
            ("[limits]\ncpus = -1.0", "limits.cpus"),
            ("[limits]\nmemory = \"1MiB\"", "limits.memory"),
            ("[registries.\"r.example\"]\npassword_env = \"X\"", "registries.*.username"),
            ("[runner]\nurl = \"http://r.example/r.tar.gz\"", "runner.sha256"),
            ("[runner]\nurl = \"http://r.example/r.tar.gz\"\nsha256 = \"xyz\"", "runner.sha256"),
            ("[runner]\ndir = \"/r\"\nurl = \"http://r.example/r.tar.gz\"", "runner.url"),
            ("[scheduler]\nmax_concurrent = 0", "scheduler.max_concurrent"),
            ("[worker]\nmode = \"namespace\"", "worker.rootfs"),
            ("[worker]\nmode = \"vm\"", "worker.vm_image"),
            ("[worker]\nmode = \"wsl\"", "worker.mode"),
            ("[worker]\nmode = \"vm\"\nvm_image = \"/i\"\nmemory = \"64MiB\"", "worker.memory"),
            ("[worker]\nmode = \"vm\"\nvm_image = \"/i\"\ndisk = \"100MiB\"", "worker.disk"),
            ("[[scheduler.profiles]]\nname = \"p\"\nlabels = [\"kvm\"]\nisolation = \"vm\"", "worker.vm_image"),
            (
                "[worker]\nmode = \"namespace\"\nrootfs = \"/r.tgz\"\nvm_image = \"/i\"\n[[scheduler.profiles]]\nname = \"p\"\n\
                 labels = [\"kvm\"]\nisolation = \"vm\"",
                "scheduler.profiles.isolation",
            ),
            ("[worker]\nlink = \"10.0.0.0/24\"", "worker.link"),
            ("[scheduler]\nrunner_prefix = \"a b\"", "scheduler.runner_prefix"),
            ("[[scheduler.profiles]]\nname = \"p\"\nlabels = []", "scheduler.profiles.labels"),
            ("[[github]]\nowner = \"o\"\napi_url = \"ftp://x\"", "github.api_url"),
        ];
        for (text, key) in cases {
            let cfg = Config::parse(text).unwrap();
            let err = cfg.validate().unwrap_err().to_string();
            assert!(err.contains(key), "{text}: {err}");
        }
    }

    #[test]
    fn sizes_parse() {
        assert_eq!(ByteSize::parse("512MiB").unwrap().0, 512 << 20);
        assert_eq!(ByteSize::parse("4GiB").unwrap().0, 4 << 30);
        assert_eq!(ByteSize::parse("100").unwrap().0, 100);
        assert!(ByteSize::parse("4 parsecs").is_err());
        let cfg = Config::parse("[limits]\nmemory = \"64MiB\"\npids = 100").unwrap();
        assert_eq!(cfg.limits.memory.0, 64 << 20);
        let err = Config::parse("[limits]\nmemory = \"64Mb/s\"").unwrap_err();
        assert!(err.contains("memory"), "{err}");
    }

    #[test]
    fn durations_parse() {
        let cfg = Config::parse("[containerd]\nstart_timeout = \"5s\"").unwrap();
        assert_eq!(cfg.containerd.start_timeout, Duration::from_secs(5));
        assert!(Config::parse("[containerd]\nstart_timeout = \"soon\"").is_err());
    }

    #[test]
    fn the_documented_example_parses_and_holds_the_defaults() {
        let doc = include_str!("../../docs/configuration.md");
        let start = doc.find("```toml\n").unwrap() + 8;
        let end = start + doc[start..].find("```").unwrap();
        let cfg = Config::parse(&doc[start..end]).unwrap();
        cfg.validate().unwrap();
        let d = Config::default();
        assert_eq!(cfg.network.subnet, d.network.subnet);
        assert_eq!(cfg.network.bridge, d.network.bridge);
        assert_eq!(cfg.limits.memory, d.limits.memory);
        assert_eq!(cfg.image.default, d.image.default);
        assert_eq!(cfg.containerd.start_timeout, d.containerd.start_timeout);
        assert_eq!(cfg.registries["registry.example.com"].password_env.as_deref(), Some("EXAMPLE_REGISTRY_TOKEN"));
        let s = &cfg.scheduler;
        let ds = &d.scheduler;
        assert_eq!(
            (s.max_concurrent, s.pickup_timeout, s.job_timeout),
            (ds.max_concurrent, ds.pickup_timeout, ds.job_timeout)
        );
        assert_eq!((s.drain_timeout, &s.runner_prefix), (ds.drain_timeout, &ds.runner_prefix));
        assert_eq!(cfg.github.len(), 1);
        assert_eq!(cfg.github[0].poll_interval, Duration::from_secs(10));
        assert_eq!(cfg.scheduler.profiles[0].memory, Some(ByteSize(16 << 30)));
    }

    #[test]
    fn cidr_math() {
        let n = Ipv4Net::parse("10.231.7.9/16").unwrap();
        assert_eq!(n.to_string(), "10.231.0.0/16");
        assert_eq!(n.gateway(), Ipv4Addr::new(10, 231, 0, 1));
        assert!(n.contains(Ipv4Addr::new(10, 231, 200, 3)));
        assert!(!n.contains(Ipv4Addr::new(10, 232, 0, 3)));
    }
}

/// What a config reload does to a running daemon: the keys it applies at once, and those that need a
/// restart (named as in the file). `apply_live` makes the first set take effect.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ReloadPlan {
    pub applied: Vec<String>,
    pub needs_restart: Vec<String>,
}

/// Compares the running config with a newly read one.
pub fn reload_plan(old: &Config, new: &Config) -> ReloadPlan {
    fn differs<T: std::fmt::Debug>(a: &T, b: &T) -> bool {
        format!("{a:?}") != format!("{b:?}")
    }
    let mut plan = ReloadPlan::default();
    let (o, n) = (&old.scheduler, &new.scheduler);
    let live: [(&str, bool); 10] = [
        ("scheduler.max_concurrent", o.max_concurrent != n.max_concurrent),
        ("scheduler.pickup_timeout", o.pickup_timeout != n.pickup_timeout),
        ("scheduler.job_timeout", o.job_timeout != n.job_timeout),
        ("scheduler.drain_timeout", o.drain_timeout != n.drain_timeout),
        ("scheduler.profiles", differs(&o.profiles, &n.profiles)),
        ("limits", differs(&old.limits, &new.limits)),
        ("image", differs(&old.image, &new.image)),
        ("history", differs(&old.history, &new.history)),
        // The providers are built again (with their credentials) and their pollers restarted.
        ("github", differs(&old.github, &new.github)),
        // The listener is bound anew (by the control service, so a refusal reaches the caller).
        ("webhook", differs(&old.webhook, &new.webhook)),
    ];
    let restart: [(&str, bool); 11] = [
        ("data_dir", old.data_dir != new.data_dir),
        ("worker", differs(&old.worker, &new.worker)),
        // The worker VM is set up at start: a profile's isolation = "vm" asks for one only then.
        ("scheduler.profiles.isolation", old.wants_vm() != new.wants_vm()),
        ("containerd", differs(&old.containerd, &new.containerd)),
        ("network", differs(&old.network, &new.network)),
        ("security", differs(&old.security, &new.security)),
        ("runner", differs(&old.runner, &new.runner)),
        ("control", differs(&old.control, &new.control)),
        ("scheduler.runner_prefix", o.runner_prefix != n.runner_prefix),
        ("scheduler.sweep_interval", o.sweep_interval != n.sweep_interval),
        ("registries", differs(&old.registries, &new.registries)),
    ];
    plan.applied = live.iter().filter(|(_, d)| *d).map(|(k, _)| k.to_string()).collect();
    plan.needs_restart = restart.iter().filter(|(_, d)| *d).map(|(k, _)| k.to_string()).collect();
    plan
}

/// Takes the keys a reload applies at once from `new` into `running`.
pub fn apply_live(running: &mut Config, new: &Config) {
    let (r, n) = (&mut running.scheduler, &new.scheduler);
    r.max_concurrent = n.max_concurrent;
    r.pickup_timeout = n.pickup_timeout;
    r.job_timeout = n.job_timeout;
    r.drain_timeout = n.drain_timeout;
    r.profiles = n.profiles.clone();
    running.limits = new.limits.clone();
    running.image = new.image.clone();
    running.history = new.history.clone();
    running.github = new.github.clone();
    running.webhook = new.webhook.clone();
}

#[cfg(test)]
mod reload_tests {
    use super::*;

    #[test]
    fn a_profile_may_ask_for_the_vm_which_a_reload_sets_up_only_with_a_restart() {
        let old = Config::parse("[[scheduler.profiles]]\nname = \"p\"\nlabels = [\"kvm\"]").unwrap();
        assert!(!old.wants_vm());
        let new = Config::parse(
            "[worker]\nvm_image = \"/i\"\n[[scheduler.profiles]]\nname = \"p\"\nlabels = [\"kvm\"]\nisolation = \"vm\"",
        )
        .unwrap();
        assert_eq!(new.scheduler.profiles[0].isolation, Some(Isolation::Vm));
        assert!(new.wants_vm(), "a profile asks for the VM with worker.mode local");
        let plan = reload_plan(&old, &new);
        assert!(plan.needs_restart.contains(&"scheduler.profiles.isolation".to_string()), "{plan:?}");
        let bad = Config::parse("[[scheduler.profiles]]\nname = \"p\"\nlabels = [\"x\"]\nisolation = \"kvm\"");
        assert!(bad.is_err_and(|e| e.to_string().contains("isolation")));
    }

    #[test]
    fn a_reload_applies_what_it_can_and_names_the_rest() {
        let old = Config::parse("[scheduler]\nmax_concurrent = 2").unwrap();
        let new = Config::parse(
            "[scheduler]\nmax_concurrent = 6\nsweep_interval = \"5s\"\n[limits]\nmemory = \"1GiB\"\n[network]\nbridge = \"other0\"",
        )
        .unwrap();
        let plan = reload_plan(&old, &new);
        assert_eq!(plan.applied, vec!["scheduler.max_concurrent", "limits"]);
        assert_eq!(plan.needs_restart, vec!["network", "scheduler.sweep_interval"]);
        let mut running = old.clone();
        apply_live(&mut running, &new);
        assert_eq!(running.scheduler.max_concurrent, 6);
        assert_eq!(running.limits.memory.0, 1 << 30);
        assert_eq!(running.network.bridge, old.network.bridge, "what needs a restart is not taken");
        assert_eq!(reload_plan(&running, &running), ReloadPlan::default());
    }
}

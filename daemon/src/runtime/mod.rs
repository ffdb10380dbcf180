//! The job runtime on local containerd: create → start → wait → destroy of one isolated container per job,
//! every resource journalled before it is made, and reconciliation that removes whatever a crashed daemon
//! left behind.

pub mod binaries;
pub mod containerd;
/// The instance (`crate::instance`), where the runtime has always named it.
pub use crate::instance;
pub mod network;

use std::collections::HashSet;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use tracing::{debug, info, warn};

pub use crate::target::{Exit, Reconciled, new_job_id};

use crate::config::{Config, Ipv4Net, Limits};
use crate::platform::DataDirs;
use crate::store::{ResourceKind, Store, StoreError};
use binaries::SearchPath;
use containerd::spec::{self, Bind, Overlay, SpecInput};
use containerd::{Containerd, CtrError, Image, ImageError, Images, task};
use instance::Instance;
use network::cni::{Cni, CniError};
use network::firewall::{Firewall, FirewallError, Policy};
use network::netns;

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error(transparent)]
    Ctr(#[from] CtrError),
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Cni(#[from] CniError),
    #[error(transparent)]
    Firewall(#[from] FirewallError),
    #[error(transparent)]
    Spec(#[from] spec::SpecError),
    #[error(transparent)]
    Remap(#[from] containerd::remap::RemapError),
    #[error("copying runner.dir {dir} for jobs in a user namespace: {message}")]
    RunnerCopy { dir: PathBuf, message: String },
    #[error(transparent)]
    Seccomp(#[from] containerd::seccomp::SeccompError),
    #[error("job {id}: {what}: {source}")]
    Io { id: String, what: &'static str, source: std::io::Error },
    #[error("runner tree {0} is not a directory")]
    RunnerDir(PathBuf),
    #[error("cleaning up job {id} left {count} resource(s) behind; first error: {first}")]
    Cleanup { id: String, count: usize, first: String },
}

/// What a job runs and how.
#[derive(Debug, Clone)]
pub struct JobSpec {
    pub id: String,
    pub image: Image,
    /// Replaces the image's entrypoint + cmd.
    pub args: Option<Vec<String>>,
    pub env: Vec<(String, String)>,
    pub workdir: Option<String>,
    /// Binds of paths inside the job's own dir (see [`Runtime::begin`]) into the container.
    pub binds: Vec<Bind>,
    /// Overrides the configured limits.
    pub limits: Option<Limits>,
    /// Addresses this job must reach despite the egress firewall (its forge).
    pub endpoints: Vec<std::net::Ipv4Addr>,
}

pub struct Runtime {
    dirs: DataDirs,
    ctr: Containerd,
    pub images: Images,
    store: Store,
    cni: Cni,
    firewall: Firewall,
    policy: Policy,
    limits: Limits,
    seccomp: Option<Value>,
    runner_dir: Option<PathBuf>,
    swap_accounting: bool,
    instance: Instance,
    /// The uid base of jobs' user namespaces, when they get one.
    uid_base: Option<u32>,
    netns_sysctls: Vec<(&'static str, &'static str)>,
    /// One image remap at a time.
    remapping: tokio::sync::Mutex<()>,
    /// Each created job's own process (OCI JSON): what [`Runtime::exec`] starts more of.
    processes: std::sync::Mutex<std::collections::HashMap<String, Value>>,
}

fn swap_accounting() -> bool {
    Path::new("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes").exists()
        || (Path::new("/sys/fs/cgroup/cgroup.controllers").exists() && Path::new("/proc/swaps").exists())
}

impl Runtime {
    pub fn new(cfg: &Config, dirs: DataDirs, ctr: Containerd, store: Store) -> Result<Self, RuntimeError> {
        let search = SearchPath::for_cni(cfg.network.cni_bin_dir.as_deref());
        let subnet = cfg.subnet();
        let instance = Instance::of(&dirs);
        let cni =
            Cni::new(&search, &instance, &cfg.network.bridge, subnet, dirs.ipam_dir(), dirs.cni_dir().join("results"))?;
        let policy = Policy {
            dns: network::resolvers(&cfg.network.dns),
            host_ports: cfg.network.allow_host_ports.clone(),
            allow: cfg.network.allow_cidrs.iter().filter_map(|c| Ipv4Net::parse(c).ok()).collect(),
            endpoints: Vec::new(),
        };
        let bundle = binaries::bundle_dir();
        let seccomp = containerd::seccomp::load(
            cfg.security.seccomp_profile.as_deref(),
            &containerd::seccomp::default_locations(bundle.as_deref()),
            &spec::default_cap_names(),
            cfg.security.allow_nested_namespaces,
        )?;
        if let Some(r) = &cfg.runner.dir
            && !r.is_dir()
        {
            return Err(RuntimeError::RunnerDir(r.clone()));
        }
        let uid_base = cfg.security.user_namespace.then(|| instance.uid_base());
        let mut runner_dir = cfg.runner.dir.clone();
        if let Some(base) = uid_base {
            traversable_for_jobs(&dirs)?;
            if let Some(src) = &cfg.runner.dir {
                // The jobs' overlay needs a lower tree their root owns: a shifted copy, kept in the data dir.
                let copy = dirs.root.join("runner").join(base.to_string());
                std::fs::create_dir_all(dirs.root.join("runner")).map_err(|source| RuntimeError::Io {
                    id: String::new(),
                    what: "making the runner copy's dir",
                    source,
                })?;
                containerd::remap::shifted_copy(src, &copy, base)
                    .map_err(|message| RuntimeError::RunnerCopy { dir: src.clone(), message })?;
                runner_dir = Some(copy);
            }
        }
        let images = Images::new(ctr.clone(), cfg.registries.clone());
        Ok(Self {
            dirs,
            ctr,
            images,
            store,
            cni,
            firewall: Firewall::new(instance.clone(), subnet, &cfg.network.bridge),
            uid_base,
            netns_sysctls: netns::job_sysctls(Path::new("/proc/sys/net/ipv6").exists()),
            remapping: tokio::sync::Mutex::new(()),
            processes: Default::default(),
            instance,
            policy,
            limits: cfg.limits.clone(),
            seccomp,
            runner_dir,
            swap_accounting: swap_accounting(),
        })
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn dirs(&self) -> &DataDirs {
        &self.dirs
    }

    pub fn log_path(&self, id: &str) -> PathBuf {
        self.dirs.job_log(id)
    }

    /// Records a new job and makes its private dir (for files the job's binds expose).
    pub fn begin(&self, id: &str, image: &str) -> Result<PathBuf, RuntimeError> {
        let dir = self.dirs.job_dir(id);
        self.store.create_job(id, image)?;
        self.store.add_resource(id, ResourceKind::Dir, &dir.display().to_string())?;
        std::fs::create_dir_all(&dir).map_err(|source| RuntimeError::Io {
            id: id.into(),
            what: "creating job dir",
            source,
        })?;
        if self.uid_base.is_some() {
            // runc binds the job's files from inside the user namespace: it must pass through (not list).
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o711)).map_err(|source| {
                RuntimeError::Io { id: id.into(), what: "opening the job dir to its user namespace", source }
            })?;
        }
        Ok(dir)
    }

    /// Creates everything the job needs, up to a created (not started) task.
    pub async fn create(&self, job: &JobSpec) -> Result<(), RuntimeError> {
        let id = job.id.as_str();
        let io = |what: &'static str| move |source| RuntimeError::Io { id: id.to_string(), what, source };
        let dir = self.dirs.job_dir(id);

        let mut lap = Lap::new(id);
        let etc = dir.join("etc");
        std::fs::create_dir_all(&etc).map_err(io("writing /etc files"))?;
        std::fs::write(
            etc.join("resolv.conf"),
            network::render_resolv_conf(&self.policy.dns, &network::host_search_domains()),
        )
        .map_err(io("writing resolv.conf"))?;
        // Rewritten in place (the bind keeps the inode) once the job has its address.
        std::fs::write(etc.join("hosts"), network::render_hosts(id, None)).map_err(io("writing hosts"))?;
        std::fs::write(etc.join("hostname"), format!("{id}\n")).map_err(io("writing hostname"))?;
        let mut binds = vec![
            Bind { source: etc.join("resolv.conf"), destination: "/etc/resolv.conf".into(), readonly: true },
            Bind { source: etc.join("hosts"), destination: "/etc/hosts".into(), readonly: true },
            Bind { source: etc.join("hostname"), destination: "/etc/hostname".into(), readonly: true },
        ];
        binds.extend(job.binds.iter().cloned());
        let mut overlays = Vec::new();
        if let Some(lower) = &self.runner_dir {
            let (upper, work) = (dir.join("runner/upper"), dir.join("runner/work"));
            std::fs::create_dir_all(&upper).map_err(io("creating runner overlay"))?;
            std::fs::create_dir_all(&work).map_err(io("creating runner overlay"))?;
            overlays.push(Overlay { lower: lower.clone(), upper, work, destination: "/actions-runner".into() });
        }
        if let Some(base) = self.uid_base {
            // What the job may write of its own dir is handed to its (unprivileged) root.
            let writable = binds.iter().filter(|b| !b.readonly && b.source.starts_with(&dir)).map(|b| b.source.clone());
            let overlay_dirs = overlays.iter().flat_map(|o| [o.upper.clone(), o.work.clone()]);
            for p in writable.chain(overlay_dirs).collect::<Vec<_>>() {
                tokio::task::spawn_blocking(move || containerd::remap::shift_tree(&p, base))
                    .await
                    .map_err(|e| std::io::Error::other(e.to_string()))
                    .and_then(|r| r.map_err(std::io::Error::other))
                    .map_err(io("handing the job's files to its user namespace"))?;
            }
        }

        let input = SpecInput {
            hostname: id.to_string(),
            image: &job.image.config,
            args: job.args.clone(),
            env: job.env.clone(),
            workdir: job.workdir.clone(),
            binds,
            overlays,
            // runc makes the namespace, owned by the job's user namespace; it is attached below, before start.
            netns: None,
            limits: job.limits.clone().unwrap_or_else(|| self.limits.clone()),
            swap_accounting: self.swap_accounting,
            seccomp: self.seccomp.clone(),
            cgroups_path: format!("{}/{id}", self.instance.cgroup_parent()),
            uid_base: self.uid_base,
        };
        let spec = spec::build(&input)?;
        let spec_json = serde_json::to_vec(&spec).map_err(|e| RuntimeError::Io {
            id: id.into(),
            what: "serialising the OCI spec",
            source: std::io::Error::other(e),
        })?;
        if let Some(p) = spec.process() {
            let p = serde_json::to_value(p).map_err(|e| RuntimeError::Io {
                id: id.into(),
                what: "serialising the OCI process",
                source: std::io::Error::other(e),
            })?;
            self.processes.lock().unwrap_or_else(|e| e.into_inner()).insert(id.to_string(), p);
        }

        let log = self.dirs.job_log(id);
        std::fs::OpenOptions::new().create(true).append(true).open(&log).map_err(io("creating the job log"))?;

        lap.lap("files and spec");
        let lease = self.ctr.create_lease("job", Duration::from_secs(600)).await?;
        let result = async {
            let parent = match self.uid_base {
                Some(base) => {
                    let _one = self.remapping.lock().await;
                    containerd::remap::ensure(&self.ctr, &job.image, base, &lease, &self.dirs.run_dir()).await?
                }
                None => job.image.chain_id.clone(),
            };
            lap.lap("remapped image");
            self.store.add_resource(id, ResourceKind::Snapshot, id)?;
            let mounts = task::prepare_rootfs(&self.ctr, id, &parent, &lease).await?;
            self.store.add_resource(id, ResourceKind::Container, id)?;
            task::create_container(&self.ctr, id, &job.image.name, spec_json).await?;
            lap.lap("snapshot and container");
            let pid = task::create_task(&self.ctr, id, mounts, &log).await?;
            lap.lap("task create");
            Ok::<_, RuntimeError>(pid)
        }
        .await;
        self.ctr.delete_lease(&lease).await;
        let pid = result?;

        let ns_path = self.dirs.netns_dir().join(id);
        self.store.add_resource(id, ResourceKind::Netns, &ns_path.display().to_string())?;
        netns::adopt(pid, &ns_path, &self.netns_sysctls).map_err(io("binding the job's network namespace"))?;
        lap.lap("netns");

        self.store.add_resource(id, ResourceKind::Cni, id)?;
        let att = self.cni.add(id, &ns_path).await?;
        debug!(job = id, ip = %att.ip, "network attached");
        lap.lap("cni add");

        self.store.add_resource(id, ResourceKind::Firewall, id)?;
        let mut policy = self.policy.clone();
        policy.endpoints.extend(job.endpoints.iter().copied());
        self.firewall.add_job(id, att.ip, &policy).await?;
        lap.lap("firewall add");
        std::fs::write(etc.join("hosts"), network::render_hosts(id, Some(att.ip))).map_err(io("writing hosts"))?;
        Ok(())
    }

    /// Makes `image`'s snapshot for jobs' user namespaces now (when they get one), so that its first job
    /// does not wait for it: the worker VM's image store is prepared so. It lasts as long as the image.
    pub async fn remap_ahead(&self, image: &containerd::Image) -> Result<(), RuntimeError> {
        let Some(base) = self.uid_base else { return Ok(()) };
        let lease = self.ctr.create_lease("remap", Duration::from_secs(600)).await?;
        let made = {
            let _one = self.remapping.lock().await;
            containerd::remap::ensure(&self.ctr, image, base, &lease, &self.dirs.run_dir()).await
        };
        self.ctr.delete_lease(&lease).await;
        made?;
        Ok(())
    }

    pub async fn start(&self, id: &str) -> Result<(), RuntimeError> {
        Ok(task::start(&self.ctr, id).await?)
    }

    /// Waits for the job's process to end and records how.
    pub async fn wait(&self, id: &str) -> Result<Exit, RuntimeError> {
        let code = task::wait(&self.ctr, id).await?;
        let oom_killed = oom_kills(&self.instance, id) > 0;
        self.store.set_exited(id, i64::from(code), oom_killed)?;
        Ok(Exit { code, oom_killed })
    }

    /// Starts `args` in the job's running container as one more of its processes (`exec_id`): the same user,
    /// environment, capabilities, seccomp profile and limits as the job's own, its output appended to the job
    /// log. Wait for it with [`Runtime::wait_exec`], then remove it with [`Runtime::delete_exec`].
    pub async fn exec(&self, id: &str, exec_id: &str, args: Vec<String>) -> Result<(), RuntimeError> {
        let process = self.processes.lock().unwrap_or_else(|e| e.into_inner()).get(id).cloned();
        let Some(mut process) = process else {
            return Err(RuntimeError::Io {
                id: id.into(),
                what: "starting a process in the job",
                source: std::io::Error::other("this runtime did not create the job's container"),
            });
        };
        process["args"] = Value::from(args);
        let json = serde_json::to_vec(&process).map_err(|e| RuntimeError::Io {
            id: id.into(),
            what: "serialising the OCI process",
            source: std::io::Error::other(e),
        })?;
        Ok(task::exec(&self.ctr, id, exec_id, json, &self.dirs.job_log(id)).await?)
    }

    /// Waits for the job's process `exec_id` to exit; its exit code.
    pub async fn wait_exec(&self, id: &str, exec_id: &str) -> Result<u32, RuntimeError> {
        Ok(task::wait_process(&self.ctr, id, exec_id).await?)
    }

    /// Removes the exited process `exec_id`; all its output is in the job log when this returns.
    pub async fn delete_exec(&self, id: &str, exec_id: &str) -> Result<(), RuntimeError> {
        Ok(task::delete_process(&self.ctr, id, exec_id).await?)
    }

    /// How many of the job's processes the kernel's OOM killer has stopped so far.
    pub fn oom_kills(&self, id: &str) -> u64 {
        oom_kills(&self.instance, id)
    }

    /// Records how a job ended that [`Runtime::wait`] did not see end (one whose outcome its steps decide).
    pub fn record_exit(&self, id: &str, code: u32, oom_killed: bool) -> Result<(), RuntimeError> {
        Ok(self.store.set_exited(id, i64::from(code), oom_killed)?)
    }

    /// Sends `signal` to every process of the job.
    pub async fn kill(&self, id: &str, signal: u32) -> Result<(), RuntimeError> {
        Ok(task::kill(&self.ctr, id, signal).await?)
    }

    /// Removes everything the journal says the job owns, newest first. Idempotent; a resource that cannot be
    /// removed stays in the journal for the next attempt.
    pub async fn destroy(&self, id: &str) -> Result<(), RuntimeError> {
        self.destroy_counted(id, &mut Reconciled::default()).await
    }

    /// [`Runtime::destroy`], counting what it removed into `removed`.
    async fn destroy_counted(&self, id: &str, removed: &mut Reconciled) -> Result<(), RuntimeError> {
        self.processes.lock().unwrap_or_else(|e| e.into_inner()).remove(id);
        let mut errors: Vec<String> = Vec::new();
        let mut lap = Lap::new(id);
        for r in self.store.resources(id)? {
            let outcome: Result<(), String> = match r.kind {
                ResourceKind::Container => task::remove_container(&self.ctr, &r.name).await.map_err(|e| e.to_string()),
                ResourceKind::Snapshot => task::remove_snapshot(&self.ctr, &r.name).await.map_err(|e| e.to_string()),
                ResourceKind::Firewall => self.firewall.remove_job(&r.name).await.map_err(|e| e.to_string()),
                ResourceKind::Cni => {
                    self.cni.del(&r.name, &self.dirs.netns_dir().join(&r.name)).await.map_err(|e| e.to_string())
                }
                ResourceKind::Netns => netns::remove(Path::new(&r.name)).map_err(|e| e.to_string()),
                ResourceKind::Dir => remove_dir(Path::new(&r.name)).map_err(|e| e.to_string()),
            };
            lap.lap(r.kind.as_str());
            match outcome {
                Ok(()) => {
                    self.store.remove_resource(id, r.kind, &r.name)?;
                    *match r.kind {
                        ResourceKind::Container => &mut removed.containers,
                        ResourceKind::Snapshot => &mut removed.snapshots,
                        ResourceKind::Firewall => &mut removed.firewall,
                        ResourceKind::Cni => &mut removed.leases,
                        ResourceKind::Netns => &mut removed.netns,
                        ResourceKind::Dir => &mut removed.dirs,
                    } += 1;
                }
                Err(e) => {
                    warn!(job = id, kind = r.kind.as_str(), name = %r.name, error = %e, "cannot remove job resource");
                    errors.push(format!("{} {}: {e}", r.kind.as_str(), r.name));
                }
            }
        }
        if let Some(first) = errors.first() {
            return Err(RuntimeError::Cleanup { id: id.into(), count: errors.len(), first: first.clone() });
        }
        if self.store.job_exists(id)? {
            self.store.set_cleaned(id)?;
        }
        Ok(())
    }

    /// Takes down what the instance's jobs share (firewall chains, NAT rule, the bridge, the cgroup parent)
    /// once none of its jobs needs it any more.
    pub async fn shutdown(&self) -> Result<(), RuntimeError> {
        self.firewall.teardown_if_idle().await?;
        self.cni.remove_bridge_if_idle()?;
        self.instance.remove_cgroup_parents();
        Ok(())
    }

    /// Removes everything of ours that belongs to no job in `live`: journalled jobs first, then anything
    /// found by label, tag, lease or path that the journal does not know (a crash before it was written).
    pub async fn reconcile(&self, live: &HashSet<String>) -> Result<Reconciled, RuntimeError> {
        let mut rep = Reconciled::default();
        for job in self.store.unclean_jobs()? {
            if live.contains(&job.id) {
                continue;
            }
            if let Err(e) = self.destroy_counted(&job.id, &mut rep).await {
                warn!(job = %job.id, error = %e, "reconcile: job not fully cleaned");
            }
            rep.jobs.push(job.id);
        }
        for id in task::owned_containers(&self.ctr).await? {
            if !live.contains(&id) {
                task::remove_container(&self.ctr, &id).await?;
                rep.containers += 1;
            }
        }
        // A shim that died with its task leaves the task's rootfs mounted in containerd's state dir (and
        // that dir cannot go): unmount it.
        let tasks = self.dirs.containerd_state().join("io.containerd.runtime.v2.task").join(containerd::NAMESPACE);
        for (name, dir) in list_dir(&tasks) {
            let rootfs = dir.join("rootfs");
            if !live.contains(&name) && netns::is_mounted(&rootfs) {
                nix::mount::umount2(&rootfs, nix::mount::MntFlags::MNT_DETACH).map_err(|e| RuntimeError::Io {
                    id: name.clone(),
                    what: "unmounting a dead task's rootfs",
                    source: e.into(),
                })?;
                let _ = std::fs::remove_dir_all(&dir);
                rep.containers += 1;
            }
        }
        for key in task::owned_snapshots(&self.ctr).await? {
            if !live.contains(&key) {
                task::remove_snapshot(&self.ctr, &key).await?;
                rep.snapshots += 1;
            }
        }
        for id in self.firewall.tagged_jobs().await? {
            if !live.contains(&id) {
                self.firewall.remove_job(&id).await?;
                rep.firewall += 1;
            }
        }
        self.firewall.teardown_if_idle().await?;
        for (_, owner) in self.cni.leases() {
            if !live.contains(&owner) {
                self.cni.del(&owner, &self.dirs.netns_dir().join(&owner)).await?;
                rep.leases += 1;
            }
        }
        for (name, path) in list_dir(&self.dirs.netns_dir()) {
            if !live.contains(&name) {
                netns::remove(&path).map_err(|source| RuntimeError::Io { id: name, what: "removing netns", source })?;
                rep.netns += 1;
            }
        }
        for (name, path) in list_dir(&self.dirs.jobs_dir()) {
            if !live.contains(&name) {
                remove_dir(&path).map_err(|source| RuntimeError::Io { id: name, what: "removing job dir", source })?;
                rep.dirs += 1;
            }
        }
        if live.is_empty() {
            self.cni.remove_bridge_if_idle()?;
        }
        if !rep.is_empty() {
            info!(?rep, "removed what an earlier run left behind");
        }
        Ok(rep)
    }
}

/// Lets a job's unprivileged root pass through (never list) the data dir on the way to its rootfs (in
/// containerd's state dir) and its files (in the jobs dir), which runc mounts from inside the job's user
/// namespace. Everything else in the data dir stays the daemon's alone.
fn traversable_for_jobs(dirs: &DataDirs) -> Result<(), RuntimeError> {
    for d in [dirs.root.clone(), dirs.root.join("containerd"), dirs.containerd_state(), dirs.jobs_dir()] {
        let add_x =
            |source| RuntimeError::Io { id: String::new(), what: "opening the data dir to user namespaces", source };
        std::fs::create_dir_all(&d).map_err(add_x)?;
        let mode = std::fs::metadata(&d).map_err(add_x)?.mode() & 0o7777;
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(mode | 0o011)).map_err(add_x)?;
    }
    Ok(())
}

/// Phase timings of a job at debug level (`--log-level debug`).
struct Lap<'a> {
    id: &'a str,
    at: std::time::Instant,
}

impl<'a> Lap<'a> {
    fn new(id: &'a str) -> Self {
        Self { id, at: std::time::Instant::now() }
    }
    fn lap(&mut self, phase: &str) {
        debug!(job = self.id, phase, ms = self.at.elapsed().as_secs_f64() * 1000.0, "timing");
        self.at = std::time::Instant::now();
    }
}

fn list_dir(dir: &Path) -> Vec<(String, PathBuf)> {
    std::fs::read_dir(dir)
        .map(|rd| rd.flatten().filter_map(|e| Some((e.file_name().to_str()?.to_string(), e.path()))).collect())
        .unwrap_or_default()
}

fn remove_dir(p: &Path) -> std::io::Result<()> {
    match std::fs::remove_dir_all(p) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// The number of OOM kills in the job's memory cgroup (v1 or v2), read before the task is deleted.
fn oom_kills(instance: &Instance, id: &str) -> u64 {
    let parent = instance.cgroup_parent();
    let candidates = [
        (format!("/sys/fs/cgroup/memory{parent}/{id}/memory.oom_control"), "oom_kill "),
        (format!("/sys/fs/cgroup{parent}/{id}/memory.events"), "oom_kill "),
    ];
    for (path, key) in candidates {
        if let Ok(text) = std::fs::read_to_string(&path) {
            return text.lines().find_map(|l| l.strip_prefix(key)).and_then(|n| n.trim().parse().ok()).unwrap_or(0);
        }
    }
    0
}

//! A session (Linux): the data dir's lock, a supervised containerd, the journal and the runtime,
//! reconciled at start; and `ephemerd cleanup`, which is one session plus the namespace worker's leftovers.

use std::collections::HashSet;

use anyhow::Context;
use ephemerd::config::Config;
use ephemerd::platform::{DataDirLock, DataDirs};
use ephemerd::runtime::Runtime;
use ephemerd::runtime::binaries::SearchPath;
use ephemerd::runtime::containerd::{Binaries, Containerd, Supervisor};
use ephemerd::store::Store;

use super::{out, usage};

/// `ephemerd cleanup`: what a crashed daemon left (jobs, its containerd's objects, a namespace worker).
pub async fn cleanup(cfg: &Config, dirs: &DataDirs, log_level: &str) -> anyhow::Result<u8> {
    // Cleaning up needs no runner tree: one that is gone (or broken) must not keep the leftovers.
    let mut cfg = cfg.clone();
    cfg.runner.dir = None;
    let s = Session::start(&cfg, dirs).await?;
    let n = s.reconciled.clone();
    s.stop().await;
    let worker = clean_worker(&cfg, dirs, log_level).await?;
    if worker {
        out!("removed: the worker and its link");
    }
    if n.is_empty() && !worker {
        out!("nothing to clean up");
    } else {
        out!(
            "removed: {} job(s), {} container(s), {} snapshot(s), {} netns, {} IP lease(s), {} rule set(s), {} dir(s)",
            n.jobs.len(),
            n.containers,
            n.snapshots,
            n.netns,
            n.leases,
            n.firewall,
            n.dirs
        );
    }
    Ok(0)
}

/// Stops the workers (namespace or VM) a crashed daemon left and removes their links; whether there was any.
async fn clean_worker(cfg: &Config, dirs: &DataDirs, log_level: &str) -> anyhow::Result<bool> {
    let hosts = ephemerd::worker::hosts_of(cfg, dirs, log_level).map_err(usage)?;
    let mut present = false;
    for (host, _) in hosts.mode.into_iter().chain(hosts.vm) {
        present |= host.present().await;
        host.stop().await?;
    }
    Ok(present)
}

/// A running containerd with everything needed to run jobs; stop it with [`Session::stop`].
pub struct Session {
    _lock: DataDirLock,
    supervisor: Supervisor,
    pub runtime: std::sync::Arc<Runtime>,
    /// The same runtime, as what runs jobs.
    pub target: std::sync::Arc<dyn ephemerd::target::Target>,
    pub data_root: std::path::PathBuf,
    pub reconciled: ephemerd::runtime::Reconciled,
}

impl Session {
    pub async fn start(cfg: &Config, dirs: &DataDirs) -> anyhow::Result<Self> {
        if !nix::unistd::geteuid().is_root() {
            anyhow::bail!("ephemerd needs root on Linux to run containers (containerd, network namespaces, iptables)");
        }
        dirs.create().with_context(|| format!("cannot create data dir {}", dirs.root.display()))?;
        let lock = DataDirLock::acquire(dirs).map_err(anyhow::Error::msg)?;
        let bins = Binaries::find(&SearchPath::for_executables(cfg.containerd.bin_dir.as_deref()))?;
        let supervisor = Supervisor::start(dirs, bins, cfg.containerd.start_timeout).await?;
        let started = async {
            let ctr = Containerd::connect(supervisor.socket()).await?;
            let store = Store::open(&dirs.journal())?;
            let runtime = Runtime::new(cfg, dirs.clone(), ctr, store)?;
            let reconciled = runtime.reconcile(&HashSet::new()).await?;
            Ok::<_, anyhow::Error>((runtime, reconciled))
        }
        .await;
        match started {
            Ok((runtime, reconciled)) => {
                let runtime = std::sync::Arc::new(runtime);
                let target = std::sync::Arc::new(ephemerd::target::LocalTarget::new(runtime.clone()));
                Ok(Self { _lock: lock, supervisor, runtime, target, data_root: dirs.root.clone(), reconciled })
            }
            Err(e) => {
                supervisor.stop().await;
                Err(e)
            }
        }
    }

    pub async fn stop(self) {
        if let Err(e) = self.runtime.shutdown().await {
            tracing::warn!(error = %e, "cannot remove the shared firewall rules");
        }
        self.supervisor.stop().await;
    }
}

/// Runs `fut` unless Ctrl-C or SIGTERM comes first (then `None`): for the phases before a job runs, so an
/// interrupted pull still stops containerd and releases the data dir.
pub async fn unless_interrupted<T>(fut: impl std::future::Future<Output = T>) -> anyhow::Result<Option<T>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    tokio::select! {
        r = fut => Ok(Some(r)),
        _ = tokio::signal::ctrl_c() => Ok(None),
        _ = term.recv() => Ok(None),
    }
}

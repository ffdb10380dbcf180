//! [`WorkerTarget`]: the [`Target`] whose jobs run in a worker a [`Host`] boots. The worker is booted when
//! a job (or the start-up reconcile) first needs it, and booted afresh when the one before has died; only
//! one boot runs at a time. Each job stays with the boot it began on: when that worker is gone, its calls
//! fail with that reason (the job is lost with it, and the next boot removes what it left), and destroying
//! it only closes its record here.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use super::{Host, HostError, WorkerState, WorkerStatus};
use crate::dispatch::RemoteTarget;
use crate::platform::DataDirs;
use crate::store::Store;
use crate::target::{Exit, Reconciled};
use crate::target::{LaunchSpec, ProgressFn, Target, TargetError};

struct Boot {
    remote: Arc<RemoteTarget>,
    /// Counts boots, so a job knows whether its worker is the current one.
    n: u64,
}

pub struct WorkerTarget {
    host: Arc<dyn Host>,
    dirs: DataDirs,
    store: Store,
    current: Mutex<Option<Boot>>,
    boots: Mutex<u64>,
    booting: tokio::sync::Mutex<()>,
    /// Each job's boot.
    jobs: Mutex<HashMap<String, (u64, Arc<RemoteTarget>)>>,
    /// When the worker last had work (a job began or ended, an image was prepared).
    busy_at: Mutex<std::time::Instant>,
    /// Images being prepared (a boot or a pull for a job not begun yet): the worker is not idle then.
    preparing: std::sync::atomic::AtomicUsize,
    state: Mutex<WorkerState>,
    /// `[worker] idle_stop`, once `stop_when_idle` runs.
    idle_stop: Mutex<Option<std::time::Duration>>,
}

/// Counts one image being prepared while it lives; the worker is busy from its end too.
struct Preparing<'a>(&'a WorkerTarget);

impl<'a> Preparing<'a> {
    fn new(t: &'a WorkerTarget) -> Self {
        t.preparing.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Self(t)
    }
}

impl Drop for Preparing<'_> {
    fn drop(&mut self) {
        self.0.touch();
        self.0.preparing.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

impl WorkerTarget {
    pub fn new(host: Arc<dyn Host>, dirs: DataDirs, store: Store) -> Self {
        Self {
            host,
            dirs,
            store,
            current: Mutex::new(None),
            boots: Mutex::new(0),
            booting: tokio::sync::Mutex::new(()),
            jobs: Mutex::default(),
            busy_at: Mutex::new(std::time::Instant::now()),
            preparing: std::sync::atomic::AtomicUsize::new(0),
            state: Mutex::new(WorkerState::Stopped),
            idle_stop: Mutex::new(None),
        }
    }

    fn set_state(&self, s: WorkerState) {
        *self.state.lock().unwrap_or_else(|e| e.into_inner()) = s;
    }

    /// Stops the host, in the states a user sees.
    async fn stop_host(&self) -> Result<(), HostError> {
        self.set_state(WorkerState::Stopping);
        let r = self.host.stop().await;
        self.set_state(WorkerState::Stopped);
        r
    }

    fn touch(&self) {
        *self.busy_at.lock().unwrap_or_else(|e| e.into_inner()) = std::time::Instant::now();
    }

    /// Stops the worker once it has had no job for `idle`, for as long as the daemon runs (a task of its
    /// own); the next job boots it again.
    pub async fn stop_when_idle(self: Arc<Self>, idle: std::time::Duration) {
        *self.idle_stop.lock().unwrap_or_else(|e| e.into_inner()) = Some(idle);
        let tick = idle.min(std::time::Duration::from_secs(1));
        loop {
            tokio::time::sleep(tick).await;
            if self.idle_for() < idle || self.live().is_none() {
                continue;
            }
            let _one = self.booting.lock().await;
            let idle_for = self.idle_for();
            if idle_for < idle {
                continue;
            }
            tracing::info!(worker = self.host.kind(), idle_s = idle_for.as_secs(), "the worker is idle: stopping it");
            self.current.lock().unwrap_or_else(|e| e.into_inner()).take();
            if let Err(e) = self.stop_host().await {
                tracing::warn!(worker = self.host.kind(), error = %e, "cannot stop the idle worker");
            }
        }
    }

    /// How long the worker has had nothing to do: no job, no image being prepared (zero while it has).
    fn idle_for(&self) -> std::time::Duration {
        let busy = self.preparing.load(std::sync::atomic::Ordering::SeqCst) > 0
            || !self.jobs.lock().unwrap_or_else(|e| e.into_inner()).is_empty();
        match busy {
            true => std::time::Duration::ZERO,
            false => self.busy_at.lock().unwrap_or_else(|e| e.into_inner()).elapsed(),
        }
    }

    fn gone(&self, call: &'static str, message: impl Into<String>) -> TargetError {
        TargetError::Worker { addr: self.host.kind().into(), call, message: message.into() }
    }

    /// The running worker's client, if the worker runs.
    fn live(&self) -> Option<(u64, Arc<RemoteTarget>)> {
        let c = self.current.lock().unwrap_or_else(|e| e.into_inner());
        c.as_ref().filter(|_| self.host.alive()).map(|b| (b.n, b.remote.clone()))
    }

    /// The running worker, booted first if there is none.
    async fn worker(&self) -> Result<(u64, Arc<RemoteTarget>), TargetError> {
        self.touch();
        if let Some(w) = self.live() {
            return Ok(w);
        }
        let _one = self.booting.lock().await;
        if let Some(w) = self.live() {
            return Ok(w);
        }
        if self.current.lock().unwrap_or_else(|e| e.into_inner()).take().is_some() {
            tracing::warn!(worker = self.host.kind(), "the worker has died: booting a new one");
        }
        self.set_state(WorkerState::Booting);
        let booted = match self.host.boot().await {
            Ok(b) => b,
            Err(e) => {
                self.set_state(WorkerState::Stopped);
                return Err(self.gone("boot", e.to_string()));
            }
        };
        let remote =
            match RemoteTarget::connect(&booted.addr, booted.token, self.dirs.clone(), self.store.clone()).await {
                Ok(r) => Arc::new(r),
                Err(e) => {
                    let _ = self.stop_host().await;
                    return Err(e);
                }
            };
        self.set_state(WorkerState::Ready);
        let n = {
            let mut b = self.boots.lock().unwrap_or_else(|e| e.into_inner());
            *b += 1;
            *b
        };
        *self.current.lock().unwrap_or_else(|e| e.into_inner()) = Some(Boot { remote: remote.clone(), n });
        Ok((n, remote))
    }

    /// The worker job `id` runs on, while it runs.
    fn of(&self, id: &str, call: &'static str) -> Result<Arc<RemoteTarget>, TargetError> {
        let (n, remote) = self
            .jobs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .cloned()
            .ok_or_else(|| self.gone(call, format!("job {id} is not one of this daemon's worker jobs")))?;
        match self.live() {
            Some((current, _)) if current == n => Ok(remote),
            _ => Err(self.gone(call, format!("the worker that ran job {id} has stopped; the job is lost"))),
        }
    }

    /// Stops the worker and removes its host objects.
    pub async fn stop(&self) -> Result<(), HostError> {
        let _one = self.booting.lock().await;
        self.current.lock().unwrap_or_else(|e| e.into_inner()).take();
        self.stop_host().await
    }

    /// The worker as `ephemerd status` shows it.
    pub fn status(&self) -> WorkerStatus {
        let state = *self.state.lock().unwrap_or_else(|e| e.into_inner());
        let died = state == WorkerState::Ready && !self.host.alive();
        let mut detail = self.host.backend();
        if died {
            detail.push_str(" · it died; the next job boots another");
        } else if let Some(idle) = *self.idle_stop.lock().unwrap_or_else(|e| e.into_inner()) {
            detail.push_str(&format!(" · stops after {} idle", humantime::format_duration(idle)));
        }
        WorkerStatus {
            name: self.host.kind().into(),
            state: if died { WorkerState::Stopped } else { state },
            healthy: !died,
            detail,
        }
    }
}

#[async_trait::async_trait]
impl Target for WorkerTarget {
    async fn prepare_image(&self, reference: &str, progress: &ProgressFn) -> Result<String, TargetError> {
        let _busy = Preparing::new(self);
        let (_, remote) = self.worker().await?;
        // Before each job: after this machine slept, or its clock jumped, the worker's clock is set again.
        match remote.push_time().await {
            Ok((offset, true)) => {
                tracing::info!(offset_ms = offset / 1_000_000, "the worker's clock was off: set it to ours")
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "cannot push the time to the worker"),
        }
        remote.prepare_image(reference, progress).await
    }

    fn begin(&self, id: &str, image: &str) -> Result<PathBuf, TargetError> {
        let (n, remote) = self.live().ok_or_else(|| self.gone("begin", "the worker has stopped"))?;
        let dir = remote.begin(id, image)?;
        self.jobs.lock().unwrap_or_else(|e| e.into_inner()).insert(id.to_string(), (n, remote));
        self.touch();
        Ok(dir)
    }

    async fn create(&self, id: &str, image: &str, spec: &LaunchSpec) -> Result<(), TargetError> {
        self.of(id, "create job")?.create(id, image, spec).await
    }

    async fn start(&self, id: &str) -> Result<(), TargetError> {
        self.of(id, "start job")?.start(id).await
    }

    async fn wait(&self, id: &str) -> Result<Exit, TargetError> {
        let remote = self.of(id, "wait job")?;
        let died = || self.gone("wait job", format!("the worker died while job {id} ran; the job is lost"));
        // A VM that dies leaves its connection silent (no reset comes from a kernel that is gone): watch
        // the host too.
        let waiting = remote.wait(id);
        tokio::pin!(waiting);
        loop {
            tokio::select! {
                r = &mut waiting => return match r {
                    Err(e) if !self.host.alive() => {
                        tracing::debug!(error = %e, "waiting for a job of a worker that died");
                        Err(died())
                    }
                    r => r,
                },
                _ = tokio::time::sleep(std::time::Duration::from_millis(500)) => {
                    if !self.host.alive() {
                        return Err(died());
                    }
                }
            }
        }
    }

    async fn exec(&self, id: &str, exec_id: &str, args: Vec<String>) -> Result<(), TargetError> {
        self.of(id, "exec")?.exec(id, exec_id, args).await
    }

    async fn wait_exec(&self, id: &str, exec_id: &str) -> Result<u32, TargetError> {
        self.of(id, "wait exec")?.wait_exec(id, exec_id).await
    }

    async fn delete_exec(&self, id: &str, exec_id: &str) -> Result<(), TargetError> {
        self.of(id, "delete exec")?.delete_exec(id, exec_id).await
    }

    async fn kill(&self, id: &str, signal: u32) -> Result<(), TargetError> {
        self.of(id, "kill job")?.kill(id, signal).await
    }

    async fn destroy(&self, id: &str) -> Result<(), TargetError> {
        match self.of(id, "destroy job") {
            Ok(remote) => remote.destroy(id).await?,
            // Its worker is gone, and everything of the job with it (the next boot removes the rest).
            Err(_) => {
                if self.store.job_exists(id)? {
                    self.store.set_cleaned(id)?;
                }
            }
        }
        self.jobs.lock().unwrap_or_else(|e| e.into_inner()).remove(id);
        self.touch();
        Ok(())
    }

    async fn list(&self) -> Result<Vec<String>, TargetError> {
        match self.live() {
            Some((_, remote)) => remote.list().await,
            None => Ok(Vec::new()),
        }
    }

    async fn reconcile(&self, live: &HashSet<String>) -> Result<Reconciled, TargetError> {
        if self.live().is_none() && self.host.clean_each_boot() {
            // No worker runs, and the next boots clean: nothing of a job is left to remove.
            return Ok(Reconciled::default());
        }
        self.worker().await?.1.reconcile(live).await
    }

    fn log_path(&self, id: &str) -> PathBuf {
        self.dirs.job_log(id)
    }

    fn oom_kills(&self, id: &str) -> u64 {
        let jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        jobs.get(id).map_or(0, |(_, r)| r.oom_kills(id))
    }

    fn record_exit(&self, id: &str, exit: Exit) -> Result<(), TargetError> {
        Ok(self.store.set_exited(id, i64::from(exit.code), exit.oom_killed)?)
    }
}

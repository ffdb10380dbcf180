//! `ephemerd serve`: the daemon's event loop. Pollers report the forges' jobs; label routing keeps ours;
//! the scheduler's state machine decides; this module carries its actions out — register a just-in-time
//! runner, run it in a fresh container with the runner tree mounted, wait, destroy, deregister — and journals
//! each transition before acting on it. At start, runners of this host that no job owns are deregistered.
//! `discovery` finds the jobs (pollers; webhooks arrive through `listen`) and reports health; `job` is one
//! job's task from its claim to its result.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::mpsc;
use tracing::{Instrument, info, info_span, warn};

mod discovery;
mod job;

use discovery::{health_of, poller, publish};
pub use job::resolve_endpoints;
use job::{Launch, journal, record_conclusion, run_job, stop_container};

use crate::config::{Config, Limits, ProfileConfig};
use crate::control::live::{DaemonMode, LiveTx, ProviderHealth};
use crate::forge::build::{Built, ProviderSet, Unconfigured};
use crate::forge::{Claim, ForgeJob, JobStatus, Provider, RunnerRequest};
use crate::job::Phase;
use crate::platform::DataDirs;
use crate::scheduler::labels::{Profile, base_labels, github_platform_labels, route};
use crate::scheduler::machine::{Action, Event, JobKey, Machine, Mode, Settings, StopReason};
use crate::store::Store;
use crate::target::new_job_id;
use crate::target::{LaunchSpec, Target, launch};

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("serve needs a runner: set runner.dir (or runner.url), or give a profile a runner_cmd")]
    NoRunner,
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

/// What one job is, beyond the scheduler's key.
struct Tracked {
    job: ForgeJob,
    provider: Arc<dyn Provider>,
    labels: Vec<String>,
    /// The label profile the job was routed to, as it was then (a reload does not change a waiting job).
    profile: Option<ProfileConfig>,
    runner_name: String,
    claim: Option<Claim>,
    runtime_id: Option<String>,
}

enum Msg {
    /// A poll's jobs, from the provider of that name.
    Polled {
        provider: String,
        jobs: Vec<ForgeJob>,
    },
    /// One job from a webhook delivery.
    Hooked {
        provider: String,
        job: ForgeJob,
    },
    ClaimOk(JobKey, Claim),
    Created(JobKey, String),
    Machine(Event),
}

/// What the daemon's owner asks of it (through the control API, or signals).
#[derive(Debug)]
pub enum Control {
    /// No new claims; running jobs go on. Remembered across restarts.
    Pause,
    Resume,
    /// Pause, then exit once running jobs are done, stopping them at the timeout (default:
    /// `scheduler.drain_timeout`).
    Drain(Option<Duration>),
    /// Stop every job now, clean up, exit.
    Stop,
    /// Stop one job's container (its runner ends; the job is cleaned up as usual).
    Kill(JobKey),
    /// Take what can change at once from a newly read config (see `config::reload_plan`).
    Reload(Box<Config>),
    /// Use these providers from now on (credentials or `[[github]]` sections changed); jobs already
    /// running keep the provider instance they started with.
    Providers(Built),
    /// Take webhook deliveries on this listener from now on (`webhook.listen` changed); `None`: none.
    Webhooks(Option<tokio::net::TcpListener>),
}

/// A control as the event loop receives it, with (when its sender waits for it) the answer that it has
/// been applied: the event loop has acted on it and published the status it leads to.
pub struct Order {
    pub control: Control,
    pub applied: Option<tokio::sync::oneshot::Sender<()>>,
}

impl From<Control> for Order {
    fn from(control: Control) -> Self {
        Self { control, applied: None }
    }
}

impl Order {
    /// The order, and what says it has been applied (an error: the event loop has gone).
    pub fn acked(control: Control) -> (Self, tokio::sync::oneshot::Receiver<()>) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        (Self { control, applied: Some(tx) }, rx)
    }
}

/// This host's part of runner names: `<prefix>-<host>-`.
pub fn runner_prefix(prefix: &str) -> String {
    let host = crate::platform::hostname();
    let host: String = host.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-').take(20).collect();
    format!("{prefix}-{host}-")
}

/// Where jobs run: where `[worker] mode` runs them, and where a profile's `isolation` sends them.
#[derive(Clone)]
pub struct Targets {
    /// Where `[worker] mode` runs every job.
    pub default: Arc<dyn Target>,
    /// This machine's containerd (`isolation = "container"`).
    pub local: Arc<dyn Target>,
    /// The worker VM (`isolation = "vm"`), when the config asked for one at start.
    pub vm: Option<Arc<dyn Target>>,
}

impl Targets {
    /// Where the jobs of `profile` (none: no profile) run; `None` for the VM when there is none.
    pub fn of(&self, profile: Option<&ProfileConfig>) -> Option<Arc<dyn Target>> {
        match profile.and_then(|p| p.isolation) {
            None => Some(self.default.clone()),
            Some(crate::config::Isolation::Container) => Some(self.local.clone()),
            Some(crate::config::Isolation::Vm) => self.vm.clone(),
        }
    }
}

pub struct Serve {
    cfg: Config,
    targets: Targets,
    store: Store,
    dirs: DataDirs,
    providers: ProviderSet,
    /// Configured providers that could not be built (shown in the status with the reason).
    unconfigured: Vec<Unconfigured>,
    sources: std::collections::HashMap<String, &'static str>,
    profiles: Vec<Profile>,
    prefix: String,
}

impl Serve {
    /// A daemon may start with no usable provider: it then waits for credentials or config through the
    /// control API.
    pub fn new(cfg: Config, targets: Targets, store: Store, dirs: DataDirs, built: Built) -> Result<Self, ServeError> {
        if cfg.runner.dir.is_none() && !cfg.scheduler.profiles.iter().any(|p| p.runner_cmd.is_some()) {
            return Err(ServeError::NoRunner);
        }
        for u in &built.unconfigured {
            warn!(provider = %u.name, reason = %u.reason, "forge not in use until this is fixed");
        }
        if built.providers.is_empty() && built.unconfigured.is_empty() {
            warn!("no forge configured: add a [[github]] section to the config, then `ephemerd reload`");
        }
        let profiles = profiles_of(&cfg);
        let prefix = runner_prefix(&cfg.scheduler.runner_prefix);
        let providers = Arc::new(std::sync::RwLock::new(built.providers));
        Ok(Self {
            cfg,
            targets,
            store,
            dirs,
            providers,
            unconfigured: built.unconfigured,
            sources: built.sources,
            profiles,
            prefix,
        })
    }

    /// The providers in use now.
    fn current(&self) -> Vec<Arc<dyn Provider>> {
        crate::forge::build::snapshot(&self.providers)
    }

    fn provider(&self, name: &str) -> Option<Arc<dyn Provider>> {
        self.current().into_iter().find(|p| p.name() == name)
    }

    /// Deregisters this host's runners that no job owns (all of them, at start) and closes the journal's
    /// records of jobs a previous run did not finish.
    pub async fn reconcile(&self) -> Result<(), ServeError> {
        let store = &self.store;
        for rec in store.unfinished_forge_jobs()? {
            // A job that ended before the crash keeps its outcome; one cut short is closed as abandoned.
            if !rec.phase.has_outcome() {
                store.forge_job_outcome(
                    &rec.provider,
                    rec.forge_job_id,
                    None,
                    Some("abandoned: ephemerd restarted"),
                )?;
                store.forge_job_phase(&rec.provider, rec.forge_job_id, Phase::Failed)?;
            }
            store.forge_job_phase(&rec.provider, rec.forge_job_id, Phase::Cleaned)?;
        }
        crate::history::prune(store, &self.dirs, &self.cfg.history);
        for p in &self.current() {
            match p.runners(&self.prefix).await {
                Ok(runners) => {
                    for r in runners {
                        info!(provider = p.name(), runner = %r.name, "deregistering a runner left by an earlier run");
                        if let Err(e) = p.release(&r.scope, r.id).await {
                            warn!(provider = p.name(), runner = %r.name, error = %e, "cannot deregister runner");
                        }
                    }
                }
                Err(e) => warn!(provider = p.name(), error = %e, "cannot list runners to reconcile"),
            }
        }
        Ok(())
    }

    /// The shared provider list (the control API tests and lists them).
    pub fn providers(&self) -> ProviderSet {
        self.providers.clone()
    }

    /// Serves webhook deliveries on `listener` (if any), handing verified jobs to the event loop: its tasks,
    /// and the sender that stops it gracefully (the listener closes; a request being answered is still
    /// handed over) when the listener changes.
    fn listen(
        &self,
        listener: Option<tokio::net::TcpListener>,
        tx: &mpsc::UnboundedSender<Msg>,
    ) -> (Vec<tokio::task::JoinHandle<()>>, Option<tokio::sync::oneshot::Sender<()>>) {
        let Some(listener) = listener else { return (Vec::new(), None) };
        let (htx, mut hrx) = mpsc::unbounded_channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let shutdown = async move {
            let _ = stopped.await;
        };
        let tx = tx.clone();
        let tasks = vec![
            tokio::spawn(crate::webhook::serve(listener, self.providers.clone(), htx, shutdown)),
            tokio::spawn(async move {
                while let Some((provider, job)) = hrx.recv().await {
                    if tx.send(Msg::Hooked { provider, job }).is_err() {
                        return;
                    }
                }
            }),
        ];
        (tasks, Some(stop))
    }

    /// The providers' health before their first poll.
    pub fn provider_health(&self) -> Vec<ProviderHealth> {
        health_of(&self.current(), &self.unconfigured, &self.sources, &[])
    }

    /// Runs until a drain or stop asked through `controls` ends (returns 0). With a `webhooks` listener,
    /// deliveries are taken there too.
    pub async fn run(
        mut self,
        mut controls: mpsc::UnboundedReceiver<Order>,
        webhooks: Option<tokio::net::TcpListener>,
        live: Arc<LiveTx>,
    ) -> Result<u8, ServeError> {
        let s = &self.cfg.scheduler;
        let settings = Settings {
            max_concurrent: s.max_concurrent,
            pickup_timeout: s.pickup_timeout,
            job_timeout: s.job_timeout,
            remember: Duration::from_secs(3600),
        };
        let paused = self.store.state("mode")?.as_deref() == Some("paused");
        if paused {
            info!("paused (as before the restart): no new jobs until resumed");
        }
        let mut machine = Machine::new(settings, if paused { Mode::Paused } else { Mode::Active });
        live.send_modify(|l| {
            l.mode = if paused { DaemonMode::Paused } else { DaemonMode::Running };
            l.max = s.max_concurrent as u32;
        });
        let (tx, mut rx) = mpsc::unbounded_channel::<Msg>();
        let mut polling: Vec<tokio::task::JoinHandle<()>> =
            self.current().into_iter().map(|p| tokio::spawn(poller(p, tx.clone(), live.clone()))).collect();
        let (mut pollers, mut hooks_stop) = self.listen(webhooks, &tx);
        let mut tracked: HashMap<JobKey, Tracked> = HashMap::new();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let mut sweep = tokio::time::interval(self.cfg.scheduler.sweep_interval);
        sweep.tick().await;
        let mut stopping = false;
        // The last control's answer: sent once the loop comes round again (it has then been acted on).
        let mut applied: Option<tokio::sync::oneshot::Sender<()>> = None;
        loop {
            if let Some(a) = applied.take() {
                let _ = a.send(());
            }
            let event = tokio::select! {
                msg = rx.recv() => match msg {
                    None => break,
                    Some(Msg::Polled { provider, jobs }) => {
                        tracing::debug!(queued = machine.queued(), active = machine.active(), "scheduler");
                        for ev in self.polled(&provider, jobs, &mut tracked, &machine) {
                            self.dispatch(machine.handle(ev, Instant::now()), &mut tracked, &tx);
                        }
                        self.forget_dropped(&mut tracked, &machine);
                        publish(&live, &machine);
                        continue;
                    }
                    Some(Msg::Hooked { provider, job }) => {
                        info!(provider = %provider, job = job.id, status = ?job.status, "job delivered by webhook");
                        match self.provider(&provider).and_then(|p| self.seen(&p, job, &mut tracked)) {
                            Some(ev) => ev,
                            None => continue,
                        }
                    }
                    Some(Msg::ClaimOk(key, claim)) => {
                        if let Some(t) = tracked.get_mut(&key) {
                            journal("the job's runner", self.store.forge_job_claimed(&key.provider, key.forge_job_id, &claim.runner_name, claim.runner_id, &claim.scope));
                            journal("the job's phase", self.store.forge_job_phase(&key.provider, key.forge_job_id, Phase::Claimed));
                            t.claim = Some(claim);
                        }
                        Event::Claimed(key)
                    }
                    Some(Msg::Created(key, id)) => {
                        if let Some(t) = tracked.get_mut(&key) {
                            t.runtime_id = Some(id);
                        }
                        continue;
                    }
                    Some(Msg::Machine(ev)) => ev,
                },
                _ = tick.tick() => Event::Tick,
                _ = sweep.tick() => {
                    self.sweep(&tracked, &machine);
                    continue;
                }
                ctl = controls.recv(), if !stopping => match ctl.map_or(Control::Stop, |o| {
                    applied = o.applied;
                    o.control
                }) {
                    Control::Kill(key) => {
                        self.kill(&key, &tracked);
                        continue;
                    }
                    Control::Providers(update) => {
                        for h in polling.drain(..) {
                            h.abort();
                        }
                        let names: Vec<String> = update.providers.iter().map(|p| p.name().to_string()).collect();
                        info!(providers = ?names, unconfigured = update.unconfigured.len(), "forges updated");
                        for u in &update.unconfigured {
                            warn!(provider = %u.name, reason = %u.reason, "forge not in use until this is fixed");
                        }
                        match self.providers.write() {
                            Ok(mut v) => *v = update.providers.clone(),
                            Err(e) => *e.into_inner() = update.providers.clone(),
                        }
                        self.unconfigured = update.unconfigured;
                        self.sources = update.sources;
                        polling = update.providers.iter().map(|p| tokio::spawn(poller(p.clone(), tx.clone(), live.clone()))).collect();
                        let current = self.current();
                        live.send_modify(|l| l.providers = health_of(&current, &self.unconfigured, &self.sources, &l.providers));
                        continue;
                    }
                    Control::Webhooks(listener) => {
                        if let Some(stop) = hooks_stop.take() {
                            let _ = stop.send(());
                        }
                        if listener.is_none() {
                            info!("no longer listening for webhooks");
                        }
                        pollers.retain(|h| !h.is_finished());
                        let (more, stop) = self.listen(listener, &tx);
                        pollers.extend(more);
                        hooks_stop = stop;
                        continue;
                    }
                    Control::Reload(new) => {
                        crate::config::apply_live(&mut self.cfg, &new);
                        self.profiles = profiles_of(&self.cfg);
                        let s = &self.cfg.scheduler;
                        machine.set_settings(Settings {
                            max_concurrent: s.max_concurrent,
                            pickup_timeout: s.pickup_timeout,
                            job_timeout: s.job_timeout,
                            remember: Duration::from_secs(3600),
                        });
                        live.send_modify(|l| l.max = s.max_concurrent as u32);
                        info!(max_concurrent = s.max_concurrent, "config reloaded");
                        Event::Tick
                    }
                    Control::Pause => {
                        live.send_modify(|l| if l.mode == DaemonMode::Running { l.mode = DaemonMode::Paused });
                        if let Err(e) = self.store.set_state("mode", "paused") {
                            warn!(error = %e, "cannot remember the pause across restarts");
                        }
                        info!("paused: no new jobs; running ones go on");
                        Event::Pause
                    }
                    Control::Resume => {
                        if let Err(e) = self.store.set_state("mode", "active") {
                            warn!(error = %e, "cannot remember the resume across restarts");
                        }
                        info!("resumed");
                        live.send_modify(|l| if l.mode == DaemonMode::Paused { l.mode = DaemonMode::Running });
                        Event::Resume
                    }
                    Control::Drain(timeout) => {
                        let timeout = timeout.unwrap_or(self.cfg.scheduler.drain_timeout);
                        info!(?timeout, "draining: no new jobs; exiting when running ones are done");
                        live.send_modify(|l| if l.mode != DaemonMode::Stopping {
                            l.mode = DaemonMode::Draining;
                            l.drain_deadline = SystemTime::now().checked_add(timeout);
                        });
                        Event::Drain { timeout }
                    }
                    Control::Stop => {
                        stopping = true;
                        for p in pollers.iter().chain(&polling) { p.abort(); }
                        info!("stopping: no new jobs; stopping running ones");
                        live.send_modify(|l| { l.mode = DaemonMode::Stopping; l.drain_deadline = Some(SystemTime::now()); });
                        Event::Drain { timeout: Duration::ZERO }
                    }
                },
            };
            let actions = machine.handle(event, Instant::now());
            if actions.contains(&Action::Exit) {
                self.dispatch(actions.into_iter().filter(|a| *a != Action::Exit).collect(), &mut tracked, &tx);
                publish(&live, &machine);
                break;
            }
            self.dispatch(actions, &mut tracked, &tx);
            self.forget_dropped(&mut tracked, &machine);
            publish(&live, &machine);
        }
        for p in pollers.into_iter().chain(polling) {
            p.abort();
        }
        if let Some(a) = applied.take() {
            let _ = a.send(());
        }
        Ok(0)
    }

    /// Jobs the scheduler let go of without running them (taken elsewhere, cancelled, refused by the forge):
    /// their journal records are closed, so the history says so and nothing waits on them.
    fn forget_dropped(&self, tracked: &mut HashMap<JobKey, Tracked>, m: &Machine) {
        let store = &self.store;
        tracked.retain(|key, t| {
            if m.phase(key).is_some() {
                return true;
            }
            if t.claim.is_none() {
                let gone = Some("gone: taken elsewhere or cancelled");
                journal("the job's outcome", store.forge_job_outcome(&key.provider, key.forge_job_id, None, gone));
            }
            journal("the job's phase", store.forge_job_phase(&key.provider, key.forge_job_id, Phase::Cleaned));
            false
        });
    }

    /// Stops a job's container at the owner's request: its runner ends, and the job is cleaned up as usual.
    fn kill(&self, key: &JobKey, tracked: &HashMap<JobKey, Tracked>) {
        let Some(t) = tracked.get(key) else { return };
        let Some(id) = t.runtime_id.clone() else { return };
        let Some(target) = self.targets.of(t.profile.as_ref()) else { return };
        journal(
            "the job's outcome",
            self.store.forge_job_outcome(&key.provider, key.forge_job_id, None, Some("killed")),
        );
        tokio::spawn(
            async move {
                warn!("killing the job, as asked");
                stop_container(target.as_ref(), &id, Duration::from_secs(5)).await;
            }
            .instrument(job_span(&t.job, &t.runner_name)),
        );
    }

    /// Deregisters, in the background, runners of this host that no live job owns.
    fn sweep(&self, tracked: &HashMap<JobKey, Tracked>, m: &Machine) {
        crate::history::prune(&self.store, &self.dirs, &self.cfg.history);
        let live: std::collections::HashSet<String> = tracked
            .iter()
            .filter(|(k, _)| m.phase(k).is_some_and(|p| p != Phase::Cleaned))
            .map(|(_, t)| t.runner_name.clone())
            .collect();
        for p in self.current() {
            let (p, live, prefix) = (p.clone(), live.clone(), self.prefix.clone());
            tokio::spawn(async move {
                let Ok(runners) = p.runners(&prefix).await else { return };
                for r in runners.into_iter().filter(|r| !live.contains(&r.name)) {
                    match p.release(&r.scope, r.id).await {
                        Ok(()) => info!(provider = p.name(), runner = %r.name, "deregistered an orphaned runner"),
                        Err(e) => {
                            tracing::debug!(provider = p.name(), runner = %r.name, error = %e, "orphaned runner not removable yet")
                        }
                    }
                }
            });
        }
    }

    /// Turns a poll's jobs into scheduler events: new jobs of ours are queued; jobs our runner took are
    /// picked up; queued jobs that vanished are gone.
    fn polled(
        &self,
        provider: &str,
        jobs: Vec<ForgeJob>,
        tracked: &mut HashMap<JobKey, Tracked>,
        m: &Machine,
    ) -> Vec<Event> {
        // A poll that finished after its provider was replaced or removed says nothing any more.
        let Some(p) = self.provider(provider) else { return Vec::new() };
        let mut still_queued = std::collections::HashSet::new();
        let mut out = Vec::new();
        for job in jobs {
            if job.status == JobStatus::Queued {
                still_queued.insert(JobKey { provider: job.provider.clone(), forge_job_id: job.id });
            }
            out.extend(self.seen(&p, job, tracked));
        }
        for (key, t) in tracked.iter() {
            if t.provider.name() == p.name() && !still_queued.contains(key) && m.phase(key) == Some(Phase::Queued) {
                out.push(Event::Gone(key.clone()));
            }
        }
        out
    }

    /// One job report (poll or webhook) as a scheduler event, if it concerns us.
    fn seen(&self, p: &Arc<dyn Provider>, job: ForgeJob, tracked: &mut HashMap<JobKey, Tracked>) -> Option<Event> {
        let key = JobKey { provider: job.provider.clone(), forge_job_id: job.id };
        match &job.status {
            JobStatus::Queued => {
                if let Some(t) = tracked.get_mut(&key) {
                    // A provider rebuilt since (new credentials) serves the claims still to come.
                    if t.claim.is_none() && !Arc::ptr_eq(&t.provider, p) {
                        t.provider = p.clone();
                    }
                    return Some(Event::Queued(key));
                }
                let (os, arch) = github_platform_labels();
                let base = base_labels(os, arch, p.labels());
                let (profile, labels) = route(&job.labels, &base, &self.profiles)?;
                let profile = profile.and_then(|i| self.cfg.scheduler.profiles.get(i).cloned());
                if self.runner_cmd(profile.as_ref()).is_none() {
                    tracing::debug!(job = job.id, "no runner for this job's profile (no runner tree, no runner_cmd)");
                    return None;
                }
                if self.targets.of(profile.as_ref()).is_none() {
                    tracing::debug!(job = job.id, "the job's profile asks for the worker VM, set up only at start");
                    return None;
                }
                journal(
                    "the job as seen",
                    self.store.forge_job_seen(
                        &job.provider,
                        job.id,
                        job.run_id,
                        &job.repo,
                        &job.workflow,
                        &job.name,
                        &job.labels,
                        job.html_url.as_deref(),
                    ),
                );
                let runner_name = format!("{}{}", self.prefix, new_job_id());
                tracked.insert(
                    key.clone(),
                    Tracked { job, provider: p.clone(), labels, profile, runner_name, claim: None, runtime_id: None },
                );
                Some(Event::Queued(key))
            }
            JobStatus::InProgress { runner_name: Some(r) }
                if tracked.get(&key).is_some_and(|t| &t.runner_name == r) =>
            {
                Some(Event::PickedUp(key))
            }
            _ => None,
        }
    }

    fn dispatch(&self, actions: Vec<Action>, tracked: &mut HashMap<JobKey, Tracked>, tx: &mpsc::UnboundedSender<Msg>) {
        for a in actions {
            match a {
                Action::Claim(key) => {
                    let Some(t) = tracked.get(&key) else { continue };
                    let (p, job) = (t.provider.clone(), t.job.clone());
                    let req = RunnerRequest { name: t.runner_name.clone(), labels: t.labels.clone() };
                    if let Err(e) = self.store.forge_job_claiming(&key.provider, key.forge_job_id, &req.name) {
                        warn!(error = %e, "cannot journal the claim; not registering a runner");
                        let _ = tx.send(Msg::Machine(Event::ClaimFailed { key, retry: true }));
                        continue;
                    }
                    let (tx, store) = (tx.clone(), self.store.clone());
                    let span = job_span(&job, &t.runner_name);
                    tokio::spawn(
                        async move {
                            match p.claim(&job, &req).await {
                                Ok(c) => {
                                    info!(runner_id = c.runner_id, "runner registered");
                                    let _ = tx.send(Msg::ClaimOk(key, c));
                                }
                                Err(e) => {
                                    warn!(error = %e, "cannot register a runner");
                                    if e.retryable() {
                                        // Claimed again later: queued until then, in the journal too.
                                        journal(
                                            "the job's phase",
                                            store.forge_job_phase(&key.provider, key.forge_job_id, Phase::Queued),
                                        );
                                    }
                                    let _ = tx.send(Msg::Machine(Event::ClaimFailed { key, retry: e.retryable() }));
                                }
                            }
                        }
                        .instrument(span),
                    );
                }
                Action::Start(key) => {
                    let Some(t) = tracked.get(&key) else { continue };
                    let Some(claim) = t.claim.clone() else { continue };
                    let (image, limits) = self.image_and_limits(t);
                    let cmd = self.runner_cmd(t.profile.as_ref()).unwrap_or_default();
                    let endpoints = t.provider.endpoints();
                    let Some(target) = self.targets.of(t.profile.as_ref()) else { continue };
                    let store = self.store.clone();
                    let tx = tx.clone();
                    let span = job_span(&t.job, &t.runner_name);
                    let log_max = self.cfg.history.log_max.0;
                    let launch = Launch { image, limits, cmd, endpoints, log_max };
                    tokio::spawn(async move { run_job(target, store, key, claim, launch, tx).await }.instrument(span));
                }
                Action::Stop(key, reason) => {
                    let Some(t) = tracked.get(&key) else { continue };
                    let Some(id) = t.runtime_id.clone() else { continue };
                    let Some(target) = self.targets.of(t.profile.as_ref()) else { continue };
                    let span = job_span(&t.job, &t.runner_name);
                    tokio::spawn(
                        async move {
                            warn!(?reason, "stopping the job");
                            let grace = if reason == StopReason::NeverPickedUp { 0 } else { 10 };
                            stop_container(target.as_ref(), &id, Duration::from_secs(grace)).await;
                        }
                        .instrument(span),
                    );
                }
                Action::Cleanup(key) => {
                    let Some(t) = tracked.get(&key) else { continue };
                    let target = self.targets.of(t.profile.as_ref());
                    let store = self.store.clone();
                    let (p, claim, id) = (t.provider.clone(), t.claim.clone(), t.runtime_id.clone());
                    let job = t.job.clone();
                    let tx = tx.clone();
                    let span = job_span(&t.job, &t.runner_name);
                    tokio::spawn(
                        async move {
                            if let Some(id) = &id
                                && let Some(target) = &target
                                && let Err(e) = target.destroy(id).await
                            {
                                warn!(error = %e, "cleanup left resources; the next start removes them");
                            }
                            if let Some(c) = &claim {
                                for attempt in 0..5u64 {
                                    match p.release(&c.scope, c.runner_id).await {
                                        Ok(()) => {
                                            info!(runner_id = c.runner_id, "runner deregistered");
                                            break;
                                        }
                                        Err(e) => {
                                            warn!(error = %e, attempt, "cannot deregister the runner yet");
                                            let wait =
                                                e.wait(SystemTime::now()).unwrap_or(Duration::from_secs(1 << attempt));
                                            tokio::time::sleep(wait.min(Duration::from_secs(60))).await;
                                        }
                                    }
                                }
                            }
                            journal(
                                "the job's phase",
                                store.forge_job_phase(&key.provider, key.forge_job_id, Phase::Cleaned),
                            );
                            let _ = tx.send(Msg::Machine(Event::Cleaned(key)));
                            // After the slot is free: the history learns how the job ended.
                            if claim.is_some() {
                                record_conclusion(&store, p.as_ref(), &job).await;
                            }
                        }
                        .instrument(span),
                    );
                }
                Action::Exit => {}
            }
        }
    }

    /// The runner command for a profile: its `runner_cmd`, else the runner tree's `run.sh`, else none.
    fn runner_cmd(&self, profile: Option<&ProfileConfig>) -> Option<Vec<String>> {
        let own = profile.and_then(|p| p.runner_cmd.clone());
        own.or_else(|| self.cfg.runner.dir.as_ref().map(|_| vec!["/actions-runner/run.sh".to_string()]))
    }

    fn image_and_limits(&self, t: &Tracked) -> (String, Limits) {
        let profile = t.profile.as_ref();
        let image = profile
            .and_then(|p| p.image.clone())
            .or_else(|| t.provider.default_image().map(String::from))
            .unwrap_or_else(|| self.cfg.image.default.clone());
        let mut limits = self.cfg.limits.clone();
        if let Some(p) = profile {
            limits.cpus = p.cpus.unwrap_or(limits.cpus);
            limits.memory = p.memory.unwrap_or(limits.memory);
            limits.pids = p.pids.unwrap_or(limits.pids);
        }
        (image, limits)
    }
}

fn profiles_of(cfg: &Config) -> Vec<Profile> {
    cfg.scheduler.profiles.iter().map(|p| Profile { name: p.name.clone(), labels: p.labels.clone() }).collect()
}

fn job_span(job: &ForgeJob, runner: &str) -> tracing::Span {
    info_span!("job", provider = %job.provider, repo = %job.repo, job_id = job.id, run_id = job.run_id, runner = %runner)
}

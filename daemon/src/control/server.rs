//! The control API's RPCs. Reads come from the journal and the live status; controls go to the event loop
//! as `serve::Control`s; streams are fed by the journal's change broadcast and the live status channel.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use ephemerd_proto::v1;
use ephemerd_proto::v1::control_server::Control as ControlApi;
use tokio::sync::{mpsc, watch};
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use super::convert::{self, Host, JobRef};
use super::errors::ControlError;
use super::live::Live;
use crate::config::Config;
use crate::forge::Secret;
use crate::forge::build::ProviderSet;
use crate::platform::DataDirs;
use crate::scheduler::machine::JobKey;
use crate::secrets::CredentialStore;
use crate::serve::{Control, Order};
use crate::store::{ForgeJobRecord, JobFilter, Phase, Store};

type Stream_<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// The longest drain a client may ask for.
const MAX_DRAIN_SECS: i64 = 7 * 86400;
/// How often the data dir's size is measured again (walking it is not free).
const DISK_EVERY: Duration = Duration::from_secs(60);

/// What the control service is built from.
pub struct Parts {
    pub store: Store,
    pub live: watch::Receiver<Live>,
    pub controls: mpsc::UnboundedSender<Order>,
    pub dirs: DataDirs,
    pub credentials: Arc<dyn CredentialStore>,
    pub providers: ProviderSet,
    /// A `--token`/`GITHUB_TOKEN` the daemon was started with (it wins over the keyring).
    pub flag_token: Option<Secret>,
    /// The config file (re-read by `ReloadConfig`), and the config the daemon runs with.
    pub config_path: Option<std::path::PathBuf>,
    pub config: Config,
    /// Runs the onboarding's test job.
    pub target: Arc<dyn crate::target::Target>,
    /// The Linux workers jobs run in (for the status).
    pub workers: Vec<Arc<crate::worker::WorkerTarget>>,
}

#[derive(Clone)]
pub struct ControlService {
    pub(super) store: Store,
    pub(super) live: watch::Receiver<Live>,
    pub(super) controls: mpsc::UnboundedSender<Order>,
    pub(super) dirs: DataDirs,
    pub(super) credentials: Arc<dyn CredentialStore>,
    pub(super) providers: ProviderSet,
    pub(super) flag_token: Option<Secret>,
    /// The data dir's size, and when it was measured.
    pub(super) disk: Arc<std::sync::Mutex<Option<(std::time::Instant, u64)>>>,
    /// The config file, and the config as running (reloads change what they can of it).
    pub(super) config: Arc<std::sync::Mutex<(Option<std::path::PathBuf>, Config)>>,
    pub(super) target: Arc<dyn crate::target::Target>,
    pub(super) workers: Vec<Arc<crate::worker::WorkerTarget>>,
    /// One config-file edit at a time.
    pub(super) editing: Arc<tokio::sync::Mutex<()>>,
}

impl ControlService {
    pub fn new(p: Parts) -> Self {
        let config = Arc::new(std::sync::Mutex::new((p.config_path, p.config)));
        Self {
            store: p.store,
            live: p.live,
            controls: p.controls,
            dirs: p.dirs,
            credentials: p.credentials,
            providers: p.providers,
            flag_token: p.flag_token,
            disk: Arc::new(std::sync::Mutex::new(None)),
            config,
            target: p.target,
            workers: p.workers,
            editing: Arc::new(tokio::sync::Mutex::new(())),
        }
    }

    pub fn into_service(self) -> v1::control_server::ControlServer<Self> {
        v1::control_server::ControlServer::new(self)
    }

    async fn status_reply(&self) -> v1::StatusReply {
        let live = self.live.borrow().clone();
        convert::status(&live, self.host().await)
    }

    async fn host(&self) -> Host {
        #[cfg(unix)]
        let (healthy, detail) = match tokio::net::UnixStream::connect(self.dirs.containerd_socket()).await.is_ok() {
            true => (true, "answering"),
            false => (false, "not answering on its socket"),
        };
        #[cfg(not(unix))]
        let (healthy, detail) = (false, "none on this machine: jobs run in the Linux worker");
        let containerd =
            v1::ComponentHealth { name: "containerd".into(), healthy, detail: detail.into(), ..Default::default() };
        let cached = self.disk.lock().ok().and_then(|d| *d).filter(|(at, _)| at.elapsed() < DISK_EVERY);
        let bytes = match cached {
            Some((_, b)) => b,
            None => {
                let root = self.dirs.root.clone();
                let b = tokio::task::spawn_blocking(move || dir_size(&root)).await.unwrap_or(0);
                if let Ok(mut d) = self.disk.lock() {
                    *d = Some((std::time::Instant::now(), b));
                }
                b
            }
        };
        let workers = self.workers.iter().map(|w| w.status()).collect();
        Host { containerd, workers, data_dir: self.dirs.root.display().to_string(), data_dir_bytes: bytes }
    }

    fn resolve(&self, id: &str) -> Result<ForgeJobRecord, ControlError> {
        let bad = || ControlError::InvalidField {
            field: "id",
            message: format!("`{id}` is not a job id (`<provider>#<number>` or a number)"),
        };
        match convert::parse_job_id(id).ok_or_else(bad)? {
            JobRef::Full { provider, forge_job_id } => {
                self.store.forge_job(&provider, forge_job_id)?.ok_or_else(|| ControlError::JobNotFound(id.into()))
            }
            JobRef::Number(n) => {
                let mut found = self.store.forge_jobs_numbered(n)?;
                match found.len() {
                    0 => Err(ControlError::JobNotFound(id.into())),
                    1 => Ok(found.remove(0)),
                    _ => Err(ControlError::Ambiguous {
                        id: id.into(),
                        matches: found
                            .iter()
                            .map(|r| convert::job_id(&r.provider, r.forge_job_id))
                            .collect::<Vec<_>>()
                            .join(", "),
                    }),
                }
            }
        }
    }

    /// Builds the providers again from `cfg` and the credentials now stored, and hands them to the event
    /// loop (a credential or a `[[github]]` section changed).
    pub(super) async fn rebuild_providers(&self, cfg: Config) -> Result<(), ControlError> {
        let (store, flag) = (self.credentials.clone(), self.flag_token.clone());
        let built =
            tokio::task::spawn_blocking(move || crate::forge::build::build(&cfg, flag.as_ref(), store.as_ref()))
                .await
                .map_err(|e| ControlError::InvalidConfig(e.to_string()))?;
        self.send(Control::Providers(built)).await
    }

    /// The config file and the running config (a poisoned lock still holds the last ones).
    pub(super) fn config(&self) -> std::sync::MutexGuard<'_, (Option<std::path::PathBuf>, Config)> {
        match self.config.lock() {
            Ok(g) => g,
            Err(e) => e.into_inner(),
        }
    }

    pub(super) fn running_config(&self) -> Config {
        self.config().1.clone()
    }

    /// Reads the config file again and applies what can change while running.
    pub(super) async fn reload(&self) -> Result<crate::config::ReloadPlan, ControlError> {
        let (plan, new) = {
            let guard = self.config();
            let (path, running) = &*guard;
            let new = Config::load(path.as_deref()).map_err(|e| ControlError::InvalidConfig(e.to_string()))?;
            let plan = crate::config::reload_plan(running, &new);
            (plan, new)
        };
        // A new webhook address is bound before anything is applied: a refusal applies nothing.
        let listener = match plan.applied.iter().any(|k| k == "webhook") {
            false => None,
            true => Some(match new.webhook.listen {
                None => None,
                Some(addr) => Some(self.bind_webhooks(addr).await?),
            }),
        };
        if !plan.applied.is_empty() {
            crate::config::apply_live(&mut self.config().1, &new);
        }
        if let Some(listener) = listener {
            self.send(Control::Webhooks(listener)).await?;
        }
        if plan.applied.iter().any(|k| k != "github" && k != "webhook") {
            self.send(Control::Reload(Box::new(new.clone()))).await?;
        }
        if plan.applied.iter().any(|k| k == "github") {
            self.rebuild_providers(new).await?;
        }
        tracing::info!(applied = ?plan.applied, needs_restart = ?plan.needs_restart, "config reloaded");
        Ok(plan)
    }

    /// A listener on `addr` for webhook deliveries. When the daemon's own listener holds the port (on
    /// another address of this host), it is let go first; if `addr` still cannot be had, the daemon
    /// listens where it did before and the error is returned.
    async fn bind_webhooks(&self, addr: std::net::SocketAddr) -> Result<tokio::net::TcpListener, ControlError> {
        fn bind(addr: std::net::SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
            let l = std::net::TcpListener::bind(addr)?;
            l.set_nonblocking(true)?;
            tokio::net::TcpListener::from_std(l)
        }
        async fn bind_soon(addr: std::net::SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
            let mut last = bind(addr);
            for _ in 0..40 {
                match last {
                    Err(ref e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        last = bind(addr);
                    }
                    _ => break,
                }
            }
            last
        }
        let refused =
            |e: std::io::Error| ControlError::InvalidConfig(format!("webhook.listen: cannot listen on {addr}: {e}"));
        let old = self.config().1.webhook.listen;
        match bind(addr) {
            Ok(l) => Ok(l),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && old.is_some_and(|o| o.port() == addr.port()) => {
                self.send(Control::Webhooks(None)).await?;
                match bind_soon(addr).await {
                    Ok(l) => Ok(l),
                    Err(e) => {
                        if let Some(before) = old {
                            match bind_soon(before).await {
                                Ok(l) => self.send(Control::Webhooks(Some(l))).await?,
                                Err(e) => {
                                    tracing::warn!(addr = %before, error = %e, "not listening for webhooks");
                                    // So that saving an address again binds it.
                                    self.config().1.webhook.listen = None;
                                }
                            }
                        }
                        Err(refused(e))
                    }
                }
            }
            Err(e) => Err(refused(e)),
        }
    }

    /// Hands a control to the event loop and waits until it has been applied.
    async fn send(&self, c: Control) -> Result<(), ControlError> {
        let (order, applied) = Order::acked(c);
        self.controls.send(order).map_err(|_| ControlError::Stopping)?;
        applied.await.map_err(|_| ControlError::Stopping)
    }

    /// Sends a control and answers with the status it has led to.
    async fn control(&self, c: Control) -> Result<v1::StatusReply, ControlError> {
        self.send(c).await?;
        Ok(self.status_reply().await)
    }
}

/// Bytes under `dir` (not following links).
fn dir_size(dir: &std::path::Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            match e.metadata() {
                Ok(m) if m.is_dir() => stack.push(e.path()),
                Ok(m) if m.is_file() => total += m.len(),
                _ => {}
            }
        }
    }
    total
}

#[tonic::async_trait]
impl ControlApi for ControlService {
    async fn status(&self, _: Request<v1::StatusRequest>) -> Result<Response<v1::StatusReply>, Status> {
        Ok(Response::new(self.status_reply().await))
    }

    async fn list_jobs(&self, req: Request<v1::ListJobsRequest>) -> Result<Response<v1::ListJobsReply>, Status> {
        let r = req.into_inner();
        let size = match r.page_size {
            0 => 50,
            n if n > 500 => {
                return Err(
                    ControlError::InvalidField { field: "page_size", message: format!("{n} is over 500") }.into()
                );
            }
            n => n,
        };
        let offset: u64 = if r.page_token.is_empty() {
            0
        } else {
            r.page_token.parse().map_err(|_| ControlError::InvalidField {
                field: "page_token",
                message: "not a token this daemon gave".into(),
            })?
        };
        let mut phases = Vec::new();
        for s in &r.states {
            let state = v1::JobState::try_from(*s)
                .ok()
                .and_then(convert::phase_of)
                .ok_or(ControlError::InvalidField { field: "states", message: format!("unknown state {s}") })?;
            phases.push(state);
        }
        let filter = JobFilter {
            phases,
            provider: Some(r.provider).filter(|p| !p.is_empty()),
            repo: Some(r.repo).filter(|p| !p.is_empty()),
            uncleaned: false,
        };
        let mut rows = self.store.list_forge_jobs(&filter, offset, u64::from(size) + 1).map_err(ControlError::from)?;
        let more = rows.len() > size as usize;
        rows.truncate(size as usize);
        let next_page_token = if more { (offset + u64::from(size)).to_string() } else { String::new() };
        Ok(Response::new(v1::ListJobsReply { jobs: rows.iter().map(convert::job).collect(), next_page_token }))
    }

    async fn get_job(&self, req: Request<v1::GetJobRequest>) -> Result<Response<v1::Job>, Status> {
        Ok(Response::new(convert::job(&self.resolve(&req.into_inner().id)?)))
    }

    type WatchEventsStream = Stream_<v1::Event>;

    async fn watch_events(
        &self,
        _: Request<v1::WatchEventsRequest>,
    ) -> Result<Response<Self::WatchEventsStream>, Status> {
        // Subscribe before the snapshot, so no change falls between them (a change seen twice is harmless:
        // every event carries the whole job).
        let mut changes = self.store.subscribe();
        let mut live = self.live.clone();
        live.mark_unchanged();
        let (tx, rx) = mpsc::channel::<Result<v1::Event, Status>>(64);
        let me = self.clone();
        tokio::spawn(async move {
            let snapshot = |me: ControlService| async move {
                let filter = JobFilter { uncleaned: true, ..Default::default() };
                let jobs = me.store.list_forge_jobs(&filter, 0, 10_000).map_err(ControlError::from)?;
                let status = me.status_reply().await;
                Ok::<_, ControlError>(v1::Event {
                    kind: Some(v1::event::Kind::Snapshot(v1::Snapshot {
                        status: Some(status),
                        jobs: jobs.iter().map(convert::job).collect(),
                    })),
                })
            };
            if tx.send(snapshot(me.clone()).await.map_err(Status::from)).await.is_err() {
                return;
            }
            loop {
                let ev = tokio::select! {
                    c = changes.recv() => match c {
                        Ok(rec) => Ok(v1::Event { kind: Some(v1::event::Kind::Job(convert::job(&rec))) }),
                        // Too slow a reader: start it over from a fresh snapshot.
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => snapshot(me.clone()).await.map_err(Status::from),
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                    },
                    ch = live.changed() => match ch {
                        Ok(()) => {
                            live.mark_unchanged();
                            Ok(v1::Event { kind: Some(v1::event::Kind::Status(me.status_reply().await)) })
                        }
                        Err(_) => return,
                    },
                    _ = tx.closed() => return,
                };
                if tx.send(ev).await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))))
    }

    type GetJobLogsStream = Stream_<v1::LogChunk>;

    async fn get_job_logs(
        &self,
        req: Request<v1::GetJobLogsRequest>,
    ) -> Result<Response<Self::GetJobLogsStream>, Status> {
        let r = req.into_inner();
        let rec = self.resolve(&r.id)?;
        if rec.runtime_id.is_none() && !r.follow {
            return Err(ControlError::Log {
                id: r.id,
                message: "the job has not started, so it has no log yet".into(),
            }
            .into());
        }
        let (tx, rx) = mpsc::channel::<Result<v1::LogChunk, Status>>(16);
        let (store, dirs) = (self.store.clone(), self.dirs.clone());
        tokio::spawn(async move { follow_log(store, dirs, rec, r.follow, tx).await });
        Ok(Response::new(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))))
    }

    async fn kill_job(&self, req: Request<v1::KillJobRequest>) -> Result<Response<v1::KillJobReply>, Status> {
        let id = req.into_inner().id;
        let rec = self.resolve(&id)?;
        // Only a running job has a container to stop.
        if rec.phase != Phase::Running {
            return Err(ControlError::NotRunning { id, phase: rec.phase.to_string() }.into());
        }
        self.send(Control::Kill(JobKey { provider: rec.provider.clone(), forge_job_id: rec.forge_job_id })).await?;
        Ok(Response::new(v1::KillJobReply { job: Some(convert::job(&rec)) }))
    }

    async fn pause(&self, _: Request<v1::PauseRequest>) -> Result<Response<v1::StatusReply>, Status> {
        Ok(Response::new(self.control(Control::Pause).await?))
    }

    async fn resume(&self, _: Request<v1::ResumeRequest>) -> Result<Response<v1::StatusReply>, Status> {
        Ok(Response::new(self.control(Control::Resume).await?))
    }

    async fn drain(&self, req: Request<v1::DrainRequest>) -> Result<Response<v1::StatusReply>, Status> {
        let timeout = match req.into_inner().timeout {
            None => None,
            Some(d) if d.seconds < 0 || d.nanos < 0 => {
                return Err(ControlError::InvalidField { field: "timeout", message: "negative".into() }.into());
            }
            Some(d) if d.seconds > MAX_DRAIN_SECS => {
                let message = format!("{} s is over the limit of {MAX_DRAIN_SECS} s (a week)", d.seconds);
                return Err(ControlError::InvalidField { field: "timeout", message }.into());
            }
            Some(d) => Some(Duration::new(d.seconds as u64, d.nanos.min(999_999_999) as u32)),
        };
        Ok(Response::new(self.control(Control::Drain(timeout)).await?))
    }

    async fn reload_config(
        &self,
        _: Request<v1::ReloadConfigRequest>,
    ) -> Result<Response<v1::ReloadConfigReply>, Status> {
        // Not while a forge is being saved: providers built from an older file must not land after its.
        let _one = self.editing.lock().await;
        let plan = self.reload().await?;
        Ok(Response::new(v1::ReloadConfigReply { applied: plan.applied, needs_restart: plan.needs_restart }))
    }

    async fn list_providers(
        &self,
        _: Request<v1::ListProvidersRequest>,
    ) -> Result<Response<v1::ListProvidersReply>, Status> {
        let providers = self.live.borrow().providers.iter().map(convert::provider).collect();
        Ok(Response::new(v1::ListProvidersReply { providers }))
    }

    async fn test_provider(
        &self,
        req: Request<v1::TestProviderRequest>,
    ) -> Result<Response<v1::TestProviderReply>, Status> {
        let name = req.into_inner().name;
        let providers = crate::forge::build::snapshot(&self.providers);
        let p = providers.iter().find(|p| p.name() == name).ok_or(ControlError::ProviderNotFound(name))?;
        let t = p.test().await;
        Ok(Response::new(v1::TestProviderReply { ok: t.ok, missing_permissions: t.missing, message: t.message }))
    }

    async fn set_credential(
        &self,
        req: Request<v1::SetCredentialRequest>,
    ) -> Result<Response<v1::SetCredentialReply>, Status> {
        let r = req.into_inner();
        let _one = self.editing.lock().await;
        let (name, secret) = (r.provider, Secret::new(r.secret));
        let store = self.credentials.clone();
        let n = name.clone();
        tokio::task::spawn_blocking(move || store.set(&n, &secret))
            .await
            .map_err(|e| Status::internal(e.to_string()))?
            .map_err(ControlError::from)?;
        tracing::info!(provider = %name, "credential stored in the OS keyring");
        self.rebuild_providers(self.running_config()).await?;
        let note = if self.flag_token.is_some() {
            "stored in the OS keyring; the daemon was started with --token or GITHUB_TOKEN, which still wins"
        } else {
            "stored in the OS keyring and in use"
        };
        Ok(Response::new(v1::SetCredentialReply { note: note.into() }))
    }

    async fn delete_credential(
        &self,
        req: Request<v1::DeleteCredentialRequest>,
    ) -> Result<Response<v1::DeleteCredentialReply>, Status> {
        let name = req.into_inner().provider;
        let _one = self.editing.lock().await;
        let store = self.credentials.clone();
        let n = name.clone();
        let existed = tokio::task::spawn_blocking(move || store.delete(&n))
            .await
            .map_err(|e| Status::internal(e.to_string()))?
            .map_err(ControlError::from)?;
        tracing::info!(provider = %name, existed, "credential deleted from the OS keyring");
        self.rebuild_providers(self.running_config()).await?;
        Ok(Response::new(v1::DeleteCredentialReply { existed }))
    }

    async fn test_forge(&self, req: Request<v1::TestForgeRequest>) -> Result<Response<v1::TestProviderReply>, Status> {
        let privileged = privileged(&req);
        let spec =
            req.into_inner().forge.ok_or(ControlError::InvalidField { field: "forge", message: "missing".into() })?;
        let t = self.test_forge_spec(spec, privileged).await?;
        Ok(Response::new(v1::TestProviderReply { ok: t.ok, missing_permissions: t.missing, message: t.message }))
    }

    async fn save_forge(&self, req: Request<v1::SaveForgeRequest>) -> Result<Response<v1::SaveForgeReply>, Status> {
        let privileged = privileged(&req);
        let spec =
            req.into_inner().forge.ok_or(ControlError::InvalidField { field: "forge", message: "missing".into() })?;
        Ok(Response::new(self.save_forge_spec(spec, privileged).await?))
    }

    async fn get_forge(&self, req: Request<v1::GetForgeRequest>) -> Result<Response<v1::ForgeSpec>, Status> {
        Ok(Response::new(self.forge_spec(&req.into_inner().name)?))
    }

    async fn remove_forge(
        &self,
        req: Request<v1::RemoveForgeRequest>,
    ) -> Result<Response<v1::RemoveForgeReply>, Status> {
        Ok(Response::new(self.remove_forge_named(req.into_inner().name).await?))
    }

    async fn run_test_job(&self, _: Request<v1::RunTestJobRequest>) -> Result<Response<v1::RunTestJobReply>, Status> {
        Ok(Response::new(super::testjob::run(self.target.clone(), &self.running_config()).await))
    }

    async fn get_job_settings(
        &self,
        _: Request<v1::GetJobSettingsRequest>,
    ) -> Result<Response<v1::JobSettings>, Status> {
        Ok(Response::new(self.job_settings()))
    }

    async fn save_job_settings(
        &self,
        req: Request<v1::SaveJobSettingsRequest>,
    ) -> Result<Response<v1::SaveJobSettingsReply>, Status> {
        let privileged = privileged(&req);
        let settings = req
            .into_inner()
            .settings
            .ok_or(ControlError::InvalidField { field: "settings", message: "missing".into() })?;
        Ok(Response::new(self.save_job_settings_as(settings, privileged).await?))
    }
}

/// Streams a job's log: what is there, then (with `follow`) what comes, until the job has ended. Waits
/// for a queued job's container first.
async fn follow_log(
    store: Store,
    dirs: DataDirs,
    mut rec: ForgeJobRecord,
    follow: bool,
    tx: mpsc::Sender<Result<v1::LogChunk, Status>>,
) {
    use tokio::io::{AsyncReadExt, AsyncSeekExt};
    let mut changes = store.subscribe();
    // Read again now that changes are seen: one made before the subscription is not missed.
    if let Ok(Some(r)) = store.forge_job(&rec.provider, rec.forge_job_id) {
        rec = r;
    }
    let id = convert::job_id(&rec.provider, rec.forge_job_id);
    // A job without a container yet: wait for one (or for the job to end without one).
    while rec.runtime_id.is_none() {
        if rec.phase.ended() {
            let _ = tx.send(Err(ControlError::Log { id, message: "the job ended without a log".into() }.into())).await;
            return;
        }
        tokio::select! {
            c = changes.recv() => match c {
                Ok(r) if r.provider == rec.provider && r.forge_job_id == rec.forge_job_id => rec = r,
                Ok(_) => {}
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                    if let Ok(Some(r)) = store.forge_job(&rec.provider, rec.forge_job_id) {
                        rec = r;
                    }
                }
                Err(_) => return,
            },
            _ = tx.closed() => return,
        }
    }
    let path = dirs.job_log(rec.runtime_id.as_deref().unwrap_or_default());
    let mut file = None;
    let mut pos = 0u64;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        // Read the phase before the file: data written before the job ended is then always read.
        let ended =
            !follow || store.forge_job(&rec.provider, rec.forge_job_id).ok().flatten().is_none_or(|r| r.phase.ended());
        if file.is_none() {
            file = tokio::fs::File::open(&path).await.ok();
        }
        if let Some(f) = file.as_mut() {
            if f.seek(std::io::SeekFrom::Start(pos)).await.is_err() {
                return;
            }
            loop {
                match f.read(&mut buf).await {
                    Ok(0) => break,
                    Ok(n) => {
                        pos += n as u64;
                        if tx.send(Ok(v1::LogChunk { data: buf[..n].to_vec() })).await.is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        let _ = tx.send(Err(ControlError::Log { id, message: e.to_string() }.into())).await;
                        return;
                    }
                }
            }
        } else if ended {
            let _ = tx.send(Err(ControlError::Log { id, message: "the log file is gone".into() }.into())).await;
            return;
        }
        if ended {
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            _ = tx.closed() => return,
        }
    }
}

/// The caller is root or the daemon's own user (peer credentials of the Unix socket); a member of
/// `control.group` is not. On Windows the named pipe's ACL admits the daemon's own user only.
#[cfg(not(unix))]
fn privileged<T>(_req: &Request<T>) -> bool {
    true
}

/// The caller is root or the daemon's own user (peer credentials of the Unix socket); a member of
/// `control.group` is not.
#[cfg(unix)]
fn privileged<T>(req: &Request<T>) -> bool {
    let uid =
        req.extensions().get::<tonic::transport::server::UdsConnectInfo>().and_then(|i| i.peer_cred).map(|c| c.uid());
    uid.is_some_and(|u| u == 0 || u == nix::unistd::geteuid().as_raw())
}

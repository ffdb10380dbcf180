//! The app's live side, without a window system: it keeps the daemon running (carrying out the
//! supervisor's actions: spawning `ephemerd serve`, asking the service manager), holds one control-API
//! client, follows `WatchEvents` (no polling while connected), and tells the shell (`Ui`) what changed:
//! the app state, jobs, notifications. The Tauri commands are thin calls into this.

use std::collections::{HashMap, HashSet};
use std::process::Stdio;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use ephemerd_proto::Client;
use ephemerd_proto::v1;
use tokio::sync::Notify;
use tokio_stream::StreamExt;

use crate::dto::{self, AppState, HealthDto, Job};
use crate::errors::{self, UiError};
use crate::paths::Paths;
use crate::settings::{self, AppSettings};
use crate::supervisor::{Action, Event, Health, Mode, ServiceState, Socket, Supervisor};
use crate::tray::{self, Tray};

/// What the shell does for the core: the window system's side.
pub trait Ui: Send + Sync + 'static {
    /// The app state changed (a forge's last poll is enough).
    fn state(&self, state: &AppState);
    /// The tray changed (icon, tooltip or menu): rendering it is not free, so only then.
    fn tray(&self, tray: &Tray);
    /// A full list of unfinished jobs (on each connect).
    fn jobs(&self, jobs: &[Job]);
    /// One job changed.
    fn job(&self, job: &Job);
    fn notify(&self, title: &str, body: &str);
    /// Asks whether to quit although jobs run (blocking: called off the async workers).
    fn confirm_quit(&self, running: u32) -> bool;
    fn exit(&self);
}

/// How often the socket is tried while a daemon is expected (starting, restarting).
const PROBE_EVERY: Duration = Duration::from_secs(1);
/// … and while none is (a service stopped or not installed): each probe then runs
/// `ephemerd service status`. A start or install asked for in the app probes at once.
const PROBE_IDLE_EVERY: Duration = Duration::from_secs(5);
/// How long an RPC may take before the UI is told.
const RPC_TIMEOUT: Duration = Duration::from_secs(15);

struct Inner {
    sup: Supervisor,
    status: Option<v1::StatusReply>,
    settings: AppSettings,
    start_at_login: bool,
    client: Option<Client>,
    watching: bool,
    /// The pid of our `ephemerd serve` (user mode).
    child: Option<u32>,
    /// Jobs a failure notification was shown for.
    notified: HashSet<String>,
    last: Option<AppState>,
    last_tray: Option<Tray>,
}

pub struct Core {
    pub paths: Paths,
    inner: Mutex<Inner>,
    ui: OnceLock<Arc<dyn Ui>>,
    wake: Notify,
    logs: Mutex<HashMap<u32, tokio::task::AbortHandle>>,
    next_log: AtomicU32,
}

impl Core {
    pub fn new(paths: Paths) -> Arc<Self> {
        let settings = settings::load(&paths.app_dir);
        let sup = Supervisor::new(settings.mode.into());
        Arc::new(Self {
            paths,
            inner: Mutex::new(Inner {
                sup,
                status: None,
                settings,
                start_at_login: false,
                client: None,
                watching: false,
                child: None,
                notified: HashSet::new(),
                last: None,
                last_tray: None,
            }),
            ui: OnceLock::new(),
            wake: Notify::new(),
            logs: Mutex::new(HashMap::new()),
            next_log: AtomicU32::new(1),
        })
    }

    /// The socket of the daemon this mode uses: our own child's, or the system service's.
    pub fn socket(&self) -> std::path::PathBuf {
        match self.lock().sup.mode {
            Mode::User => self.paths.socket.clone(),
            Mode::Service => self.paths.service_socket.clone(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        match self.inner.lock() {
            Ok(g) => g,
            Err(e) => e.into_inner(),
        }
    }

    /// Connects the shell; the supervision starts with `start`.
    pub fn set_ui(&self, ui: Arc<dyn Ui>) {
        let _ = self.ui.set(ui);
    }

    fn ui(&self) -> Option<&Arc<dyn Ui>> {
        self.ui.get()
    }

    pub fn set_start_at_login_seen(&self, on: bool) {
        self.lock().start_at_login = on;
        self.publish();
    }

    pub fn state(&self) -> AppState {
        Self::state_of(&self.lock())
    }

    fn state_of(i: &Inner) -> AppState {
        let connected = i.sup.health == Health::Connected;
        AppState {
            health: HealthDto::from(&i.sup.health),
            mode: dto::mode_name(i.settings.mode.into()),
            status: i.status.as_ref().filter(|_| connected).map(dto::Status::from),
            start_at_login: i.start_at_login,
            notifications: i.settings.notifications,
            onboarded: i.settings.onboarded,
        }
    }

    pub fn tray(&self) -> Tray {
        let i = self.lock();
        let status = i.status.as_ref().filter(|_| i.sup.health == Health::Connected);
        tray::model(&i.sup.health, status, i.start_at_login)
    }

    /// Tells the shell when the state changed; notifies when a connected daemon went away.
    fn publish(&self) {
        let (state, tray, stopped) = {
            let mut i = self.lock();
            let state = Self::state_of(&i);
            if i.last.as_ref() == Some(&state) {
                return;
            }
            let was = i.last.as_ref().map(|l| l.health.state);
            let stopped = was == Some("connected") && state.health.state != "connected" && i.settings.notifications;
            i.last = Some(state.clone());
            let status = i.status.as_ref().filter(|_| i.sup.health == Health::Connected);
            let tray = tray::model(&i.sup.health, status, i.start_at_login);
            let tray = if i.last_tray.as_ref() == Some(&tray) {
                None
            } else {
                i.last_tray = Some(tray.clone());
                Some(tray)
            };
            (state, tray, stopped)
        };
        if let Some(ui) = self.ui() {
            ui.state(&state);
            if let Some(t) = tray {
                ui.tray(&t);
            }
            if stopped {
                let why = state.health.reason.clone().unwrap_or_else(|| "it is not answering".into());
                ui.notify("ephemerd stopped", &format!("The daemon stopped: {why}. No jobs are taken."));
            }
        }
    }

    pub fn update_settings(&self, f: impl FnOnce(&mut AppSettings)) -> Result<AppState, UiError> {
        let s = {
            let mut i = self.lock();
            f(&mut i.settings);
            i.settings.clone()
        };
        settings::save(&self.paths.app_dir, &s)
            .map_err(|e| UiError::internal(format!("cannot save the app's settings: {e}")))?;
        self.publish();
        Ok(self.state())
    }

    /// A client for the daemon (connecting when there is none).
    pub async fn client(&self) -> Result<Client, UiError> {
        if let Some(c) = self.lock().client.clone() {
            return Ok(c);
        }
        let c = ephemerd_proto::connect(&self.socket()).await.map_err(|e| errors::unavailable(&e))?;
        self.lock().client = Some(c.clone());
        Ok(c)
    }

    /// Runs one RPC: the daemon's error in words, a lost connection noticed at once.
    pub async fn call<T, F, Fut>(&self, f: F) -> Result<T, UiError>
    where
        F: FnOnce(Client) -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        self.call_within(RPC_TIMEOUT, f).await
    }

    /// `call` for RPCs that take long (a test job pulling its image, a keyring asking to be unlocked).
    pub async fn call_within<T, F, Fut>(&self, timeout: Duration, f: F) -> Result<T, UiError>
    where
        F: FnOnce(Client) -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let c = self.client().await?;
        match tokio::time::timeout(timeout, f(c)).await {
            Ok(Ok(r)) => Ok(r.into_inner()),
            Ok(Err(s)) => {
                if matches!(s.code(), tonic::Code::Unavailable | tonic::Code::Unknown) {
                    self.lock().client = None;
                    self.wake.notify_one();
                }
                Err(errors::from_status(&s))
            }
            Err(_) => Err(UiError::new("timeout", "ephemerd took too long to answer.")),
        }
    }

    /// Feeds an event to the supervisor and carries out what it decides.
    pub fn handle(self: &Arc<Self>, ev: Event) {
        let actions = self.lock().sup.handle(ev, Instant::now());
        self.publish();
        for a in actions {
            self.carry_out(a);
        }
    }

    fn carry_out(self: &Arc<Self>, a: Action) {
        tracing::info!(action = ?a, "supervisor");
        let me = self.clone();
        match a {
            Action::SpawnChild => {
                tauri::async_runtime::spawn(async move { me.spawn_child() });
            }
            Action::SpawnChildAfter(d) => {
                tauri::async_runtime::spawn(async move {
                    tokio::time::sleep(d).await;
                    me.spawn_child();
                });
            }
            Action::StartService => {
                tauri::async_runtime::spawn(async move { me.elevated(&["service", "start"]).await });
            }
            Action::RestartServiceAfter(d) => {
                tauri::async_runtime::spawn(async move {
                    tokio::time::sleep(d).await;
                    me.elevated(&["service", "start"]).await;
                });
            }
            Action::InstallService => {
                tauri::async_runtime::spawn(async move {
                    // The user's own group may then use the service's socket (no new login needed).
                    match primary_group().await {
                        Some(g) => me.elevated(&["service", "install", "--control-group", &g]).await,
                        None => me.elevated(&["service", "install"]).await,
                    }
                });
            }
            Action::AskBeforeQuit { running } => {
                tauri::async_runtime::spawn(async move {
                    let Some(ui) = me.ui().cloned() else { return };
                    if tokio::task::spawn_blocking(move || ui.confirm_quit(running)).await.unwrap_or(false) {
                        me.handle(Event::QuitConfirmed);
                    }
                });
            }
            Action::DrainChildThenExit => {
                tauri::async_runtime::spawn(async move {
                    if let Err(e) =
                        me.call(|mut c| async move { c.drain(v1::DrainRequest { timeout: None }).await }).await
                    {
                        tracing::warn!(error = %e.message, "cannot drain the daemon; stopping it");
                        me.kill_child();
                    }
                });
            }
            Action::Exit => {
                if let Some(ui) = me.ui() {
                    ui.exit();
                }
            }
        }
    }

    /// Runs `ephemerd serve` as our child (user mode), its output appended to `daemon.log` in the app dir.
    fn spawn_child(self: &Arc<Self>) {
        // Checked and claimed at once (0 until the pid is known): a second start never runs a second daemon.
        {
            let mut i = self.lock();
            if i.child.is_some() {
                return;
            }
            i.child = Some(0);
        }
        let log = std::fs::create_dir_all(&self.paths.app_dir).and_then(|()| {
            std::fs::OpenOptions::new().create(true).append(true).open(self.paths.app_dir.join("daemon.log"))
        });
        let (out, err) = match log.and_then(|f| Ok((f.try_clone()?, f))) {
            Ok((a, b)) => (Stdio::from(a), Stdio::from(b)),
            Err(_) => (Stdio::null(), Stdio::null()),
        };
        let mut cmd = tokio::process::Command::new(&self.paths.ephemerd);
        cmd.arg("serve").stdin(Stdio::null()).stdout(out).stderr(err);
        #[cfg(unix)]
        cmd.process_group(0);
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                let why = format!("cannot run {}: {e}", self.paths.ephemerd.display());
                tracing::warn!("{why}");
                let mut i = self.lock();
                i.child = None;
                i.sup.health = Health::Unreachable(why);
                drop(i);
                self.publish();
                return;
            }
        };
        let pid = child.id();
        self.lock().child = Some(pid.unwrap_or(0));
        tracing::info!(pid = ?pid, "daemon started (user mode)");
        self.handle(Event::ChildStarted);
        let me = self.clone();
        tauri::async_runtime::spawn(async move {
            let code = child.wait().await.ok().and_then(|s| s.code());
            tracing::warn!(?code, "the daemon exited");
            {
                let mut i = me.lock();
                if i.child == Some(pid.unwrap_or(0)) {
                    i.child = None;
                }
            }
            me.handle(Event::ChildExited { code });
            me.wake.notify_one();
        });
    }

    fn kill_child(&self) {
        #[cfg(unix)]
        {
            let pid = self.lock().child.filter(|p| *p != 0);
            if let Some(pid) = pid {
                let _ = std::process::Command::new("kill").arg("-TERM").arg(pid.to_string()).status();
            }
        }
    }

    /// Runs `ephemerd <args>` behind the OS's elevation prompt; a refusal shows as the health's reason.
    async fn elevated(self: &Arc<Self>, args: &[&str]) {
        let (prog, argv) = crate::elevate::command(crate::elevate::Os::this(), &self.paths.ephemerd, args);
        let out = tokio::process::Command::new(&prog).args(&argv).stdin(Stdio::null()).output().await;
        let failed = match out {
            Ok(o) if o.status.success() => None,
            Ok(o) => Some(format!(
                "`ephemerd {}` failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&o.stderr).trim().lines().last().unwrap_or("refused")
            )),
            Err(e) => Some(format!("cannot run {prog}: {e}")),
        };
        if let Some(why) = failed {
            tracing::warn!("{why}");
            self.lock().sup.health = Health::Unreachable(why);
            self.publish();
        }
        self.wake.notify_one();
    }

    /// The service's state from `ephemerd service status` (exit 0 running, 3 stopped, 4 not installed).
    async fn service_state(&self) -> Option<ServiceState> {
        let out = tokio::process::Command::new(&self.paths.ephemerd)
            .args(["service", "status", "--json"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .await
            .ok()?;
        match out.code() {
            Some(0) => Some(ServiceState::Running),
            Some(3) => Some(ServiceState::Stopped),
            Some(4) => Some(ServiceState::NotInstalled),
            _ => None,
        }
    }

    async fn probe(&self) -> Socket {
        #[cfg(unix)]
        {
            let socket = self.socket();
            match tokio::net::UnixStream::connect(&socket).await {
                Ok(_) => Socket::Answers,
                Err(e) if matches!(e.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused) => {
                    Socket::Missing
                }
                Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => Socket::Refused(format!(
                    "this account may not use the daemon's socket {} (add it to the group in control.group)",
                    socket.display()
                )),
                Err(e) => Socket::Refused(format!("{}: {e}", socket.display())),
            }
        }
        #[cfg(not(unix))]
        {
            Socket::Refused("the named pipe client is not written yet".into())
        }
    }

    /// Keeps the daemon running and connected, until the app exits.
    pub async fn supervise(self: Arc<Self>) {
        loop {
            let watching = self.lock().watching;
            if !watching {
                let socket = self.probe().await;
                let mode = self.lock().sup.mode;
                let service = match (mode, &socket) {
                    (Mode::Service, Socket::Missing) => self.service_state().await,
                    _ => None,
                };
                let answers = socket == Socket::Answers;
                self.handle(Event::Probe { socket, service });
                if answers {
                    self.lock().watching = true;
                    tauri::async_runtime::spawn(self.clone().watch());
                }
            }
            let wait = {
                let i = self.lock();
                match (&i.sup.health, i.watching) {
                    (_, true) => Duration::from_secs(3600),
                    (Health::NotInstalled | Health::DaemonStopped, _) => PROBE_IDLE_EVERY,
                    _ => PROBE_EVERY,
                }
            };
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Follows `WatchEvents` until the stream ends; then the supervision probes again.
    async fn watch(self: Arc<Self>) {
        let stream = self.call(|mut c| async move { c.watch_events(v1::WatchEventsRequest {}).await }).await;
        match stream {
            Ok(mut s) => {
                while let Some(ev) = s.next().await {
                    match ev {
                        Ok(ev) => self.on_event(ev),
                        Err(e) => {
                            tracing::info!(error = %e, "event stream ended");
                            break;
                        }
                    }
                }
            }
            Err(e) => tracing::info!(error = %e.message, "cannot watch the daemon's events"),
        }
        {
            let mut i = self.lock();
            i.watching = false;
            i.client = None;
            i.status = None;
        }
        self.wake.notify_one();
    }

    fn on_event(&self, ev: v1::Event) {
        use v1::event::Kind;
        match ev.kind {
            Some(Kind::Snapshot(s)) => {
                self.lock().status = s.status;
                let jobs: Vec<Job> = s.jobs.iter().map(Job::from).collect();
                if let Some(ui) = self.ui() {
                    ui.jobs(&jobs);
                }
            }
            Some(Kind::Status(s)) => self.lock().status = Some(s),
            Some(Kind::Job(j)) => {
                let job = Job::from(&j);
                let failed = job.state == "failed"
                    || (matches!(job.state, "finished" | "cleaned")
                        && !job.conclusion.is_empty()
                        && !matches!(job.conclusion.as_str(), "success" | "skipped" | "neutral"));
                let notify = failed && {
                    let mut i = self.lock();
                    if i.notified.len() > 1000 {
                        i.notified.clear();
                    }
                    i.settings.notifications && i.notified.insert(job.id.clone())
                };
                if let Some(ui) = self.ui() {
                    ui.job(&job);
                    if notify {
                        let what =
                            if job.name.is_empty() { job.id.clone() } else { format!("{} ({})", job.name, job.repo) };
                        let how = if job.conclusion.is_empty() { "failed".to_string() } else { job.conclusion.clone() };
                        ui.notify("A job failed", &format!("{what}: {how}"));
                    }
                }
            }
            None => {}
        }
        self.publish();
    }

    /// The user quits (tray Quit): asks first when our daemon runs jobs, then drains it.
    pub fn quit(self: &Arc<Self>) {
        let running = self.lock().status.as_ref().map(|s| s.active_jobs).unwrap_or(0);
        self.handle(Event::Quit { running });
    }

    /// Streams a job's log to `send` until it ends; returns a handle for `stop_logs`.
    pub fn follow_logs(self: &Arc<Self>, id: String, send: impl Fn(dto::LogEvent) -> bool + Send + 'static) -> u32 {
        let handle = self.next_log.fetch_add(1, Ordering::Relaxed);
        let me = self.clone();
        let task = tokio::spawn(async move {
            let stream =
                me.call(|mut c| async move { c.get_job_logs(v1::GetJobLogsRequest { id, follow: true }).await }).await;
            let mut s = match stream {
                Ok(s) => s,
                Err(error) => {
                    send(dto::LogEvent::Error { error });
                    return;
                }
            };
            // Bytes of a character cut between two chunks wait for the next one.
            let mut pending: Vec<u8> = Vec::new();
            while let Some(chunk) = s.next().await {
                match chunk {
                    Ok(c) => {
                        pending.extend_from_slice(&c.data);
                        let valid = complete_utf8(&pending);
                        let text = String::from_utf8_lossy(&pending[..valid]).into_owned();
                        pending.drain(..valid);
                        if !text.is_empty() && !send(dto::LogEvent::Data { text }) {
                            return;
                        }
                    }
                    Err(st) => {
                        send(dto::LogEvent::Error { error: errors::from_status(&st) });
                        return;
                    }
                }
            }
            if !pending.is_empty() {
                send(dto::LogEvent::Data { text: String::from_utf8_lossy(&pending).into_owned() });
            }
            send(dto::LogEvent::End);
        });
        if let Ok(mut l) = self.logs.lock() {
            l.retain(|_, t| !t.is_finished());
            l.insert(handle, task.abort_handle());
        }
        handle
    }

    pub fn stop_logs(&self, handle: u32) {
        if let Some(t) = self.logs.lock().ok().and_then(|mut l| l.remove(&handle)) {
            t.abort();
        }
    }
}

/// The user's primary group (`id -gn`), on Unix.
async fn primary_group() -> Option<String> {
    if cfg!(windows) {
        return None;
    }
    let out = tokio::process::Command::new("id").arg("-gn").output().await.ok()?;
    let g = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (out.status.success() && !g.is_empty()).then_some(g)
}

/// How much of `b` to decode now: all of it but a character cut at its end (kept for the next chunk).
fn complete_utf8(b: &[u8]) -> usize {
    for back in 1..=3.min(b.len()) {
        let lead = b[b.len() - back];
        if lead & 0xC0 == 0x80 {
            continue; // A continuation byte: look further back for its lead.
        }
        let need = match lead {
            0xC0..=0xDF => 2,
            0xE0..=0xEF => 3,
            0xF0..=0xF7 => 4,
            _ => 1,
        };
        return if need > back { b.len() - back } else { b.len() };
    }
    b.len()
}

#[cfg(test)]
mod tests {
    use super::complete_utf8;

    #[test]
    fn a_character_cut_between_chunks_waits_and_bad_bytes_do_not_hold_it_back() {
        let s = "ab€".as_bytes(); // € is 3 bytes
        assert_eq!(complete_utf8(s), s.len());
        assert_eq!(complete_utf8(&s[..3]), 2);
        assert_eq!(complete_utf8(&s[..4]), 2);
        let mut bad = vec![b'x', 0xFF];
        bad.extend_from_slice(&s[2..4]);
        assert_eq!(complete_utf8(&bad), 2, "the invalid byte goes, the cut character waits");
        assert_eq!(complete_utf8(b""), 0);
    }
}

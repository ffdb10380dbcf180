//! The commands of the binary, and what they share: a session (data dir lock, supervised containerd,
//! journal, runtime, start-up reconciliation) and the mapping of failures to exit codes.

mod ctl;
mod doctor;
mod image;
mod render;
mod run;
mod serve;
mod service;
mod worker;

/// `println!` that never panics: a closed stdout (a reader that went away) must not abort a job's cleanup.
macro_rules! out {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($t)*);
    }};
}
/// `eprintln!` that never panics.
macro_rules! err {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($t)*);
    }};
}
pub(crate) use {err, out};

use std::collections::HashSet;
use std::io::IsTerminal;

use anyhow::Context;
use ephemerd::config::Config;
use ephemerd::platform::{DataDirLock, DataDirs};
use ephemerd::runtime::Runtime;
use ephemerd::runtime::binaries::SearchPath;
use ephemerd::runtime::containerd::{Binaries, Containerd, Progress, Supervisor};
use ephemerd::store::Store;

use crate::cli::{Cli, Command, ImageCommand};

/// Bad input: a usage, config or workflow error.
pub const EXIT_USAGE: u8 = 2;
/// ephemerd itself could not do its part (containerd, image, network).
pub const EXIT_INFRA: u8 = 125;
/// Stopped by Ctrl-C or SIGTERM.
pub const EXIT_INTERRUPTED: u8 = 130;

/// An error caused by what the user gave us; exits with [`EXIT_USAGE`].
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Usage(pub String);

pub fn usage(msg: impl std::fmt::Display) -> anyhow::Error {
    anyhow::Error::new(Usage(msg.to_string()))
}

pub fn exit_code(e: &anyhow::Error) -> u8 {
    if e.chain().any(|c| c.downcast_ref::<Usage>().is_some()) { EXIT_USAGE } else { EXIT_INFRA }
}

/// The error and its causes on one line.
pub fn one_line(e: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for c in e.chain() {
        let s = c.to_string().split_whitespace().collect::<Vec<_>>().join(" ");
        if !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
    }
    parts.join(": ")
}

pub fn init_tracing(level: &str) {
    let filter =
        tracing_subscriber::EnvFilter::try_new(level).unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

pub async fn dispatch(mut cli: Cli) -> anyhow::Result<u8> {
    if cli.global.config.is_none() {
        let default = ephemerd::platform::default_config_path();
        cli.global.config = default.is_file().then_some(default);
    }
    let cfg = Config::load(cli.global.config.as_deref()).map_err(usage)?;
    let dirs = DataDirs::new(cli.global.data_dir.clone().unwrap_or_else(|| cfg.data_dir()));
    match cli.command {
        Command::Run(args) => run::run(args, cfg, dirs).await,
        Command::Image(ImageCommand::Import { file }) => image::import(&file, cfg, dirs).await,
        Command::Image(ImageCommand::Pull { reference }) => image::pull(&reference, cfg, dirs).await,
        Command::Serve(args) => {
            serve::serve(args, cli.global.log_level.clone(), cfg, cli.global.config.clone(), dirs).await
        }
        Command::Worker(args) => worker::run(args, cfg, dirs).await,
        Command::Service(c) => service::run(c, &cfg, cli.global.config.as_deref(), &dirs, cli.global.json),
        Command::Doctor => {
            let socket = cli.global.socket.clone().unwrap_or_else(|| dirs.run_dir().join(ephemerd_proto::SOCKET_NAME));
            Ok(doctor::run(&cfg, &dirs, &socket, cli.global.json).await)
        }
        c @ (Command::Status
        | Command::Jobs(_)
        | Command::Job { .. }
        | Command::Logs { .. }
        | Command::Kill { .. }
        | Command::Pause
        | Command::Resume
        | Command::Drain { .. }
        | Command::Providers { .. }
        | Command::Credential(_)
        | Command::Reload) => {
            let socket = cli.global.socket.clone().unwrap_or_else(|| dirs.run_dir().join(ephemerd_proto::SOCKET_NAME));
            Ok(ctl::Ctl { socket, json: cli.global.json }.run(c).await)
        }
        Command::Cleanup => {
            // Cleaning up needs no runner tree: one that is gone (or broken) must not keep the leftovers.
            let mut cfg = cfg.clone();
            cfg.runner.dir = None;
            let s = Session::start(&cfg, &dirs).await?;
            let n = s.reconciled.clone();
            s.stop().await;
            let worker = clean_worker(&cfg, &dirs, &cli.global.log_level).await?;
            if worker {
                out!("removed: the namespace worker and its link");
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
    }
}

/// A running containerd with everything needed to run jobs; stop it with [`Session::stop`].
/// Stops a namespace worker a crashed daemon left and removes its link; whether there was any.
async fn clean_worker(cfg: &Config, dirs: &DataDirs, log_level: &str) -> anyhow::Result<bool> {
    use ephemerd::worker::Host;
    if cfg.worker.mode != ephemerd::config::WorkerMode::Namespace {
        return Ok(false);
    }
    let host = ephemerd::worker::namespace::NamespaceHost::new(cfg, dirs, log_level).map_err(usage)?;
    let present = host.link().present().await || host.orphan().is_some();
    host.stop().await?;
    Ok(present)
}

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

/// Prints pull/import progress on stderr: a live line on a terminal, start and end otherwise.
pub fn progress_printer(what: String) -> impl Fn(Progress) + Send + Sync {
    let tty = std::io::stderr().is_terminal();
    let last = std::sync::Mutex::new((std::time::Instant::now(), u64::MAX));
    move |p: Progress| {
        let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
        let Ok(mut l) = last.lock() else { return };
        let done = p.done >= p.total;
        if tty {
            if done || l.0.elapsed().as_millis() >= 100 {
                use std::io::Write as _;
                let _ = write!(std::io::stderr(), "\r{what}: {:.1}/{:.1} MiB", mib(p.done), mib(p.total));
                if done {
                    err!("");
                }
                l.0 = std::time::Instant::now();
            }
        } else if p.done == 0 && l.1 == u64::MAX {
            err!("{what}: {:.1} MiB", mib(p.total));
            l.1 = 0;
        }
    }
}

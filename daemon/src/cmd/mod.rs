//! The commands of the binary, and what they share: a session (data dir lock, supervised containerd,
//! journal, runtime, start-up reconciliation) and the mapping of failures to exit codes.

mod ctl;
#[cfg(target_os = "linux")]
mod doctor;
#[cfg(target_os = "linux")]
mod image;
mod render;
#[cfg(target_os = "linux")]
mod run;
#[cfg(target_os = "linux")]
mod serve;
mod service;
#[cfg(target_os = "linux")]
mod session;
#[cfg(target_os = "linux")]
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

use std::io::IsTerminal;

use ephemerd::config::Config;
use ephemerd::platform::DataDirs;
#[cfg(target_os = "linux")]
use ephemerd::target::Progress;
#[cfg(target_os = "linux")]
pub use session::{Session, unless_interrupted};

#[cfg(target_os = "linux")]
use crate::cli::ImageCommand;
use crate::cli::{Cli, Command};

/// Bad input: a usage, config or workflow error.
pub const EXIT_USAGE: u8 = 2;
/// ephemerd itself could not do its part (containerd, image, network).
pub const EXIT_INFRA: u8 = 125;
/// Stopped by Ctrl-C or SIGTERM.
#[cfg(target_os = "linux")]
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
        #[cfg(target_os = "linux")]
        Command::Run(args) => run::run(args, cfg, dirs).await,
        #[cfg(target_os = "linux")]
        Command::Image(ImageCommand::Import { file, remap_ahead }) => {
            image::import(&file, remap_ahead, cfg, dirs).await
        }
        #[cfg(target_os = "linux")]
        Command::Image(ImageCommand::Pull { reference }) => image::pull(&reference, cfg, dirs).await,
        #[cfg(target_os = "linux")]
        Command::Serve(args) => {
            serve::serve(args, cli.global.log_level.clone(), cfg, cli.global.config.clone(), dirs).await
        }
        #[cfg(target_os = "linux")]
        Command::Worker(args) => worker::run(args, cfg, dirs).await,
        Command::Service(c) => service::run(c, &cfg, cli.global.config.as_deref(), &dirs, cli.global.json),
        #[cfg(target_os = "linux")]
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
        Command::VmInit => Err(usage("`ephemerd vm-init` runs only as pid 1 of the worker VM")),
        #[cfg(target_os = "linux")]
        Command::Cleanup => session::cleanup(&cfg, &dirs, &cli.global.log_level).await,
        #[cfg(not(target_os = "linux"))]
        c @ (Command::Run(_)
        | Command::Image(_)
        | Command::Serve(_)
        | Command::Worker(_)
        | Command::Cleanup
        | Command::Doctor) => Err(usage(format!(
            "`ephemerd {}` is not built for this platform yet: it needs the Linux worker (WSL or a VM)",
            command_name(&c)
        ))),
    }
}

/// Prints pull/import progress on stderr: a live line on a terminal, start and end otherwise.
#[cfg(target_os = "linux")]
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

/// A command's name, for saying it is not built here.
#[cfg(not(target_os = "linux"))]
fn command_name(c: &Command) -> &'static str {
    match c {
        Command::Run(_) => "run",
        Command::Image(_) => "image",
        Command::Serve(_) => "serve",
        Command::Worker(_) => "worker",
        Command::Cleanup => "cleanup",
        _ => "doctor",
    }
}

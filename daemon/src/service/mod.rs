//! `ephemerd service install|uninstall|start|stop|status`: the daemon as an OS service. What each service
//! manager needs is data — a systemd unit, a launchd plist, the Windows SCM's `sc.exe` calls — built by
//! pure functions and carried out as a list of `Step`s, so every manager's definition is tested as text
//! here and systemd's is carried out for real (`systemd.rs`, `launchd.rs`, `windows.rs`).

pub mod launchd;
pub mod systemd;
pub mod windows;

use std::path::{Path, PathBuf};

/// The service's name with every manager.
pub const NAME: &str = "ephemerd";
/// What it says it is.
pub const DESCRIPTION: &str = "ephemerd: runs your forges' CI jobs on this machine, one fresh container per job";

/// What the service runs.
#[derive(Debug, Clone)]
pub struct Definition {
    /// The ephemerd binary.
    pub exe: PathBuf,
    pub data_dir: PathBuf,
    pub config: Option<PathBuf>,
    /// How long a stop may take: the drain timeout and some margin, so running jobs can finish.
    pub stop_timeout_secs: u64,
}

impl Definition {
    /// `ephemerd [--data-dir D] [--config C] <command>`.
    pub fn argv(&self, command: &str) -> Vec<String> {
        let mut v = vec![self.exe.display().to_string(), "--data-dir".into(), self.data_dir.display().to_string()];
        if let Some(c) = &self.config {
            v.push("--config".into());
            v.push(c.display().to_string());
        }
        v.push(command.into());
        v
    }
}

/// One thing to do to the system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Write { path: PathBuf, content: String, mode: u32 },
    Remove { path: PathBuf },
    Run { argv: Vec<String> },
}

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("cannot remove {path}: {source}")]
    Remove { path: PathBuf, source: std::io::Error },
    #[error("`{cmd}` failed: {message}")]
    Run { cmd: String, message: String },
    #[error("managing the service needs root (run it with sudo, or through the tray app's prompt)")]
    NotRoot,
}

/// Carries out `steps` in order, stopping at the first failure.
pub fn carry_out(steps: &[Step]) -> Result<(), ServiceError> {
    for s in steps {
        match s {
            Step::Write { path, content, mode } => {
                let err = |source| ServiceError::Write { path: path.clone(), source };
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir).map_err(err)?;
                }
                std::fs::write(path, content).map_err(err)?;
                #[cfg(unix)]
                std::fs::set_permissions(
                    path,
                    <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(*mode),
                )
                .map_err(err)?;
                #[cfg(not(unix))]
                let _ = mode;
            }
            Step::Remove { path } => match std::fs::remove_file(path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => return Err(ServiceError::Remove { path: path.clone(), source }),
            },
            Step::Run { argv } => {
                run(argv)?;
            }
        }
    }
    Ok(())
}

/// Runs a command; its stdout on success.
pub fn run(argv: &[String]) -> Result<String, ServiceError> {
    let cmd = argv.join(" ");
    let (prog, args) =
        argv.split_first().ok_or_else(|| ServiceError::Run { cmd: cmd.clone(), message: "empty".into() })?;
    let out = std::process::Command::new(prog)
        .args(args)
        .output()
        .map_err(|e| ServiceError::Run { cmd: cmd.clone(), message: e.to_string() })?;
    if !out.status.success() {
        let message = String::from_utf8_lossy(&out.stderr).trim().to_string();
        return Err(ServiceError::Run {
            cmd,
            message: if message.is_empty() { out.status.to_string() } else { message },
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).to_string())
}

/// The service's state as its manager reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct State {
    pub installed: bool,
    pub enabled: bool,
    pub active: bool,
}

/// Quotes a value for a systemd `ExecStart=` or a shell-like command line when it needs it.
pub fn quote(s: &str) -> String {
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "/-_.:=@+,".contains(c)) {
        s.to_string()
    } else {
        format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
    }
}

/// The root under which a manager's files live (`/`, or a test's directory).
pub fn under(root: &Path, abs: &str) -> PathBuf {
    root.join(abs.trim_start_matches('/'))
}

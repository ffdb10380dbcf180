//! The seam between what decides that a job runs (the scheduler in `serve`, `ephemerd run`, the test job)
//! and what runs it. A [`Target`] runs job containers somewhere: [`LocalTarget`] on this machine's
//! containerd (the runtime in `crate::runtime`); a Linux worker reached over Dispatch is the other side.
//! [`launch::launch`] is the one sequence every caller takes from a launch spec to a destroyed job. Nothing
//! here knows which forge, if any, asked for the job.

pub mod launch;
#[cfg(target_os = "linux")]
pub mod local;

use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::path::PathBuf;

use crate::config::Limits;

pub use launch::{Job, LaunchError, Launched, launch};
#[cfg(target_os = "linux")]
pub use local::LocalTarget;

#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[cfg(target_os = "linux")]
    #[error(transparent)]
    Runtime(#[from] crate::runtime::RuntimeError),
    #[cfg(target_os = "linux")]
    #[error(transparent)]
    Image(#[from] crate::runtime::containerd::ImageError),
    #[error("the worker at {addr}: {call}: {message}")]
    Worker { addr: String, call: &'static str, message: String },
    #[error("{0}")]
    Unsupported(String),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

/// What a job runs, as the one who asked for it says; the image is prepared (and named) before.
#[derive(Debug, Clone, Default)]
pub struct LaunchSpec {
    /// The command; the image's entrypoint and cmd when `None`.
    pub args: Option<Vec<String>>,
    pub env: Vec<(String, String)>,
    pub workdir: Option<String>,
    /// Files bound into the job; their sources are in the job's own dir (see [`Target::begin`]).
    pub binds: Vec<Bind>,
    /// The target's defaults when `None`.
    pub limits: Option<Limits>,
    /// Addresses outside the job network the job must reach (its forge).
    pub endpoints: Vec<Ipv4Addr>,
}

/// A path of the target's machine bound into the container.
#[derive(Debug, Clone)]
pub struct Bind {
    pub source: PathBuf,
    pub destination: PathBuf,
    pub readonly: bool,
}

/// How a job's process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exit {
    pub code: u32,
    pub oom_killed: bool,
}

/// What reconciliation removed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Reconciled {
    pub jobs: Vec<String>,
    pub containers: usize,
    pub snapshots: usize,
    pub netns: usize,
    pub leases: usize,
    pub firewall: usize,
    pub dirs: usize,
}

impl Reconciled {
    pub fn is_empty(&self) -> bool {
        *self == Reconciled::default()
    }
}

/// A fresh job id: short, unique, valid as a containerd id, CNI container id and hostname.
pub fn new_job_id() -> String {
    format!("j{:012x}", rand::random::<u64>() & 0xffff_ffff_ffff)
}

/// Progress of a pull or import: bytes of blobs done out of the total known so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub done: u64,
    pub total: u64,
}

pub type ProgressFn = dyn Fn(Progress) + Send + Sync;

/// Runs jobs' containers. Every call is about one job, by the id the caller chose; a job is journalled
/// from [`Target::begin`] until [`Target::destroy`] has removed all of it.
#[async_trait::async_trait]
pub trait Target: Send + Sync {
    /// Makes `reference` ready to run (pulls it unless it is there); the image's full name.
    async fn prepare_image(&self, reference: &str, progress: &ProgressFn) -> Result<String, TargetError>;
    /// Journals job `id` in `image` and makes its dir, where the caller puts the files the job binds.
    fn begin(&self, id: &str, image: &str) -> Result<PathBuf, TargetError>;
    /// Makes the job's container and network, up to a created (not started) process.
    async fn create(&self, id: &str, image: &str, spec: &LaunchSpec) -> Result<(), TargetError>;
    async fn start(&self, id: &str) -> Result<(), TargetError>;
    /// Waits for the job's process to end.
    async fn wait(&self, id: &str) -> Result<Exit, TargetError>;
    /// Starts `args` as one more process of the running job, as `exec_id`, its output in the job's log.
    async fn exec(&self, id: &str, exec_id: &str, args: Vec<String>) -> Result<(), TargetError>;
    /// Waits for process `exec_id` of the job to end; its exit code.
    async fn wait_exec(&self, id: &str, exec_id: &str) -> Result<u32, TargetError>;
    /// Removes the ended process `exec_id`; all of its output is in the log then.
    async fn delete_exec(&self, id: &str, exec_id: &str) -> Result<(), TargetError>;
    /// Sends `signal` to every process of the job.
    async fn kill(&self, id: &str, signal: u32) -> Result<(), TargetError>;
    /// Removes everything of the job. Idempotent.
    async fn destroy(&self, id: &str) -> Result<(), TargetError>;
    /// The jobs the target has not cleaned up yet.
    async fn list(&self) -> Result<Vec<String>, TargetError>;
    /// Removes everything of jobs not in `live` (what a crash left).
    async fn reconcile(&self, live: &HashSet<String>) -> Result<Reconciled, TargetError>;
    /// Where the job's output is on this machine (kept after the job is destroyed).
    fn log_path(&self, id: &str) -> PathBuf;
    /// How many of the job's processes the OOM killer has stopped so far.
    fn oom_kills(&self, id: &str) -> u64;
    /// Records how a job ended that [`Target::wait`] did not see end (its steps decided).
    fn record_exit(&self, id: &str, exit: Exit) -> Result<(), TargetError>;
}

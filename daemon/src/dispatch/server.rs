//! The worker's side of Dispatch (`ephemerd worker`): each call carried out on the worker's own
//! [`Target`] (its containerd), after the token check in front of the service (see [`super::auth`]).
//! Bad input gets INVALID_ARGUMENT with the field named; a job the worker does not know gets NOT_FOUND.

use std::collections::HashSet;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use ephemerd_proto::dispatch::v1 as d;
use ephemerd_proto::dispatch::v1::dispatch_server::Dispatch;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use super::VERSION;
use crate::config::{ByteSize, Limits};
use crate::runtime::containerd::spec::Bind;
use crate::target::{LaunchSpec, Target, TargetError};

type Stream_<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// The Dispatch service of one worker boot.
pub struct Worker {
    target: Arc<dyn Target>,
    worker_id: String,
    boot_id: String,
    /// Whether SetTime may step the clock (a worker with a clock of its own: a VM, a WSL distro).
    own_clock: bool,
    /// The worker's data dir: Stats reports the disk that holds it.
    data_dir: std::path::PathBuf,
}

impl Worker {
    pub fn new(target: Arc<dyn Target>, worker_id: String, own_clock: bool, data_dir: std::path::PathBuf) -> Self {
        Self { target, worker_id, boot_id: hex::encode(rand::random::<[u8; 8]>()), own_clock, data_dir }
    }
}

fn status(e: TargetError) -> Status {
    Status::internal(e.to_string())
}

fn valid_id(id: &str) -> Result<&str, Status> {
    let ok = !id.is_empty() && id.len() <= 64 && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok { Ok(id) } else { Err(Status::invalid_argument(format!("id: `{id}` is not a job id"))) }
}

/// A launch spec from a CreateJob request, every field checked.
pub fn launch_spec(req: &d::CreateJobRequest) -> Result<LaunchSpec, Status> {
    let mut endpoints = Vec::new();
    for e in &req.endpoints {
        endpoints
            .push(e.parse().map_err(|_| Status::invalid_argument(format!("endpoints: `{e}` is not an IPv4 address")))?);
    }
    let mut binds = Vec::new();
    for b in &req.binds {
        if !b.source.starts_with('/') || !b.destination.starts_with('/') {
            return Err(Status::invalid_argument(format!(
                "binds: `{}` → `{}` must be absolute paths",
                b.source, b.destination
            )));
        }
        binds.push(Bind {
            source: b.source.clone().into(),
            destination: b.destination.clone().into(),
            readonly: b.readonly,
        });
    }
    for e in &req.env {
        if e.name.is_empty() || e.name.contains('=') || e.name.contains('\0') || e.value.contains('\0') {
            return Err(Status::invalid_argument(format!("env: `{}` is not a variable name", e.name)));
        }
    }
    let limits = match &req.limits {
        Some(l) if !(l.cpus >= 0.0 && l.cpus.is_finite()) || l.pids < 0 => {
            return Err(Status::invalid_argument("limits: cpus and pids must not be negative"));
        }
        Some(l) => Some(Limits { cpus: l.cpus, memory: ByteSize(l.memory_bytes), pids: l.pids }),
        None => None,
    };
    Ok(LaunchSpec {
        args: (!req.args.is_empty()).then(|| req.args.clone()),
        env: req.env.iter().map(|e| (e.name.clone(), e.value.clone())).collect(),
        workdir: (!req.workdir.is_empty()).then(|| req.workdir.clone()),
        binds,
        limits,
        endpoints,
    })
}

#[tonic::async_trait]
impl Dispatch for Worker {
    async fn hello(&self, req: Request<d::HelloRequest>) -> Result<Response<d::HelloReply>, Status> {
        let theirs = req.into_inner().version;
        if theirs != VERSION {
            return Err(Status::failed_precondition(format!(
                "the daemon speaks dispatch v{theirs}, this worker (ephemerd {}) speaks v{VERSION}",
                env!("CARGO_PKG_VERSION")
            )));
        }
        Ok(Response::new(d::HelloReply {
            version: VERSION,
            release: env!("CARGO_PKG_VERSION").into(),
            worker_id: self.worker_id.clone(),
            boot_id: self.boot_id.clone(),
            capabilities: vec!["exec".into(), "logs".into()],
        }))
    }

    type PullImageStream = Stream_<d::PullProgress>;

    async fn pull_image(&self, req: Request<d::PullImageRequest>) -> Result<Response<Self::PullImageStream>, Status> {
        let reference = req.into_inner().reference;
        crate::runtime::containerd::image::normalize(&reference)
            .map_err(|e| Status::invalid_argument(format!("reference: {e}")))?;
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let target = self.target.clone();
        tokio::spawn(async move {
            let progress = {
                let tx = tx.clone();
                move |p: crate::runtime::containerd::Progress| {
                    let _ = tx.send(Ok(d::PullProgress { done: p.done, total: p.total, name: String::new() }));
                }
            };
            let last = match target.prepare_image(&reference, &progress).await {
                Ok(name) => Ok(d::PullProgress { done: 0, total: 0, name }),
                Err(e) => Err(Status::unavailable(e.to_string())),
            };
            let _ = tx.send(last);
        });
        Ok(Response::new(Box::pin(tokio_stream::wrappers::UnboundedReceiverStream::new(rx))))
    }

    async fn create_job(&self, req: Request<d::CreateJobRequest>) -> Result<Response<d::Empty>, Status> {
        let req = req.into_inner();
        let id = valid_id(&req.id)?;
        if req.image.is_empty() {
            return Err(Status::invalid_argument("image: empty"));
        }
        let spec = launch_spec(&req)?;
        self.target.begin(id, &req.image).map_err(status)?;
        self.target.create(id, &req.image, &spec).await.map_err(status)?;
        Ok(Response::new(d::Empty {}))
    }

    async fn start_job(&self, req: Request<d::JobRef>) -> Result<Response<d::Empty>, Status> {
        self.target.start(valid_id(&req.into_inner().id)?).await.map_err(status)?;
        Ok(Response::new(d::Empty {}))
    }

    async fn wait_job(&self, req: Request<d::JobRef>) -> Result<Response<d::JobExit>, Status> {
        let exit = self.target.wait(valid_id(&req.into_inner().id)?).await.map_err(status)?;
        Ok(Response::new(d::JobExit { code: exit.code, oom_killed: exit.oom_killed }))
    }

    async fn exec_job(&self, req: Request<d::ExecRequest>) -> Result<Response<d::Empty>, Status> {
        let r = req.into_inner();
        if r.args.is_empty() {
            return Err(Status::invalid_argument("args: empty"));
        }
        self.target.exec(valid_id(&r.id)?, valid_id(&r.exec_id)?, r.args).await.map_err(status)?;
        Ok(Response::new(d::Empty {}))
    }

    async fn wait_exec(&self, req: Request<d::ExecRef>) -> Result<Response<d::ExecExit>, Status> {
        let r = req.into_inner();
        let id = valid_id(&r.id)?;
        let code = self.target.wait_exec(id, valid_id(&r.exec_id)?).await.map_err(status)?;
        Ok(Response::new(d::ExecExit { code, oom_kills: self.target.oom_kills(id) }))
    }

    async fn delete_exec(&self, req: Request<d::ExecRef>) -> Result<Response<d::Empty>, Status> {
        let r = req.into_inner();
        self.target.delete_exec(valid_id(&r.id)?, valid_id(&r.exec_id)?).await.map_err(status)?;
        Ok(Response::new(d::Empty {}))
    }

    async fn kill_job(&self, req: Request<d::KillRequest>) -> Result<Response<d::Empty>, Status> {
        let r = req.into_inner();
        if r.signal == 0 || r.signal > 64 {
            return Err(Status::invalid_argument(format!("signal: {} is not a signal", r.signal)));
        }
        self.target.kill(valid_id(&r.id)?, r.signal).await.map_err(status)?;
        Ok(Response::new(d::Empty {}))
    }

    async fn destroy_job(&self, req: Request<d::JobRef>) -> Result<Response<d::Empty>, Status> {
        self.target.destroy(valid_id(&req.into_inner().id)?).await.map_err(status)?;
        Ok(Response::new(d::Empty {}))
    }

    type LogsStream = Stream_<d::LogChunk>;

    async fn logs(&self, req: Request<d::LogsRequest>) -> Result<Response<Self::LogsStream>, Status> {
        let r = req.into_inner();
        let path = self.target.log_path(valid_id(&r.id)?);
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncSeekExt};
            let mut offset = r.offset;
            loop {
                let mut buf = Vec::new();
                if let Ok(mut f) = tokio::fs::File::open(&path).await
                    && f.seek(std::io::SeekFrom::Start(offset)).await.is_ok()
                {
                    let _ = f.take(1 << 20).read_to_end(&mut buf).await;
                }
                offset += buf.len() as u64;
                let more = buf.len() == 1 << 20;
                if !buf.is_empty() && tx.send(Ok(d::LogChunk { data: buf })).await.is_err() {
                    return; // the caller went away
                }
                if more {
                    continue;
                }
                if !r.follow || tx.is_closed() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        Ok(Response::new(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))))
    }

    async fn forget_log(&self, req: Request<d::JobRef>) -> Result<Response<d::Empty>, Status> {
        let id = valid_id(&req.get_ref().id)?.to_string();
        if self.target.list().await.map_err(status)?.contains(&id) {
            return Err(Status::failed_precondition(format!("job {id} is not destroyed yet")));
        }
        match std::fs::remove_file(self.target.log_path(&id)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Status::internal(format!("cannot remove job {id}'s log: {e}"))),
        }
        Ok(Response::new(d::Empty {}))
    }

    async fn list(&self, _: Request<d::Empty>) -> Result<Response<d::ListReply>, Status> {
        Ok(Response::new(d::ListReply { ids: self.target.list().await.map_err(status)? }))
    }

    async fn reconcile(&self, req: Request<d::ReconcileRequest>) -> Result<Response<d::ReconcileReply>, Status> {
        let live: HashSet<String> = req.into_inner().live.into_iter().collect();
        let r = self.target.reconcile(&live).await.map_err(status)?;
        let n = |x: usize| u32::try_from(x).unwrap_or(u32::MAX);
        Ok(Response::new(d::ReconcileReply {
            jobs: r.jobs,
            containers: n(r.containers),
            snapshots: n(r.snapshots),
            netns: n(r.netns),
            leases: n(r.leases),
            firewall: n(r.firewall),
            dirs: n(r.dirs),
        }))
    }

    async fn stats(&self, _: Request<d::Empty>) -> Result<Response<d::StatsReply>, Status> {
        let mut s = host_stats(&self.data_dir);
        s.jobs = u32::try_from(self.target.list().await.map_err(status)?.len()).unwrap_or(u32::MAX);
        Ok(Response::new(s))
    }

    async fn set_time(&self, req: Request<d::SetTimeRequest>) -> Result<Response<d::SetTimeReply>, Status> {
        let host = req.into_inner().unix_nanos;
        let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_nanos() as i64).unwrap_or(0);
        let offset = now - host;
        let stepped = self.own_clock && offset.unsigned_abs() > 100_000_000;
        if stepped {
            step_clock(host)?;
        }
        Ok(Response::new(d::SetTimeReply { offset_nanos: offset, stepped }))
    }
}

#[cfg(unix)]
fn step_clock(unix_nanos: i64) -> Result<(), Status> {
    let ts = nix::sys::time::TimeSpec::new(unix_nanos.div_euclid(1_000_000_000), unix_nanos.rem_euclid(1_000_000_000));
    nix::time::clock_settime(nix::time::ClockId::CLOCK_REALTIME, ts)
        .map_err(|e| Status::internal(format!("cannot set the worker's clock: {e}")))
}

#[cfg(not(unix))]
fn step_clock(_: i64) -> Result<(), Status> {
    Err(Status::unimplemented("a worker runs on Linux"))
}

/// CPU, memory and disk of the machine the worker runs on (the disk holding `dir`).
fn host_stats(dir: &std::path::Path) -> d::StatsReply {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let cpu: Vec<u64> =
        stat.lines().next().unwrap_or_default().split_whitespace().skip(1).filter_map(|v| v.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal: busy is all but idle and iowait.
    let busy: u64 = cpu.iter().enumerate().filter(|(i, _)| *i != 3 && *i != 4).map(|(_, v)| v).sum();
    let ticks = 100; // USER_HZ on Linux
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let kib = |key: &str| {
        meminfo
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
            * 1024
    };
    let (disk_total, disk_free) = disk(dir);
    d::StatsReply {
        cpu_busy_ms: busy * 1000 / ticks,
        cpus: std::thread::available_parallelism().map(|n| n.get() as u32).unwrap_or(1),
        memory_total_bytes: kib("MemTotal:"),
        memory_available_bytes: kib("MemAvailable:"),
        disk_total_bytes: disk_total,
        disk_free_bytes: disk_free,
        jobs: 0,
    }
}

#[cfg(unix)]
fn disk(dir: &std::path::Path) -> (u64, u64) {
    match nix::sys::statvfs::statvfs(dir) {
        Ok(v) => (v.blocks() * v.fragment_size(), v.blocks_available() * v.fragment_size()),
        Err(_) => (0, 0),
    }
}

#[cfg(not(unix))]
fn disk(_: &std::path::Path) -> (u64, u64) {
    (0, 0)
}

//! [`RemoteTarget`]: the daemon's side of Dispatch, a [`Target`] whose jobs run in a Linux worker. The
//! daemon's own journal keeps a record of each job (for its history); the worker's journal keeps its
//! resources, reconciled through `Reconcile` after a daemon restart. A job's log is copied, as it grows,
//! into the daemon's log dir, so everything that reads logs on this machine reads them as for local jobs.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ephemerd_proto::dispatch::v1 as d;
use ephemerd_proto::dispatch::v1::dispatch_client::DispatchClient;
use tokio_stream::StreamExt;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use super::VERSION;
use super::auth::{Bearer, Token};
use crate::platform::DataDirs;
use crate::store::Store;
use crate::target::{Exit, Reconciled};
use crate::target::{LaunchSpec, ProgressFn, Target, TargetError};

type Client = DispatchClient<InterceptedService<Channel, Bearer>>;

/// Whether a worker at `addr` answers Hello with `token` within `wait` (a booting worker's readiness).
pub async fn answers_hello(addr: &str, token: &Token, wait: Duration) -> Result<(), String> {
    let ask = async {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|e| e.to_string())?
            .connect_timeout(wait)
            .connect()
            .await
            .map_err(|e| e.to_string())?;
        let mut client = DispatchClient::with_interceptor(channel, Bearer::new(Arc::new(token.clone())));
        client.hello(d::HelloRequest { version: VERSION }).await.map_err(|s| s.message().to_string())?;
        Ok(())
    };
    tokio::time::timeout(wait, ask).await.map_err(|_| format!("no answer in {} ms", wait.as_millis()))?
}

/// What the daemon knows of one of the worker's jobs.
#[derive(Default)]
struct Tracked {
    /// How much of the job's log is copied here.
    copied: u64,
    oom_kills: u64,
    follower: Option<tokio::task::JoinHandle<()>>,
}

pub struct RemoteTarget {
    addr: String,
    client: Client,
    dirs: DataDirs,
    store: Store,
    jobs: Arc<Mutex<HashMap<String, Tracked>>>,
    /// One log copy at a time (the follower and a final catch-up must not both append).
    copying: Arc<tokio::sync::Mutex<()>>,
    /// What the worker said of itself.
    pub hello: d::HelloReply,
}

impl RemoteTarget {
    /// Connects to the worker at `addr` (`host:port`) with its boot token and checks that it speaks our
    /// protocol version.
    pub async fn connect(addr: &str, token: Token, dirs: DataDirs, store: Store) -> Result<Self, TargetError> {
        let err = |call, message: String| TargetError::Worker { addr: addr.to_string(), call, message };
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|e| err("connect", e.to_string()))?
            .connect_timeout(Duration::from_secs(10))
            .connect()
            .await
            .map_err(|e| err("connect", format!("{e}: is the worker running?")))?;
        let mut client = DispatchClient::with_interceptor(channel, Bearer::new(Arc::new(token)));
        let hello = client
            .hello(d::HelloRequest { version: VERSION })
            .await
            .map_err(|s| err("hello", s.message().to_string()))?
            .into_inner();
        if hello.version != VERSION {
            return Err(err(
                "hello",
                format!(
                    "the worker (ephemerd {}) speaks dispatch v{}, this daemon v{VERSION}",
                    hello.release, hello.version
                ),
            ));
        }
        Ok(Self { addr: addr.to_string(), client, dirs, store, jobs: Arc::default(), copying: Arc::default(), hello })
    }

    /// Pushes this machine's clock to the worker, which steps its own when off by more than 100 ms (and
    /// it has a clock of its own); the worker's offset (its time minus ours) and whether it stepped.
    pub async fn push_time(&self) -> Result<(i64, bool), TargetError> {
        let unix_nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as i64)
            .unwrap_or_default();
        self.set_time(unix_nanos).await
    }

    /// Tells the worker the time is `unix_nanos` (a test moves a worker's clock so); as `push_time`.
    pub async fn set_time(&self, unix_nanos: i64) -> Result<(i64, bool), TargetError> {
        let r = self.client().set_time(d::SetTimeRequest { unix_nanos }).await.map_err(self.err("set time"))?;
        let r = r.into_inner();
        Ok((r.offset_nanos, r.stepped))
    }

    fn err(&self, call: &'static str) -> impl Fn(tonic::Status) -> TargetError + '_ {
        move |s| TargetError::Worker { addr: self.addr.clone(), call, message: s.message().to_string() }
    }

    fn client(&self) -> Client {
        self.client.clone()
    }

    /// Copies what the job's log gained in the worker into its log here.
    async fn copy_log(&self, id: &str) -> Result<(), TargetError> {
        copy_log(&self.client(), &self.addr, &self.jobs, &self.copying, &self.dirs.job_log(id), id).await
    }
}

async fn copy_log(
    client: &Client,
    addr: &str,
    jobs: &Mutex<HashMap<String, Tracked>>,
    copying: &tokio::sync::Mutex<()>,
    path: &std::path::Path,
    id: &str,
) -> Result<(), TargetError> {
    use std::io::Write;
    let _one = copying.lock().await;
    let from = jobs.lock().unwrap_or_else(|e| e.into_inner()).get(id).map_or(0, |t| t.copied);
    let err = |message: String| TargetError::Worker { addr: addr.to_string(), call: "logs", message };
    let mut stream = client
        .clone()
        .logs(d::LogsRequest { id: id.to_string(), offset: from, follow: false })
        .await
        .map_err(|s| err(s.message().to_string()))?
        .into_inner();
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| err(format!("cannot write {}: {e}", path.display())))?;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|s| err(s.message().to_string()))?;
        file.write_all(&chunk.data).map_err(|e| err(format!("cannot write {}: {e}", path.display())))?;
        if let Some(t) = jobs.lock().unwrap_or_else(|e| e.into_inner()).get_mut(id) {
            t.copied += chunk.data.len() as u64;
        }
    }
    Ok(())
}

#[async_trait::async_trait]
impl Target for RemoteTarget {
    async fn prepare_image(&self, reference: &str, progress: &ProgressFn) -> Result<String, TargetError> {
        let mut stream = self
            .client()
            .pull_image(d::PullImageRequest { reference: reference.to_string() })
            .await
            .map_err(self.err("pull image"))?
            .into_inner();
        while let Some(p) = stream.next().await {
            let p = p.map_err(self.err("pull image"))?;
            if !p.name.is_empty() {
                return Ok(p.name);
            }
            progress(crate::target::Progress { done: p.done, total: p.total });
        }
        Err(TargetError::Worker {
            addr: self.addr.clone(),
            call: "pull image",
            message: "the worker ended the pull without naming the image".into(),
        })
    }

    fn begin(&self, id: &str, image: &str) -> Result<PathBuf, TargetError> {
        self.store.create_job(id, image)?;
        self.jobs.lock().unwrap_or_else(|e| e.into_inner()).insert(id.to_string(), Tracked::default());
        // The job's files live in the worker: nothing of this machine is bound into it.
        Ok(self.dirs.job_dir(id))
    }

    async fn create(&self, id: &str, image: &str, spec: &LaunchSpec) -> Result<(), TargetError> {
        if let Some(b) = spec.binds.first() {
            return Err(TargetError::Unsupported(format!(
                "a job in a worker cannot bind this machine's {} (jobs that need files of this machine run locally only, for now)",
                b.source.display()
            )));
        }
        let req = d::CreateJobRequest {
            id: id.to_string(),
            image: image.to_string(),
            args: spec.args.clone().unwrap_or_default(),
            env: spec.env.iter().map(|(k, v)| d::EnvVar { name: k.clone(), value: v.clone() }).collect(),
            workdir: spec.workdir.clone().unwrap_or_default(),
            binds: Vec::new(),
            limits: spec.limits.as_ref().map(|l| d::Limits { cpus: l.cpus, memory_bytes: l.memory.0, pids: l.pids }),
            endpoints: spec.endpoints.iter().map(|e| e.to_string()).collect(),
        };
        self.client().create_job(req).await.map_err(self.err("create job"))?;
        Ok(())
    }

    async fn start(&self, id: &str) -> Result<(), TargetError> {
        self.client().start_job(d::JobRef { id: id.to_string() }).await.map_err(self.err("start job"))?;
        // The log follows, a fifth of a second behind.
        let (client, addr, jobs, copying) = (self.client(), self.addr.clone(), self.jobs.clone(), self.copying.clone());
        let (path, job) = (self.dirs.job_log(id), id.to_string());
        let follower = tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(200)).await;
                if let Err(e) = copy_log(&client, &addr, &jobs, &copying, &path, &job).await {
                    tracing::debug!(error = %e, "cannot copy the job's log yet");
                }
            }
        });
        if let Some(t) = self.jobs.lock().unwrap_or_else(|e| e.into_inner()).get_mut(id) {
            t.follower = Some(follower);
        }
        Ok(())
    }

    async fn wait(&self, id: &str) -> Result<Exit, TargetError> {
        let r = self.client().wait_job(d::JobRef { id: id.to_string() }).await.map_err(self.err("wait job"))?;
        let r = r.into_inner();
        self.copy_log(id).await?;
        let exit = Exit { code: r.code, oom_killed: r.oom_killed };
        self.store.set_exited(id, i64::from(exit.code), exit.oom_killed)?;
        Ok(exit)
    }

    async fn exec(&self, id: &str, exec_id: &str, args: Vec<String>) -> Result<(), TargetError> {
        let req = d::ExecRequest { id: id.to_string(), exec_id: exec_id.to_string(), args };
        self.client().exec_job(req).await.map_err(self.err("exec"))?;
        Ok(())
    }

    async fn wait_exec(&self, id: &str, exec_id: &str) -> Result<u32, TargetError> {
        let req = d::ExecRef { id: id.to_string(), exec_id: exec_id.to_string() };
        let r = self.client().wait_exec(req).await.map_err(self.err("wait exec"))?.into_inner();
        if let Some(t) = self.jobs.lock().unwrap_or_else(|e| e.into_inner()).get_mut(id) {
            t.oom_kills = r.oom_kills;
        }
        Ok(r.code)
    }

    async fn delete_exec(&self, id: &str, exec_id: &str) -> Result<(), TargetError> {
        let req = d::ExecRef { id: id.to_string(), exec_id: exec_id.to_string() };
        self.client().delete_exec(req).await.map_err(self.err("delete exec"))?;
        self.copy_log(id).await
    }

    async fn kill(&self, id: &str, signal: u32) -> Result<(), TargetError> {
        self.client().kill_job(d::KillRequest { id: id.to_string(), signal }).await.map_err(self.err("kill job"))?;
        Ok(())
    }

    async fn destroy(&self, id: &str) -> Result<(), TargetError> {
        let follower = self.jobs.lock().unwrap_or_else(|e| e.into_inner()).get_mut(id).and_then(|t| t.follower.take());
        if let Some(f) = follower {
            f.abort();
        }
        self.client().destroy_job(d::JobRef { id: id.to_string() }).await.map_err(self.err("destroy job"))?;
        // The worker keeps the log past the job; its output is complete once the job's process is deleted
        // (the shim may still be copying when the process is seen to end): what it printed last.
        if self.jobs.lock().unwrap_or_else(|e| e.into_inner()).contains_key(id) {
            match self.copy_log(id).await {
                Ok(()) => {
                    self.client().forget_log(d::JobRef { id: id.to_string() }).await.map_err(self.err("forget log"))?;
                }
                Err(e) => tracing::warn!(error = %e, "cannot copy the rest of the job's log; the worker keeps it"),
            }
        }
        self.jobs.lock().unwrap_or_else(|e| e.into_inner()).remove(id);
        if self.store.job_exists(id)? {
            self.store.set_cleaned(id)?;
        }
        Ok(())
    }

    async fn list(&self) -> Result<Vec<String>, TargetError> {
        Ok(self.client().list(d::Empty {}).await.map_err(self.err("list"))?.into_inner().ids)
    }

    async fn reconcile(&self, live: &HashSet<String>) -> Result<Reconciled, TargetError> {
        let req = d::ReconcileRequest { live: live.iter().cloned().collect() };
        let r = self.client().reconcile(req).await.map_err(self.err("reconcile"))?.into_inner();
        // This machine's records of jobs the worker has now removed.
        for job in self.store.unclean_jobs()? {
            if !live.contains(&job.id) {
                self.store.set_cleaned(&job.id)?;
            }
        }
        Ok(Reconciled {
            jobs: r.jobs,
            containers: r.containers as usize,
            snapshots: r.snapshots as usize,
            netns: r.netns as usize,
            leases: r.leases as usize,
            firewall: r.firewall as usize,
            dirs: r.dirs as usize,
        })
    }

    fn log_path(&self, id: &str) -> PathBuf {
        self.dirs.job_log(id)
    }

    fn oom_kills(&self, id: &str) -> u64 {
        self.jobs.lock().unwrap_or_else(|e| e.into_inner()).get(id).map_or(0, |t| t.oom_kills)
    }

    fn record_exit(&self, id: &str, exit: Exit) -> Result<(), TargetError> {
        Ok(self.store.set_exited(id, i64::from(exit.code), exit.oom_killed)?)
    }
}

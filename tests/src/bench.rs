//! What the benches share: one `/bin/true` job through `target::launch`, medians, and a process's memory.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ephemerd::runtime::new_job_id;
use ephemerd::target::{LaunchSpec, Target, launch};

pub fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// One job of `/bin/true` on `target` (begin → create → start → wait → destroy); how long it took.
pub async fn one_job(target: &Arc<dyn Target>, image: &str) -> anyhow::Result<Duration> {
    let t = Instant::now();
    let setup =
        |_: &ephemerd::target::Job| Ok(LaunchSpec { args: Some(vec!["/bin/true".into()]), ..Default::default() });
    let launched =
        launch(
            target.clone(),
            new_job_id(),
            image.to_string(),
            setup,
            |job| async move { job.target.wait(&job.id).await },
        )
        .await;
    launched.destroyed?;
    let exit = launched.outcome??;
    anyhow::ensure!(exit.code == 0, "job exited {}", exit.code);
    Ok(t.elapsed())
}

/// Resident memory of `pid`, KiB (0 when it is gone).
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// A local runtime on a bridge and subnet of its own (so it runs beside the tests' and a worker's), with
/// the job image imported: the `LocalTarget` side of a side-by-side bench.
pub struct Local {
    pub target: Arc<dyn Target>,
    runtime: Arc<ephemerd::runtime::Runtime>,
    supervisor: ephemerd::runtime::containerd::Supervisor,
    _dir: tempfile::TempDir,
}

impl Local {
    pub async fn start(bridge: &str, subnet: &str) -> anyhow::Result<Self> {
        use ephemerd::runtime::binaries::SearchPath;
        use ephemerd::runtime::containerd::{Binaries, Containerd, Supervisor};
        let dir = crate::short_tempdir();
        let cfg = ephemerd::config::Config::parse(&format!(
            "[network]\nbridge = \"{bridge}\"\nsubnet = \"{subnet}\"\n[limits]\nmemory = \"256MiB\"\n"
        ))
        .map_err(anyhow::Error::msg)?;
        let dirs = ephemerd::platform::DataDirs::new(dir.path());
        let find = Binaries::find(&SearchPath::for_executables(None))?;
        let supervisor = Supervisor::start(&dirs, find, Duration::from_secs(30)).await?;
        let ctr = Containerd::connect(supervisor.socket()).await?;
        let store = ephemerd::store::Store::open(&dirs.journal())?;
        let runtime = Arc::new(ephemerd::runtime::Runtime::new(&cfg, dirs.clone(), ctr, store)?);
        runtime.images.import(&crate::job_image_archive()?, &|_| {}).await?;
        let target: Arc<dyn Target> = Arc::new(ephemerd::target::LocalTarget::new(runtime.clone()));
        Ok(Self { target, runtime, supervisor, _dir: dir })
    }

    pub async fn stop(self) -> anyhow::Result<()> {
        self.runtime.shutdown().await?;
        self.supervisor.stop().await;
        Ok(())
    }
}

/// `runs` jobs of the job image on each target, interleaved after one warm-up each; both medians.
pub async fn side_by_side(
    a: &Arc<dyn Target>,
    b: &Arc<dyn Target>,
    runs: usize,
) -> anyhow::Result<(Duration, Duration)> {
    let (ai, bi) =
        (a.prepare_image(crate::JOB_IMAGE, &|_| {}).await?, b.prepare_image(crate::JOB_IMAGE, &|_| {}).await?);
    let (mut x, mut y) = (Vec::new(), Vec::new());
    for i in 0..=runs {
        let da = one_job(a, &ai).await?;
        let db = one_job(b, &bi).await?;
        if i > 0 {
            x.push(da);
            y.push(db);
        }
    }
    Ok((median(&mut x), median(&mut y)))
}

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

//! Dispatch benchmark (prints figures; asserts nothing). Run as root:
//!
//! ```sh
//! cargo build --release -p ephemerd && cargo bench -p ephemerd-e2e --bench dispatch
//! ```
//!
//! 1. Per-job cost, dispatched vs local, side by side: one job of `/bin/true` through `target::launch`
//!    (begin → create → start → wait → destroy) on a `LocalTarget` and on a `RemoteTarget` to an
//!    `ephemerd worker` on this machine (loopback TCP), interleaved, N runs each; medians and the overhead.
//! 2. The idle worker: resident memory of the worker and its containerd, and their CPU over 10 s idle.

use std::sync::Arc;
use std::time::Duration;

use ephemerd::dispatch::RemoteTarget;
use ephemerd::platform::DataDirs;
use ephemerd::store::Store;
use ephemerd::target::Target;
use ephemerd_e2e::bench::{Local, ms, rss_kib, side_by_side};
use ephemerd_e2e::worker::WorkerProc;

/// `pid` and all its descendants (a child is listed under the thread that made it).
fn tree(pid: u32) -> Vec<u32> {
    let mut out = vec![pid];
    let mut i = 0;
    while i < out.len() {
        let p = out[i];
        for task in std::fs::read_dir(format!("/proc/{p}/task")).into_iter().flatten().flatten() {
            let children = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
            out.extend(children.split_whitespace().filter_map(|c| c.parse::<u32>().ok()));
        }
        i += 1;
    }
    out
}

fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command (which may hold spaces): utime and stime are the 12th and 13th.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let f: Vec<u64> = rest.split_whitespace().filter_map(|v| v.parse().ok()).collect();
    f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0)
}

async fn bench(runs: usize) -> anyhow::Result<()> {
    // The worker on the test bridge; the local runtime on a bridge of its own, so both can run at once.
    let mut worker = WorkerProc::start("127.0.0.1:0");
    let daemon_dir = tempfile::tempdir()?;
    let daemon_dirs = DataDirs::new(daemon_dir.path());
    daemon_dirs.create()?;
    let remote: Arc<dyn Target> = Arc::new(
        RemoteTarget::connect(
            &worker.addr.to_string(),
            worker.token.clone(),
            daemon_dirs.clone(),
            Store::open(&daemon_dirs.journal())?,
        )
        .await?,
    );
    let local = Local::start("edbench0", "10.233.0.0/24").await?;
    let (l, r) = side_by_side(&local.target, &remote, runs).await?;
    println!("dispatch: one job of /bin/true through target::launch, {runs} interleaved runs each");
    println!("  local (LocalTarget):                     median {:>7.1} ms", ms(l));
    println!("  dispatched (RemoteTarget → worker, TCP): median {:>7.1} ms", ms(r));
    println!("  dispatch overhead: {:+.1} ms per job ({:.2}x)", ms(r) - ms(l), r.as_secs_f64() / l.as_secs_f64());

    drop(remote);
    let pid = worker.pid().ok_or_else(|| anyhow::anyhow!("the worker is gone"))?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let procs = tree(pid);
    let rss: u64 = procs.iter().map(|p| rss_kib(*p)).sum();
    let before: u64 = procs.iter().map(|p| cpu_ticks(*p)).sum();
    let idle = Duration::from_secs(10);
    tokio::time::sleep(idle).await;
    let after: u64 = tree(pid).iter().map(|p| cpu_ticks(*p)).sum();
    let cpu_ms = (after.saturating_sub(before)) * 10; // USER_HZ = 100
    println!("idle worker ({} processes: worker, containerd, …):", procs.len());
    println!("  resident memory: {:.1} MiB", rss as f64 / 1024.0);
    println!(
        "  CPU over {} s idle: {cpu_ms} ms ({:.2}% of one core)",
        idle.as_secs(),
        cpu_ms as f64 / idle.as_millis() as f64 * 100.0
    );
    worker.stop();
    local.stop().await?;
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let runs = std::env::var("BENCH_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(10);
    tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(bench(runs))
}

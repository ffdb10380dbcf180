//! Idle footprint benchmark (prints figures; asserts nothing). Run as root:
//!
//! ```sh
//! cargo build --release -p ephemerd && cargo bench -p ephemerd-e2e --bench idle
//! ```
//!
//! `ephemerd serve` with one provider connected (the fake GitHub, default 10 s poll interval) and nothing
//! queued, its control API up: after a 10 s warm-up, the daemon's RSS (containerd is a separate process
//! and not counted) and the CPU time it uses over 60 s. A client watching events is connected all along,
//! as the tray app would be. Goal: ≤ 20 MiB RSS, ≤ 0.1 s CPU per minute.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use ephemerd_e2e::fake_github::FakeGithub;
use ephemerd_e2e::*;
use tokio_stream::StreamExt;

const TOKEN: &str = "ghp_benchToken0000000000000000000";

async fn bench() -> anyhow::Result<()> {
    let fake = FakeGithub::start(TOKEN).await;
    let data = short_tempdir();
    let runner = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/runner");
    let text = config_text(&format!(
        "[runner]\ndir = \"{}\"\n[[github]]\nowner = \"octo-org\"\nrepos = [\"app\"]\napi_url = \"{}\"\n",
        runner.display(),
        fake.url()
    ));
    let cfg = data.path().join("config.toml");
    std::fs::write(&cfg, text)?;
    let mut child = Command::new(built_ephemerd_bin()?)
        .arg("--data-dir")
        .arg(data.path())
        .arg("--config")
        .arg(&cfg)
        .arg("serve")
        .env("GITHUB_TOKEN", TOKEN)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let socket = data.path().join("run/control.sock");
    let mut client = None;
    for _ in 0..300 {
        if let Ok(c) = ephemerd_proto::connect(&socket).await {
            client = Some(c);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut client = client.ok_or_else(|| anyhow::anyhow!("the daemon did not open its control socket"))?;
    let mut events = client.watch_events(ephemerd_proto::v1::WatchEventsRequest {}).await?.into_inner();
    let watcher = tokio::spawn(async move { while let Some(Ok(_)) = events.next().await {} });
    tokio::time::sleep(Duration::from_secs(10)).await;
    let (_, t0) = proc_usage(child.id())?;
    let mut peak = 0;
    for _ in 0..60 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        peak = peak.max(proc_usage(child.id())?.0);
    }
    let (rss, t1) = proc_usage(child.id())?;
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)?.unwrap_or(100) as f64;
    let polls = fake.seen().len();
    watcher.abort();
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGTERM);
    let _ = child.wait();
    println!("idle daemon (one provider polled every 10 s, an event watcher connected), over 60 s:");
    println!(
        "  RSS at the end:  {:.1} MiB (peak {:.1} MiB; containerd not counted)",
        rss as f64 / 1024.0,
        peak as f64 / 1024.0
    );
    println!("  CPU time:        {:.2} s", (t1 - t0) as f64 / hz);
    println!("  forge requests:  {polls} since start");
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(bench())
}

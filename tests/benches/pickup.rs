//! Pickup benchmark (prints figures; asserts nothing). Run as root:
//!
//! ```sh
//! cargo build --release -p ephemerd && cargo bench -p ephemerd-e2e --bench pickup
//! ```
//!
//! With `ephemerd serve` against the fake GitHub and a warm job image:
//! 1. webhook mode: from a `workflow_job` delivery to the job's runner process asking for its job, p50/p95
//!    over 50 jobs;
//! 2. poll mode (2 s interval): from the job appearing at the forge to the same point, over 20 jobs;
//! 3. idle: requests that cost rate limit (anything but a 304) while nothing is queued, per hour.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ephemerd::forge::github::webhook::sign;
use ephemerd_e2e::fake_github::FakeGithub;
use ephemerd_e2e::*;

const TOKEN: &str = "ghp_benchToken0000000000000000000";
const SECRET: &str = "bench-hook-secret";

fn start(data: &Path, config: &Path) -> anyhow::Result<Child> {
    Ok(Command::new(built_ephemerd_bin()?)
        .arg("--data-dir")
        .arg(data)
        .arg("--config")
        .arg(config)
        .arg("serve")
        .env("GITHUB_TOKEN", TOKEN)
        .env("EDT_HOOK_SECRET", SECRET)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(std::fs::File::create(data.join("serve.log"))?))
        .spawn()?)
}

fn stop(mut c: Child) {
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(c.id() as i32), nix::sys::signal::Signal::SIGTERM);
    let _ = c.wait();
}

fn pct(v: &mut [Duration], p: f64) -> f64 {
    v.sort();
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i].as_secs_f64() * 1000.0
}

async fn wait_for(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    while !ok() {
        anyhow::ensure!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}

fn config(data: &Path, fake: &FakeGithub, webhook: Option<&str>, poll: &str) -> anyhow::Result<PathBuf> {
    let runner = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/runner");
    let (hook, gh) = match webhook {
        Some(addr) => (
            format!("[webhook]\nlisten = \"{addr}\"\n"),
            "webhook_secret_env = \"EDT_HOOK_SECRET\"\nsafety_poll_interval = \"60s\"\n".to_string(),
        ),
        None => (String::new(), String::new()),
    };
    let text = config_text(&format!(
        "allow_host_ports = [{}]\n[image]\ndefault = \"{JOB_IMAGE}\"\n[runner]\ndir = \"{}\"\n{hook}[scheduler]\nmax_concurrent = 4\n[[github]]\nowner = \"octo-org\"\nrepos = [\"app\"]\napi_url = \"{}\"\npoll_interval = \"{poll}\"\n{gh}",
        fake.addr.port(),
        runner.display(),
        fake.url()
    ));
    let p = data.join("config.toml");
    std::fs::write(&p, text)?;
    Ok(p)
}

async fn bench() -> anyhow::Result<()> {
    let fake = FakeGithub::start_on("0.0.0.0:0", TOKEN).await;
    fake.set_runner_url(&format!("http://{TEST_GATEWAY}:{}", fake.addr.port()));
    let data = short_tempdir();
    let hook_addr = format!("127.0.0.1:{}", free_port());
    let cfg = config(data.path(), &fake, Some(&hook_addr), "60s")?;
    let st = Command::new(built_ephemerd_bin()?)
        .arg("--data-dir")
        .arg(data.path())
        .arg("--config")
        .arg(&cfg)
        .args(["image", "import"])
        .arg(job_image_archive()?)
        .stdout(Stdio::null())
        .status()?;
    anyhow::ensure!(st.success(), "image import failed");

    // 1. Webhook pickups.
    let child = start(data.path(), &cfg)?;
    wait_for("the webhook listener", Duration::from_secs(60), || std::net::TcpStream::connect(&hook_addr).is_ok())
        .await?;
    let mut hook_lat = Vec::new();
    for i in 0..51 {
        let (_, job) = fake.queue_script("octo-org/app", &format!("hook-{i}"), &["self-hosted"], "true");
        let body = fake.workflow_job_delivery(job, "queued");
        let sig = sign(SECRET.as_bytes(), body.as_bytes());
        let t0 = Instant::now();
        let delivery = format!("bench-{i}");
        let h = [
            ("X-GitHub-Event", "workflow_job"),
            ("X-GitHub-Delivery", delivery.as_str()),
            ("X-Hub-Signature-256", sig.as_str()),
        ];
        anyhow::ensure!(
            http_post(&hook_addr, "/hooks/github/octo-org", &h, body.as_bytes())? == 202,
            "delivery refused"
        );
        let acquired = || fake.state.lock().map(|s| s.acquired_at.get(&job).copied()).ok().flatten();
        wait_for("the runner", Duration::from_secs(60), || acquired().is_some()).await?;
        if i > 0 {
            hook_lat.push(acquired().unwrap_or(t0).duration_since(t0));
        }
        let done = || fake.jobs().iter().any(|j| j["id"] == job && j["status"] == "completed");
        wait_for("the job", Duration::from_secs(60), done).await?;
    }
    stop(child);

    // 2. Poll pickups, and 3. idle requests.
    let cfg = config(data.path(), &fake, None, "2s")?;
    let child = start(data.path(), &cfg)?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut poll_lat = Vec::new();
    for i in 0..20u64 {
        // Jobs appear at spread-out moments of the poll cycle, as they would in life.
        tokio::time::sleep(Duration::from_millis((i * 739) % 2000)).await;
        let (_, job) = fake.queue_script("octo-org/app", &format!("poll-{i}"), &["self-hosted"], "true");
        let t0 = Instant::now();
        let acquired = || fake.state.lock().map(|s| s.acquired_at.get(&job).copied()).ok().flatten();
        wait_for("the runner", Duration::from_secs(60), || acquired().is_some()).await?;
        poll_lat.push(acquired().unwrap_or(t0).duration_since(t0));
        let done = || fake.jobs().iter().any(|j| j["id"] == job && j["status"] == "completed");
        wait_for("the job", Duration::from_secs(60), done).await?;
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    let before = fake.seen().len();
    let idle = Duration::from_secs(60);
    tokio::time::sleep(idle).await;
    let window: Vec<_> =
        fake.seen()[before..].iter().filter(|r| !r.path_and_query.starts_with("/_runner")).cloned().collect();
    let counted = window.iter().filter(|r| r.status != 304).count();
    stop(child);

    println!("pickup latency, webhook delivery → runner process asking for its job (warm image, 50 jobs)");
    println!("  p50 {:>7.1} ms   p95 {:>7.1} ms", pct(&mut hook_lat.clone(), 0.5), pct(&mut hook_lat, 0.95));
    println!("pickup latency, job queued at the forge → runner asking for it, poll every 2 s (20 jobs)");
    println!("  p50 {:>7.1} ms   p95 {:>7.1} ms", pct(&mut poll_lat.clone(), 0.5), pct(&mut poll_lat, 0.95));
    println!(
        "idle polling: {} requests in {}s, {} not 304 → {} rate-limited requests per idle hour",
        window.len(),
        idle.as_secs(),
        counted,
        counted * 60
    );
    Ok(())
}

fn main() -> anyhow::Result<()> {
    if !std::env::args().any(|a| a == "--bench") {
        return Ok(());
    }
    tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(bench())
}

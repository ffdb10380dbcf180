//! The tray app's idle footprint and start time (prints figures; asserts nothing). Run as root:
//!
//! ```sh
//! npm run ui:build && cargo build --release -p ephemerd -p ephemerd-tray \
//!   && cargo bench -p ephemerd-e2e --bench tray_idle
//! ```
//!
//! The release `ephemerd-tray` under Xvfb with a session bus, in user mode (it runs `ephemerd serve`
//! itself, which polls the fake GitHub), onboarding done so no window opens: the time from launch to the
//! tray being built, then after a 10 s warm-up the app's RSS and CPU time over 60 s with the jobs window
//! closed (its daemon is a separate process and not counted). Goal: ≤ 80 MiB RSS, ≤ 0.2 s CPU per minute.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ephemerd_e2e::fake_github::FakeGithub;
use ephemerd_e2e::secret_service::SecretService;
use ephemerd_e2e::webdriver::Xvfb;
use ephemerd_e2e::*;

const TOKEN: &str = "ghp_benchToken0000000000000000000";

/// The app's `ephemerd serve` children.
fn children(pid: u32) -> Vec<i32> {
    let Ok(rd) = std::fs::read_dir("/proc") else { return vec![] };
    rd.flatten()
        .filter_map(|e| e.file_name().to_string_lossy().parse::<i32>().ok())
        .filter(|p| {
            let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).unwrap_or_default();
            let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
            rest.split_whitespace().nth(1) == Some(pid.to_string().as_str())
        })
        .collect()
}

async fn bench() -> anyhow::Result<()> {
    let fake = FakeGithub::start(TOKEN).await;
    let data = short_tempdir();
    let runner = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/runner");
    let cfg = data.path().join("config.toml");
    std::fs::write(
        &cfg,
        config_text(&format!(
            "[runner]\ndir = \"{}\"\n[[github]]\nowner = \"octo-org\"\nrepos = [\"app\"]\napi_url = \"{}\"\n",
            runner.display(),
            fake.url()
        )),
    )?;
    let bus = SecretService::start();
    let x = Xvfb::start()?;
    let app_dir = tempfile::tempdir()?;
    std::fs::write(app_dir.path().join("settings.json"), r#"{"mode":"user","notifications":true,"onboarded":true}"#)?;
    let daemon = built_ephemerd_bin()?;
    let tray = daemon.with_file_name("ephemerd-tray");
    anyhow::ensure!(tray.is_file(), "{} is missing: cargo build --release -p ephemerd-tray", tray.display());
    let launched = Instant::now();
    let mut app = Command::new(&tray)
        .envs(bus.env())
        .env("DISPLAY", &x.display)
        .env("EPHEMERD_DATA_DIR", data.path())
        .env("EPHEMERD_CONFIG", &cfg)
        .env("EPHEMERD_BIN", &daemon)
        .env("EPHEMERD_TRAY_DIR", app_dir.path())
        .env("GITHUB_TOKEN", TOKEN)
        .env("NO_AT_BRIDGE", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    let (tx, rx) = std::sync::mpsc::channel();
    let stderr = app.stderr.take().ok_or_else(|| anyhow::anyhow!("no stderr"))?;
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("tray ready") {
                let _ = tx.send(());
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(60)).map_err(|_| anyhow::anyhow!("the tray never said it was ready"))?;
    let ready = launched.elapsed();
    // Connected: the daemon it started answers on its socket.
    let socket = data.path().join("run/control.sock");
    let mut connected = None;
    for _ in 0..600 {
        if ephemerd_proto::connect(&socket).await.is_ok() {
            connected = Some(launched.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(10)).await;
    let (_, t0) = proc_usage(app.id())?;
    let mut peak = 0;
    for _ in 0..60 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        peak = peak.max(proc_usage(app.id())?.0);
    }
    let (rss, t1) = proc_usage(app.id())?;
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)?.unwrap_or(100) as f64;
    let kids = children(app.id());
    let _ = app.kill();
    let _ = app.wait();
    for pid in kids {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGTERM);
    }
    for _ in 0..300 {
        if !socket.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(x);
    println!("tray app, idle (user mode, its daemon polling one forge, no window open):");
    println!("  launch → tray ready:        {} ms", ready.as_millis());
    match connected {
        Some(c) => println!("  launch → daemon answering:  {} ms (the app started it)", c.as_millis()),
        None => println!("  launch → daemon answering:  never, within 60 s"),
    }
    println!(
        "  RSS at the end:             {:.1} MiB (peak {:.1} MiB; its daemon not counted)",
        rss as f64 / 1024.0,
        peak as f64 / 1024.0
    );
    println!("  CPU time over 60 s:         {:.2} s", (t1 - t0) as f64 / hz);
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(bench())
}

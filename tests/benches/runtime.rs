//! Runtime benchmark (prints figures; asserts nothing). Run as root:
//!
//! ```sh
//! cargo build --release -p ephemerd && cargo bench -p ephemerd-e2e --bench runtime
//! ```
//!
//! 1. On one running containerd, interleaved, N runs each: one job through ephemerd's runtime (create →
//!    start → wait → destroy of a one-process container with its CNI network, firewall and limits) against
//!    `ctr run --rm` of the same image and command (no network). Medians and their ratio.
//! 2. Job start with and without the user namespace (uid remap), side by side: the first job on a freshly
//!    imported image (with the remap, it makes the remapped snapshot) and the median of warm ones, each
//!    mode on its own containerd, interleaved.
//! 3. Wall time of `ephemerd run examples/hello.yml`: cold (fresh data dir, containerd never started there)
//!    and warm (median of further runs).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ephemerd::config::Config;
use ephemerd::platform::DataDirs;
use ephemerd::runtime::binaries::SearchPath;
use ephemerd::runtime::containerd::{Binaries, Containerd, Supervisor};
use ephemerd::runtime::{JobSpec, Runtime, new_job_id};
use ephemerd::store::Store;
use ephemerd_e2e::{JOB_IMAGE, config_text, job_image_archive, short_tempdir};

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

async fn runtime_vs_ctr(runs: usize) -> anyhow::Result<()> {
    let dir = short_tempdir();
    let cfg = Config::parse(&config_text("[limits]\ncpus = 1.0\nmemory = \"256MiB\"\npids = 512"))
        .map_err(anyhow::Error::msg)?;
    let dirs = DataDirs::new(dir.path());
    let bins = Binaries::find(&SearchPath::for_executables(None))?;
    let sup = Supervisor::start(&dirs, bins, Duration::from_secs(30)).await?;
    let ctr = Containerd::connect(sup.socket()).await?;
    let rt = Runtime::new(&cfg, dirs.clone(), ctr, Store::open(&dirs.journal())?)?;
    let image = rt.images.import(&job_image_archive()?, &|_| {}).await?.remove(0);
    let ctr_bin = which("ctr")?;
    let socket = sup.socket().to_path_buf();

    let job = |id: String| JobSpec {
        id,
        image: image.clone(),
        args: Some(vec!["/bin/true".into()]),
        env: vec![],
        workdir: None,
        binds: vec![],
        limits: None,
        endpoints: vec![],
    };
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    // One warm-up of each, not counted.
    for i in 0..=runs {
        let id = new_job_id();
        let t = Instant::now();
        rt.begin(&id, &image.name)?;
        rt.create(&job(id.clone())).await?;
        rt.start(&id).await?;
        let exit = rt.wait(&id).await?;
        rt.destroy(&id).await?;
        let d = t.elapsed();
        anyhow::ensure!(exit.code == 0, "job exited {}", exit.code);

        let t = Instant::now();
        let st = Command::new(&ctr_bin)
            .arg("--address")
            .arg(&socket)
            .args(["-n", "ephemerd", "run", "--rm", JOB_IMAGE, &format!("ctr-bench-{i}"), "/bin/true"])
            .stdout(Stdio::null())
            .status()?;
        let c = t.elapsed();
        anyhow::ensure!(st.success(), "ctr run failed");
        if i > 0 {
            ours.push(d);
            theirs.push(c);
        }
    }
    let (o, c) = (median(&mut ours), median(&mut theirs));
    println!("runtime: one job, create → start → wait → destroy, /bin/true, {runs} interleaved runs each");
    println!("  ephemerd runtime (netns + CNI bridge + firewall + limits): median {:>7.1} ms", ms(o));
    println!("  ctr run --rm (no network):                               median {:>7.1} ms", ms(c));
    println!("  ratio: {:.2}x", o.as_secs_f64() / c.as_secs_f64());
    rt.shutdown().await?;
    sup.stop().await;
    Ok(())
}

/// One job of /bin/true through the runtime, timed from create to destroyed.
async fn one_job(rt: &Runtime, image: &ephemerd::runtime::containerd::Image) -> anyhow::Result<Duration> {
    let id = new_job_id();
    let t = Instant::now();
    rt.begin(&id, &image.name)?;
    let spec = JobSpec {
        id: id.clone(),
        image: image.clone(),
        args: Some(vec!["/bin/true".into()]),
        env: vec![],
        workdir: None,
        binds: vec![],
        limits: None,
        endpoints: vec![],
    };
    let r = async {
        rt.create(&spec).await?;
        rt.start(&id).await?;
        rt.wait(&id).await
    }
    .await;
    rt.destroy(&id).await?;
    let exit = r?;
    anyhow::ensure!(exit.code == 0, "job exited {}", exit.code);
    Ok(t.elapsed())
}

async fn remap_side_by_side(runs: usize) -> anyhow::Result<()> {
    struct Mode {
        _dir: tempfile::TempDir,
        sup: Supervisor,
        rt: Runtime,
        image: ephemerd::runtime::containerd::Image,
        first: Duration,
        warm: Vec<Duration>,
    }
    let mut modes = Vec::new();
    for (bridge, subnet, userns) in [("edbench0", "10.234.0.0/24", false), ("edbench1", "10.234.1.0/24", true)] {
        let dir = short_tempdir();
        let text =
            format!("[network]\nbridge = \"{bridge}\"\nsubnet = \"{subnet}\"\n[security]\nuser_namespace = {userns}\n");
        let cfg = Config::parse(&text).map_err(anyhow::Error::msg)?;
        let dirs = DataDirs::new(dir.path());
        let sup =
            Supervisor::start(&dirs, Binaries::find(&SearchPath::for_executables(None))?, Duration::from_secs(30))
                .await?;
        let ctr = Containerd::connect(sup.socket()).await?;
        let rt = Runtime::new(&cfg, dirs.clone(), ctr, Store::open(&dirs.journal())?)?;
        let image = rt.images.import(&job_image_archive()?, &|_| {}).await?.remove(0);
        modes.push(Mode { _dir: dir, sup, rt, image, first: Duration::ZERO, warm: Vec::new() });
    }
    for m in &mut modes {
        m.first = one_job(&m.rt, &m.image).await?;
    }
    for _ in 0..runs {
        for m in &mut modes {
            let d = one_job(&m.rt, &m.image).await?;
            m.warm.push(d);
        }
    }
    println!(
        "user namespace: one job of /bin/true, create → destroyed; the first on a fresh image, then {runs} interleaved"
    );
    println!("                          first job     warm (median)");
    for (name, m) in ["without uid remap".to_string(), "with uid remap".to_string()].iter().zip(modes.iter_mut()) {
        println!("  {name:<22}  {:>8.1} ms   {:>8.1} ms", ms(m.first), ms(median(&mut m.warm)));
    }
    for m in modes {
        m.rt.shutdown().await?;
        m.sup.stop().await;
    }
    Ok(())
}

fn which(name: &str) -> anyhow::Result<std::path::PathBuf> {
    SearchPath::for_executables(None).find(name, "containerd's CLI, for comparison").map_err(Into::into)
}

fn ephemerd_run(bin: &Path, data: &Path, config: &Path, repo_root: &Path) -> anyhow::Result<Duration> {
    let t = Instant::now();
    let out = Command::new(bin)
        .arg("--data-dir")
        .arg(data)
        .arg("--config")
        .arg(config)
        .args(["run", "examples/hello.yml", "--image", JOB_IMAGE])
        .current_dir(repo_root)
        .output()?;
    let d = t.elapsed();
    anyhow::ensure!(out.status.code() == Some(3), "hello.yml should exit 3: {}", String::from_utf8_lossy(&out.stderr));
    Ok(d)
}

fn cli_wall_time(runs: usize) -> anyhow::Result<()> {
    let exe = std::env::current_exe()?;
    let bin = exe.parent().and_then(Path::parent).map(|d| d.join("ephemerd")).unwrap_or_default();
    anyhow::ensure!(bin.is_file(), "{} is missing: run `cargo build --release -p ephemerd` first", bin.display());
    let repo_root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap_or(Path::new("."));
    let data = short_tempdir();
    let config = data.path().join("config.toml");
    std::fs::write(&config, config_text(""))?;
    let st = Command::new(&bin)
        .arg("--data-dir")
        .arg(data.path())
        .arg("--config")
        .arg(&config)
        .arg("image")
        .arg("import")
        .arg(job_image_archive()?)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()?;
    anyhow::ensure!(st.success(), "image import failed");
    // Cold: containerd has never run a container in this data dir (its first metadata, the first netns,
    // the bridge is made if missing).
    let _ = Command::new("ip").args(["link", "del", ephemerd_e2e::TEST_BRIDGE]).stderr(Stdio::null()).status();
    let cold = ephemerd_run(&bin, data.path(), &config, repo_root)?;
    let mut warm: Vec<Duration> =
        (0..runs).map(|_| ephemerd_run(&bin, data.path(), &config, repo_root)).collect::<anyhow::Result<_>>()?;
    println!("ephemerd run examples/hello.yml (starts and stops its own containerd each time)");
    println!("  cold:                 {:>7.1} ms", ms(cold));
    println!("  warm (median of {runs}):  {:>7.1} ms", ms(median(&mut warm)));
    Ok(())
}

fn main() -> anyhow::Result<()> {
    // `cargo test --benches` runs this with --bench absent: only run under `cargo bench`.
    if !std::env::args().any(|a| a == "--bench") {
        return Ok(());
    }
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(runtime_vs_ctr(20))?;
    rt.block_on(remap_side_by_side(10))?;
    cli_wall_time(5)
}

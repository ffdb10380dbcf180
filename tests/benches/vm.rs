//! Worker VM benchmark (prints figures; asserts nothing). Run as root, after `rootfs/build-vm-image.sh`:
//!
//! ```sh
//! cargo build --release -p ephemerd && cargo bench -p ephemerd-e2e --bench vm
//! ```
//!
//! 1. Cold boot → Dispatch ready: from `VmHost::boot` (host disk, config disk, tap, QEMU) until the worker
//!    in the VM answers Hello with its token, on its overlay of the image store (the first boot, which
//!    also makes the host disk and prepares the store, is timed apart); and the accelerator in use.
//! 2. Per-job cost, VM vs local, side by side: one job of `/bin/true` through `target::launch` on a
//!    `LocalTarget` and on a `RemoteTarget` to the VM's worker, interleaved, N runs each; medians.
//! 3. The idle VM's resident memory (the QEMU process) after 10 s idle, and after the stop (no process).

use std::sync::Arc;
use std::time::{Duration, Instant};

use ephemerd::config::Config;
use ephemerd::dispatch::RemoteTarget;
use ephemerd::platform::DataDirs;
use ephemerd::store::Store;
use ephemerd::target::Target;
use ephemerd::worker::Host;
use ephemerd::worker::vm::VmHost;
use ephemerd::worker::vm::qemu::{BootSet, QemuVm, pick_accel};
use ephemerd_e2e::bench::{Local, ms, rss_kib, side_by_side};
use ephemerd_e2e::{ephemerd_bin, job_image_archive, short_tempdir, vm_image};

async fn bench(runs: usize) -> anyhow::Result<()> {
    let vm_dir = short_tempdir();
    let vm_dirs = DataDirs::new(vm_dir.path());
    vm_dirs.create()?;
    let cfg = Config::parse(&format!(
        "[network]\nsubnet = \"10.234.0.0/24\"\n[limits]\nmemory = \"256MiB\"\n[worker]\nmode = \"vm\"\n\
         vm_image = \"{}\"\nimages = [\"{}\"]\nlink = \"10.230.79.0/30\"\ncpus = 2\nmemory = \"1536MiB\"\n",
        vm_image()?.display(),
        job_image_archive()?.display()
    ))
    .map_err(anyhow::Error::msg)?;
    let (accel, why) = pick_accel(None);
    let qemu = QemuVm::new(vm_dirs.root.join("vm"), "ephemerd-bench-vm".into(), BootSet::in_dir(&vm_image()?)?, accel);
    let host = VmHost::new(Box::new(qemu), &cfg, &vm_dirs, "warn")?.with_binary(ephemerd_bin());
    // The host disk and the image store are made once per binary and image: the first boot makes them
    // (timed apart), as every later boot finds them.
    let t = Instant::now();
    host.boot().await?;
    let first = t.elapsed();
    host.stop().await?;
    let t = Instant::now();
    let booted = host.boot().await?;
    let listening = t.elapsed();
    let remote =
        RemoteTarget::connect(&booted.addr, booted.token, vm_dirs.clone(), Store::open(&vm_dirs.journal())?).await?;
    let ready = t.elapsed();
    println!("worker VM under {why}");
    println!(
        "  first boot (host disk, image store prepared by a boot of its own, then the boot): {:>8.1} ms",
        ms(first)
    );
    println!(
        "  cold boot → Hello answered (VmHost::boot): {:>8.1} ms (containerd up on the image store's overlay)",
        ms(listening)
    );
    println!("  … → the daemon's client connected:        {:>8.1} ms", ms(ready));
    let remote: Arc<dyn Target> = Arc::new(remote);

    let local = Local::start("edbench1", "10.235.0.0/24").await?;
    let (l, r) = side_by_side(&local.target, &remote, runs).await?;
    println!("one job of /bin/true through target::launch, {runs} interleaved runs each");
    println!("  local (LocalTarget):              median {:>8.1} ms", ms(l));
    println!("  in the VM (RemoteTarget → VM):    median {:>8.1} ms", ms(r));
    println!("  VM overhead: {:+.1} ms per job ({:.2}x)", ms(r) - ms(l), r.as_secs_f64() / l.as_secs_f64());

    drop(remote);
    tokio::time::sleep(Duration::from_secs(10)).await;
    let pid: u32 = std::fs::read_to_string(vm_dirs.root.join("vm/qemu.pid"))?.trim().parse()?;
    println!("idle VM (QEMU, after 10 s idle): {:.1} MiB resident", rss_kib(pid) as f64 / 1024.0);
    host.stop().await?;
    let gone = !std::path::Path::new(&format!("/proc/{pid}")).exists();
    println!("stopped VM: {} (0 MiB resident)", if gone { "no QEMU process" } else { "QEMU still runs!" });
    local.stop().await?;
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let runs = std::env::var("BENCH_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(5);
    tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(bench(runs))
}

//! `[worker] mode = "vm"` end to end: the daemon boots the worker rootfs as a VM under QEMU (KVM where this
//! machine has hardware virtualization, TCG otherwise) when the first job arrives, dispatches the fake
//! GitHub's jobs to it, streams their logs back, and stops the VM once it idles, leaving nothing.

// Each test holds the serial guard for its whole run: holding it across awaits is the point.
#![allow(clippy::await_holding_lock)]

use std::time::Duration;

use ephemerd_e2e::daemon::*;
use ephemerd_e2e::fake_github::FakeGithub;
use ephemerd_e2e::*;

/// The link of the test VM: this machine is .1, the VM .2.
const LINK: &str = "10.230.78.0/30";
const HOST_END: &str = "10.230.78.1";
/// A VM boot under TCG takes a while; under KVM about a second.
const BOOT: Duration = Duration::from_secs(600);

fn vm_section(idle_stop: &str) -> String {
    format!(
        "[worker]\nmode = \"vm\"\nvm_image = \"{}\"\nimages = [\"{}\"]\nlink = \"{LINK}\"\ncpus = 2\nmemory = \"1536MiB\"\n\
         idle_stop = \"{idle_stop}\"\n",
        vm_image().unwrap().display(),
        job_image_archive().unwrap().display()
    )
}

async fn fake_for_vm() -> (FakeGithub, u16) {
    let fake = FakeGithub::start_on("0.0.0.0:0", TOKEN).await;
    let port = fake.addr.port();
    fake.set_runner_url(&format!("http://{HOST_END}:{port}"));
    (fake, port)
}

fn qemu_running(d: &Daemon) -> bool {
    let qmp = format!("unix:{},server=on,wait=off", d.data.path().join("vm/qmp.sock").display());
    !processes_with_arg(qmp.as_bytes()).is_empty()
}

#[tokio::test(flavor = "multi_thread")]
async fn github_jobs_run_in_containers_in_one_vm_boot_their_logs_stream_and_the_idle_vm_goes() {
    let _s = serial();
    let (fake, port) = fake_for_vm().await;
    let host_kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    let jobs: u64 = std::env::var("EPHEMERD_TEST_VM_JOBS").ok().and_then(|n| n.parse().ok()).unwrap_or(20);
    let mut ids = Vec::new();
    for i in 0..jobs {
        let script = format!("echo job-{i}-kernel-$(uname -r); echo pid1-$(cat /proc/1/comm)");
        ids.push(fake.queue_script("octo-org/app", &format!("job-{i}"), &["self-hosted", "Linux"], &script).1);
    }
    // A job of its own to follow: it prints, waits, prints again.
    let (_, followed) =
        fake.queue_script("octo-org/app", "follow", &["self-hosted"], "echo first-line; sleep 4; echo last-line");
    let mut d = Daemon::prepare(&fake, port, &format!("[scheduler]\nmax_concurrent = 2\n{}", vm_section("5s")));
    assert!(!qemu_running(&d), "no VM before a job needs it");
    d.start();
    let running = |id: u64| fake.jobs().iter().any(|j| j["id"] == id && j["status"] != "queued");
    wait_until("the followed job to start", BOOT, || running(followed), &d).await;
    let follow = d.ctl(&["logs", "-f", &followed.to_string()]);
    let text = String::from_utf8_lossy(&follow.stdout);
    assert!(text.contains("first-line") && text.contains("last-line"), "logs -f streams to the end: {text}");
    let done = || fake.jobs().iter().filter(|j| j["status"] == "completed").count() as u64;
    wait_until("every job completed", BOOT, || done() == jobs + 1, &d).await;
    assert!(fake.jobs().iter().all(|j| j["conclusion"] == "success"), "{:#?}", fake.jobs());
    let text: String =
        ids.iter().map(|id| String::from_utf8_lossy(&d.ctl(&["logs", &id.to_string()]).stdout).into_owned()).collect();
    for i in 0..jobs {
        let line = text.lines().find(|l| l.contains(&format!("job-{i}-kernel-"))).unwrap_or_else(|| panic!("{text}"));
        assert!(line.contains("cloud-amd64"), "the job ran on the VM's kernel: {line}");
        assert!(!line.contains(host_kernel.trim()), "not on this machine's kernel ({host_kernel}): {line}");
    }
    assert_eq!(d.log().matches("worker VM up").count(), 1, "one VM boot for every job: {}", d.log());
    wait_until("every runner deregistered", Duration::from_secs(30), || fake.runners("octo-org/app").is_empty(), &d)
        .await;
    // Idle: the VM stops and leaves nothing (the daemon still runs).
    let vm = d.data.path().join("vm");
    let stopped = || !qemu_running(&d) && !vm.join("overlay.qcow2").exists();
    wait_until("the idle VM to stop", Duration::from_secs(60), stopped, &d).await;
    assert!(d.log().contains("the worker is idle: stopping it"), "{}", d.log());
    for f in ["overlay.qcow2", "qmp.sock", "qemu.pid", "boot.img"] {
        assert!(!vm.join(f).exists(), "{f} is gone with the VM");
    }
    let console = std::fs::read_to_string(vm.join("console.log")).unwrap_or_default();
    assert!(console.contains("worker listening on"), "the console log is the VM's boot log: {console}");
    assert_eq!(d.stop(), Some(0), "{}", d.log());
    assert!(!d.log().contains(TOKEN), "no secret in the log");
    d.assert_clean();
}

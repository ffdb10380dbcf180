//! The worker VM end to end, sent jobs by a label profile's `isolation = "vm"` (with `[worker] mode =
//! "local"`) and by `[worker] mode = "vm"`: the daemon boots the worker rootfs as a VM under QEMU (KVM where
//! this machine has hardware virtualization, TCG otherwise) when the first job arrives, dispatches the fake
//! GitHub's jobs to it, streams their logs back, and stops the VM once it idles, leaving nothing. Faults: a
//! wrong token, a paused VM's clock and one moved an hour ahead (set back before the next job), kill -9 of
//! QEMU and of the daemon.

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

fn vm_section(mode: &str, idle_stop: &str) -> String {
    format!(
        "[worker]\nmode = \"{mode}\"\nvm_image = \"{}\"\nimages = [\"{}\"]\nlink = \"{LINK}\"\ncpus = 2\nmemory = \"1536MiB\"\n\
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
    // Jobs run on this machine by default; a profile sends these to the VM.
    let profile = "[[scheduler.profiles]]\nname = \"vm\"\nlabels = [\"self-hosted\"]\nisolation = \"vm\"\n";
    let mut d = Daemon::prepare(
        &fake,
        port,
        &format!("[scheduler]\nmax_concurrent = 2\n{profile}{}", vm_section("local", "5s")),
    );
    assert!(!qemu_running(&d), "no VM before a job needs it");
    d.start();
    let running = |id: u64| fake.jobs().iter().any(|j| j["id"] == id && j["status"] != "queued");
    wait_until("the followed job to start", BOOT, || running(followed), &d).await;
    assert_eq!(worker_state(&d), "ready", "status shows the VM that runs the job");
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
    // The state turns "stopped" once the link is down too, just after QEMU is gone.
    wait_until("status to show the VM stopped", Duration::from_secs(30), || worker_state(&d) == "stopped", &d).await;
    let text = String::from_utf8_lossy(&d.ctl(&["status"]).stdout).into_owned();
    assert!(text.contains("worker:     worker VM stopped (qemu ("), "{text}");
    for f in ["overlay.qcow2", "store.qcow2", "qmp.sock", "qemu.pid", "boot.img"] {
        assert!(!vm.join(f).exists(), "{f} is gone with the VM");
    }
    assert!(vm.join("store.img").is_file(), "the image store stays for the next boot");
    let console = std::fs::read_to_string(vm.join("console.log")).unwrap_or_default();
    assert!(console.contains("worker listening on"), "the console log is the VM's boot log: {console}");
    assert_eq!(d.stop(), Some(0), "{}", d.log());
    assert!(!d.log().contains(TOKEN), "no secret in the log");
    d.assert_clean();
}

/// The worker VM's state as `ephemerd status --json` says it.
fn worker_state(d: &Daemon) -> String {
    let out = d.ctl(&["status", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out:?}"));
    assert_eq!(v["workers"][0]["name"], "worker VM", "{v}");
    v["workers"][0]["state"].as_str().unwrap_or_default().to_string()
}

fn qemu_pid(d: &Daemon) -> Option<i32> {
    std::fs::read_to_string(d.data.path().join("vm/qemu.pid")).ok()?.trim().parse().ok()
}

fn log_of(d: &Daemon, id: u64) -> String {
    String::from_utf8_lossy(&d.ctl(&["logs", &id.to_string()]).stdout).into_owned()
}

/// Runs one QMP command on the VM's QMP socket (the daemon's; root only).
fn qmp(d: &Daemon, command: &str) {
    use std::io::{BufRead, BufReader, Write};
    let sock = std::os::unix::net::UnixStream::connect(d.data.path().join("vm/qmp.sock")).unwrap();
    let mut lines = BufReader::new(sock.try_clone().unwrap());
    let mut line = String::new();
    lines.read_line(&mut line).unwrap();
    assert!(line.contains("QMP"), "{line}");
    for c in ["qmp_capabilities", command] {
        writeln!(&sock, "{{\"execute\": \"{c}\"}}").unwrap();
        loop {
            line.clear();
            lines.read_line(&mut line).unwrap();
            if line.contains("\"return\"") {
                break;
            }
            assert!(!line.contains("\"error\"") && !line.is_empty(), "QMP {c}: {line}");
        }
    }
}

fn registrations(fake: &FakeGithub) -> usize {
    fake.seen().iter().filter(|r| r.path_and_query.ends_with("generate-jitconfig")).count()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_token_is_refused_a_paused_guest_gets_its_clock_back_and_a_killed_qemu_or_daemon_loses_its_jobs_once() {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    let _s = serial();
    let (fake, port) = fake_for_vm().await;
    let (_, lost) = fake.queue_script("octo-org/app", "lost", &["self-hosted"], "echo holding; sleep 1000");
    let mut d = Daemon::prepare(&fake, port, &format!("[scheduler]\nmax_concurrent = 2\n{}", vm_section("vm", "5m")));
    d.start();
    wait_until("the job to run in the VM", BOOT, || log_of(&d, lost).contains("holding"), &d).await;

    // Anyone but the daemon (a wrong token) is refused by the VM's worker; the daemon's own job runs.
    let dirs = ephemerd::platform::DataDirs::new(short_tempdir().path());
    dirs.create().unwrap();
    let store = ephemerd::store::Store::open(&dirs.journal()).unwrap();
    let guess = ephemerd::dispatch::auth::Token::generate();
    let refused = ephemerd::dispatch::RemoteTarget::connect("10.230.78.2:7411", guess, dirs, store).await;
    let e = refused.err().expect("a wrong token is refused").to_string();
    assert!(e.contains("hello") && e.to_lowercase().contains("token"), "{e}");

    // QEMU killed mid-job: that job fails with the reason and is not taken again; the next job boots a fresh VM.
    let first = qemu_pid(&d).expect("QEMU's pid file");
    kill(Pid::from_raw(first), Signal::SIGKILL).unwrap();
    wait_until("the job to fail", Duration::from_secs(60), || d.log().contains("the worker died while job"), &d).await;
    let (_, after) = fake.queue_script("octo-org/app", "after", &["self-hosted"], "echo after-the-crash");
    let done = |id: u64| fake.jobs().iter().any(|j| j["id"] == id && j["status"] == "completed");
    wait_until("the next job", BOOT, || done(after), &d).await;
    assert_ne!(qemu_pid(&d), Some(first), "a fresh VM");
    assert_eq!(fake.jobs().iter().find(|j| j["id"] == after).unwrap()["conclusion"], "success");
    assert!(log_of(&d, after).contains("after-the-crash"));
    assert_eq!(registrations(&fake), 2, "one runner per job, the lost one not taken twice");
    fake.lose_busy_runners();

    // The guest's clock stands still while the VM is paused (as over a host suspend): the next job finds
    // it set back to this machine's.
    qmp(&d, "stop");
    tokio::time::sleep(Duration::from_secs(20)).await;
    qmp(&d, "cont");
    let (_, clocked) = fake.queue_script("octo-org/app", "clock", &["self-hosted"], "echo clock=$(date +%s)");
    wait_until("the clock job", BOOT, || done(clocked), &d).await;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let text = log_of(&d, clocked);
    let guest: i64 = text.lines().find_map(|l| l.split("clock=").nth(1)).and_then(|v| v.trim().parse().ok()).unwrap();
    assert!(d.log().contains("the worker's clock was off: set it to ours"), "the pause put it behind: {}", d.log());
    assert!((now - guest).abs() <= 8, "the job saw this machine's time: guest {guest}, here {now}");

    // The daemon killed mid-job: its VM dies with it; a restart leaves nothing of it and runs the queue.
    let (_, held) = fake.queue_script("octo-org/app", "held", &["self-hosted"], "echo held; sleep 1000");
    wait_until("the held job to run", BOOT, || log_of(&d, held).contains("held"), &d).await;
    let mut child = d.child.take().unwrap();
    kill(Pid::from_raw(child.id() as i32), Signal::SIGKILL).unwrap();
    child.wait().unwrap();
    wait_until("the VM to die with the daemon", Duration::from_secs(30), || !qemu_running(&d), &d).await;
    let (_, quick) = fake.queue_script("octo-org/app", "quick", &["self-hosted"], "echo quick");
    d.start();
    fake.lose_busy_runners();
    wait_until("the queued job after the restart", BOOT, || done(quick), &d).await;
    assert_eq!(registrations(&fake), 5, "no job taken twice");
    wait_until("every runner deregistered", Duration::from_secs(60), || fake.runners("octo-org/app").is_empty(), &d)
        .await;
    assert_eq!(d.stop(), Some(0), "{}", d.log());
    assert!(!d.log().contains(TOKEN), "no secret in the log");
    d.assert_clean();
}

/// The guest's clock moved 1 h ahead (through the worker's own SetTime, with the boot's token, which only
/// the daemon holds; here the test boots the VM itself): the push before the next job finds it an hour
/// off and sets it back.
#[tokio::test(flavor = "multi_thread")]
async fn a_guest_clock_an_hour_off_is_set_back_by_the_push_before_the_next_job() {
    use ephemerd::worker::Host;
    use ephemerd::worker::vm::qemu::{BootSet, QemuVm, pick_accel};
    let _s = serial();
    let dir = short_tempdir();
    let dirs = ephemerd::platform::DataDirs::new(dir.path());
    dirs.create().unwrap();
    // No image archives: this test runs no job, so its image store needs only formatting.
    let cfg = ephemerd::config::Config::parse(&format!(
        "[worker]\nmode = \"vm\"\nvm_image = \"{}\"\nlink = \"{LINK}\"\ncpus = 2\nmemory = \"1536MiB\"\n",
        vm_image().unwrap().display()
    ))
    .unwrap();
    let set = BootSet::in_dir(&vm_image().unwrap()).unwrap();
    let qemu = QemuVm::new(dirs.root.join("vm"), "ephemerd-test-clock-vm".into(), set, pick_accel(None).0);
    let host =
        ephemerd::worker::vm::VmHost::new(Box::new(qemu), &cfg, &dirs, "info").unwrap().with_binary(ephemerd_bin());
    let booted = host.boot().await.unwrap();
    let store = ephemerd::store::Store::open(&dirs.journal()).unwrap();
    let remote =
        ephemerd::dispatch::RemoteTarget::connect(&booted.addr, booted.token, dirs.clone(), store).await.unwrap();
    let (offset, _) = remote.push_time().await.unwrap();
    assert!(offset.abs() < 5_000_000_000, "the guest starts from this machine's clock: off by {offset} ns");
    let hour: i64 = 3600 * 1_000_000_000;
    let now = || std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as i64;
    let (_, stepped) = remote.set_time(now() + hour).await.unwrap();
    assert!(stepped, "the guest's clock moved an hour ahead");
    let (offset, stepped) = remote.push_time().await.unwrap();
    assert!(stepped, "the push set it back");
    assert!((offset - hour).abs() < 5_000_000_000, "the guest was an hour ahead: {offset} ns");
    let (offset, stepped) = remote.push_time().await.unwrap();
    assert!(!stepped && offset.abs() < 100_000_000, "now it is on time: {offset} ns");
    drop(remote);
    host.stop().await.unwrap();
    assert!(!host.present().await, "the VM and its link are gone");
}

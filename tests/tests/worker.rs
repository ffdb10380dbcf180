//! `[worker] mode = "namespace"` end to end: the daemon boots its worker from the worker rootfs
//! (`rootfs/build-worker-rootfs.sh`) in namespaces of its own, on its own veth, with its own containerd,
//! and dispatches the fake GitHub's jobs to it. Results and logs come back through the control API and the
//! CLI as for local jobs; a job there reaches no service of this machine but the allowed port; and a
//! killed daemon, a killed worker and a worker with a wrong token each leave nothing and take no job twice.

// Each test holds the serial guard for its whole run: holding it across awaits is the point.
#![allow(clippy::await_holding_lock)]

use std::time::Duration;

use ephemerd_e2e::daemon::*;
use ephemerd_e2e::fake_github::FakeGithub;
use ephemerd_e2e::*;

/// The link of the test worker: this machine is .1, the worker .2.
const LINK: &str = "10.230.77.0/30";
const HOST_END: &str = "10.230.77.1";

fn worker_section() -> String {
    format!(
        "[worker]\nmode = \"namespace\"\nrootfs = \"{}\"\nimages = [\"{}\"]\nlink = \"{LINK}\"\n",
        worker_rootfs().unwrap().display(),
        job_image_archive().unwrap().display()
    )
}

/// The fake GitHub on every address, its runners told to reach it at this machine's end of the link.
async fn fake_for_worker() -> (FakeGithub, u16) {
    let fake = FakeGithub::start_on("0.0.0.0:0", TOKEN).await;
    let port = fake.addr.port();
    fake.set_runner_url(&format!("http://{HOST_END}:{port}"));
    (fake, port)
}

/// How many pid namespaces deep process `pid` is (1 on the host, 2 in a local job, 3 in a worker's job).
fn pid_depth(pid: u32) -> usize {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status.lines().find_map(|l| l.strip_prefix("NSpid:")).map_or(0, |l| l.split_whitespace().count())
}

fn pids_of(cmd: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else { continue };
        let c = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&c).replace('\0', " ").trim() == cmd {
            out.push(pid);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn github_jobs_run_in_the_namespace_worker_and_their_results_and_logs_come_back() {
    let _s = serial();
    let (fake, port) = fake_for_worker().await;
    let hold = format!("sleep 3.{:03}", free_port() % 1000);
    let mut ids = Vec::new();
    for i in 0..3 {
        let script = format!("echo job-{i}-in-the-worker; {hold}");
        ids.push(fake.queue_script("octo-org/app", &format!("job-{i}"), &["self-hosted", "Linux"], &script).1);
    }
    let mut d = Daemon::prepare(&fake, port, &format!("[scheduler]\nmax_concurrent = 2\n{}", worker_section()));
    d.start();
    wait_until("a job's step to run", Duration::from_secs(240), || !pids_of(&hold).is_empty(), &d).await;
    let depths: Vec<usize> = pids_of(&hold).into_iter().map(pid_depth).collect();
    assert!(depths.iter().all(|d| *d == 3), "the step runs in a job in the worker: {depths:?}");
    let done = || fake.jobs().iter().filter(|j| j["status"] == "completed").count();
    wait_until("3 completed jobs", Duration::from_secs(240), || done() == 3, &d).await;
    assert!(fake.jobs().iter().all(|j| j["conclusion"] == "success"), "{:#?}", fake.jobs());
    wait_until("every runner deregistered", Duration::from_secs(30), || fake.runners("octo-org/app").is_empty(), &d)
        .await;
    // Through the control API and the CLI, as for local jobs.
    // (A runner takes whichever queued job the forge gives it, so the outputs are looked for in all three.)
    let text: String =
        ids.iter().map(|id| String::from_utf8_lossy(&d.ctl(&["logs", &id.to_string()]).stdout).into_owned()).collect();
    for i in 0..3 {
        assert!(text.contains(&format!("job-{i}-in-the-worker")), "{text}");
    }
    // The forge hears of a job's end from its runner before the daemon has closed the job's record.
    let finished = || String::from_utf8_lossy(&d.ctl(&["jobs", "--all"]).stdout).matches("finished").count();
    wait_until("3 finished jobs in the daemon's records", Duration::from_secs(60), || finished() == 3, &d).await;
    // The daemon's own containerd ran none of them.
    assert!(!d.log().contains("runner exited") || d.log().contains("namespace worker up"), "{}", d.log());
    assert_eq!(d.stop(), Some(0), "{}", d.log());
    let log = d.log();
    assert!(!log.contains(TOKEN), "no secret in the log");
    d.assert_clean();
}

/// The worker's outer process (in our pid namespace), from its pid file.
fn worker_pid(d: &Daemon) -> i32 {
    std::fs::read_to_string(d.data.path().join("worker/worker.pid")).unwrap().trim().parse().unwrap()
}

fn worker_running(d: &Daemon) -> bool {
    !processes_with_arg(d.data.path().join("worker/rootfs").as_os_str().as_encoded_bytes()).is_empty()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_job_reaches_only_the_allowed_port_nobody_else_drives_the_worker_and_a_killed_worker_loses_one_job() {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    let _s = serial();
    let (fake, port) = fake_for_worker().await;
    // A service of this machine on every address, on a port jobs are not allowed.
    let other = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let other_port = other.local_addr().unwrap().port();
    let probe = |url: String| format!("curl -s -o /dev/null -m 5 -w '%{{http_code}}' {url}");
    let script = format!(
        "echo allowed=$({}); echo other=$({}); echo dispatch=$({})",
        probe(format!("http://{HOST_END}:{port}/")),
        probe(format!("http://{HOST_END}:{other_port}/")),
        probe("http://10.230.77.2:7411/".into()),
    );
    let (_, probed) = fake.queue_script("octo-org/app", "probe", &["self-hosted"], &script);
    let mut d = Daemon::prepare(&fake, port, &worker_section());
    d.start();
    let done = |id: u64| fake.jobs().iter().any(|j| j["id"] == id && j["status"] == "completed");
    wait_until("the probe job", Duration::from_secs(240), || done(probed), &d).await;
    let out = String::from_utf8_lossy(&d.ctl(&["logs", &probed.to_string()]).stdout).into_owned();
    assert!(out.contains("allowed=") && !out.contains("allowed=000"), "the allowed port answers: {out}");
    assert!(out.contains("other=000"), "another service of this machine is refused: {out}");
    assert!(out.contains("dispatch=000"), "the worker's Dispatch port is refused to its jobs: {out}");
    // The twin: that service answers this machine itself.
    assert!(std::net::TcpStream::connect(("127.0.0.1", other_port)).is_ok());
    drop(other);

    // Anyone but the daemon (a wrong token) is refused by the worker; the daemon's jobs ran, so its own works.
    let dirs = ephemerd::platform::DataDirs::new(short_tempdir().path());
    dirs.create().unwrap();
    let store = ephemerd::store::Store::open(&dirs.journal()).unwrap();
    let guess = ephemerd::dispatch::auth::Token::generate();
    let refused = ephemerd::dispatch::RemoteTarget::connect("10.230.77.2:7411", guess, dirs, store).await;
    let e = refused.err().expect("a wrong token is refused").to_string();
    assert!(e.contains("hello") && e.to_lowercase().contains("token"), "{e}");

    // The worker killed mid-job: that job fails and is not taken again; the next job boots a new worker.
    let hold = format!("sleep {}", 1000 + free_port() % 1000);
    let (_, lost) = fake.queue_script("octo-org/app", "lost", &["self-hosted"], &hold);
    wait_until("the job's step", Duration::from_secs(120), || processes_running_exactly(&hold) == 1, &d).await;
    let first = worker_pid(&d);
    kill(Pid::from_raw(first), Signal::SIGKILL).unwrap();
    wait_until("the job to fail", Duration::from_secs(60), || d.log().contains("the worker died while job"), &d).await;
    assert!(!process_running(&hold), "the job died with its worker");
    let (_, after) = fake.queue_script("octo-org/app", "after", &["self-hosted"], "echo after-the-crash");
    wait_until("the next job", Duration::from_secs(240), || done(after), &d).await;
    assert_ne!(worker_pid(&d), first, "a new worker");
    let jobs = fake.jobs();
    assert_eq!(jobs.iter().find(|j| j["id"] == after).unwrap()["conclusion"], "success", "{jobs:#?}");
    let registrations = fake.seen().iter().filter(|r| r.path_and_query.ends_with("generate-jitconfig")).count();
    assert_eq!(registrations, 3, "one runner per job, the lost one not taken twice");
    fake.lose_busy_runners();
    wait_until("every runner deregistered", Duration::from_secs(60), || fake.runners("octo-org/app").is_empty(), &d)
        .await;
    let _ = lost;
    assert_eq!(d.stop(), Some(0), "{}", d.log());
    d.assert_clean();
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_of_the_daemon_takes_its_worker_down_and_a_restart_leaves_nothing_and_runs_the_queue() {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    let _s = serial();
    let (fake, port) = fake_for_worker().await;
    let hold = format!("sleep {}", 2000 + free_port() % 1000);
    for i in 0..2 {
        fake.queue_script("octo-org/app", &format!("long-{i}"), &["self-hosted"], &hold);
    }
    let mut d = Daemon::prepare(&fake, port, &format!("[scheduler]\nmax_concurrent = 2\n{}", worker_section()));
    d.start();
    wait_until("2 steps running", Duration::from_secs(240), || processes_running_exactly(&hold) == 2, &d).await;
    let mut child = d.child.take().unwrap();
    kill(Pid::from_raw(child.id() as i32), Signal::SIGKILL).unwrap();
    child.wait().unwrap();
    wait_until(
        "the worker and its jobs to die",
        Duration::from_secs(30),
        || !worker_running(&d) && !process_running(&hold),
        &d,
    )
    .await;
    for i in 0..2 {
        fake.queue_script("octo-org/app", &format!("quick-{i}"), &["self-hosted"], "echo quick");
    }
    d.start();
    fake.lose_busy_runners();
    let quick_done = || {
        fake.jobs()
            .iter()
            .filter(|j| j["name"].as_str().unwrap_or("").starts_with("quick") && j["status"] == "completed")
            .count()
    };
    wait_until("the queued jobs after the restart", Duration::from_secs(240), || quick_done() == 2, &d).await;
    let registrations = fake.seen().iter().filter(|r| r.path_and_query.ends_with("generate-jitconfig")).count();
    assert_eq!(registrations, 4, "no job taken twice");
    wait_until("every runner deregistered", Duration::from_secs(60), || fake.runners("octo-org/app").is_empty(), &d)
        .await;
    assert_eq!(d.stop(), Some(0), "{}", d.log());
    d.assert_clean();
}

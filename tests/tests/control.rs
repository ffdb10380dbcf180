//! The control API end to end: the real daemon (real containerd, the fake GitHub) answering on its Unix
//! socket, driven through the `ephemerd-proto` client and through the `ephemerd` CLI.

// Each test holds the serial guard for its whole run (its own runtime): holding it across awaits is the point.
#![allow(clippy::await_holding_lock)]

use std::time::Duration;

use ephemerd_e2e::daemon::*;
use ephemerd_e2e::fake_github::FakeGithub;
use ephemerd_e2e::*;
use ephemerd_proto::v1::{self, JobState};
use ephemerd_proto::{ErrorReason, reason_of};
use tokio_stream::StreamExt;

type Events = tonic::Streaming<v1::Event>;

/// The states a job goes through, in order.
fn rank(s: i32) -> usize {
    use JobState::*;
    [Queued, Claiming, Claimed, Starting, JobRunning, Finished].iter().position(|x| *x as i32 == s).unwrap_or(99)
}

/// Reads `events` until `job` reaches a state for which `done` holds; returns the states seen for it.
async fn states_until(events: &mut Events, job: u64, done: impl Fn(i32) -> bool, d: &Daemon) -> Vec<i32> {
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let Ok(ev) = tokio::time::timeout_at(deadline, events.next()).await else {
            panic!("timed out waiting for job {job} (seen {seen:?}); daemon log:\n{}", d.log());
        };
        let ev = ev.unwrap().unwrap();
        let jobs = match ev.kind.unwrap() {
            v1::event::Kind::Snapshot(s) => s.jobs,
            v1::event::Kind::Job(j) => vec![j],
            v1::event::Kind::Status(_) => vec![],
        };
        for j in jobs.into_iter().filter(|j| j.forge_job_id == job) {
            if seen.last() != Some(&j.state) {
                seen.push(j.state);
            }
            if done(j.state) {
                return seen;
            }
        }
    }
}

/// A client, once the daemon (just started, perhaps) answers on its socket.
async fn client(d: &Daemon) -> ephemerd_proto::Client {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        match ephemerd_proto::connect(&d.socket()).await {
            Ok(c) => return c,
            Err(e) if std::time::Instant::now() > deadline => panic!("the daemon never answered: {e}\n{}", d.log()),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_rpc_is_served_events_and_logs_stream_live_and_the_cli_uses_them() {
    let _s = serial();
    let (fake, port) = fake_for_runners().await;
    let mut d = Daemon::prepare(&fake, port, "[scheduler]\nmax_concurrent = 2");
    // Before the daemon runs, the CLI says how to start it.
    let out = d.ctl(&["status"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(69), "{err}");
    assert!(err.contains("ephemerd serve"), "{err}");

    d.start();
    wait_until("the control socket", Duration::from_secs(60), || d.socket().exists(), &d).await;
    let mut c = client(&d).await;
    let provider_up = async {
        loop {
            let s = c.clone().status(v1::StatusRequest {}).await.unwrap().into_inner();
            if s.providers.first().is_some_and(|p| p.connected) {
                return s;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    let s = tokio::time::timeout(Duration::from_secs(30), provider_up).await.unwrap();
    assert_eq!((s.state, s.max_jobs, s.active_jobs), (v1::DaemonState::Running as i32, 2, 0));
    assert_eq!(s.providers[0].name, "github:octo-org");
    assert!(s.providers[0].rate_limit_remaining > 0, "{:?}", s.providers[0]);
    assert!(s.containerd.unwrap().healthy && s.data_dir_bytes > 0);

    // A job's transitions reach a watcher in order; its log follows it live.
    let mut first = c.watch_events(v1::WatchEventsRequest {}).await.unwrap().into_inner();
    let script = "echo line-1; sleep 3; echo line-2; sleep 1; echo all-done";
    let (_, job) = fake.queue_script("octo-org/app", "logged", &["self-hosted"], script);
    let mut logs =
        c.get_job_logs(v1::GetJobLogsRequest { id: job.to_string(), follow: true }).await.map(|r| r.into_inner());
    // The job may not be known yet: the log call then says so, and is retried once it is.
    if logs.is_err() {
        let seen = states_until(&mut first, job, |_| true, &d).await;
        assert!(!seen.is_empty());
        logs =
            c.get_job_logs(v1::GetJobLogsRequest { id: job.to_string(), follow: true }).await.map(|r| r.into_inner());
    }
    let mut logs = logs.unwrap();
    let running = states_until(&mut first, job, |s| s == JobState::JobRunning as i32, &d).await;
    // A second client, connecting mid-job, gets the job in its snapshot and sees the rest.
    let mut second = c.watch_events(v1::WatchEventsRequest {}).await.unwrap().into_inner();
    let later = states_until(&mut second, job, |s| s == JobState::Finished as i32, &d).await;
    assert_eq!(later.first(), Some(&(JobState::JobRunning as i32)), "the snapshot has the running job: {later:?}");
    let rest = states_until(&mut first, job, |s| s == JobState::Finished as i32, &d).await;
    let mut all: Vec<i32> = running.into_iter().chain(rest).collect();
    // Other fields change within a state (the exit code is set just before the state): one entry each.
    all.dedup();
    let ranks: Vec<usize> = all.iter().map(|s| rank(*s)).collect();
    assert!(ranks.windows(2).all(|w| w[0] < w[1]), "in order: {all:?}");
    assert!(all.contains(&(JobState::Starting as i32)) && all.contains(&(JobState::Finished as i32)), "{all:?}");
    let mut text = Vec::new();
    while let Some(chunk) = tokio::time::timeout(Duration::from_secs(30), logs.next()).await.unwrap() {
        text.extend(chunk.unwrap().data);
    }
    let text = String::from_utf8_lossy(&text);
    let (a, b, e) = (text.find("line-1").unwrap(), text.find("line-2").unwrap(), text.find("all-done").unwrap());
    assert!(a < b && b < e, "{text}");

    // History and lookups; the forge's conclusion is asked once the job is cleaned up.
    let concluded = async {
        loop {
            let j = c.clone().get_job(v1::GetJobRequest { id: job.to_string() }).await.unwrap().into_inner();
            if !j.conclusion.is_empty() {
                return j.conclusion;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    assert_eq!(tokio::time::timeout(Duration::from_secs(30), concluded).await.unwrap(), "success");
    let got = c.get_job(v1::GetJobRequest { id: format!("github:octo-org#{job}") }).await.unwrap().into_inner();
    assert_eq!((got.repo.as_str(), got.name.as_str(), got.exit_code), ("octo-org/app", "logged", Some(0)));
    assert!(
        got.queued_at.is_some() && got.claimed_at.is_some() && got.started_at.is_some() && got.finished_at.is_some()
    );
    assert!(!got.runner_name.is_empty() && !got.container_id.is_empty() && got.pickup_latency.is_some());
    let all = c.list_jobs(v1::ListJobsRequest { page_size: 10, ..Default::default() }).await.unwrap().into_inner();
    assert!(all.jobs.iter().any(|j| j.forge_job_id == job));
    let e = c.get_job(v1::GetJobRequest { id: "github:octo-org#1".into() }).await.unwrap_err();
    assert_eq!((e.code(), reason_of(&e)), (tonic::Code::NotFound, Some(ErrorReason::JobNotFound)));
    let e = c.get_job(v1::GetJobRequest { id: "not an id".into() }).await.unwrap_err();
    assert_eq!((e.code(), reason_of(&e)), (tonic::Code::InvalidArgument, Some(ErrorReason::InvalidField)));
    let e = c.list_jobs(v1::ListJobsRequest { page_size: 501, ..Default::default() }).await.unwrap_err();
    assert!(e.message().contains("page_size"), "{e:?}");
    let e = c.kill_job(v1::KillJobRequest { id: job.to_string() }).await.unwrap_err();
    assert_eq!((e.code(), reason_of(&e)), (tonic::Code::FailedPrecondition, Some(ErrorReason::JobNotRunning)));
    let e = c.set_credential(v1::SetCredentialRequest::default()).await.unwrap_err();
    assert!(e.message().contains("is not a provider name"), "{e:?}");

    // Kill stops a running job.
    let (_, endless) = fake.queue_script("octo-org/app", "endless", &["self-hosted"], "sleep 600");
    states_until(&mut first, endless, |s| s == JobState::JobRunning as i32, &d).await;
    // Killed once its runner has taken it (else the next runner would take it from the fake).
    let taken = || fake.jobs().iter().any(|j| j["id"] == endless && j["status"] == "in_progress");
    wait_until("the runner to take the endless job", Duration::from_secs(60), taken, &d).await;
    c.kill_job(v1::KillJobRequest { id: endless.to_string() }).await.unwrap();
    states_until(&mut first, endless, |s| s == JobState::Failed as i32, &d).await;
    let killed = c.get_job(v1::GetJobRequest { id: endless.to_string() }).await.unwrap().into_inner();
    assert_eq!(killed.conclusion, "killed");
    fake.lose_busy_runners();

    // Pause holds a queued job; resume runs it. Both answer with the new state.
    let s = c.pause(v1::PauseRequest {}).await.unwrap().into_inner();
    assert_eq!(s.state, v1::DaemonState::Paused as i32);
    let (_, held) = fake.queue_script("octo-org/app", "held", &["self-hosted"], "echo held");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let h = c.get_job(v1::GetJobRequest { id: held.to_string() }).await.unwrap().into_inner();
    assert_eq!(h.state, JobState::Queued as i32, "paused: the job waits");
    let s = c.resume(v1::ResumeRequest {}).await.unwrap().into_inner();
    assert_eq!(s.state, v1::DaemonState::Running as i32);
    states_until(&mut first, held, |s| s == JobState::Finished as i32, &d).await;

    // The CLI, in text and JSON.
    let ok = |args: &[&str]| {
        let out = d.ctl(args);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let status = ok(&["status"]);
    assert!(
        status.contains("running") && status.contains("github:octo-org") && status.contains("connected"),
        "{status}"
    );
    let table = ok(&["jobs", "--all"]);
    assert!(
        table.contains("ID") && table.contains(&format!("github:octo-org#{job}")) && table.contains("finished"),
        "{table}"
    );
    let listed: serde_json::Value = serde_json::from_str(&ok(&["--json", "jobs", "--all"])).unwrap();
    assert!(listed.as_array().unwrap().iter().any(|j| j["forge_job_id"] == job && j["state"] == "finished"));
    let detail = ok(&["job", &job.to_string()]);
    assert!(detail.contains("octo-org/app") && detail.contains("exit code:  0"), "{detail}");
    assert!(ok(&["logs", &job.to_string()]).contains("all-done"));
    let provs: serde_json::Value = serde_json::from_str(&ok(&["--json", "providers"])).unwrap();
    assert_eq!(provs[0]["name"], "github:octo-org");
    let tested = ok(&["providers", "--test"]);
    assert!(tested.contains("github:octo-org: ok:"), "{tested}");
    let e = c.test_provider(v1::TestProviderRequest { name: "github:nobody".into() }).await.unwrap_err();
    assert_eq!((e.code(), reason_of(&e)), (tonic::Code::NotFound, Some(ErrorReason::ProviderNotFound)));
    fake.deny("/repos/octo-org/app/actions/runs", "actions=read");
    let t = c.test_provider(v1::TestProviderRequest { name: "github:octo-org".into() }).await.unwrap().into_inner();
    assert_eq!(t.missing_permissions, vec!["Actions: read on octo-org/app (GitHub accepts: actions=read)"]);
    let out = d.ctl(&["providers", "--test"]);
    assert_eq!(out.status.code(), Some(1), "a failing check fails the command");
    assert!(String::from_utf8_lossy(&out.stdout).contains("missing: Actions: read on octo-org/app"));
    fake.state.lock().unwrap().denied.clear();
    let out = d.ctl(&["job", "999999"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no job 999999"));

    // Reload: what can change applies at once, the rest is named; a bad file changes nothing.
    let text = std::fs::read_to_string(&d.config).unwrap();
    std::fs::write(&d.config, text.replace("max_concurrent = 2", "max_concurrent = 3\nsweep_interval = \"30s\""))
        .unwrap();
    let r = c.reload_config(v1::ReloadConfigRequest {}).await.unwrap().into_inner();
    assert_eq!(
        (r.applied, r.needs_restart),
        (vec!["scheduler.max_concurrent".to_string()], vec!["scheduler.sweep_interval".to_string()])
    );
    assert_eq!(c.status(v1::StatusRequest {}).await.unwrap().into_inner().max_jobs, 3);
    std::fs::write(&d.config, text.replace("max_concurrent = 2", "max_concurrent = \"many\"")).unwrap();
    let e = c.reload_config(v1::ReloadConfigRequest {}).await.unwrap_err();
    assert_eq!(reason_of(&e), Some(ErrorReason::InvalidConfig), "{e:?}");
    assert!(e.message().contains("max_concurrent"), "{e:?}");
    std::fs::write(&d.config, &text).unwrap();
    assert!(ok(&["reload"]).contains("applied: scheduler.max_concurrent"));
    assert_eq!(c.status(v1::StatusRequest {}).await.unwrap().into_inner().max_jobs, 2);

    // Job settings: read, refused by field, refused as a whole (a webhook address in use: the file is
    // left as it was), saved and applied at once (the listener is bound and, when cleared, closed).
    let settings = c.get_job_settings(v1::GetJobSettingsRequest {}).await.unwrap().into_inner();
    assert_eq!((settings.max_concurrent, settings.config_path.as_str()), (2, d.config.to_str().unwrap()));
    let save = |s: v1::JobSettings| v1::SaveJobSettingsRequest { settings: Some(s) };
    let bad = v1::JobSettings { max_concurrent: 0, ..settings.clone() };
    let e = c.save_job_settings(save(bad)).await.unwrap_err();
    assert_eq!(reason_of(&e), Some(ErrorReason::InvalidField), "{e:?}");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let before = std::fs::read_to_string(&d.config).unwrap();
    let busy = v1::JobSettings { webhook_listen: taken.local_addr().unwrap().to_string(), ..settings.clone() };
    let e = c.save_job_settings(save(busy)).await.unwrap_err();
    assert_eq!(reason_of(&e), Some(ErrorReason::InvalidConfig), "{e:?}");
    assert!(e.message().contains("cannot listen"), "{e:?}");
    assert_eq!(std::fs::read_to_string(&d.config).unwrap(), before, "a refused save leaves the file");
    let hook_addr = format!("127.0.0.1:{}", free_port());
    let three = v1::JobSettings { max_concurrent: 3, webhook_listen: hook_addr.clone(), ..settings.clone() };
    let r = c.save_job_settings(save(three)).await.unwrap().into_inner();
    assert!(r.note.contains("in use now"), "{}", r.note);
    assert_eq!(r.settings.map(|s| (s.max_concurrent, s.webhook_listen)), Some((3, hook_addr.clone())));
    assert_eq!(c.status(v1::StatusRequest {}).await.unwrap().into_inner().max_jobs, 3);
    let answers = |addr: &str| http_post(addr, "/hooks/github/nobody", &[], b"{}").ok();
    assert_eq!(answers(&hook_addr), Some(404), "the webhook address is served at once");
    // The same port on every address of the host: the daemon lets its own listener go first.
    let port = hook_addr.rsplit(':').next().unwrap().to_string();
    let everywhere = v1::JobSettings { webhook_listen: format!("0.0.0.0:{port}"), ..settings.clone() };
    let r = c.save_job_settings(save(everywhere)).await.unwrap().into_inner();
    assert_eq!(r.settings.map(|s| s.webhook_listen), Some(format!("0.0.0.0:{port}")));
    assert_eq!(answers(&hook_addr), Some(404), "served again");
    c.save_job_settings(save(settings.clone())).await.unwrap();
    let closed = || std::net::TcpStream::connect(&hook_addr).is_err();
    wait_until("the webhook listener to close", Duration::from_secs(10), closed, &d).await;
    assert!(!std::fs::read_to_string(&d.config).unwrap().contains("listen"), "the address is gone from the file");

    // Doctor sees the machine, the daemon and the forge.
    let doctor = ok(&["doctor"]);
    for line in ["ok    containerd ", "ok    iptables", "ok    daemon", "ok    github:octo-org"] {
        assert!(doctor.contains(line), "{line:?} in:\n{doctor}");
    }
    let checks: serde_json::Value = serde_json::from_str(&ok(&["--json", "doctor"])).unwrap();
    assert!(checks.as_array().unwrap().iter().all(|c| c["status"] != "fail"), "{checks:#}");

    // Drain through the CLI: it returns once the daemon has exited.
    let drained = ok(&["drain", "--wait"]);
    assert!(drained.contains("the daemon has exited"), "{drained}");
    let mut child = d.child.take().unwrap();
    let code = tokio::task::block_in_place(|| child.wait().unwrap().code());
    assert_eq!(code, Some(0), "{}", d.log());
    assert!(!d.socket().exists(), "the socket is removed at exit");
    d.assert_clean();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_socket_is_for_root_and_the_configured_group_only() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let _s = serial();
    let fake = FakeGithub::start("ghp_x").await;
    // `users` (gid 100) stands in for the group a desktop user is put in.
    let mut d = Daemon::prepare(&fake, 1, "[control]\ngroup = \"users\"");
    d.start();
    wait_until("the control socket", Duration::from_secs(60), || d.socket().exists(), &d).await;
    let meta = std::fs::metadata(d.socket()).unwrap();
    assert_eq!((meta.permissions().mode() & 0o777, meta.gid()), (0o660, 100));
    // Another uid runs the CLI: refused without the group, served with it. (A copy of the binary that
    // uid can execute.)
    let bin_dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(bin_dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let bin = bin_dir.path().join("ephemerd");
    std::fs::copy(ephemerd_bin(), &bin).unwrap();
    let connect = |groups: &str| {
        std::process::Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", &format!("--groups={groups}")])
            .arg(&bin)
            .arg("--socket")
            .arg(d.socket())
            .arg("status")
            .env("EPHEMERD_DATA_DIR", bin_dir.path())
            .output()
            .unwrap()
    };
    let refused = connect("65534");
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(refused.status.code() == Some(69) && err.contains("Permission denied"), "{err}");
    let served = connect("65534,100");
    assert!(served.status.success(), "{}", String::from_utf8_lossy(&served.stderr));
    assert!(String::from_utf8_lossy(&served.stdout).contains("github:octo-org"));

    assert_eq!(d.stop(), Some(0), "{}", d.log());
    d.assert_clean();
}

/// Every file under `dir` that contains `needle`.
fn files_containing(dir: &std::path::Path, needle: &str) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let (path, meta) = (e.path(), e.metadata().unwrap());
            if meta.is_dir() {
                stack.push(path);
            } else if meta.is_file() {
                let bytes = std::fs::read(&path).unwrap_or_default();
                if bytes.windows(needle.len()).any(|w| w == needle.as_bytes()) {
                    found.push(path);
                }
            }
        }
    }
    found
}

/// Waits until the provider `name` is listed with `connected` (and, if not, an error containing `error`).
async fn provider_state(c: &mut ephemerd_proto::Client, name: &str, connected: bool, error: &str, d: &Daemon) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let ps = c.list_providers(v1::ListProvidersRequest {}).await.unwrap().into_inner().providers;
        if ps.iter().any(|p| p.name == name && p.connected == connected && p.last_error.contains(error)) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{name} never became {connected}/{error:?}: {ps:#?}\n{}",
            d.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn credentials_live_in_the_keyring_only_apply_at_once_and_serve_after_a_restart() {
    use ephemerd_e2e::secret_service::SecretService;
    let _s = serial();
    let keyring = SecretService::start();
    let fake = FakeGithub::start(TOKEN).await;
    let mut d = Daemon::prepare(&fake, 1, "");
    d.env = keyring.env();
    d.token = false;

    // No token and nothing stored: the daemon runs, and says what the forge lacks.
    d.start();
    wait_until("the control socket", Duration::from_secs(60), || d.socket().exists(), &d).await;
    let mut c = client(&d).await;
    provider_state(&mut c, "github:octo-org", false, "ephemerd credential set github:octo-org", &d).await;
    let status = d.ctl(&["status"]);
    assert!(
        String::from_utf8_lossy(&status.stdout).contains("no credentials"),
        "{}",
        String::from_utf8_lossy(&status.stdout)
    );

    // Stored through the CLI (the token read on stdin), it is used at once.
    let out = d.ctl_with_input(&["credential", "set", "github:octo-org"], &format!("{TOKEN}\n"));
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("stored in the OS keyring and in use"));
    provider_state(&mut c, "github:octo-org", true, "", &d).await;
    let polled = || fake.seen().iter().any(|r| r.path_and_query.contains("/actions/runs") && r.status == 200);
    wait_until("a poll with the stored token", Duration::from_secs(30), polled, &d).await;

    let e = c
        .set_credential(v1::SetCredentialRequest { provider: "not a provider".into(), secret: "x".into() })
        .await
        .unwrap_err();
    assert_eq!((e.code(), reason_of(&e)), (tonic::Code::InvalidArgument, Some(ErrorReason::InvalidField)));
    let e = c
        .set_credential(v1::SetCredentialRequest { provider: "github:octo-org".into(), secret: " ".into() })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument, "an empty secret is refused");

    // A forge added to the config joins at a reload, with its own stored credential.
    let text = std::fs::read_to_string(&d.config).unwrap();
    let second = format!(
        "\n[[github]]\nowner = \"other-org\"\nrepos = [\"svc\"]\napi_url = \"{}\"\npoll_interval = \"1s\"\n",
        fake.url()
    );
    std::fs::write(&d.config, format!("{text}{second}")).unwrap();
    let r = c.reload_config(v1::ReloadConfigRequest {}).await.unwrap().into_inner();
    assert_eq!(r.applied, vec!["github".to_string()]);
    provider_state(&mut c, "github:other-org", false, "credential set github:other-org", &d).await;
    let out = d.ctl_with_input(&["credential", "set", "github:other-org"], &format!("{TOKEN}\n"));
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    provider_state(&mut c, "github:other-org", true, "", &d).await;
    assert_eq!(d.stop(), Some(0), "{}", d.log());

    // Restarted without any token: the keyring's serve.
    d.start();
    wait_until("the control socket", Duration::from_secs(60), || d.socket().exists(), &d).await;
    let mut c = client(&d).await;
    provider_state(&mut c, "github:octo-org", true, "", &d).await;

    // Deleted, the forge stops being used at once.
    let out = d.ctl(&["--json", "credential", "delete", "github:octo-org"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["existed"], true);
    provider_state(&mut c, "github:octo-org", false, "no credentials", &d).await;
    assert_eq!(d.stop(), Some(0), "{}", d.log());

    // The token is in no file of the data dir or the config dir, and in no log.
    let config_dir = d.config.parent().unwrap().to_path_buf();
    assert!(files_containing(d.data.path(), TOKEN).is_empty(), "{:?}", files_containing(d.data.path(), TOKEN));
    assert!(files_containing(&config_dir, TOKEN).is_empty());
    assert!(!d.log().contains(TOKEN));
    d.assert_clean();
}

//! The tray app end to end, in a real window: under Xvfb, the built `ephemerd-tray` driven over WebDriver
//! (tauri-driver + WebKitWebDriver), in user mode (it runs `ephemerd serve` itself) with the real daemon,
//! containerd, a real Secret Service and the fake GitHub. A desktop user's path: connect a forge in
//! Settings (the token lands in the keyring, in no file), watch a job go running → succeeded with its log,
//! pause from the window, set how jobs run and take webhooks (listener and secret set in the window), and
//! see the app restart a daemon that was killed. Screenshots of each window
//! are saved under `<target>/screenshots/` for a reviewer.

#![allow(clippy::await_holding_lock)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ephemerd_e2e::daemon::*;
use ephemerd_e2e::secret_service::SecretService;
use ephemerd_e2e::webdriver::{Driver, Session, Xvfb};
use ephemerd_e2e::*;

const S: Duration = Duration::from_secs(1);
const HOOK_SECRET: &str = "hook-secret-from-the-window";

fn screenshots() -> PathBuf {
    // ephemerd_bin() is <target>/debug/ephemerd.
    ephemerd_bin().parent().and_then(Path::parent).unwrap().join("screenshots")
}

/// The pids of `ephemerd serve` processes whose environment names `data_dir`.
fn daemons_of(data_dir: &Path) -> Vec<i32> {
    let needle = format!("EPHEMERD_DATA_DIR={}", data_dir.display());
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else { continue };
        let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        let args: Vec<&[u8]> = cmd.split(|b| *b == 0).collect();
        if args.len() < 2 || !args[0].ends_with(b"ephemerd") || args[1] != b"serve" {
            continue;
        }
        let env = std::fs::read(e.path().join("environ")).unwrap_or_default();
        if env.split(|b| *b == 0).any(|v| v == needle.as_bytes()) {
            out.push(pid);
        }
    }
    out
}

fn files_containing(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    let mut hits = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let Ok(m) = e.metadata() else { continue };
            if m.is_dir() {
                stack.push(e.path());
            } else if m.is_file() && m.len() < (64 << 20) {
                let data = std::fs::read(e.path()).unwrap_or_default();
                if data.windows(needle.len()).any(|w| w == needle) {
                    hits.push(e.path());
                }
            }
        }
    }
    hits
}

/// Stops the daemons the app started (as systemd would: SIGTERM drains, a second one stops the jobs,
/// SIGKILL last), then removes what they left. Also on a failed test, before anything else is dropped.
struct AppDaemons<'a>(&'a Daemon);

impl AppDaemons<'_> {
    fn stop(&self) {
        let d = self.0;
        for (sig, wait) in [
            (nix::sys::signal::Signal::SIGTERM, 30),
            (nix::sys::signal::Signal::SIGTERM, 30),
            (nix::sys::signal::Signal::SIGKILL, 10),
        ] {
            let pids = daemons_of(d.data.path());
            if pids.is_empty() {
                break;
            }
            for pid in pids {
                let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig);
            }
            let deadline = Instant::now() + Duration::from_secs(wait);
            while !daemons_of(d.data.path()).is_empty() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(250));
            }
        }
    }
}

impl Drop for AppDaemons<'_> {
    fn drop(&mut self) {
        if !daemons_of(self.0.data.path()).is_empty() {
            self.stop();
            let _ = self.0.ctl(&["cleanup"]);
        }
    }
}

/// Fills Settings' connect-forge form for the fake GitHub (octo-org/app, polled every second).
fn fill_forge(session: &Session, fake: &ephemerd_e2e::fake_github::FakeGithub) {
    session.fill("#forge-url", &fake.url()).unwrap();
    session.fill("#forge-owner", "octo-org").unwrap();
    session.fill("#forge-repos", "app").unwrap();
    session.fill("#forge-token", TOKEN).unwrap();
    session.fill("#forge-poll", "1s").unwrap();
}

fn status_json(d: &Daemon) -> serde_json::Value {
    let out = d.ctl(&["--json", "status"]);
    serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null)
}

struct Shots<'a> {
    s: &'a Session,
}

impl Shots<'_> {
    fn take(&self, name: &str) {
        let to = screenshots().join(format!("tray-{name}.png"));
        // A screenshot is for a reviewer, not an assertion: one that WebKitWebDriver never takes is
        // reported (the test's output says which) and the test goes on.
        let mut last = None;
        for _ in 0..2 {
            match self.s.screenshot(&to) {
                Ok(()) => {
                    eprintln!("screenshot: {}", to.display());
                    return;
                }
                Err(e) => {
                    eprintln!("screenshot {name}: {e:#}; trying again");
                    last = Some(e);
                }
            }
        }
        if let Some(e) = last {
            eprintln!("warning: no screenshot {name}: {e:#}");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_desktop_user_connects_a_forge_and_watches_a_job_in_the_window() {
    let _s = serial();
    let (fake, port) = fake_for_runners().await;
    let d = Daemon::prepare_bare(port);
    let daemons = AppDaemons(&d);
    let keyring = SecretService::start();
    let x = Xvfb::start().unwrap();
    let app_dir = tempfile::tempdir().unwrap();
    // User mode (the app runs the daemon), onboarding not done yet: the app opens at the onboarding.
    std::fs::write(app_dir.path().join("settings.json"), r#"{"mode":"user","notifications":true,"onboarded":false}"#)
        .unwrap();
    let mut env = keyring.env();
    env.extend([
        ("DISPLAY".to_string(), x.display.clone()),
        ("EPHEMERD_DATA_DIR".into(), d.data.path().display().to_string()),
        ("EPHEMERD_CONFIG".into(), d.config.display().to_string()),
        ("EPHEMERD_BIN".into(), ephemerd_bin().display().to_string()),
        ("EPHEMERD_TRAY_DIR".into(), app_dir.path().display().to_string()),
        ("EPHEMERD_LOG".into(), "ephemerd=debug".into()),
        ("NO_AT_BRIDGE".into(), "1".into()),
        ("WEBKIT_DISABLE_COMPOSITING_MODE".into(), "1".into()),
    ]);
    let driver_log = app_dir.path().join("driver.log");
    let driver = Driver::start(&env, &driver_log).unwrap();
    let tray = ephemerd_bin().with_file_name("ephemerd-tray");
    assert!(tray.is_file(), "{} is missing: cargo build -p ephemerd-tray", tray.display());
    let session = driver.session(&tray, &["--show"]).unwrap();
    let shots = Shots { s: &session };
    let daemon_log = || std::fs::read_to_string(app_dir.path().join("daemon.log")).unwrap_or_default();
    let result = std::panic::AssertUnwindSafe(async {
        // The app started its own daemon and connected to it.
        session.wait_for("#onboarding", 30 * S).unwrap();
        session.wait_for("#health[data-state='connected']", 90 * S).unwrap_or_else(|e| {
            panic!(
                "{e}\ndaemon log:\n{}\ndriver log:\n{}",
                daemon_log(),
                std::fs::read_to_string(&driver_log).unwrap_or_default()
            )
        });
        assert_eq!(daemons_of(d.data.path()).len(), 1, "the app runs one daemon");
        shots.take("onboarding");

        // Settings: connect the (fake) GitHub with a token; test first, then save.
        session.click("#nav-settings").unwrap();
        session.wait_for("#settings", 10 * S).unwrap();
        fill_forge(&session, &fake);
        session.click("#forge-test").unwrap();
        session.wait_text("#forge-test-result", 30 * S, |t| t.contains("Connection works")).unwrap();
        session.click("#forge-save").unwrap();
        session.wait_text("#forge-save-result", 30 * S, |t| t.contains("github:octo-org")).unwrap();
        session.wait_text("li[data-forge='github:octo-org']", 30 * S, |t| t.contains("Stored in keychain")).unwrap();
        assert_eq!(session.property("#forge-token", "value"), Some(serde_json::json!("")), "the secret is cleared");
        shots.take("settings");
        // The token is in the keyring, and in no file: not the daemon's, not the app's, not the config.
        let config = std::fs::read_to_string(&d.config).unwrap();
        assert!(config.contains("owner = \"octo-org\""), "{config}");
        for dir in [d.data.path(), app_dir.path(), keyring.home.path().join("data/ephemerd").as_path()] {
            let hits = files_containing(dir, TOKEN.as_bytes());
            assert!(hits.is_empty(), "the token is written in {hits:?}");
        }

        // A job queued at the forge shows up and runs, live, with its log.
        let (_, job) = fake.queue_script(
            "octo-org/app",
            "build",
            &["self-hosted"],
            "echo hello-from-the-window-test; sleep 4; echo done",
        );
        let id = format!("github:octo-org#{job}");
        session.click("#nav-jobs").unwrap();
        let row = format!("tr[data-job-id='{id}']");
        session.wait_for(&format!("{row}[data-state='running']"), 90 * S).unwrap();
        shots.take("jobs-running");
        session.click(&format!("{row} td.name")).unwrap();
        session.wait_for("#job-detail", 10 * S).unwrap();
        session.wait_text("#job-log", 60 * S, |t| t.contains("hello-from-the-window-test")).unwrap();
        shots.take("job-detail-running");
        session.wait_text("#job-state", 90 * S, |t| t.contains("succeeded")).unwrap();
        session.wait_text("#job-log", 30 * S, |t| t.contains("done")).unwrap();
        shots.take("job-detail");
        session.click("#nav-jobs").unwrap();
        session.wait_text(&format!("{row} td.state"), 30 * S, |t| t.contains("succeeded")).unwrap();
        shots.take("jobs");

        // Pause from the window: the daemon reports paused; resume again.
        session.click("#pause-toggle").unwrap();
        session.wait_text("#pause-toggle", 10 * S, |t| t.contains("Resume")).unwrap();
        assert_eq!(status_json(&d)["state"], "paused", "the daemon says paused");
        shots.take("paused");
        session.click("#pause-toggle").unwrap();
        session.wait_text("#pause-toggle", 10 * S, |t| t.contains("Pause")).unwrap();
        assert_eq!(status_json(&d)["state"], "running");

        // Settings → Jobs: three jobs at once and an image for `big` jobs, saved into the config file and
        // in use at once (the daemon reports it).
        session.click("#nav-settings").unwrap();
        session.wait_for("#jobs-max", 30 * S).unwrap();
        session.fill("#jobs-max", "3").unwrap();
        session.click("#profile-add").unwrap();
        session.fill(".profile[data-index='0'] .profile-labels", "big, x64").unwrap();
        session.fill(".profile[data-index='0'] .profile-image", "docker.io/library/debian:bookworm").unwrap();
        session.click("#jobs-save").unwrap();
        session.wait_text("#jobs-save-result", 30 * S, |t| t.contains("in use now")).unwrap();
        assert_eq!(status_json(&d)["max_jobs"], 3, "the daemon runs three at once");
        let config = std::fs::read_to_string(&d.config).unwrap();
        assert!(config.contains("max_concurrent = 3"), "{config}");
        assert!(config.contains("labels = [\"big\", \"x64\"]"), "{config}");
        assert!(config.contains("owner = \"octo-org\""), "the forge's section is kept: {config}");
        session.script("document.querySelector('#job-settings').scrollIntoView(); return 1;").unwrap();
        shots.take("settings-jobs");

        // Webhooks from the window: a webhook address (listened on at once, no restart), then the forge
        // saved again with webhooks on and their secret (into the keyring, never a file). A delivery
        // signed with it is taken and its job runs; one signed otherwise is refused.
        let hook_addr = format!("127.0.0.1:{}", free_port());
        session.fill("#jobs-webhook", &hook_addr).unwrap();
        session.click("#jobs-save").unwrap();
        let deadline = Instant::now() + 30 * S;
        while std::net::TcpStream::connect(&hook_addr).is_err() {
            assert!(Instant::now() < deadline, "the daemon does not listen on {hook_addr}; {}", daemon_log());
            tokio::time::sleep(S / 4).await;
        }
        // Edited in place: the saved settings come back (no token: it stays stored).
        session.click("li[data-forge='github:octo-org'] .edit").unwrap();
        session.wait_for("#connect-forge[data-editing='octo-org']", 10 * S).unwrap();
        assert_eq!(session.property("#forge-repos", "value"), Some(serde_json::json!("app")));
        assert_eq!(session.property("#forge-poll", "value"), Some(serde_json::json!("1s")));
        assert_eq!(session.property("#forge-token", "value"), Some(serde_json::json!("")));
        session.click("#forge-webhook").unwrap();
        session.fill("#forge-webhook-secret", HOOK_SECRET).unwrap();
        session
            .script("document.querySelector('#forge-webhook-secret').scrollIntoView({block: 'center'}); return 1;")
            .unwrap();
        shots.take("settings-edit-forge");
        session.click("#forge-save").unwrap();
        let deadline = Instant::now() + 30 * S;
        while !String::from_utf8_lossy(&d.ctl(&["providers"]).stdout).contains("webhook + poll") {
            assert!(Instant::now() < deadline, "the forge does not take webhooks; {}", daemon_log());
            tokio::time::sleep(S / 4).await;
        }
        assert_eq!(session.property("#forge-webhook-secret", "value"), Some(serde_json::json!("")), "cleared");
        assert!(std::fs::read_to_string(&d.config).unwrap().contains("webhook = true"));
        let (_, hooked) = fake.queue_script("octo-org/app", "hooked", &["self-hosted"], "echo from-a-webhook");
        let body = fake.workflow_job_delivery(hooked, "queued");
        let post = |secret: &str, delivery: &str| {
            let sig = ephemerd::forge::github::webhook::sign(secret.as_bytes(), body.as_bytes());
            let h =
                [("X-GitHub-Event", "workflow_job"), ("X-GitHub-Delivery", delivery), ("X-Hub-Signature-256", &sig)];
            http_post(&hook_addr, "/hooks/github/octo-org", &h, body.as_bytes()).unwrap()
        };
        assert_eq!(post("not the secret", "w-1"), 401, "a delivery signed otherwise is refused");
        assert_eq!(post(HOOK_SECRET, "w-2"), 202, "the delivery is taken");
        let hooked_row = format!("tr[data-job-id='github:octo-org#{hooked}']");
        session.click("#nav-jobs").unwrap();
        session.wait_text(&format!("{hooked_row} td.state"), 120 * S, |t| t.contains("succeeded")).unwrap();
        let took = format!("job={hooked}");
        let hooked_log = daemon_log();
        assert!(
            hooked_log.lines().any(|l| l.contains("job delivered by webhook") && l.contains(&took)),
            "the job came by webhook, not only by the safety poll:\n{hooked_log}"
        );

        // Kill the daemon: the app notices and starts it again.
        let before = daemons_of(d.data.path());
        assert_eq!(before.len(), 1);
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(before[0]), nix::sys::signal::Signal::SIGKILL).unwrap();
        let deadline = Instant::now() + 60 * S;
        loop {
            let now = daemons_of(d.data.path());
            if now.len() == 1 && now != before && session.find("#health[data-state='connected']").is_some() {
                break;
            }
            assert!(Instant::now() < deadline, "the app did not restart the daemon; daemon log:\n{}", daemon_log());
            tokio::time::sleep(S / 4).await;
        }
        assert_eq!(status_json(&d)["state"], "running", "the new daemon answers");
        shots.take("restarted");

        // The onboarding's test job: a real container, through the daemon.
        session.click("#nav-jobs").unwrap();
        session.script("window.location.hash = '#/onboarding'; return 1;").unwrap();
        session.click("#run-test-job").unwrap();
        session.wait_text("#test-job-result", 90 * S, |t| t.contains("Hello from an ephemerd test job")).unwrap();
        shots.take("onboarding-test-job");

        // Remove the forge (asked in the window first): gone from the daemon, the config and the keyring.
        session.click("#nav-settings").unwrap();
        session.click("li[data-forge='github:octo-org'] .remove").unwrap();
        session.click("#confirm-ok").unwrap();
        session.wait_gone("li[data-forge='github:octo-org']", 30 * S).unwrap();
        assert!(!std::fs::read_to_string(&d.config).unwrap().contains("octo-org"));
        let providers = String::from_utf8_lossy(&d.ctl(&["providers"]).stdout).to_string();
        assert!(!providers.contains("github:octo-org"), "{providers}");
        for name in ["github:octo-org", "github:octo-org/webhook"] {
            let gone = d.ctl(&["--json", "credential", "delete", name]);
            let said: serde_json::Value = serde_json::from_slice(&gone.stdout).unwrap();
            assert_eq!(said["existed"], false, "the keyring entry {name} went with the forge");
        }
        for dir in [d.data.path(), app_dir.path(), keyring.home.path().join("data/ephemerd").as_path()] {
            let hits = files_containing(dir, HOOK_SECRET.as_bytes());
            assert!(hits.is_empty(), "the webhook secret is written in {hits:?}");
        }
    });
    let outcome = futures::FutureExt::catch_unwind(result).await;
    session.close();
    drop(driver);
    // Stop the app's daemon (nothing runs: SIGTERM's drain ends at once), then check what it left.
    daemons.stop();
    drop(x);
    if let Err(p) = outcome {
        let log = daemon_log();
        let tail: Vec<&str> = log.lines().rev().take(80).collect();
        eprintln!("daemon log (last 80 lines):");
        for l in tail.iter().rev() {
            eprintln!("{l}");
        }
        let driver = std::fs::read_to_string(&driver_log).unwrap_or_default();
        let tail: Vec<&str> = driver.lines().rev().take(40).collect();
        eprintln!("driver and app log (last 40 lines):");
        for l in tail.iter().rev() {
            eprintln!("{l}");
        }
        let _ = d.ctl(&["cleanup"]);
        std::panic::resume_unwind(p);
    }
    d.assert_clean();
}

/// The Linux desktop in service mode: the daemon runs as root (as the system service would, with no
/// session bus), its socket open to the group `users`; the app runs as an ordinary user (uid 65534 in
/// `users`) and connects a forge to it. The token is sealed by systemd-creds, in no file in plain, and a
/// job runs. (Installing the unit through pkexec needs systemd and polkit, which this machine lacks:
/// `tests/cli.rs` checks the install itself.)
#[tokio::test(flavor = "multi_thread")]
async fn an_ordinary_user_connects_a_forge_to_the_system_service() {
    let _s = serial();
    let (fake, port) = fake_for_runners().await;
    let mut d = Daemon::prepare_bare(port);
    let mut cfg = std::fs::read_to_string(&d.config).unwrap();
    cfg.push_str("\n[control]\ngroup = \"users\"\n");
    std::fs::write(&d.config, cfg).unwrap();
    // The service: root, no session bus, no GITHUB_TOKEN.
    d.env.push(("DBUS_SESSION_BUS_ADDRESS".into(), String::new()));
    d.start();
    wait_until("the control socket", 60 * S, || d.socket().exists(), &d).await;
    let x = Xvfb::start().unwrap();
    // The app, as the user: its own copy (root's cache is not theirs to read), run through setpriv.
    let user = tempfile::tempdir().unwrap();
    let home = user.path().join("home");
    let run = user.path().join("run");
    std::fs::create_dir_all(home.join("tray")).unwrap();
    std::fs::create_dir_all(&run).unwrap();
    let app = user.path().join("ephemerd-tray");
    std::fs::copy(ephemerd_bin().with_file_name("ephemerd-tray"), &app).unwrap();
    std::fs::write(home.join("tray/settings.json"), r#"{"mode":"service","notifications":false,"onboarded":true}"#)
        .unwrap();
    let wrapper = user.path().join("as-user.sh");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nexec setpriv --reuid=65534 --regid=65534 --groups=100 env HOME={h} XDG_RUNTIME_DIR={r} \
             EPHEMERD_TRAY_DIR={h}/tray {app} \"$@\"\n",
            h = home.display(),
            r = run.display(),
            app = app.display()
        ),
    )
    .unwrap();
    let chown = std::process::Command::new("chown").args(["-R", "65534:65534"]).arg(user.path()).status().unwrap();
    assert!(chown.success());
    std::process::Command::new("chmod").args(["755", "-R"]).arg(user.path()).status().unwrap();
    std::process::Command::new("chmod").arg("700").arg(&run).status().unwrap();
    let env = vec![
        ("DISPLAY".to_string(), x.display.clone()),
        ("EPHEMERD_SOCKET".into(), d.socket().display().to_string()),
        ("EPHEMERD_BIN".into(), ephemerd_bin().display().to_string()),
        ("NO_AT_BRIDGE".into(), "1".into()),
        ("WEBKIT_DISABLE_COMPOSITING_MODE".into(), "1".into()),
    ];
    let logs = tempfile::tempdir().unwrap();
    let driver_log = logs.path().join("driver.log");
    let driver = Driver::start(&env, &driver_log).unwrap();
    let session = driver.session(&wrapper, &["--show"]).unwrap();
    let shots = Shots { s: &session };
    let result = std::panic::AssertUnwindSafe(async {
        session.wait_for("#health[data-state='connected']", 60 * S).unwrap_or_else(|e| {
            panic!("{e}\ndriver log:\n{}", std::fs::read_to_string(&driver_log).unwrap_or_default())
        });
        session.click("#nav-settings").unwrap();
        session.wait_for("#settings", 10 * S).unwrap();
        assert_eq!(session.property("#mode-service", "checked"), Some(serde_json::json!(true)));
        fill_forge(&session, &fake);
        session.click("#forge-save").unwrap();
        session.wait_text("#forge-save-result", 30 * S, |t| t.contains("github:octo-org")).unwrap();
        session
            .wait_text("li[data-forge='github:octo-org']", 30 * S, |t| t.contains("Sealed by systemd-creds"))
            .unwrap();
        shots.take("service-mode-settings");
        let sealed: Vec<_> = std::fs::read_dir(d.data.path().join("credentials")).unwrap().flatten().collect();
        assert_eq!(sealed.len(), 1, "one sealed credential");
        for dir in [d.data.path(), user.path()] {
            let hits = files_containing(dir, TOKEN.as_bytes());
            assert!(hits.is_empty(), "the token is written in {hits:?}");
        }
        let (_, job) = fake.queue_script("octo-org/app", "build", &["self-hosted"], "echo from-the-service");
        session.click("#nav-jobs").unwrap();
        let row = format!("tr[data-job-id='github:octo-org#{job}']");
        session.wait_text(&format!("{row} td.state"), 120 * S, |t| t.contains("succeeded")).unwrap();
        shots.take("service-mode-jobs");
    });
    let outcome = futures::FutureExt::catch_unwind(result).await;
    session.close();
    drop(driver);
    drop(x);
    if let Err(p) = outcome {
        eprintln!("daemon log:\n{}", d.log());
        std::panic::resume_unwind(p);
    }
    d.stop();
    d.assert_clean();
}

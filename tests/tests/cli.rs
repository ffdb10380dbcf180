//! The `ephemerd` binary end to end: `ephemerd run` on real workflows (output order, exit codes), bad input
//! (one-line errors, nothing left behind), Ctrl-C, and `kill -9` of the daemon and its containerd.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use ephemerd_e2e::*;

/// A data dir with the job image imported, a config, and a git repository holding workflows.
struct Env {
    data: tempfile::TempDir,
    config: PathBuf,
    repo: tempfile::TempDir,
}

impl Env {
    fn new() -> Env {
        let data = short_tempdir();
        let config = data.path().join("config.toml");
        std::fs::write(&config, config_text("[limits]\nmemory = \"512MiB\"")).unwrap();
        let repo = tempfile::tempdir().unwrap();
        let ok = Command::new("git").arg("-C").arg(repo.path()).args(["init", "-q"]).status().unwrap().success();
        assert!(ok);
        std::fs::write(repo.path().join("marker.txt"), "repository-file-present\n").unwrap();
        let env = Env { data, config, repo };
        let archive = job_image_archive().unwrap();
        let out = env.ephemerd(&["image", "import", archive.to_str().unwrap()]);
        assert!(out.status.success(), "import: {}", String::from_utf8_lossy(&out.stderr));
        env
    }

    fn workflow(&self, name: &str, text: &str) -> PathBuf {
        let dir = self.repo.path().join(".github/workflows");
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    fn ephemerd(&self, args: &[&str]) -> std::process::Output {
        ephemerd(self.data.path(), &self.config, args).unwrap()
    }

    fn spawn(&self, args: &[&str]) -> std::process::Child {
        Command::new(ephemerd_bin())
            .arg("--data-dir")
            .arg(self.data.path())
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// Nothing of ours in the world, and containerd holds nothing of ours either.
    fn assert_clean(&self) {
        let left = leftovers(self.data.path());
        assert!(left.is_empty(), "left behind: {left:#?}");
        let out = self.ephemerd(&["cleanup"]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && text.contains("nothing to clean up"),
            "cleanup found: {text} {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

fn lines_of(child: &mut std::process::Child) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    let out = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for l in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    rx
}

fn wait_for_line(rx: &mpsc::Receiver<String>, needle: &str) -> Vec<String> {
    let mut seen = Vec::new();
    loop {
        match rx.recv_timeout(Duration::from_secs(120)) {
            Ok(l) => {
                let hit = l.contains(needle);
                seen.push(l);
                if hit {
                    return seen;
                }
            }
            Err(e) => panic!("no line with {needle:?} ({e}); saw {seen:#?}"),
        }
    }
}

const WORKFLOW: &str = r#"
name: e2e
env: { LEVEL: workflow, W: from-workflow }
jobs:
  build:
    env: { LEVEL: job, J: from-job }
    steps:
      - uses: actions/checkout@v4
      - name: first
        run: echo "first $LEVEL $W $J"
      - name: second
        env: { LEVEL: step }
        run: |
          echo "second $LEVEL"
          cat marker.txt
          exit 4
      - name: third
        run: echo never-printed
      - name: on-failure
        if: failure()
        run: echo "cleanup ran"
  other:
    steps:
      - run: echo other-job
"#;

#[test]
fn run_prints_steps_in_order_and_exits_with_the_failing_step_code() {
    let _s = serial();
    let env = Env::new();
    let wf = env.workflow("ci.yml", WORKFLOW);
    let out = env.ephemerd(&["run", wf.to_str().unwrap(), "--image", JOB_IMAGE]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "stdout:\n{stdout}\nstderr:\n{stderr}");
    let expected = [
        "○ Step 1/5: Run actions/checkout@v4 (skipped)",
        "▶ Step 2/5: first",
        "first job from-workflow from-job",
        "✓ first",
        "▶ Step 3/5: second",
        "second step",
        "repository-file-present",
        "✗ second failed with exit code 4",
        "○ Step 4/5: third (skipped)",
        "▶ Step 5/5: on-failure",
        "cleanup ran",
        "✓ on-failure",
        "Job `build` failed: step 3 `second` exited with 4",
    ];
    let mut pos = 0;
    let lines: Vec<&str> = stdout.lines().collect();
    for want in expected {
        match lines[pos..].iter().position(|l| l.starts_with(want)) {
            Some(i) => pos += i + 1,
            None => panic!("`{want}` missing or out of order in:\n{stdout}"),
        }
    }
    assert!(!stdout.contains("never-printed"));
    assert!(stderr.contains("warning: `uses:` steps are not run"), "{stderr}");

    // --job picks another job; a passing job exits 0.
    let out = env.ephemerd(&["run", wf.to_str().unwrap(), "--job", "other", "--image", JOB_IMAGE]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("other-job") && stdout.contains("succeeded"), "{stdout}");
    env.assert_clean();
}

fn assert_one_line_error(out: &std::process::Output, code: i32, needles: &[&str]) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "stderr: {stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line expected: {stderr}");
    assert!(lines[0].starts_with("ephemerd: error: "), "{stderr}");
    for n in needles {
        assert!(lines[0].contains(n), "`{n}` not in: {stderr}");
    }
}

#[test]
fn bad_input_gets_a_one_line_error_and_leaves_nothing() {
    let _s = serial();
    let env = Env::new();
    let reg = Registry::start().unwrap();

    let bad = env.workflow("bad.yml", "jobs:\n  a:\n    steps: [\n");
    let out = env.ephemerd(&["run", bad.to_str().unwrap(), "--image", JOB_IMAGE]);
    assert_one_line_error(&out, 2, &["bad.yml", "line"]);

    let good = env.workflow("good.yml", "jobs:\n  a:\n    steps:\n      - run: echo hi\n");
    let out = env.ephemerd(&["run", good.to_str().unwrap(), "--job", "nope", "--image", JOB_IMAGE]);
    assert_one_line_error(&out, 2, &["good.yml", "no job named `nope`", "jobs: a"]);

    let out = env.ephemerd(&["run", "/nonexistent/wf.yml"]);
    assert_one_line_error(&out, 2, &["/nonexistent/wf.yml", "does not exist"]);

    let missing = format!("{}/ephemerd/does-not-exist:1", reg.host());
    let out = env.ephemerd(&["run", good.to_str().unwrap(), "--image", &missing]);
    assert_one_line_error(&out, 125, &[&missing]);

    let closed = format!("127.0.0.1:{}/ephemerd/job:1", free_port());
    let out = env.ephemerd(&["run", good.to_str().unwrap(), "--image", &closed]);
    assert_one_line_error(&out, 125, &[&closed]);

    let out = env.ephemerd(&["image", "import", "/nonexistent.tar"]);
    assert_one_line_error(&out, 2, &["/nonexistent.tar"]);

    let cfg = env.data.path().join("bad.toml");
    std::fs::write(&cfg, "[network]\nsubnet = \"10.0.0.0\"\n").unwrap();
    let out = ephemerd(env.data.path(), &cfg, &["cleanup"]).unwrap();
    assert_one_line_error(&out, 2, &["network.subnet"]);
    std::fs::write(&cfg, "[network]\nbrige = \"x\"\n").unwrap();
    let out = ephemerd(env.data.path(), &cfg, &["cleanup"]).unwrap();
    assert_one_line_error(&out, 2, &["brige", "bad.toml"]);
    env.assert_clean();
}

fn sleeper(env: &Env, tag: u16) -> (std::process::Child, mpsc::Receiver<String>, String) {
    let needle = format!("sleep {}", 1000 + tag % 1000);
    let wf = env.workflow(
        "long.yml",
        &format!("jobs:\n  long:\n    steps:\n      - run: |\n          echo job-started\n          {needle}\n"),
    );
    let mut child = env.spawn(&["run", wf.to_str().unwrap(), "--image", JOB_IMAGE]);
    let rx = lines_of(&mut child);
    wait_for_line(&rx, "job-started");
    for _ in 0..100 {
        if process_running(&needle) {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    (child, rx, needle)
}

fn wait_gone(needle: &str) -> bool {
    for _ in 0..100 {
        if !process_running(needle) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

#[test]
fn ctrl_c_stops_the_job_and_cleans_up() {
    let _s = serial();
    let env = Env::new();
    let (mut child, rx, needle) = sleeper(&env, free_port());
    assert!(process_running(&needle));
    // One ephemerd per data dir: a second one is refused, and says by whom.
    let out = env.ephemerd(&["cleanup"]);
    assert_one_line_error(&out, 125, &["is in use by another ephemerd", &format!("pid {}", child.id())]);
    // Whoever watched the output went away: a closed stderr must not stop ephemerd from cleaning up.
    drop(child.stderr.take());
    drop(rx);
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGINT).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    assert!(wait_gone(&needle), "the job's process is gone");
    env.assert_clean();
}

#[test]
fn kill_9_of_daemon_and_containerd_then_restart_removes_everything() {
    let _s = serial();
    let env = Env::new();
    let (mut child, _rx, needle) = sleeper(&env, free_port());
    let pid_file: &Path = &env.data.path().join("run/containerd.pid");
    let ctr_pid: i32 = std::fs::read_to_string(pid_file).unwrap().trim().parse().unwrap();
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    kill(Pid::from_raw(child.id() as i32), Signal::SIGKILL).unwrap();
    kill(Pid::from_raw(ctr_pid), Signal::SIGKILL).unwrap();
    child.wait().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert!(process_running(&needle), "the job outlives the daemon (its shim survives)");
    assert!(!leftovers(env.data.path()).is_empty(), "the crash leaves resources behind");

    let out = env.ephemerd(&["cleanup"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout} {}", String::from_utf8_lossy(&out.stderr));
    assert!(
        stdout.contains("removed: 1 job(s), 1 container(s), 1 snapshot(s), 1 netns, 1 IP lease(s), 1 rule set(s)"),
        "everything counted: {stdout}"
    );
    assert!(wait_gone(&needle), "the orphaned job process is killed");
    env.assert_clean();
}

#[test]
fn registry_credentials_come_from_the_environment_and_a_refusal_is_one_line() {
    let _s = serial();
    let env = Env::new();
    let reg = Registry::start_with_auth("ci", "s3cret-pw").unwrap();
    let reference = reg.push_archive_as(&job_image_archive().unwrap(), "private/job:1", Some("ci:s3cret-pw")).unwrap();
    std::fs::write(
        &env.config,
        config_text(&format!("[registries.\"{}\"]\nusername = \"ci\"\npassword_env = \"EDT_REGISTRY_PW\"", reg.host())),
    )
    .unwrap();
    let pull = |pw: Option<&str>| {
        let mut cmd = Command::new(ephemerd_bin());
        cmd.arg("--data-dir").arg(env.data.path()).arg("--config").arg(&env.config).args(["image", "pull", &reference]);
        cmd.env_remove("EDT_REGISTRY_PW");
        if let Some(pw) = pw {
            cmd.env("EDT_REGISTRY_PW", pw);
        }
        cmd.stdin(Stdio::null()).output().unwrap()
    };
    let out = pull(None);
    assert_one_line_error(&out, 125, &["EDT_REGISTRY_PW", "is not set"]);
    let out = pull(Some("wrong-password"));
    assert_one_line_error(&out, 125, &[&reference]);
    let stderr = String::from_utf8_lossy(&out.stderr).to_lowercase();
    assert!(stderr.contains("401") || stderr.contains("unauthorized") || stderr.contains("auth"), "{stderr}");
    assert!(!stderr.contains("wrong-password"), "the secret never appears in an error");
    let out = pull(Some("s3cret-pw"));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), reference);
    env.assert_clean();
}

#[test]
fn service_install_writes_a_unit_systemd_accepts_and_uninstall_removes_it() {
    let root = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let config = data.path().join("config.toml");
    std::fs::write(&config, "[scheduler]\ndrain_timeout = \"10m\"\n").unwrap();
    let svc = |args: &[&str]| {
        Command::new(ephemerd_bin())
            .arg("--data-dir")
            .arg(data.path())
            .arg("--config")
            .arg(&config)
            .arg("service")
            .args(args)
            .arg("--root")
            .arg(root.path())
            .output()
            .unwrap()
    };
    let status = svc(&["status"]);
    assert_eq!(status.status.code(), Some(4), "not installed");
    // The tray app installs with its user's group, which may then use the socket.
    let out = svc(&["install", "--control-group", "users"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let cfg = std::fs::read_to_string(&config).unwrap();
    assert!(
        cfg.starts_with("[scheduler]\ndrain_timeout = \"10m\"\n") && cfg.contains("[control]\ngroup = \"users\""),
        "{cfg}"
    );
    let unit = root.path().join("etc/systemd/system/ephemerd.service");
    let text = std::fs::read_to_string(&unit).unwrap();
    assert!(
        text.contains(&format!("ExecStart={} --data-dir {}", ephemerd_bin().display(), data.path().display())),
        "{text}"
    );
    assert!(
        text.contains(&format!("--config {} serve", config.display())) && text.contains("TimeoutStopSec=630"),
        "{text}"
    );
    // systemd itself reads the unit and finds nothing wrong (the binary it names exists).
    let verify = Command::new("systemd-analyze").arg("verify").arg(&unit).output().unwrap();
    assert!(verify.status.success() && verify.stderr.is_empty(), "{}", String::from_utf8_lossy(&verify.stderr));
    // The wants link points at /etc/… as seen from inside the root: look at the link itself.
    let wants = root.path().join("etc/systemd/system/multi-user.target.wants/ephemerd.service");
    assert!(std::fs::symlink_metadata(&wants).is_ok(), "enabled");
    let status = svc(&["status", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(
        (v["installed"].as_bool(), v["enabled"].as_bool(), v["active"].as_bool()),
        (Some(true), Some(true), Some(false))
    );
    assert_eq!(status.status.code(), Some(3), "installed, not running");
    let out = svc(&["uninstall"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        !unit.exists() && !root.path().join("etc/systemd/system/multi-user.target.wants/ephemerd.service").exists()
    );
    assert_eq!(svc(&["status"]).status.code(), Some(4));
}

#[test]
fn an_oom_kill_in_a_continue_on_error_step_does_not_fail_the_job() {
    let _s = serial();
    let env = Env::new();
    let wf = env.workflow(
        "oom.yml",
        "on: push\njobs:\n  build:\n    runs-on: ubuntu-latest\n    steps:\n      - name: hog\n        continue-on-error: true\n        run: tail /dev/zero\n      - name: after\n        run: echo after-the-hog\n",
    );
    let out = env.ephemerd(&["run", wf.to_str().unwrap(), "--image", JOB_IMAGE]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("after-the-hog") && stdout.contains("Job `build` succeeded"), "{stdout}");
    assert!(stdout.contains("OOM killer stopped a process"), "the kill is still said: {stdout}");
    env.assert_clean();
}

#[test]
fn run_in_a_user_namespace_owns_its_workspace() {
    let _s = serial();
    let env = Env::new();
    std::fs::write(&env.config, config_text("[limits]\nmemory = \"512MiB\"\n[security]\nuser_namespace = true"))
        .unwrap();
    let wf = env.workflow(
        "userns.yml",
        "on: push\njobs:\n  build:\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo uid=$(id -u) && touch new-file && mkdir -p out && cat marker.txt && echo wrote-workspace\n",
    );
    let out = env.ephemerd(&["run", wf.to_str().unwrap(), "--image", JOB_IMAGE]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        stdout.contains("uid=0") && stdout.contains("repository-file-present") && stdout.contains("wrote-workspace"),
        "{stdout}"
    );
    env.assert_clean();
}

#[test]
fn a_step_cannot_forge_a_result_or_rewrite_a_later_step() {
    let _s = serial();
    let env = Env::new();
    // Step 1 is hostile: it prints what the host prints for a passing step and for the next step's start,
    // tries to rewrite step 3's script, looks for a driver to read or trace, then fails.
    let wf = env.workflow(
        "forge.yml",
        r#"on: push
jobs:
  build:
    runs-on: ubuntu-latest
    steps:
      - name: forger
        run: |
          printf '\342\234\223 forger (0.0s)\n\342\226\266 Step 3/3: later\n'
          (echo 'echo rewritten-later-ran' > /ephemerd/steps/3.sh) 2>/dev/null && echo rewrote-later || echo later-is-read-only
          touch new-in-workspace && echo workspace-writable
          for p in /proc/[0-9]*; do tr '\0' ' ' < $p/cmdline; echo; done > /tmp/procs
          grep -c . /tmp/procs | sed 's/^/processes=/'
          grep -q 'steps/3' /tmp/procs && echo saw-a-driver || echo no-driver
          exit 5
      - name: on-failure
        if: failure()
        run: echo failure-seen
      - name: later
        run: echo later-ran
"#,
    );
    let out = env.ephemerd(&["run", wf.to_str().unwrap(), "--image", JOB_IMAGE]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(5), "the step's own code: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("✗ forger failed with exit code 5"), "{stdout}");
    assert!(stdout.contains("✓ forger (0.0s)"), "the forged line is only output: {stdout}");
    assert!(stdout.contains("later-is-read-only") && !stdout.contains("rewrote-later"), "{stdout}");
    assert!(stdout.contains("workspace-writable"), "the twin: the step writes where it may: {stdout}");
    assert!(stdout.contains("no-driver") && !stdout.contains("saw-a-driver"), "{stdout}");
    let procs: usize =
        stdout.lines().find_map(|l| l.strip_prefix("processes=")).and_then(|n| n.trim().parse().ok()).unwrap_or(0);
    assert!(procs >= 3, "the twin: the step sees the job's processes (keeper, its shell, grep): {stdout}");
    assert!(stdout.contains("failure-seen"), "the host saw the failure: {stdout}");
    assert!(stdout.contains("○ Step 3/3: later (skipped)") && !stdout.contains("later-ran"), "{stdout}");
    assert!(stdout.contains("Job `build` failed: step 1 `forger` exited with 5"), "{stdout}");
    env.assert_clean();
}

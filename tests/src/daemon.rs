//! The real `ephemerd serve` for end-to-end tests: a data dir with the job image imported, a config
//! pointing at a fake GitHub, the daemon as a child process logging to `serve.log`, and checks that it
//! left nothing behind.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::fake_github::FakeGithub;
use crate::*;

pub const TOKEN: &str = "ghp_serveTestToken000000000000000";

pub fn runner_tree() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/runner")
}

pub struct Daemon {
    pub data: tempfile::TempDir,
    pub config: PathBuf,
    pub child: Option<Child>,
    /// Extra environment for every start.
    pub env: Vec<(String, String)>,
    /// Give the daemon the fake's token in GITHUB_TOKEN.
    pub token: bool,
}

impl Daemon {
    pub fn prepare(fake: &FakeGithub, port: u16, extra: &str) -> Daemon {
        Self::prepare_with(fake, port, extra, "")
    }

    pub fn prepare_with(fake: &FakeGithub, port: u16, extra: &str, github_extra: &str) -> Daemon {
        let runner = format!("[runner]\ndir = \"{}\"", runner_tree().display());
        Self::prepare_full(fake, port, &runner, extra, github_extra)
    }

    pub fn prepare_full(fake: &FakeGithub, port: u16, runner: &str, extra: &str, github_extra: &str) -> Daemon {
        Self::prepare_raw(&format!("allow_host_ports = [{port}]"), &fake.url(), runner, extra, github_extra)
    }

    /// `network`: extra keys of the [network] section; `api_url`: where the daemon finds the fake.
    pub fn prepare_raw(network: &str, api_url: &str, runner: &str, extra: &str, github_extra: &str) -> Daemon {
        let data = short_tempdir();
        let config = data.path().join("config.toml");
        let text = config_text(&format!(
            "{network}\n[image]\ndefault = \"{JOB_IMAGE}\"\n{runner}\n[limits]\nmemory = \"512MiB\"\n{extra}\n[[github]]\nowner = \"octo-org\"\nrepos = [\"app\"]\napi_url = \"{api_url}\"\npoll_interval = \"1s\"\n{github_extra}\n"
        ));
        std::fs::write(&config, text).unwrap();
        let out = ephemerd(data.path(), &config, &["image", "import", job_image_archive().unwrap().to_str().unwrap()])
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        Daemon { data, config, child: None, env: Vec::new(), token: true }
    }

    /// A data dir and config with no forge at all (the settings window adds one), for a daemon that
    /// jobs reach the fake at `port` from.
    pub fn prepare_bare(port: u16) -> Daemon {
        let data = short_tempdir();
        let config = data.path().join("config.toml");
        let runner = format!("[runner]\ndir = \"{}\"", runner_tree().display());
        let text = config_text(&format!(
            "allow_host_ports = [{port}]\n[image]\ndefault = \"{JOB_IMAGE}\"\n{runner}\n[limits]\nmemory = \"512MiB\"\n"
        ));
        std::fs::write(&config, text).unwrap();
        let out = ephemerd(data.path(), &config, &["image", "import", job_image_archive().unwrap().to_str().unwrap()])
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        Daemon { data, config, child: None, env: Vec::new(), token: false }
    }

    pub fn start(&mut self) {
        self.start_with_env(&[]);
    }

    pub fn start_with_env(&mut self, env: &[(&str, &str)]) {
        let log = std::fs::File::create(self.data.path().join("serve.log")).unwrap();
        let mut cmd = Command::new(ephemerd_bin());
        cmd.envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        if self.token {
            cmd.env("GITHUB_TOKEN", TOKEN);
        } else {
            cmd.env_remove("GITHUB_TOKEN");
        }
        let child = cmd
            .envs(env.iter().copied())
            .arg("--data-dir")
            .arg(self.data.path())
            .arg("--config")
            .arg(&self.config)
            .args(["--log-level", "ephemerd=debug", "serve"])
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap();
        self.child = Some(child);
    }

    /// The daemon's control socket.
    pub fn socket(&self) -> PathBuf {
        self.data.path().join("run/control.sock")
    }

    /// Runs an `ephemerd` client command against this daemon.
    pub fn ctl(&self, args: &[&str]) -> std::process::Output {
        ephemerd(self.data.path(), &self.config, args).unwrap()
    }

    /// Runs an `ephemerd` client command with `stdin` as its input.
    pub fn ctl_with_input(&self, args: &[&str], stdin: &str) -> std::process::Output {
        ephemerd_with_input(self.data.path(), &self.config, args, stdin).unwrap()
    }

    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        let pid = self.child.as_ref().map(|c| c.id()).unwrap_or(0);
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), sig).unwrap();
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.data.path().join("serve.log")).unwrap_or_default()
    }

    pub fn stop(&mut self) -> Option<i32> {
        let mut child = self.child.take()?;
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGTERM).ok();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(st) = child.try_wait().unwrap() {
                return st.code();
            }
            if Instant::now() > deadline {
                // It did not stop: kill it, and remove what it leaves, so a failing test leaks nothing.
                let _ = child.kill();
                let _ = child.wait();
                let _ = ephemerd(self.data.path(), &self.config, &["cleanup"]);
                return None;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn assert_clean(&self) {
        let left = leftovers(self.data.path());
        assert!(left.is_empty(), "left behind: {left:#?}");
        let out = ephemerd(self.data.path(), &self.config, &["cleanup"]).unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("nothing to clean up"), "{text} {}", String::from_utf8_lossy(&out.stderr));
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let running = self.child.take().map(|mut c| {
            let _ = c.kill();
            let _ = c.wait();
        });
        // A failed test must not leak (its jobs would hold the shared test bridge): stop the daemon's
        // containerd and remove its jobs, also when the test had already killed the daemon itself.
        if running.is_some() || std::thread::panicking() {
            let _ = ephemerd(self.data.path(), &self.config, &["cleanup"]);
        }
    }
}

/// The fake GitHub on every address, telling runners (in job containers) to reach it through the bridge
/// gateway; and its port, which jobs must be allowed to reach.
pub async fn fake_for_runners() -> (FakeGithub, u16) {
    let fake = FakeGithub::start_on("0.0.0.0:0", TOKEN).await;
    let port = fake.addr.port();
    fake.set_runner_url(&format!("http://{TEST_GATEWAY}:{port}"));
    (fake, port)
}

pub async fn wait_until(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool, d: &Daemon) {
    let deadline = Instant::now() + timeout;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}; daemon log:\n{}", d.log());
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

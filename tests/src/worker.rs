//! A real `ephemerd worker` as a child process, for tests and benches: its own data dir (the job image
//! imported) and containerd, its boot token handed over on stdin, its address read from its first line.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};

use ephemerd::dispatch::auth::Token;

use crate::{config_text, ephemerd, ephemerd_bin, job_image_archive, short_tempdir};

/// An `ephemerd worker` child with its own data dir (the job image imported), listening on `listen`.
pub struct WorkerProc {
    pub data: tempfile::TempDir,
    child: Option<Child>,
    pub addr: std::net::SocketAddr,
    pub token: Token,
}

impl WorkerProc {
    /// The worker's pid.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// Starts a worker listening on `listen`.
    pub fn start(listen: &str) -> WorkerProc {
        let data = short_tempdir();
        let config = data.path().join("config.toml");
        std::fs::write(&config, config_text("[limits]\nmemory = \"512MiB\"")).unwrap();
        let archive = job_image_archive().unwrap();
        let out = ephemerd(data.path(), &config, &["image", "import", archive.to_str().unwrap()]).unwrap();
        assert!(out.status.success(), "import: {}", String::from_utf8_lossy(&out.stderr));
        let token = Token::generate();
        let mut child = Command::new(ephemerd_bin())
            .arg("--data-dir")
            .arg(data.path())
            .arg("--config")
            .arg(&config)
            .args(["worker", "--listen", listen])
            .env_remove("GITHUB_TOKEN")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(std::fs::File::create(data.path().join("worker.log")).unwrap()))
            .spawn()
            .unwrap();
        writeln!(child.stdin.take().unwrap(), "{}", token.expose_hex()).unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let Some(addr) = line.trim().strip_prefix("worker listening on ") else {
            let log = std::fs::read_to_string(data.path().join("worker.log")).unwrap_or_default();
            panic!("the worker did not start ({line:?}):\n{log}");
        };
        let addr = addr.parse().unwrap();
        WorkerProc { data, child: Some(child), addr, token }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.data.path().join("worker.log")).unwrap_or_default()
    }

    /// SIGTERM, and its exit code.
    pub fn stop(&mut self) -> Option<i32> {
        let mut child = self.child.take()?;
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGTERM)
            .unwrap();
        child.wait().unwrap().code()
    }
}

impl Drop for WorkerProc {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
            let config = self.data.path().join("config.toml");
            let _ = ephemerd(self.data.path(), &config, &["cleanup"]);
        }
    }
}

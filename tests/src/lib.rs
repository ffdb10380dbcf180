//! Shared fixtures of the end-to-end tests: the built `ephemerd` binary, the job image archive, a real
//! OCI registry (Debian's `docker-registry`) on loopback, a supervised containerd in a temp data dir, and
//! the check that nothing of ours is left behind. The tests themselves are in `tests/tests/`.

pub mod bench;
pub mod daemon;
pub mod fake_github;
pub mod rig;
pub mod secret_service;
pub mod webdriver;
pub mod worker;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// The bridge and subnet the tests use (apart from a user's default `ephemerd0`).
pub const TEST_BRIDGE: &str = "edtest0";
pub const TEST_SUBNET: &str = "10.232.0.0/24";
pub const TEST_GATEWAY: &str = "10.232.0.1";
/// The name the job image archive carries.
pub const JOB_IMAGE: &str = "localhost/ephemerd/job:bookworm";

static SERIAL: Mutex<()> = Mutex::new(());

/// Tests in one binary share the bridge and the firewall chains: they take turns.
pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// The `ephemerd` binary next to this test executable (cargo builds it for the workspace's tests).
pub fn ephemerd_bin() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    let dir = exe.parent().and_then(Path::parent).map(Path::to_path_buf).unwrap_or_default();
    dir.join("ephemerd")
}

/// The job image archive built by `rootfs/build-job-image.sh` (override with `EPHEMERD_TEST_IMAGE`).
pub fn job_image_archive() -> Result<PathBuf> {
    let p = match std::env::var_os("EPHEMERD_TEST_IMAGE") {
        Some(p) => PathBuf::from(p),
        None => {
            let cache = std::env::var_os("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
                .unwrap_or_else(|| PathBuf::from("/root/.cache"));
            cache.join("ephemerd/images/job-bookworm.oci.tar")
        }
    };
    if !p.is_file() {
        bail!("job image archive {} is missing: run rootfs/build-job-image.sh first", p.display());
    }
    Ok(p)
}

/// The worker rootfs built by `rootfs/build-worker-rootfs.sh` (override with `EPHEMERD_TEST_WORKER_ROOTFS`).
pub fn worker_rootfs() -> Result<PathBuf> {
    let p = match std::env::var_os("EPHEMERD_TEST_WORKER_ROOTFS") {
        Some(p) => PathBuf::from(p),
        None => job_image_archive()?.with_file_name("worker-bookworm.tar.gz"),
    };
    if !p.is_file() {
        bail!("worker rootfs {} is missing: run rootfs/build-worker-rootfs.sh first", p.display());
    }
    Ok(p)
}

/// The worker VM's boot set (`rootfs/build-vm-image.sh`): `EPHEMERD_TEST_VM_IMAGE` or the cache's.
pub fn vm_image() -> Result<PathBuf> {
    let p = match std::env::var_os("EPHEMERD_TEST_VM_IMAGE") {
        Some(p) => PathBuf::from(p),
        None => job_image_archive()?.with_file_name("vm-bookworm-amd64"),
    };
    if !p.join("base.img").is_file() {
        bail!("the VM boot set {} is missing: run rootfs/build-vm-image.sh first", p.display());
    }
    Ok(p)
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).unwrap_or(0)
}

/// A short temp dir under /tmp (unix socket paths must stay under 108 bytes).
pub fn short_tempdir() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("edt").tempdir_in("/tmp").unwrap_or_else(|e| panic!("tempdir: {e}"))
}

/// A test config: the test bridge and subnet, plus extra TOML.
pub fn config_text(extra: &str) -> String {
    format!("[network]\nbridge = \"{TEST_BRIDGE}\"\nsubnet = \"{TEST_SUBNET}\"\n{extra}\n")
}

/// Debian's docker-registry serving plain HTTP on a loopback port, with its request log captured.
pub struct Registry {
    child: Child,
    pub port: u16,
    pub dir: tempfile::TempDir,
    log: PathBuf,
}

impl Registry {
    pub fn start() -> Result<Self> {
        Self::start_with(None)
    }

    /// A registry that requires HTTP basic auth with `user`:`password` (bcrypt htpasswd, via apache2-utils).
    pub fn start_with_auth(user: &str, password: &str) -> Result<Self> {
        Self::start_with(Some((user, password)))
    }

    fn start_with(auth: Option<(&str, &str)>) -> Result<Self> {
        let dir = short_tempdir();
        let port = free_port();
        let cfg = dir.path().join("config.yml");
        let mut text = format!(
            "version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: false\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
            dir.path().join("data").display()
        );
        if let Some((user, password)) = auth {
            let htpasswd = dir.path().join("htpasswd");
            let out = Command::new("htpasswd")
                .args(["-Bbn", user, password])
                .output()
                .context("running htpasswd (Debian package apache2-utils)")?;
            if !out.status.success() {
                bail!("htpasswd failed: {}", String::from_utf8_lossy(&out.stderr));
            }
            std::fs::write(&htpasswd, &out.stdout)?;
            text.push_str(&format!("auth:\n  htpasswd:\n    realm: ephemerd-test\n    path: {}\n", htpasswd.display()));
        }
        std::fs::write(&cfg, text)?;
        let log = dir.path().join("registry.log");
        let out = std::fs::File::create(&log)?;
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&cfg)
            .stdout(Stdio::from(out.try_clone()?))
            .stderr(Stdio::from(out))
            .spawn()
            .context("starting docker-registry (Debian package docker-registry)")?;
        let r = Self { child, port, dir, log };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                bail!("docker-registry did not listen on {port}: {}", r.log_text());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(r)
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Pushes an OCI archive into the registry as `repo:tag` (with skopeo).
    pub fn push_archive(&self, archive: &Path, repo_tag: &str) -> Result<String> {
        self.push_archive_as(archive, repo_tag, None)
    }

    /// Pushes with `user:password` credentials.
    pub fn push_archive_as(&self, archive: &Path, repo_tag: &str, creds: Option<&str>) -> Result<String> {
        let dest = format!("{}/{repo_tag}", self.host());
        let mut cmd = Command::new("skopeo");
        cmd.args(["copy", "--quiet", "--dest-tls-verify=false"]);
        if let Some(c) = creds {
            cmd.arg("--dest-creds").arg(c);
        }
        let out = cmd
            .arg(format!("oci-archive:{}", archive.display()))
            .arg(format!("docker://{dest}"))
            .output()
            .context("running skopeo")?;
        if !out.status.success() {
            bail!("skopeo copy failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(dest)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// How many blob downloads (GET .../blobs/...) the registry has served.
    pub fn blob_gets(&self) -> usize {
        self.log_text().lines().filter(|l| l.contains("\"GET /v2/") && l.contains("/blobs/sha256:")).count()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What of ours is still in the world for a data dir (empty when all is clean).
pub fn leftovers(data_dir: &Path) -> Vec<String> {
    let instance = ephemerd::runtime::instance::Instance::at(data_dir);
    let mut out = Vec::new();
    let list = |d: PathBuf| -> Vec<String> {
        std::fs::read_dir(&d)
            .map(|rd| rd.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
            .unwrap_or_default()
    };
    for n in list(data_dir.join("run/netns")) {
        out.push(format!("netns {n}"));
    }
    let prefix = format!("{}/", data_dir.display());
    for l in std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default().lines() {
        if let Some(m) = l.split(' ').nth(4).filter(|m| m.starts_with(&prefix)) {
            out.push(format!("mount {m}"));
        }
    }
    for n in list(data_dir.join("jobs")) {
        out.push(format!("job dir {n}"));
    }
    for n in list(data_dir.join("cni/ipam").join(instance.cni_network())) {
        if n.parse::<std::net::Ipv4Addr>().is_ok() {
            out.push(format!("IP lease {n}"));
        }
    }
    let (chains, tag) = ([instance.chain_input(), instance.chain_forward()], instance.tag_prefix());
    for l in iptables(&["-S"]).lines() {
        if l.contains(&tag) || chains.iter().any(|c| l.contains(c.as_str())) {
            out.push(format!("iptables: {l}"));
        }
    }
    for l in iptables(&["-t", "nat", "-S"]).lines() {
        if l.contains(&instance.nat_tag()) {
            out.push(format!("iptables nat: {l}"));
        }
    }
    for n in list(PathBuf::from("/sys/class/net")) {
        let alias = std::fs::read_to_string(format!("/sys/class/net/{n}/ifalias")).unwrap_or_default();
        if instance.owns_alias(alias.trim()) {
            out.push(format!("bridge {n}"));
        }
    }
    // The instance's cgroups: a job's (a process may still run in it) or the parent itself.
    for dir in instance.cgroup_parent_dirs() {
        out.push(format!(
            "cgroup {} ({:?})",
            dir.display(),
            list(dir.clone()).iter().filter(|n| n.starts_with('j')).collect::<Vec<_>>()
        ));
    }
    out.extend(worker_leftovers(data_dir, &instance));
    out
}

/// What a worker of the instance may leave: a namespace worker's process and netns, a VM's QEMU and files,
/// the link's veth or tap and rules, and its jobs' cgroups.
fn worker_leftovers(data_dir: &Path, instance: &ephemerd::runtime::instance::Instance) -> Vec<String> {
    let mut out = Vec::new();
    let id = instance.id();
    let netns = format!("/run/netns/ephemerd-{id}-worker");
    if Path::new(&netns).exists() {
        out.push(format!("netns {netns}"));
    }
    if Path::new(&format!("/sys/class/net/edw{id}")).exists() {
        out.push(format!("veth edw{id}"));
    }
    let tag = format!("ephemerd-{id}-worker");
    for table in ["filter", "nat"] {
        for l in iptables(&["-t", table, "-S"]).lines().filter(|l| l.contains(&tag)) {
            out.push(format!("iptables {table}: {l}"));
        }
    }
    let root = data_dir.join("worker/rootfs");
    for pid in processes_with_arg(root.as_os_str().as_encoded_bytes()) {
        out.push(format!("worker process {pid}"));
    }
    // A worker VM: its QEMU (found by its QMP socket's argument) and the files of a running VM.
    let vm = data_dir.join("vm");
    let qmp = format!("unix:{},server=on,wait=off", vm.join("qmp.sock").display());
    for pid in processes_with_arg(qmp.as_bytes()) {
        out.push(format!("QEMU process {pid}"));
    }
    for f in ["overlay.qcow2", "store.qcow2", "store.new", "qmp.sock", "qemu.pid", "boot.img"] {
        if vm.join(f).exists() {
            out.push(format!("VM file {f}"));
        }
    }
    let worker = ephemerd::runtime::instance::Instance::at(Path::new(&format!("/var/lib/ephemerd/{id}")));
    for dir in worker.cgroup_parent_dirs().into_iter().filter(|d| d.is_dir()) {
        out.push(format!("worker cgroup {}", dir.display()));
    }
    out
}

/// Pids of the processes one of whose arguments is `arg`.
pub fn processes_with_arg(arg: &[u8]) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else { continue };
        let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        if cmdline.split(|b| *b == 0).any(|a| a == arg) {
            out.push(pid);
        }
    }
    out
}

/// `iptables -w <args>`'s output ("" when it cannot run).
pub fn iptables(args: &[&str]) -> String {
    Command::new("iptables")
        .arg("-w")
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// Whether a process whose command line contains `needle` runs.
pub fn process_running(needle: &str) -> bool {
    processes_matching(|cmd| cmd.contains(needle)) > 0
}

/// How many processes on the machine run the command line `cmd` itself (not a shell running it).
pub fn processes_running_exactly(cmd: &str) -> usize {
    processes_matching(|c| c.trim_end() == cmd)
}

fn processes_matching(matches: impl Fn(&str) -> bool) -> usize {
    std::fs::read_dir("/proc")
        .map(|rd| {
            rd.flatten()
                .filter(|e| {
                    let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
                    let cmd: Vec<u8> = cmd.iter().map(|&b| if b == 0 { b' ' } else { b }).collect();
                    matches(&String::from_utf8_lossy(&cmd))
                })
                .count()
        })
        .unwrap_or(0)
}

/// Runs the ephemerd binary to completion.
pub fn ephemerd(data_dir: &Path, config: &Path, args: &[&str]) -> Result<std::process::Output> {
    ephemerd_command(data_dir, config, args).stdin(Stdio::null()).output().context("running ephemerd")
}

/// `ephemerd --data-dir D --config C ARGS…`, not yet run.
pub fn ephemerd_command(data_dir: &Path, config: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(ephemerd_bin());
    c.arg("--data-dir").arg(data_dir).arg("--config").arg(config).args(args);
    c
}

/// Runs `ephemerd` with `input` on its stdin.
pub fn ephemerd_with_input(data_dir: &Path, config: &Path, args: &[&str], input: &str) -> Result<std::process::Output> {
    use std::io::Write;
    let mut child = ephemerd_command(data_dir, config, args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("running ephemerd")?;
    child.stdin.take().context("ephemerd's stdin")?.write_all(input.as_bytes())?;
    child.wait_with_output().context("running ephemerd")
}

/// The `ephemerd` binary next to a bench's executable (the release build), or an error saying how to
/// build it.
pub fn built_ephemerd_bin() -> Result<PathBuf> {
    let b = ephemerd_bin();
    anyhow::ensure!(b.is_file(), "{} is missing: run `cargo build --release -p ephemerd` first", b.display());
    Ok(b)
}

/// A minimal HTTP/1.1 POST (the tests' webhook sender); returns the status code.
pub fn http_post(addr: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Result<u16> {
    http_request("POST", addr, path, headers, body).map(|(s, _)| s)
}

/// A minimal HTTP/1.1 request; returns the status code and the body.
pub fn http_request(
    method: &str,
    addr: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<(u16, String)> {
    let (code, body) = http_request_within(method, addr, path, headers, body, Duration::from_secs(10))?;
    Ok((code, String::from_utf8_lossy(&body).into_owned()))
}

/// `http_request` with a read timeout, the body as bytes (a chunked one decoded).
pub fn http_request_within(
    method: &str,
    addr: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    timeout: Duration,
) -> Result<(u16, Vec<u8>)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr)?;
    s.set_read_timeout(Some(timeout))?;
    let mut head =
        format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n", body.len());
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes())?;
    // A server refusing an oversized body may close before reading it all.
    let _ = s.write_all(body);
    let mut resp = Vec::new();
    let read = s.read_to_end(&mut resp);
    if resp.is_empty() {
        read?;
    }
    let split = resp.windows(4).position(|w| w == b"\r\n\r\n");
    let head = String::from_utf8_lossy(&resp[..split.unwrap_or(resp.len())]).into_owned();
    let code: Option<u16> = head.split_whitespace().nth(1).and_then(|c| c.parse().ok());
    let code = code.ok_or_else(|| anyhow::anyhow!("no HTTP answer: {head}"))?;
    let payload = split.map(|p| resp[p + 4..].to_vec()).unwrap_or_default();
    if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        return Ok((code, dechunk(&payload)?));
    }
    Ok((code, payload))
}

fn dechunk(mut b: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line = b.windows(2).position(|w| w == b"\r\n").ok_or_else(|| anyhow::anyhow!("bad chunk"))?;
        let size = usize::from_str_radix(String::from_utf8_lossy(&b[..line]).trim(), 16)?;
        b = &b[line + 2..];
        if size == 0 {
            return Ok(out);
        }
        out.extend_from_slice(b.get(..size).ok_or_else(|| anyhow::anyhow!("short chunk"))?);
        b = b.get(size + 2..).unwrap_or_default();
    }
}

/// (RSS in KiB, CPU time in clock ticks) of a process, from /proc.
pub fn proc_usage(pid: u32) -> Result<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may hold spaces): utime and stime are the 12th and 13th.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = f.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
        + f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    Ok((rss, ticks))
}

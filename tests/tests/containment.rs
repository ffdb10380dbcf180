//! A job is hostile code: each test here tries, from inside a real job container, to reach what a job must
//! not (new namespaces, its own cgroup limits, the host over IPv6, its peers, another instance's firewall,
//! the host's containerd and control sockets),
//! and each has a positive twin that proves the probe works where it is allowed. The forging probe against
//! `ephemerd run`'s steps is in `cli.rs` (it needs the binary), the egress and metadata ones in `runtime.rs`.

// Each test holds the serial guard for its whole run (its own runtime): holding it across awaits is the point.
#![allow(clippy::await_holding_lock)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ephemerd::runtime::containerd::spec::Bind;
use ephemerd::runtime::instance::Instance;
use ephemerd_e2e::rig::Rig;
use ephemerd_e2e::*;

/// The probe binary, bound read-only into a job at /probe: a copy where a job's unprivileged root (in its
/// user namespace) can reach it.
fn probe_bind() -> Bind {
    static COPY: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    let copy = COPY.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("ephemerd-probe-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let p = dir.join("ephemerd-probe");
        std::fs::copy(env!("CARGO_BIN_EXE_ephemerd-probe"), &p).unwrap();
        p
    });
    Bind { source: copy.clone(), destination: "/probe".into(), readonly: true }
}

/// A directory the test and its jobs share, at /shared in the jobs (open to a job's unprivileged root).
fn shared_bind(dir: &Path) -> Bind {
    std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o1777)).unwrap();
    Bind { source: dir.to_path_buf(), destination: "/shared".into(), readonly: false }
}

/// Serves "hello" on every connection to `listener`, forever (the test process ends it).
fn serve_hello(listener: std::net::TcpListener) {
    std::thread::spawn(move || {
        for mut c in listener.incoming().flatten() {
            let _ = c.write_all(b"hello\n");
        }
    });
}

/// Waits until `path` holds something, for at most `secs`.
fn wait_for_file(path: &Path, secs: u64) -> String {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Ok(t) = std::fs::read_to_string(path)
            && !t.trim().is_empty()
        {
            return t.trim().to_string();
        }
        assert!(Instant::now() < deadline, "{} never came", path.display());
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A shell loop a job uses to wait (up to 60 s) for a file the test writes.
fn job_waits_for(file: &str) -> String {
    format!("for i in $(seq 600); do [ -s {file} ] && break; sleep 0.1; done")
}

#[tokio::test(flavor = "multi_thread")]
async fn jobs_cannot_make_namespaces_or_touch_their_cgroup_and_ping_works() {
    let _s = serial();
    let script = "unshare -Ur id -u 2>&1; echo userns:$?
                  unshare -Urm sh -c 'mount -t cgroup -o pids none /mnt && echo 100000 > /mnt/pids.max' 2>&1; echo attack:$?
                  unshare --net true 2>&1; echo netns:$?
                  (echo 100000 > /sys/fs/cgroup/pids/pids.max) 2>&1; echo cgwrite:$?
                  echo pids.max=$(cat /sys/fs/cgroup/pids/pids.max)
                  ping -c1 -W5 127.0.0.1 >/dev/null 2>/tmp/ping.err; echo ping:$? $(cat /tmp/ping.err)";
    let rig = Rig::start("").await;
    let image = rig.import_job_image().await;
    let (exit, log) = rig.run(&image, script, None, vec![]).await;
    assert_eq!(exit.code, 0, "{log}");
    assert!(log.contains("userns:1") && log.contains("Operation not permitted"), "no user namespace: {log}");
    assert!(log.contains("attack:1"), "the cgroup attack fails at unshare: {log}");
    assert!(log.contains("netns:1"), "no namespace of any kind: {log}");
    assert!(log.contains("cgwrite:1") && log.contains("Read-only file system"), "cgroup read-only: {log}");
    assert!(log.contains("pids.max=4096"), "the limit stands: {log}");
    assert!(log.contains("ping:0"), "unprivileged ping works: {log}");
    rig.stop().await;

    // The twin: where the operator lets jobs make namespaces, the same probe makes one.
    let rig = Rig::start("[security]\nallow_nested_namespaces = true").await;
    let image = rig.import_job_image().await;
    let (exit, log) = rig.run(&image, "unshare -Ur id -u 2>&1; echo userns:$?", None, vec![]).await;
    assert_eq!(exit.code, 0, "{log}");
    assert!(log.contains("userns:0") && log.lines().any(|l| l.trim() == "0"), "the probe works: {log}");
    rig.stop().await;
}

/// The host's IPv6 addresses a job could aim at: (address, interface for a link-local scope).
fn host_ipv6_targets(bridge: &str) -> Vec<(String, Option<String>)> {
    let out = std::process::Command::new("ip").args(["-o", "-6", "addr", "show"]).output().unwrap();
    let mut v = Vec::new();
    for l in String::from_utf8_lossy(&out.stdout).lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        let (Some(dev), Some(addr)) = (f.get(1), f.iter().position(|w| *w == "inet6").and_then(|i| f.get(i + 1)))
        else {
            continue;
        };
        let addr = addr.split('/').next().unwrap().to_string();
        if l.contains("tentative") || addr == "::1" {
            continue;
        }
        if addr.starts_with("fe80:") {
            // Only the bridge's link-local address is on the job's link.
            if *dev == bridge {
                v.push((addr, Some(dev.to_string())));
            }
        } else {
            v.push((addr, None));
        }
    }
    v
}

#[tokio::test(flavor = "multi_thread")]
async fn jobs_have_no_ipv6_so_a_host_service_on_any_address_stays_out_of_reach() {
    let _s = serial();
    let listener = std::net::TcpListener::bind("[::]:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    serve_hello(listener);
    let shared = tempfile::tempdir().unwrap();
    let rig = Rig::start("").await;
    let image = rig.import_job_image().await;
    let script = format!(
        "echo eth0.disable_ipv6=$(cat /proc/sys/net/ipv6/conf/eth0/disable_ipv6)
         grep -c eth0 /proc/net/if_inet6 | sed 's/^/eth0.v6addrs=/'
         (/probe listen [::1]:7000 &) ; sleep 0.5; /probe connect ::1 7000
         {}
         while read -r addr scope; do
           if [ \"$scope\" = - ]; then /probe connect \"$addr\" {port}; else /probe connect \"$addr\" {port} eth0; fi
         done < /shared/targets
         echo probes:done",
        job_waits_for("/shared/targets")
    );
    let job = rig.run(&image, &script, None, vec![probe_bind(), shared_bind(shared.path())]);
    let host_side = async {
        // Once the job's port is up the bridge has a link-local address (after DAD): gather the targets, and
        // prove on the host that each one serves.
        let deadline = Instant::now() + Duration::from_secs(20);
        let targets = loop {
            let t = host_ipv6_targets(TEST_BRIDGE);
            if t.iter().any(|(_, scope)| scope.is_some()) || Instant::now() > deadline {
                break t;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert!(targets.iter().any(|(_, s)| s.is_some()), "the bridge got a link-local address: {targets:?}");
        for (addr, scope) in &targets {
            let target = match scope {
                Some(dev) => {
                    let index: u32 = std::fs::read_to_string(format!("/sys/class/net/{dev}/ifindex"))
                        .unwrap()
                        .trim()
                        .parse()
                        .unwrap();
                    std::net::SocketAddr::V6(std::net::SocketAddrV6::new(addr.parse().unwrap(), port, 0, index))
                }
                None => std::net::SocketAddr::new(addr.parse().unwrap(), port),
            };
            std::net::TcpStream::connect_timeout(&target, Duration::from_secs(3))
                .unwrap_or_else(|e| panic!("the twin: the host reaches its own service at {target}: {e}"));
        }
        let text: String =
            targets.iter().map(|(a, s)| format!("{a} {}\n", s.as_deref().map(|_| "eth0").unwrap_or("-"))).collect();
        std::fs::write(shared.path().join("targets"), text).unwrap();
        targets
    };
    let ((exit, log), targets) = tokio::join!(job, host_side);
    assert_eq!(exit.code, 0, "{log}");
    assert!(log.contains("probes:done"), "{log}");
    assert!(log.contains("eth0.disable_ipv6=1") && log.contains("eth0.v6addrs=0"), "{log}");
    assert!(log.contains("connect ::1: ok hello"), "the twin: IPv6 works inside the job: {log}");
    for (addr, _) in &targets {
        let line = log.lines().find(|l| l.starts_with(&format!("connect {addr}:"))).unwrap_or_default();
        assert!(line.contains(": error "), "{addr} must be out of reach: {line:?} in {log}");
    }
    rig.stop().await;
}

/// Sets `net.bridge.bridge-nf-call-iptables` to 0 (when br_netfilter is loaded) while it lives, so bridged
/// frames bypass iptables and only the bridge's port isolation stands between peers.
struct BridgeNetfilterOff(Option<String>);

impl BridgeNetfilterOff {
    const KEY: &str = "/proc/sys/net/bridge/bridge-nf-call-iptables";
    fn new() -> Self {
        let before = std::fs::read_to_string(Self::KEY).ok();
        if before.is_some() {
            std::fs::write(Self::KEY, "0").unwrap();
        }
        Self(before)
    }
}

impl Drop for BridgeNetfilterOff {
    fn drop(&mut self) {
        if let Some(v) = &self.0 {
            let _ = std::fs::write(Self::KEY, v.trim());
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn peers_cannot_reach_each_other_even_without_br_netfilter() {
    let _s = serial();
    let _nf = BridgeNetfilterOff::new();
    let shared = tempfile::tempdir().unwrap();
    let rig = Rig::start("").await;
    let image = rig.import_job_image().await;
    let a = format!(
        "(/probe listen 0.0.0.0:7001 &); sleep 0.5; hostname -i > /shared/a_ip.tmp; mv /shared/a_ip.tmp /shared/a_ip
         {}; echo a:done",
        job_waits_for("/shared/b_done")
    );
    let b = format!(
        "{}; ip=$(cat /shared/a_ip)
         /probe connect \"$ip\" 7001
         ping -c1 -W2 \"$ip\" >/dev/null 2>&1; echo ping-peer:$?
         echo done > /shared/b_done",
        job_waits_for("/shared/a_ip")
    );
    let binds = || vec![probe_bind(), shared_bind(shared.path())];
    let job_a = rig.run(&image, &a, None, binds());
    let job_b = rig.run(&image, &b, None, binds());
    let twin = async {
        // The twin: A's listener answers the host (the path the probe takes works).
        let ip = tokio::task::spawn_blocking({
            let p = shared.path().join("a_ip");
            move || wait_for_file(&p, 60)
        })
        .await
        .unwrap();
        let mut line = String::new();
        let s = std::net::TcpStream::connect_timeout(&format!("{ip}:7001").parse().unwrap(), Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("the twin: the host reaches job A at {ip}:7001: {e}"));
        std::io::BufRead::read_line(&mut std::io::BufReader::new(s), &mut line).unwrap();
        assert_eq!(line.trim(), "hello");
        ip
    };
    let ((exit_a, log_a), (exit_b, log_b), ip) = tokio::join!(job_a, job_b, twin);
    assert_eq!((exit_a.code, exit_b.code), (0, 0), "{log_a}\n{log_b}");
    assert!(log_a.contains("a:done"), "{log_a}");
    let line = log_b.lines().find(|l| l.starts_with(&format!("connect {ip}:"))).unwrap_or_default();
    assert!(line.contains(": error "), "B must not reach A: {line:?} in {log_b}");
    assert!(log_b.contains("ping-peer:1"), "nor ping it: {log_b}");
    rig.stop().await;
}

/// This instance's rules on the host, as `iptables -S` prints them.
fn rules_of(instance: &Instance) -> Vec<String> {
    let tag = instance.tag_prefix();
    iptables(&["-S"]).lines().filter(|l| l.contains(&tag)).map(String::from).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn another_instance_leaves_our_jobs_and_firewall_alone() {
    let _s = serial();
    let blocked = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let port = blocked.local_addr().unwrap().port();
    serve_hello(blocked);
    let shared = tempfile::tempdir().unwrap();
    let rig = Rig::start("").await;
    let ours = Instance::of(&rig.dirs);
    let image = rig.import_job_image().await;
    let script = format!(
        "/probe connect {TEST_GATEWAY} {port}; echo ready > /shared/ready
         {}
         /probe connect {TEST_GATEWAY} {port}; echo job:done",
        job_waits_for("/shared/go")
    );
    let job = rig.run(&image, &script, None, vec![probe_bind(), shared_bind(shared.path())]);
    let other = async {
        let p = shared.path().join("ready");
        tokio::task::spawn_blocking(move || wait_for_file(&p, 60)).await.unwrap();
        let before = rules_of(&ours);
        assert!(!before.is_empty(), "our job has rules");

        // Another instance (its own data dir, bridge and subnet) runs every command that reconciles.
        let other = short_tempdir();
        let config = other.path().join("config.toml");
        std::fs::write(&config, "[network]\nbridge = \"edtest1\"\nsubnet = \"10.233.0.0/24\"\n").unwrap();
        let archive = job_image_archive().unwrap();
        for args in [vec!["cleanup"], vec!["image", "import", archive.to_str().unwrap()]] {
            let out = ephemerd(other.path(), &config, &args).unwrap();
            assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        }
        assert_eq!(rules_of(&ours), before, "the other instance left our rules as they were");

        // The other instance runs a job of its own beside ours, is killed (-9, with its containerd), then
        // cleans up after itself: its job and rules go, ours stay.
        let theirs = Instance::at(other.path());
        let repo = tempfile::tempdir().unwrap();
        assert!(
            std::process::Command::new("git")
                .arg("-C")
                .arg(repo.path())
                .args(["init", "-q"])
                .status()
                .unwrap()
                .success()
        );
        let wf = repo.path().join(".github/workflows/long.yml");
        std::fs::create_dir_all(wf.parent().unwrap()).unwrap();
        let needle = format!("sleep {}", 3000 + std::process::id() % 1000);
        std::fs::write(&wf, format!("jobs:\n  long:\n    steps:\n      - run: {needle}\n")).unwrap();
        let mut run = ephemerd_command(other.path(), &config, &["run", wf.to_str().unwrap(), "--image", JOB_IMAGE])
            .current_dir(repo.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        while !process_running(&needle) || rules_of(&theirs).is_empty() {
            assert!(Instant::now() < deadline, "the other instance's job never started");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(rules_of(&ours), before, "two instances' jobs run side by side");
        let ctr_pid: i32 =
            std::fs::read_to_string(other.path().join("run/containerd.pid")).unwrap().trim().parse().unwrap();
        use nix::sys::signal::{Signal, kill};
        kill(nix::unistd::Pid::from_raw(run.id() as i32), Signal::SIGKILL).unwrap();
        kill(nix::unistd::Pid::from_raw(ctr_pid), Signal::SIGKILL).unwrap();
        run.wait().unwrap();
        assert_eq!(rules_of(&ours), before, "a killed instance takes nothing of ours with it");
        let out = ephemerd(other.path(), &config, &["cleanup"]).unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert!(rules_of(&theirs).is_empty() && leftovers(other.path()).is_empty(), "{:?}", leftovers(other.path()));
        assert!(!process_running(&needle), "its job is gone");
        assert_eq!(rules_of(&ours), before, "its cleanup leaves ours alone");

        // A third one configured onto our bridge is refused before it attaches anything.
        let third = Rig::start("").await;
        let id = ephemerd::runtime::new_job_id();
        third.rt.begin(&id, &image.name).unwrap();
        let spec = ephemerd::runtime::JobSpec {
            id: id.clone(),
            image: third.import_job_image().await,
            args: Some(vec!["true".into()]),
            env: vec![],
            workdir: None,
            binds: vec![],
            limits: None,
            endpoints: vec![],
        };
        let err = third.rt.create(&spec).await.unwrap_err().to_string();
        assert!(err.contains(&format!("bridge {TEST_BRIDGE} belongs to another ephemerd")), "{err}");
        third.rt.destroy(&id).await.unwrap();
        third.stop().await;
        assert_eq!(rules_of(&ours), before);
        std::fs::write(shared.path().join("go"), "go").unwrap();
    };
    let ((exit, log), ()) = tokio::join!(job, other);
    assert_eq!(exit.code, 0, "{log}");
    let refused = log.lines().filter(|l| l.starts_with(&format!("connect {TEST_GATEWAY}:"))).collect::<Vec<_>>();
    assert_eq!(refused.len(), 2, "{log}");
    assert!(refused.iter().all(|l| l.contains("error") && l.contains("refused")), "blocked before and after: {log}");
    rig.stop().await;
    assert!(rules_of(&ours).is_empty(), "our own shutdown removes our rules");
}

/// The probe binary run on the host, as root: the twin of a probe a job is refused.
fn on_host(args: &[&str]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ephemerd-probe")).args(args).output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_jobs_sockets_syscalls_and_files_reach_nothing_of_the_host() {
    let _s = serial();
    let rig = Rig::start("").await;
    let image = rig.import_job_image().await;
    let socket = rig.dirs.containerd_socket();
    let socket = socket.display();
    // The control API's socket, where a daemon of this data dir listens (a listener stands in for it).
    let control = rig.dirs.run_dir().join(ephemerd_proto::SOCKET_NAME);
    let control_listener = std::os::unix::net::UnixListener::bind(&control).unwrap();
    let control = control.display();
    let host_pid = std::process::id();
    let script = format!(
        "for k in raw packet vsock icmp; do /probe socket $k; done
         sleep 300 & child=$!; /probe ptrace $child; kill $child
         /probe ptrace {host_pid}
         /probe unix {socket}
         /probe unix {control}
         (mount -t tmpfs none /mnt) 2>&1; echo mount:$?
         (echo c > /proc/sysrq-trigger) 2>&1; echo sysrq:$?
         echo kcore-bytes=$(head -c 64 /proc/kcore 2>/dev/null | wc -c)
         echo firmware-entries=$(ls /sys/firmware 2>/dev/null | wc -l)
         (dmesg) >/dev/null 2>&1; echo dmesg:$?
         (echo 1 > /sys/kernel/mm/transparent_hugepage/enabled) 2>&1; echo sysfs-write:$?
         ls /dev | tr '\\n' ' ' | sed 's/^/dev: /'; echo
         ls /sys/class/net | tr '\\n' ' ' | sed 's/^/sys-net: /'; echo
         head -c 5 /proc/self/status | sed 's/^/status:/'; echo"
    );
    let (exit, log) = rig.run(&image, &script, None, vec![probe_bind()]).await;
    assert_eq!(exit.code, 0, "{log}");
    let line = |prefix: &str| log.lines().find(|l| l.starts_with(prefix)).unwrap_or_default().to_string();
    for kind in ["raw", "packet", "vsock"] {
        let l = line(&format!("socket {kind}:"));
        assert!(
            l.contains("error") && l.contains("Operation not permitted"),
            "{kind} sockets are refused: {l:?} in {log}"
        );
        // The twin: the same probe opens it on the host (vsock only where the host kernel has it).
        let host = on_host(&["socket", kind]);
        assert!(host.ends_with(": ok") || (kind == "vsock" && host.contains("not supported")), "the twin: {host}");
    }
    assert!(line("socket icmp:").ends_with(": ok"), "the ICMP datagram socket ping uses works: {log}");
    let traced = log.lines().filter(|l| l.starts_with("ptrace ")).collect::<Vec<_>>();
    assert_eq!(traced.len(), 2, "{log}");
    assert!(traced[0].ends_with(": ok"), "the twin: a job may trace its own child: {log}");
    assert!(traced[1].contains("error"), "the host's processes are out of sight: {log}");
    let unix = line(&format!("unix {socket}:"));
    assert!(unix.contains("error"), "containerd's socket is out of reach: {unix:?}");
    assert!(on_host(&["unix", &socket.to_string()]).ends_with(": ok"), "the twin: containerd answers on the host");
    let unix = line(&format!("unix {control}:"));
    assert!(unix.contains("error"), "the control socket is out of reach: {unix:?}");
    assert!(
        on_host(&["unix", &control.to_string()]).ends_with(": ok"),
        "the twin: the control socket answers on the host"
    );
    drop(control_listener);
    std::fs::remove_file(rig.dirs.run_dir().join(ephemerd_proto::SOCKET_NAME)).unwrap();
    assert!(log.contains("mount:") && !log.contains("mount:0"), "no mounts: {log}");
    assert!(log.contains("sysrq:1") && log.contains("Read-only file system"), "{log}");
    assert!(log.contains("kcore-bytes=0"), "/proc/kcore is masked: {log}");
    assert!(log.contains("firmware-entries=0"), "/sys/firmware is masked: {log}");
    assert!(!log.contains("dmesg:0"), "the kernel log is not readable: {log}");
    assert!(log.contains("sysfs-write:1"), "sysfs is read-only: {log}");
    let dev = line("dev: ");
    assert!(dev.contains(" null ") && !dev.contains("sda") && !dev.contains("vsock") && !dev.contains("kvm"), "{dev}");
    assert!(line("status:").contains("Name:"), "the twin: /proc/self is readable: {log}");
    // The job's sysfs is its own network namespace's (its user namespace owns it): none of the host's links.
    let sys_net = line("sys-net: ");
    let mut links: Vec<&str> = sys_net.trim_start_matches("sys-net: ").split_whitespace().collect();
    links.sort();
    assert_eq!(links, ["eth0", "lo"], "{log}");
    let host_links = std::fs::read_dir("/sys/class/net").unwrap().count();
    assert!(host_links > 2, "the twin: the host's sysfs shows its links (and the bridge)");
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn in_a_user_namespace_a_jobs_root_is_nobody_on_the_host() {
    let _s = serial();
    let shared = tempfile::tempdir().unwrap();
    std::fs::set_permissions(shared.path(), std::os::unix::fs::PermissionsExt::from_mode(0o1777)).unwrap();
    let runner = tempfile::tempdir().unwrap();
    std::fs::set_permissions(runner.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    std::fs::write(runner.path().join("run.sh"), "original\n").unwrap();
    // Even with namespaces allowed, the job's root is no root of the host's: the cgroup attack fails.
    let rig = Rig::start(&format!(
        "[security]\nuser_namespace = true\nallow_nested_namespaces = true\n[runner]\ndir = \"{}\"",
        runner.path().display()
    ))
    .await;
    let base = Instance::of(&rig.dirs).uid_base();
    let image = rig.import_job_image().await;
    let script = "id -u; cat /proc/self/uid_map
                  touch /shared/made-by-job; echo changed > /actions-runner/run.sh && echo runner:writable
                  unshare -Urm sh -c 'mount -t cgroup -o pids none /mnt && echo 100000 > /mnt/pids.max' 2>&1; echo attack:$?
                  (echo 100000 > /sys/fs/cgroup/pids/pids.max) 2>&1; echo cgwrite:$?
                  echo pids.max=$(cat /sys/fs/cgroup/pids/pids.max)
                  ping -c1 -W5 127.0.0.1 >/dev/null 2>&1; echo ping:$?
                  apt-get --version >/dev/null && echo tools:ok";
    let (exit, log) = rig.run(&image, script, None, vec![shared_bind(shared.path())]).await;
    assert_eq!(exit.code, 0, "{log}");
    assert_eq!(log.lines().next(), Some("0"), "root inside: {log}");
    let map: Vec<&str> = log.lines().nth(1).unwrap_or_default().split_whitespace().collect();
    assert_eq!(map, ["0", &base.to_string(), "65536"], "{log}");
    let owner = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(shared.path().join("made-by-job")).unwrap());
    assert_eq!(owner, base, "what the job's root makes belongs to an unprivileged host uid");
    assert!(log.contains("runner:writable"), "the runner overlay is the job's: {log}");
    assert_eq!(std::fs::read_to_string(runner.path().join("run.sh")).unwrap(), "original\n");
    assert!(log.contains("attack:") && !log.contains("attack:0"), "the cgroup attack fails: {log}");
    assert!(log.contains("mount: /mnt: permission denied"), "at the mount, not at unshare: {log}");
    assert!(log.contains("cgwrite:1") && log.contains("pids.max=4096"), "{log}");
    assert!(log.contains("ping:0") && log.contains("tools:ok"), "{log}");
    // The second job starts on the remapped image made for the first.
    let (exit, log) = rig.run(&image, "id -u", None, vec![]).await;
    assert_eq!((exit.code, log.trim()), (0, "0"));
    rig.stop().await;

    // The twin: without the user namespace, the same probe's file is the host root's.
    let rig = Rig::start("[security]\nuser_namespace = false").await;
    let image = rig.import_job_image().await;
    let (exit, log) = rig.run(&image, "touch /shared/made-by-host-root", None, vec![shared_bind(shared.path())]).await;
    assert_eq!(exit.code, 0, "{log}");
    let owner =
        std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(shared.path().join("made-by-host-root")).unwrap());
    assert_eq!(owner, 0, "the probe sees the difference");
    rig.stop().await;
}

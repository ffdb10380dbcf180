//! The runtime against real containerd + runc + CNI and a real registry: pulls with progress, exit codes and
//! logs, the egress firewall, memory limits, the runner overlay, containerd restarts; after each test
//! nothing of ours is left.

// Each test holds the serial guard for its whole run (its own runtime): holding it across awaits is the point.
#![allow(clippy::await_holding_lock)]

use std::collections::HashSet;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ephemerd::config::{ByteSize, Limits};
use ephemerd::runtime::Exit;
use ephemerd::runtime::containerd::Progress;
use ephemerd::runtime::containerd::spec::Bind;
use ephemerd::runtime::containerd::supervisor::Health;
use ephemerd_e2e::rig::Rig;
use ephemerd_e2e::*;

#[tokio::test(flavor = "multi_thread")]
async fn pull_with_progress_then_run_exit_code_and_log() {
    let _s = serial();
    let reg = Registry::start().unwrap();
    let reference = reg.push_archive(&job_image_archive().unwrap(), "ephemerd/job:e2e").unwrap();
    let rig = Rig::start("").await;

    let seen: Arc<Mutex<Vec<Progress>>> = Arc::default();
    let s2 = seen.clone();
    let image = rig.rt.images.pull(&reference, &move |p| s2.lock().unwrap().push(p)).await.unwrap();
    let seen = seen.lock().unwrap().clone();
    let last = *seen.last().unwrap();
    assert!(last.total > 10 << 20, "{last:?}");
    assert_eq!(last.done, last.total);
    assert!(seen.windows(2).all(|w| w[0].done <= w[1].done), "progress only grows");
    assert!(seen.len() > 3, "progress is reported along the way: {seen:?}");
    let gets = reg.blob_gets();
    assert!(gets >= 2, "config and layer were downloaded: {gets}");

    // A second pull finds every blob in the content store and downloads none.
    rig.rt.images.pull(&reference, &|_| {}).await.unwrap();
    assert_eq!(reg.blob_gets(), gets, "nothing is downloaded twice");
    // And an image that is there is not pulled at all.
    rig.rt.images.ensure(&reference, &|_| {}).await.unwrap();

    let (exit, log) =
        rig.run(&image, "echo to-stdout; echo to-stderr >&2; echo \"env:$FROM_JOB\"; exit 3", None, vec![]).await;
    assert_eq!(exit, Exit { code: 3, oom_killed: false });
    assert!(log.contains("to-stdout") && log.contains("to-stderr") && log.contains("env:yes"), "{log}");
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pull_from_a_registry_that_is_not_there_says_why() {
    let _s = serial();
    let rig = Rig::start("").await;
    let port = free_port();
    let err = rig.rt.images.pull(&format!("127.0.0.1:{port}/nothing:here"), &|_| {}).await.unwrap_err().to_string();
    assert!(err.contains(&format!("127.0.0.1:{port}")) && err.to_lowercase().contains("connection refused"), "{err}");
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn network_reaches_allowed_host_port_and_is_refused_elsewhere() {
    let _s = serial();
    let allowed = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let blocked = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let (pa, pb) = (allowed.local_addr().unwrap().port(), blocked.local_addr().unwrap().port());
    for l in [allowed, blocked] {
        std::thread::spawn(move || {
            for mut c in l.incoming().flatten() {
                let _ = c.write_all(b"hello-from-host\n");
            }
        });
    }
    let rig = Rig::start(&format!("allow_host_ports = [{pa}]")).await;
    let image = rig.import_job_image().await;
    let script = format!(
        "if exec 3<>/dev/tcp/{TEST_GATEWAY}/{pa}; then read -r l <&3; echo \"allowed:$l\"; fi
         if (exec 4<>/dev/tcp/{TEST_GATEWAY}/{pb}) 2>/tmp/e; then echo blocked:open; else echo \"blocked:$(cat /tmp/e)\"; fi
         grep -q nameserver /etc/resolv.conf && echo resolv:ok
         grep -q \"$(hostname)\" /etc/hosts && echo hosts:ok
         ip=$(hostname -i 2>/dev/null || true); echo \"ip:$ip\""
    );
    let (exit, log) = rig.run(&image, &script, None, vec![]).await;
    assert_eq!(exit.code, 0, "{log}");
    assert!(log.contains("allowed:hello-from-host"), "{log}");
    assert!(log.contains("blocked:") && log.contains("Connection refused"), "{log}");
    assert!(log.contains("resolv:ok") && log.contains("hosts:ok"), "{log}");
    assert!(log.contains("ip:10.232.0."), "{log}");
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn memory_hog_is_oom_killed_and_reported() {
    let _s = serial();
    let rig = Rig::start("").await;
    let image = rig.import_job_image().await;
    let limits = Limits { cpus: 1.0, memory: ByteSize(64 << 20), pids: 256 };
    let (exit, log) = rig.run(&image, "echo start; exec tail /dev/zero", Some(limits), vec![]).await;
    assert!(exit.oom_killed, "{exit:?} {log}");
    assert_eq!(exit.code, 137);
    assert!(log.contains("start"), "{log}");
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn runner_tree_is_shared_read_only_with_a_per_job_overlay() {
    let _s = serial();
    let runner = tempfile::tempdir().unwrap();
    std::fs::write(runner.path().join("run.sh"), "original\n").unwrap();
    let rig = Rig::start(&format!("[runner]\ndir = \"{}\"", runner.path().display())).await;
    let image = rig.import_job_image().await;
    let script = "cat /actions-runner/run.sh; echo changed > /actions-runner/run.sh; touch /actions-runner/new; cat /actions-runner/run.sh";
    let (exit, log) = rig.run(&image, script, None, vec![]).await;
    assert_eq!(exit.code, 0, "{log}");
    assert!(log.contains("original") && log.contains("changed"), "{log}");
    assert_eq!(std::fs::read_to_string(runner.path().join("run.sh")).unwrap(), "original\n");
    assert!(!runner.path().join("new").exists(), "the shared tree is untouched");
    // The next job sees the pristine tree again.
    let (_, log2) = rig.run(&image, "cat /actions-runner/run.sh; ls /actions-runner", None, vec![]).await;
    assert!(log2.contains("original") && !log2.contains("new"), "{log2}");
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn job_binds_and_capabilities() {
    let _s = serial();
    let rig = Rig::start("").await;
    let image = rig.import_job_image().await;
    let shared = rig.dirs.root.join("bind-test");
    std::fs::create_dir_all(&shared).unwrap();
    std::fs::write(shared.join("in.txt"), "from-host").unwrap();
    let binds = vec![Bind { source: shared.clone(), destination: PathBuf::from("/data"), readonly: true }];
    let script = "cat /data/in.txt; echo; (echo x > /data/out.txt) 2>/dev/null && echo wrote || echo read-only;
                  (mknod /tmp/dev c 1 3) 2>/dev/null && echo mknod:yes || echo mknod:no;
                  grep CapEff /proc/self/status; grep Seccomp: /proc/self/status; grep NoNewPrivs /proc/self/status;
                  echo pids.max=$(cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max)";
    let (exit, log) = rig.run(&image, script, None, binds).await;
    assert_eq!(exit.code, 0, "{log}");
    assert!(log.contains("from-host") && log.contains("read-only") && log.contains("mknod:no"), "{log}");
    assert!(!shared.join("out.txt").exists());
    let capeff = log.lines().find(|l| l.starts_with("CapEff")).unwrap();
    let bits = u64::from_str_radix(capeff.split_whitespace().nth(1).unwrap(), 16).unwrap();
    for (name, bit) in [("SYS_ADMIN", 21), ("NET_ADMIN", 12), ("MKNOD", 27), ("NET_RAW", 13)] {
        assert_eq!(bits & (1 << bit), 0, "{name} must not be granted: {capeff}");
    }
    assert!(log.contains("Seccomp:\t2"), "seccomp filter mode: {log}");
    assert!(log.contains("NoNewPrivs:\t1"), "{log}");
    assert!(log.contains("pids.max=4096"), "the configured pids limit: {log}");
    std::fs::remove_dir_all(&shared).unwrap();
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn containerd_is_restarted_when_it_dies() {
    let _s = serial();
    let rig = Rig::start("").await;
    let Health::Up { pid, .. } = rig.sup.health() else { panic!("not up: {:?}", rig.sup.health()) };
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::Signal::SIGKILL).unwrap();
    let mut up_again = None;
    for _ in 0..200 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if let Health::Up { pid: p, restarts } = rig.sup.health()
            && p != pid
        {
            up_again = Some(restarts);
            break;
        }
    }
    assert_eq!(up_again, Some(1), "{:?}", rig.sup.health());
    // The same client works again (tonic reconnects).
    let image = rig.import_job_image().await;
    let (exit, _) = rig.run(&image, "exit 0", None, vec![]).await;
    assert_eq!(exit.code, 0);
    let r = rig.rt.reconcile(&HashSet::new()).await.unwrap();
    assert!(r.is_empty(), "{r:?}");
    rig.stop().await;
}

/// A test host in a network namespace of our own, routed through this machine: a public-looking address
/// (198.18.0.2, the benchmarking range) and a private one (192.168.77.2), each serving a line on `port`.
struct RemoteHost {
    ns: String,
    link: String,
    port: u16,
}

impl RemoteHost {
    fn start() -> RemoteHost {
        let ns = format!("edt-remote-{}", std::process::id());
        let link = format!("edtr{}", std::process::id() % 100_000);
        let ip = |args: &[&str]| {
            let out = std::process::Command::new("ip").args(args).output().unwrap();
            assert!(out.status.success(), "ip {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        };
        ip(&["netns", "add", &ns]);
        ip(&["link", "add", &link, "type", "veth", "peer", "name", "eth0", "netns", &ns]);
        ip(&["addr", "add", "198.18.0.1/24", "dev", &link]);
        ip(&["addr", "add", "192.168.77.1/24", "dev", &link]);
        ip(&["link", "set", &link, "up"]);
        for a in ["198.18.0.2/24", "192.168.77.2/24"] {
            ip(&["-n", &ns, "addr", "add", a, "dev", "eth0"]);
        }
        ip(&["-n", &ns, "link", "set", "eth0", "up"]);
        ip(&["-n", &ns, "link", "set", "lo", "up"]);
        ip(&["-n", &ns, "route", "add", "default", "via", "198.18.0.1"]);
        // A cloud metadata address (ECS task metadata; not the host's own 169.254.169.254, which this machine may
        // use), routed to the test host as a cloud's would be.
        ip(&["-n", &ns, "addr", "add", "169.254.170.2/32", "dev", "eth0"]);
        ip(&["route", "add", "169.254.170.2/32", "dev", &link]);
        let port = free_port();
        let path = format!("/run/netns/{ns}");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            // This thread moves into the test host's namespace for good.
            let f = std::fs::File::open(&path).unwrap();
            nix::sched::setns(f, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            let l = std::net::TcpListener::bind(("0.0.0.0", port)).unwrap();
            tx.send(()).unwrap();
            for mut c in l.incoming().flatten() {
                let peer = c.peer_addr().map(|a| a.ip().to_string()).unwrap_or_default();
                let _ = c.write_all(format!("hello-remote from-{peer}\n").as_bytes());
            }
        });
        rx.recv_timeout(Duration::from_secs(5)).unwrap();
        RemoteHost { ns, link, port }
    }
}

impl Drop for RemoteHost {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip").args(["link", "del", &self.link]).output();
        let _ = std::process::Command::new("ip").args(["netns", "del", &self.ns]).output();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn egress_is_nated_to_public_hosts_and_refused_to_private_ranges() {
    let _s = serial();
    let remote = RemoteHost::start();
    let rig = Rig::start("").await;
    let image = rig.import_job_image().await;
    let p = remote.port;
    let script = format!(
        "if exec 3<>/dev/tcp/198.18.0.2/{p}; then read -r l <&3; echo \"public:$l\"; fi
         if (exec 4<>/dev/tcp/192.168.77.2/{p}) 2>/tmp/e; then echo private:open; else echo \"private:$(cat /tmp/e)\"; fi
         if (exec 5<>/dev/tcp/169.254.170.2/{p}) 2>/tmp/e; then echo metadata:open; else echo \"metadata:$(cat /tmp/e)\"; fi"
    );
    // The twin: the host itself reaches both.
    for addr in ["192.168.77.2", "169.254.170.2"] {
        std::net::TcpStream::connect_timeout(&format!("{addr}:{p}").parse().unwrap(), Duration::from_secs(3))
            .unwrap_or_else(|e| panic!("the host reaches {addr}: {e}"));
    }
    let (exit, log) = rig.run(&image, &script, None, vec![]).await;
    assert_eq!(exit.code, 0, "{log}");
    assert!(log.contains("public:hello-remote from-198.18.0.1"), "reached, masqueraded to the host's address: {log}");
    assert!(log.contains("private:") && log.contains("Connection refused"), "{log}");
    let metadata = log.lines().find(|l| l.starts_with("metadata:")).unwrap_or_default();
    assert!(metadata.contains("Connection refused"), "the metadata address is refused: {log}");
    rig.stop().await;
}

//! `ephemerd doctor`: checks what jobs need on this machine — binaries and their versions, cgroups,
//! network namespaces, iptables, the seccomp profile, free disk, the keyring, the control socket and each
//! forge's URL and credentials — and gives each problem with its fix. Exits 1 when a check fails.

use std::path::Path;
use std::process::Command;

use ephemerd::config::Config;
use ephemerd::platform::DataDirs;
use ephemerd::runtime::binaries::SearchPath;
use ephemerd::secrets::{CredentialError, CredentialStore, Keyring};
use ephemerd_proto::v1;
use serde_json::json;

use super::{out, render::Style};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Ok,
    Warn,
    Fail,
}

#[derive(Debug, Clone)]
pub struct Check {
    pub name: String,
    pub level: Level,
    pub detail: String,
    pub fix: Option<String>,
}

fn check(name: &str, level: Level, detail: impl Into<String>, fix: Option<&str>) -> Check {
    Check { name: name.into(), level, detail: detail.into(), fix: fix.map(String::from) }
}

/// What `bin --version` (the shim: `-v`) says, on one line.
fn version(bin: &Path) -> String {
    let shim = bin.file_name().is_some_and(|n| n.to_string_lossy().starts_with("containerd-shim"));
    Command::new(bin)
        .arg(if shim { "-v" } else { "--version" })
        .output()
        .ok()
        .map(|o| {
            let text = String::from_utf8_lossy(&o.stdout);
            let first = text.lines().next().unwrap_or("").trim().to_string();
            // The shim prints its name, then "Version: x" on the next line.
            match text.lines().find_map(|l| l.trim().strip_prefix("Version:")) {
                Some(v) if shim => format!("version {}", v.trim()),
                _ => first,
            }
        })
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "version unknown".into())
}

fn binaries(cfg: &Config) -> Vec<Check> {
    let exe = SearchPath::for_executables(cfg.containerd.bin_dir.as_deref());
    let mut out = Vec::new();
    for (name, what) in [("containerd", "containerd"), ("containerd-shim-runc-v2", "containerd"), ("runc", "runc")] {
        out.push(match exe.find(name, "") {
            Ok(p) => check(name, Level::Ok, format!("{} ({})", version(&p), p.display()), None),
            Err(e) => {
                check(name, Level::Fail, e.to_string(), Some(&format!("apt install {what}, or set containerd.bin_dir")))
            }
        });
    }
    let cni = SearchPath::for_cni(cfg.network.cni_bin_dir.as_deref());
    let missing: Vec<&str> =
        ["bridge", "host-local", "loopback"].into_iter().filter(|p| cni.find(p, "").is_err()).collect();
    out.push(if missing.is_empty() {
        check("CNI plugins", Level::Ok, "bridge, host-local, loopback", None)
    } else {
        check(
            "CNI plugins",
            Level::Fail,
            format!("missing: {}", missing.join(", ")),
            Some("apt install containernetworking-plugins, or set network.cni_bin_dir"),
        )
    });
    for (name, pkg) in [("iptables", "iptables"), ("iptables-restore", "iptables"), ("ip", "iproute2")] {
        if SearchPath::for_executables(None).find(name, "").is_err() {
            out.push(check(name, Level::Fail, "not found", Some(&format!("apt install {pkg}"))));
        }
    }
    out
}

fn cgroups() -> Check {
    let v2 = Path::new("/sys/fs/cgroup/cgroup.controllers");
    if let Ok(text) = std::fs::read_to_string(v2) {
        let have: Vec<&str> = text.split_whitespace().collect();
        let missing: Vec<&str> = ["cpu", "memory", "pids"].into_iter().filter(|c| !have.contains(c)).collect();
        return if missing.is_empty() {
            check("cgroups", Level::Ok, "v2 with cpu, memory, pids", None)
        } else {
            check(
                "cgroups",
                Level::Fail,
                format!("v2 without {}", missing.join(", ")),
                Some("enable the controllers (systemd: Delegate=yes, or boot with cgroup_enable=memory)"),
            )
        };
    }
    if Path::new("/sys/fs/cgroup/memory").is_dir() && Path::new("/sys/fs/cgroup/pids").is_dir() {
        return check("cgroups", Level::Ok, "v1 with memory and pids", None);
    }
    check(
        "cgroups",
        Level::Fail,
        "no cgroup v2 or v1 hierarchy with memory and pids",
        Some("mount cgroup2 at /sys/fs/cgroup"),
    )
}

fn privileges() -> Vec<Check> {
    let root = nix::unistd::geteuid().is_root();
    let mut out = vec![if root {
        check("privileges", Level::Ok, "root", None)
    } else {
        check(
            "privileges",
            Level::Warn,
            "not root: the checks that need root were skipped",
            Some("run `sudo ephemerd doctor` for a full check"),
        )
    }];
    if !root {
        return out;
    }
    out.push(if Path::new("/proc/self/ns/net").exists() {
        check("network namespaces", Level::Ok, "available", None)
    } else {
        check("network namespaces", Level::Fail, "/proc/self/ns/net is missing", Some("a kernel with CONFIG_NET_NS"))
    });
    let ipt = Command::new("iptables").args(["-w", "5", "-S", "INPUT"]).output();
    out.push(match ipt {
        Ok(o) if o.status.success() => check("iptables", Level::Ok, "rules can be read", None),
        Ok(o) => check(
            "iptables",
            Level::Fail,
            String::from_utf8_lossy(&o.stderr).trim().to_string(),
            Some("load the ip_tables/nf_tables modules; on nftables-only systems install iptables-nft"),
        ),
        Err(e) => check("iptables", Level::Fail, e.to_string(), Some("apt install iptables")),
    });
    out
}

fn seccomp(cfg: &Config) -> Check {
    let c = seccomp_profile(cfg);
    if cfg.security.allow_nested_namespaces && c.level == Level::Ok {
        return check(
            "seccomp",
            Level::Warn,
            format!("{}, but jobs may create namespaces (security.allow_nested_namespaces)", c.detail),
            Some("remove the setting unless jobs run rootless container tools"),
        );
    }
    c
}

fn seccomp_profile(cfg: &Config) -> Check {
    if let Some(p) = &cfg.security.seccomp_profile {
        if p == "unconfined" {
            return check("seccomp", Level::Warn, "unconfined (security.seccomp_profile)", Some("remove the setting"));
        }
        return if Path::new(p).is_file() {
            check("seccomp", Level::Ok, p.clone(), None)
        } else {
            check("seccomp", Level::Fail, format!("{p} does not exist"), Some("fix security.seccomp_profile"))
        };
    }
    let bundle = ephemerd::runtime::binaries::bundle_dir();
    let found =
        ephemerd::runtime::containerd::seccomp::default_locations(bundle.as_deref()).into_iter().find(|p| p.is_file());
    match found {
        Some(p) => check("seccomp", Level::Ok, p.display().to_string(), None),
        None => check(
            "seccomp",
            Level::Fail,
            "no default profile found",
            Some("apt install golang-github-containers-common"),
        ),
    }
}

/// Whether this instance may use its configured bridge and subnet.
fn bridge(cfg: &Config, dirs: &DataDirs) -> Check {
    use ephemerd::runtime::network::bridge::{Bridge, Claim};
    let instance = ephemerd::runtime::instance::Instance::of(dirs);
    let b = Bridge::new(&cfg.network.bridge, cfg.subnet(), instance.clone());
    let what = format!("{} ({}), peers isolated by bridge port isolation", cfg.network.bridge, cfg.subnet());
    match b.inspect() {
        Ok(Claim::Ours) => check("job network", Level::Ok, format!("{what}; instance {}", instance.id()), None),
        Ok(Claim::Absent) => check("job network", Level::Ok, format!("{what}; made with the first job"), None),
        Ok(Claim::TakeOver) => check(
            "job network",
            Level::Ok,
            format!("{what}; left unused by an ephemerd that is gone: taken over"),
            None,
        ),
        Err(e) => check("job network", Level::Fail, e.to_string(), Some("set network.bridge and network.subnet")),
    }
}

fn disk(dirs: &DataDirs) -> Check {
    let mut dir = dirs.root.as_path();
    while !dir.exists() {
        match dir.parent() {
            Some(p) => dir = p,
            None => break,
        }
    }
    match nix::sys::statvfs::statvfs(dir) {
        Ok(s) => {
            let free = s.blocks_available() * s.fragment_size();
            let gib = free as f64 / (1u64 << 30) as f64;
            let detail = format!("{gib:.1} GiB free for {}", dirs.root.display());
            let fix = Some("free space there, or move the data dir (--data-dir, data_dir)");
            if gib < 1.0 {
                check("disk", Level::Fail, detail, fix)
            } else if gib < 5.0 {
                check("disk", Level::Warn, detail, fix)
            } else {
                check("disk", Level::Ok, detail, None)
            }
        }
        Err(e) => check("disk", Level::Warn, format!("cannot measure free space: {e}"), None),
    }
}

/// With the worker VM (`[worker] mode = "vm"`, or a profile's `isolation = "vm"`): QEMU, the boot set, and
/// whether KVM or TCG runs the VM (and why).
fn worker_vm(cfg: &Config) -> Vec<Check> {
    use ephemerd::worker::vm::qemu::{Accel, BootSet, pick_accel};
    if !cfg.wants_vm() {
        return Vec::new();
    }
    let mut out = Vec::new();
    for (bin, pkg) in [("qemu-system-x86_64", "qemu-system-x86"), ("qemu-img", "qemu-utils")] {
        let found = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
            .map(|d| d.join(bin))
            .find(|p| p.is_file());
        out.push(match found {
            Some(p) => check(bin, Level::Ok, format!("{} ({})", version(&p), p.display()), None),
            None => check(bin, Level::Fail, "not found", Some(&format!("apt install {pkg}"))),
        });
    }
    let dir = cfg.worker.vm_image.clone().unwrap_or_default();
    out.push(match BootSet::in_dir(&dir) {
        Ok(_) => check("VM boot set", Level::Ok, dir.display().to_string(), None),
        Err(e) => check(
            "VM boot set",
            Level::Fail,
            e.to_string(),
            Some("sudo rootfs/build-vm-image.sh, then set worker.vm_image"),
        ),
    });
    let (accel, why) = pick_accel(Accel::wanted(cfg.worker.accel));
    out.push(match accel {
        Accel::Kvm => check("VM accelerator", Level::Ok, why, None),
        Accel::Tcg => check(
            "VM accelerator",
            Level::Warn,
            why,
            Some("jobs in the VM run many times slower: enable hardware virtualization (VT-x/AMD-V) for KVM"),
        ),
    });
    out
}

fn keyring() -> Check {
    match Keyring.get("github:ephemerd-doctor-probe") {
        Ok(_) => check("keyring", Level::Ok, "the OS keyring answers", None),
        Err(CredentialError::Unavailable(e)) => check(
            "keyring",
            Level::Warn,
            format!("not available: {e}"),
            Some(
                "run the daemon in a session with a Secret Service (gnome-keyring), or pass tokens with --token / GITHUB_TOKEN",
            ),
        ),
        Err(e) => check("keyring", Level::Warn, e.to_string(), None),
    }
}

async fn daemon(socket: &Path, group: Option<&str>) -> (Vec<Check>, Option<ephemerd_proto::Client>) {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let mut out = Vec::new();
    match std::fs::metadata(socket) {
        Ok(m) => {
            let mode = m.permissions().mode() & 0o777;
            let want_gid = group.and_then(|g| nix::unistd::Group::from_name(g).ok().flatten()).map(|g| g.gid.as_raw());
            if mode & 0o007 != 0 {
                out.push(check(
                    "control socket",
                    Level::Fail,
                    format!("{} is open to every user (mode {mode:o})", socket.display()),
                    Some("restart the daemon (it makes the socket 0660)"),
                ));
            } else if want_gid.is_some_and(|g| g != m.gid()) {
                out.push(check(
                    "control socket",
                    Level::Fail,
                    format!("{} is not owned by group {}", socket.display(), group.unwrap_or("")),
                    Some("restart the daemon to apply control.group"),
                ));
            } else {
                out.push(check("control socket", Level::Ok, format!("{} (mode {mode:o})", socket.display()), None));
            }
        }
        Err(_) => {
            out.push(check(
                "daemon",
                Level::Warn,
                format!("not running (no socket at {})", socket.display()),
                Some("start it with `ephemerd serve`"),
            ));
            return (out, None);
        }
    }
    match ephemerd_proto::connect(socket).await {
        Ok(mut c) => match c.status(v1::StatusRequest {}).await {
            Ok(s) => {
                let s = s.into_inner();
                out.push(check(
                    "daemon",
                    Level::Ok,
                    format!("{} {} · {} running", s.version, super::render::daemon_state_name(s.state), s.active_jobs),
                    None,
                ));
                (out, Some(c))
            }
            Err(e) => {
                out.push(check("daemon", Level::Fail, e.message().to_string(), Some("restart the daemon")));
                (out, None)
            }
        },
        Err(e) => {
            let fix = if e.cause.contains("ermission") {
                "run as root, or join the group set in control.group"
            } else {
                "start it with `ephemerd serve` (a stale socket is replaced)"
            };
            out.push(check("daemon", Level::Warn, e.to_string(), Some(fix)));
            (out, None)
        }
    }
}

async fn providers(c: Option<ephemerd_proto::Client>) -> Vec<Check> {
    let Some(mut c) = c else { return vec![] };
    let Ok(list) = c.list_providers(v1::ListProvidersRequest {}).await else { return vec![] };
    let mut out = Vec::new();
    for p in list.into_inner().providers {
        match c.test_provider(v1::TestProviderRequest { name: p.name.clone() }).await {
            Ok(t) => {
                let t = t.into_inner();
                if t.ok {
                    out.push(check(&p.name, Level::Ok, t.message, None));
                } else {
                    let detail = if t.missing_permissions.is_empty() {
                        t.message
                    } else {
                        format!("{}: {}", t.message, t.missing_permissions.join("; "))
                    };
                    let fix = "give the token what is missing, then `ephemerd credential set` it";
                    out.push(check(&p.name, Level::Fail, detail, Some(fix)));
                }
            }
            Err(e) => out.push(check(&p.name, Level::Fail, e.message().to_string(), None)),
        }
    }
    out
}

pub async fn run(cfg: &Config, dirs: &DataDirs, socket: &Path, json_out: bool) -> u8 {
    let mut checks = binaries(cfg);
    checks.push(cgroups());
    checks.extend(privileges());
    checks.push(seccomp(cfg));
    checks.push(bridge(cfg, dirs));
    checks.push(disk(dirs));
    checks.extend(worker_vm(cfg));
    checks.push(
        tokio::task::spawn_blocking(keyring)
            .await
            .unwrap_or_else(|e| check("keyring", Level::Warn, e.to_string(), None)),
    );
    let (d, client) = daemon(socket, cfg.control.group.as_deref()).await;
    checks.extend(d);
    checks.extend(providers(client).await);
    if json_out {
        let v: Vec<_> = checks
            .iter()
            .map(|c| {
                let level = match c.level {
                    Level::Ok => "ok",
                    Level::Warn => "warn",
                    Level::Fail => "fail",
                };
                json!({ "check": c.name, "status": level, "detail": c.detail, "fix": c.fix })
            })
            .collect();
        out!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else {
        print!("{}", text(&checks, super::ctl::style()));
    }
    if checks.iter().any(|c| c.level == Level::Fail) { 1 } else { 0 }
}

pub fn text(checks: &[Check], style: Style) -> String {
    let width = checks.iter().map(|c| c.name.chars().count()).max().unwrap_or(0);
    let mut out = String::new();
    for c in checks {
        let (mark, code) = match c.level {
            Level::Ok => ("ok  ", "32"),
            Level::Warn => ("warn", "33"),
            Level::Fail => ("FAIL", "31"),
        };
        let mark = if style.color { format!("\x1b[{code}m{mark}\x1b[0m") } else { mark.to_string() };
        out.push_str(&format!("{mark}  {:<width$}  {}\n", c.name, c.detail));
        if let Some(f) = &c.fix
            && c.level != Level::Ok
        {
            out.push_str(&format!("      {:<width$}  fix: {f}\n", ""));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems_come_with_their_fix() {
        let checks = vec![
            check("runc", Level::Ok, "runc version 1.1.5 (/usr/sbin/runc)", None),
            check("CNI plugins", Level::Fail, "missing: bridge", Some("apt install containernetworking-plugins")),
            check("disk", Level::Warn, "3.2 GiB free for /var/lib/ephemerd", Some("free space there")),
        ];
        insta::assert_snapshot!(text(&checks, Style { color: false }));
    }
}

//! The default seccomp profile: read from a profile in the containers/Docker JSON format (the distribution
//! ships it as `/usr/share/containers/seccomp.json`) and reduced to the OCI runtime form for this host's
//! architecture, kernel and the job's capability set (rules conditioned on capabilities we do not grant are
//! dropped, as Docker and Podman do). Whatever the profile says, jobs get no new namespaces: `clone` and
//! `unshare` are allowed only without namespace flags and `clone3` answers ENOSYS (its flags sit behind a
//! pointer seccomp cannot read; libc falls back to `clone`), as Docker's default profile does for a process
//! without CAP_SYS_ADMIN. A user namespace would otherwise hand a job every capability over its own mounts,
//! enough to mount its cgroup hierarchy and raise its own limits. Nor may a job open an AF_VSOCK socket.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    #[error(
        "no seccomp profile found (looked for {looked}); install golang-github-containers-common, set security.seccomp_profile to a profile, or to \"unconfined\" to run jobs without one"
    )]
    NotFound { looked: String },
    #[error("seccomp profile {path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Profile {
    default_action: String,
    #[serde(default)]
    default_errno_ret: Option<u32>,
    #[serde(default)]
    arch_map: Vec<ArchMap>,
    #[serde(default)]
    syscalls: Vec<Rule>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ArchMap {
    architecture: String,
    #[serde(default)]
    sub_architectures: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Rule {
    #[serde(default)]
    names: Vec<String>,
    action: String,
    #[serde(default)]
    args: Option<Vec<Value>>,
    #[serde(default)]
    errno_ret: Option<u32>,
    #[serde(default)]
    includes: Filter,
    #[serde(default)]
    excludes: Filter,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Filter {
    #[serde(default)]
    caps: Vec<String>,
    #[serde(default)]
    arches: Vec<String>,
    #[serde(default)]
    min_kernel: Option<String>,
}

/// Where the default profile is looked for, in order.
pub fn default_locations(bundle: Option<&Path>) -> Vec<PathBuf> {
    let mut v = Vec::new();
    if let Some(b) = bundle {
        v.push(b.join("seccomp.json"));
    }
    v.push(PathBuf::from("/usr/share/containers/seccomp.json"));
    v
}

/// Loads the profile: `configured` if given (`"unconfined"` gives `None`), else the first default location;
/// then [`deny_namespaces`] unless `allow_namespaces`.
pub fn load(
    configured: Option<&str>,
    defaults: &[PathBuf],
    caps: &[String],
    allow_namespaces: bool,
) -> Result<Option<Value>, SeccompError> {
    let path = match configured {
        Some("unconfined") => return Ok(None),
        Some(p) => PathBuf::from(p),
        None => defaults.iter().find(|p| p.is_file()).cloned().ok_or_else(|| SeccompError::NotFound {
            looked: defaults.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "),
        })?,
    };
    let text = std::fs::read_to_string(&path)
        .map_err(|e| SeccompError::Invalid { path: path.clone(), message: e.to_string() })?;
    let kernel = nix::sys::utsname::uname().map(|u| u.release().to_string_lossy().into_owned()).unwrap_or_default();
    let mut profile = convert(&text, std::env::consts::ARCH, &kernel, caps)
        .map_err(|message| SeccompError::Invalid { path, message })?;
    if !allow_namespaces {
        deny_namespaces(&mut profile, std::env::consts::ARCH);
    }
    Ok(Some(profile))
}

/// Every namespace flag of clone(2)/unshare(2): NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET.
const CLONE_NAMESPACES: u64 = 0x7E02_0000;
/// CLONE_NEWTIME: unshare(2) only (in clone(2) the bit belongs to the exit signal).
const CLONE_NEWTIME: u64 = 0x80;
const ENOSYS: u32 = 38;
const EPERM: u32 = 1;

/// Rewrites an OCI-form profile so no job process can make a namespace: every rule naming `clone`,
/// `clone3` or `unshare` loses those names, then `clone` and `unshare` are allowed only when no namespace
/// flag is set, fail with EPERM otherwise, and `clone3` fails with ENOSYS.
pub fn deny_namespaces(profile: &mut Value, rust_arch: &str) {
    const GUARDED: [&str; 3] = ["clone", "clone3", "unshare"];
    if let Some(rules) = profile["syscalls"].as_array_mut() {
        for r in rules.iter_mut() {
            if let Some(names) = r["names"].as_array_mut() {
                names.retain(|n| !n.as_str().is_some_and(|n| GUARDED.contains(&n)));
            }
        }
        rules.retain(|r| r["names"].as_array().is_some_and(|n| !n.is_empty()));
        // s390x passes clone's flags second (its stack pointer comes first).
        let clone_flags = if rust_arch == "s390x" { 1 } else { 0 };
        for (name, index, mask) in
            [("clone", clone_flags, CLONE_NAMESPACES), ("unshare", 0, CLONE_NAMESPACES | CLONE_NEWTIME)]
        {
            let arg = |mask: u64, value: u64| json!({ "index": index, "value": mask, "valueTwo": value, "op": "SCMP_CMP_MASKED_EQ" });
            rules.push(json!({ "names": [name], "action": "SCMP_ACT_ALLOW", "args": [arg(mask, 0)] }));
            // seccomp has no "masked not equal": one EPERM rule per flag, so the caller learns it is not
            // permitted rather than the profile's default (often ENOSYS).
            for bit in (0..64).map(|b| 1u64 << b).filter(|b| mask & b != 0) {
                rules.push(
                    json!({ "names": [name], "action": "SCMP_ACT_ERRNO", "errnoRet": EPERM, "args": [arg(bit, bit)] }),
                );
            }
        }
        rules.push(json!({ "names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": ENOSYS }));
        deny_vsock(rules);
    }
}

/// AF_VSOCK: vsock is not network-namespaced, so a job could reach the hypervisor host (or, in ephemerd's
/// worker VM, the host side of the worker's own channel). Where the profile allows `socket` outright, it
/// is now allowed for every other family only.
fn deny_vsock(rules: &mut Vec<Value>) {
    const AF_VSOCK: u64 = 40;
    let unconditional = |r: &Value| {
        r["action"] == "SCMP_ACT_ALLOW" && r.get("args").is_none_or(|a| a.as_array().is_none_or(Vec::is_empty))
    };
    let mut found = false;
    for r in rules.iter_mut().filter(|r| unconditional(r)) {
        if let Some(names) = r["names"].as_array_mut() {
            let before = names.len();
            names.retain(|n| n != "socket");
            found |= names.len() != before;
        }
    }
    if !found {
        return;
    }
    rules.retain(|r| r["names"].as_array().is_some_and(|n| !n.is_empty()));
    let family = |op: &str| json!([{ "index": 0, "value": AF_VSOCK, "valueTwo": 0, "op": op }]);
    rules.push(json!({ "names": ["socket"], "action": "SCMP_ACT_ALLOW", "args": family("SCMP_CMP_NE") }));
    rules.push(
        json!({ "names": ["socket"], "action": "SCMP_ACT_ERRNO", "errnoRet": EPERM, "args": family("SCMP_CMP_EQ") }),
    );
}

fn oci_arch(rust_arch: &str) -> (&'static str, &'static str) {
    // (SCMP_ARCH name, the arch name used in profile filters)
    match rust_arch {
        "x86_64" => ("SCMP_ARCH_X86_64", "amd64"),
        "aarch64" => ("SCMP_ARCH_AARCH64", "arm64"),
        "x86" => ("SCMP_ARCH_X86", "x86"),
        "arm" => ("SCMP_ARCH_ARM", "arm"),
        "s390x" => ("SCMP_ARCH_S390X", "s390x"),
        "powerpc64" => ("SCMP_ARCH_PPC64LE", "ppc64le"),
        "riscv64" => ("SCMP_ARCH_RISCV64", "riscv64"),
        _ => ("", ""),
    }
}

fn kernel_at_least(kernel: &str, min: &str) -> bool {
    let parse = |s: &str| -> (u32, u32) {
        let mut it = s.split(|c: char| !c.is_ascii_digit()).filter(|x| !x.is_empty()).map(|x| x.parse().unwrap_or(0));
        (it.next().unwrap_or(0), it.next().unwrap_or(0))
    };
    parse(kernel) >= parse(min)
}

/// Converts a containers-format profile to the OCI runtime form (pure; tested below).
pub fn convert(text: &str, rust_arch: &str, kernel: &str, caps: &[String]) -> Result<Value, String> {
    let p: Profile = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let (scmp_arch, arch) = oci_arch(rust_arch);
    let mut architectures = Vec::new();
    if let Some(m) = p.arch_map.iter().find(|m| m.architecture == scmp_arch) {
        architectures.push(m.architecture.clone());
        architectures.extend(m.sub_architectures.iter().cloned());
    }
    let has_cap = |c: &String| caps.iter().any(|x| x == c);
    let mut syscalls = Vec::new();
    for r in &p.syscalls {
        if r.names.is_empty() {
            continue;
        }
        let inc = &r.includes;
        if !inc.caps.iter().all(has_cap) {
            continue;
        }
        if !inc.arches.is_empty() && !inc.arches.iter().any(|a| a == arch) {
            continue;
        }
        if let Some(min) = &inc.min_kernel
            && !kernel_at_least(kernel, min)
        {
            continue;
        }
        let exc = &r.excludes;
        if exc.caps.iter().any(has_cap) || exc.arches.iter().any(|a| a == arch) {
            continue;
        }
        let mut s = json!({ "names": r.names, "action": r.action });
        if let Some(args) = r.args.as_ref().filter(|a| !a.is_empty()) {
            s["args"] = json!(args);
        }
        if let Some(e) = r.errno_ret {
            s["errnoRet"] = json!(e);
        }
        syscalls.push(s);
    }
    let mut out = json!({
        "defaultAction": p.default_action,
        "architectures": architectures,
        "syscalls": syscalls,
    });
    if let Some(e) = p.default_errno_ret {
        out["defaultErrnoRet"] = json!(e);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROFILE: &str = r#"{
      "defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38,
      "archMap": [{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]},
                  {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]}],
      "syscalls": [
        {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW", "args": [], "includes": {}, "excludes": {}},
        {"names": ["arch_prctl"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["amd64", "x32"]}},
        {"names": ["arm_fadvise64_64"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["arm64"]}},
        {"names": ["mount"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}},
        {"names": ["mount"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1, "excludes": {"caps": ["CAP_SYS_ADMIN"]}},
        {"names": ["chroot"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_CHROOT"]}},
        {"names": ["futuresys"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "7.1"}},
        {"names": ["personality"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]}
      ]}"#;

    #[test]
    fn keeps_rules_for_this_arch_kernel_and_caps() {
        let caps = vec!["CAP_SYS_CHROOT".to_string(), "CAP_KILL".to_string()];
        let v = convert(PROFILE, "x86_64", "6.1.0-18-amd64", &caps).unwrap();
        assert_eq!(v["defaultAction"], "SCMP_ACT_ERRNO");
        assert_eq!(v["defaultErrnoRet"], 38);
        assert_eq!(v["architectures"], json!(["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]));
        let names: Vec<String> = v["syscalls"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| format!("{}:{}", s["names"][0].as_str().unwrap(), s["action"].as_str().unwrap()))
            .collect();
        assert_eq!(
            names,
            vec![
                "read:SCMP_ACT_ALLOW",
                "arch_prctl:SCMP_ACT_ALLOW",
                "mount:SCMP_ACT_ERRNO",
                "chroot:SCMP_ACT_ALLOW",
                "personality:SCMP_ACT_ALLOW"
            ]
        );
        assert_eq!(v["syscalls"][2]["errnoRet"], 1);
        assert!(v["syscalls"][0].get("args").is_none());
        assert_eq!(v["syscalls"][4]["args"][0]["value"], 8);
    }

    #[test]
    fn newer_kernel_unlocks_min_kernel_rules() {
        let v = convert(PROFILE, "x86_64", "7.2.0", &[]).unwrap();
        assert!(v["syscalls"].as_array().unwrap().iter().any(|s| s["names"][0] == "futuresys"));
        assert!(kernel_at_least("6.18.44-fc", "5.8"));
        assert!(!kernel_at_least("4.19", "5.8"));
    }

    #[test]
    fn namespaces_are_denied_whatever_the_profile_allows() {
        let text = r#"{"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38,
          "archMap": [{"architecture": "SCMP_ARCH_X86_64"}],
          "syscalls": [{"names": ["read", "clone", "clone3", "unshare"], "action": "SCMP_ACT_ALLOW"},
                       {"names": ["unshare"], "action": "SCMP_ACT_ALLOW"}]}"#;
        let mut v = convert(text, "x86_64", "6.1", &[]).unwrap();
        deny_namespaces(&mut v, "x86_64");
        let rules = v["syscalls"].as_array().unwrap();
        assert_eq!(rules[0]["names"], json!(["read"]), "the shared rule keeps its other names");
        let of = |name: &str| rules.iter().filter(|r| r["names"] == json!([name])).collect::<Vec<_>>();
        let clone = of("clone");
        assert_eq!(clone[0]["action"], "SCMP_ACT_ALLOW");
        assert_eq!(
            clone[0]["args"][0],
            json!({"index": 0, "value": 0x7E02_0000u64, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"})
        );
        // One EPERM rule per namespace flag: NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET.
        assert_eq!(clone.len(), 1 + 7);
        let newuser = clone.iter().find(|r| r["args"][0]["value"] == 0x1000_0000u64).unwrap();
        assert_eq!((newuser["action"].as_str(), newuser["errnoRet"].as_u64()), (Some("SCMP_ACT_ERRNO"), Some(1)));
        assert_eq!(newuser["args"][0]["valueTwo"], 0x1000_0000u64);
        let unshare = of("unshare");
        assert_eq!(unshare.len(), 1 + 8, "unshare also guards CLONE_NEWTIME");
        assert!(unshare.iter().filter(|r| r["action"] == "SCMP_ACT_ALLOW").count() == 1);
        assert_eq!(of("clone3")[0]["errnoRet"], 38);
        assert!(of("socket").is_empty(), "no socket rule where the profile had none");
        assert_eq!(of("clone3").len(), 1);

        let mut s390 = convert(text, "s390x", "6.1", &[]).unwrap();
        deny_namespaces(&mut s390, "s390x");
        let first_clone = s390["syscalls"].as_array().unwrap().iter().find(|r| r["names"] == json!(["clone"])).cloned();
        assert_eq!(first_clone.unwrap()["args"][0]["index"], 1, "s390x passes clone's flags second");
    }

    #[test]
    fn the_distribution_profile_loads_with_namespaces_denied() {
        let path = PathBuf::from("/usr/share/containers/seccomp.json");
        if !path.is_file() {
            return; // scripts/deps.sh installs it; the end-to-end tests prove it in a job
        }
        let v = load(None, &[path], &crate::runtime::containerd::spec::default_cap_names(), false).unwrap().unwrap();
        let allowed = |name: &str| {
            v["syscalls"].as_array().unwrap().iter().any(|r| {
                r["action"] == "SCMP_ACT_ALLOW"
                    && r.get("args").is_none()
                    && r["names"].as_array().unwrap().iter().any(|n| n == name)
            })
        };
        assert!(allowed("read") && !allowed("unshare") && !allowed("clone") && !allowed("clone3"));
        assert!(!allowed("socket"), "socket is allowed only for families other than AF_VSOCK");
        let vsock = v["syscalls"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["names"] == json!(["socket"]) && r["action"] == "SCMP_ACT_ERRNO");
        assert_eq!(vsock.unwrap()["args"][0]["value"], 40);
    }

    #[test]
    fn unconfined_and_missing_profiles() {
        assert!(load(Some("unconfined"), &[], &[], false).unwrap().is_none());
        let err = load(None, &[PathBuf::from("/nonexistent/seccomp.json")], &[], false).unwrap_err().to_string();
        assert!(err.contains("/nonexistent/seccomp.json") && err.contains("unconfined"), "{err}");
    }
}

//! The OCI runtime spec of a job container, as a pure function of the job's inputs: image config (env, user,
//! workdir, entrypoint), a default capability set without SYS_ADMIN, NET_ADMIN, NET_RAW or MKNOD, the
//! seccomp profile, cgroup limits, the job's network namespace (new, or joined by path), its
//! per-job files and the runner overlay.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use oci_spec::image::ImageConfiguration;
use oci_spec::runtime::{
    Capability, LinuxBuilder, LinuxCapabilitiesBuilder, LinuxCpuBuilder, LinuxIdMappingBuilder, LinuxMemoryBuilder,
    LinuxNamespaceBuilder, LinuxNamespaceType, LinuxPidsBuilder, LinuxResourcesBuilder, LinuxSeccomp, Mount,
    MountBuilder, ProcessBuilder, RootBuilder, Spec, UserBuilder, get_default_maskedpaths, get_default_mounts,
    get_default_readonly_paths,
};
use serde_json::Value;

use crate::config::Limits;

#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("image user `{0}` is not numeric; ephemerd needs a numeric uid[:gid] in the image config")]
    User(String),
    #[error("image has no command to run and the job gives none")]
    NoCommand,
    #[error("building the OCI spec: {0}")]
    Build(String),
}

fn build_err(e: impl std::fmt::Display) -> SpecError {
    SpecError::Build(e.to_string())
}

/// The capabilities a job process gets: Docker's default set less MKNOD and NET_RAW.
pub const DEFAULT_CAPS: &[Capability] = &[
    Capability::Chown,
    Capability::DacOverride,
    Capability::Fsetid,
    Capability::Fowner,
    Capability::Setgid,
    Capability::Setuid,
    Capability::Setpcap,
    Capability::Setfcap,
    Capability::NetBindService,
    Capability::SysChroot,
    Capability::Kill,
    Capability::AuditWrite,
];

/// `CAP_*` names of [`DEFAULT_CAPS`], as seccomp profiles spell them.
pub fn default_cap_names() -> Vec<String> {
    DEFAULT_CAPS.iter().map(|c| format!("CAP_{}", c.to_string().trim_start_matches("CAP_"))).collect()
}

pub use crate::target::Bind;

/// A shared read-only tree with a per-job writable layer on top.
#[derive(Debug, Clone)]
pub struct Overlay {
    pub lower: PathBuf,
    pub upper: PathBuf,
    pub work: PathBuf,
    pub destination: PathBuf,
}

/// Everything the spec depends on.
#[derive(Debug, Clone)]
pub struct SpecInput<'a> {
    pub hostname: String,
    pub image: &'a ImageConfiguration,
    /// Replaces the image's entrypoint and cmd when given.
    pub args: Option<Vec<String>>,
    /// Added to (and overriding) the image's environment.
    pub env: Vec<(String, String)>,
    pub workdir: Option<String>,
    pub binds: Vec<Bind>,
    pub overlays: Vec<Overlay>,
    /// The job's network namespace; `None` gives a private namespace with loopback only.
    pub netns: Option<PathBuf>,
    pub limits: Limits,
    /// Whether the kernel accounts swap (only then can swap be capped at the memory limit).
    pub swap_accounting: bool,
    pub seccomp: Option<Value>,
    pub cgroups_path: String,
    /// Run in a user namespace mapping 0..65536 to host ids from this base (the rootfs must be remapped).
    pub uid_base: Option<u32>,
}

fn parse_user(user: &str) -> Result<(u32, u32), SpecError> {
    if user.is_empty() || user == "root" {
        return Ok((0, 0));
    }
    let (u, g) = user.split_once(':').unwrap_or((user, ""));
    let uid: u32 = if u == "root" { 0 } else { u.parse().map_err(|_| SpecError::User(user.to_string()))? };
    let gid: u32 =
        if g.is_empty() || g == "root" { 0 } else { g.parse().map_err(|_| SpecError::User(user.to_string()))? };
    Ok((uid, gid))
}

/// Image env overlaid with `extra` (same key: the later wins); PATH gets a default when missing.
pub fn merge_env(image_env: &[String], extra: &[(String, String)]) -> Vec<String> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut set = |k: &str, v: &str| match out.iter_mut().find(|(x, _)| x == k) {
        Some(e) => e.1 = v.to_string(),
        None => out.push((k.to_string(), v.to_string())),
    };
    for kv in image_env {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        set(k, v);
    }
    for (k, v) in extra {
        set(k, v);
    }
    if !out.iter().any(|(k, _)| k == "PATH") {
        out.insert(0, ("PATH".into(), "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into()));
    }
    out.into_iter().map(|(k, v)| format!("{k}={v}")).collect()
}

pub fn build(input: &SpecInput<'_>) -> Result<Spec, SpecError> {
    let cfg = input.image.config().clone().unwrap_or_default();
    let args = match &input.args {
        Some(a) => a.clone(),
        None => {
            let mut a = cfg.entrypoint().clone().unwrap_or_default();
            a.extend(cfg.cmd().clone().unwrap_or_default());
            a
        }
    };
    if args.is_empty() {
        return Err(SpecError::NoCommand);
    }
    let (uid, gid) = parse_user(cfg.user().as_deref().unwrap_or(""))?;
    let cwd = input
        .workdir
        .clone()
        .or_else(|| cfg.working_dir().clone())
        .filter(|w| !w.is_empty())
        .unwrap_or_else(|| "/".into());
    let env = merge_env(&cfg.env().clone().unwrap_or_default(), &input.env);

    let caps: HashSet<Capability> = DEFAULT_CAPS.iter().copied().collect();
    let capabilities = LinuxCapabilitiesBuilder::default()
        .bounding(caps.clone())
        .effective(caps.clone())
        .permitted(caps)
        .inheritable(HashSet::new())
        .ambient(HashSet::new())
        .build()
        .map_err(build_err)?;
    let process = ProcessBuilder::default()
        .terminal(false)
        .user(UserBuilder::default().uid(uid).gid(gid).build().map_err(build_err)?)
        .args(args)
        .env(env)
        .cwd(PathBuf::from(cwd))
        .capabilities(capabilities)
        // Limits are inherited from containerd (as Docker does); raising them needs privileges jobs lack.
        .rlimits(vec![])
        .no_new_privileges(true)
        .build()
        .map_err(build_err)?;

    let mut mounts: Vec<Mount> = get_default_mounts();
    for b in &input.binds {
        let mode = if b.readonly { "ro" } else { "rw" };
        mounts.push(
            MountBuilder::default()
                .destination(&b.destination)
                .typ("bind")
                .source(&b.source)
                .options(vec!["rbind".into(), mode.into(), "nosuid".into(), "nodev".into()])
                .build()
                .map_err(build_err)?,
        );
    }
    for o in &input.overlays {
        mounts.push(
            MountBuilder::default()
                .destination(&o.destination)
                .typ("overlay")
                .source("overlay")
                .options(vec![
                    format!("lowerdir={}", o.lower.display()),
                    format!("upperdir={}", o.upper.display()),
                    format!("workdir={}", o.work.display()),
                    "nosuid".into(),
                    "nodev".into(),
                ])
                .build()
                .map_err(build_err)?,
        );
    }

    if input.uid_base.is_some() && input.netns.is_some() {
        // sysfs can only be mounted by the owner of the network namespace; a job joining one the host made
        // gets the host's bound read-only instead (as rootless containers do).
        for m in mounts.iter_mut().filter(|m| m.destination() == Path::new("/sys")) {
            *m = MountBuilder::default()
                .destination("/sys")
                .typ("bind")
                .source("/sys")
                .options(vec!["rbind".into(), "ro".into(), "nosuid".into(), "noexec".into(), "nodev".into()])
                .build()
                .map_err(build_err)?;
        }
    }

    let mut namespaces = [
        LinuxNamespaceType::Pid,
        LinuxNamespaceType::Ipc,
        LinuxNamespaceType::Uts,
        LinuxNamespaceType::Mount,
        LinuxNamespaceType::Cgroup,
        LinuxNamespaceType::Network,
    ]
    .into_iter()
    .map(|t| {
        let mut b = LinuxNamespaceBuilder::default().typ(t);
        if t == LinuxNamespaceType::Network
            && let Some(p) = &input.netns
        {
            b = b.path(p.clone());
        }
        b.build().map_err(build_err)
    })
    .collect::<Result<Vec<_>, _>>()?;
    if input.uid_base.is_some() {
        namespaces.push(LinuxNamespaceBuilder::default().typ(LinuxNamespaceType::User).build().map_err(build_err)?);
    }

    let l = &input.limits;
    let mut resources = LinuxResourcesBuilder::default();
    if l.memory.0 > 0 {
        let mut m = LinuxMemoryBuilder::default().limit(l.memory.0 as i64);
        if input.swap_accounting {
            m = m.swap(l.memory.0 as i64);
        }
        resources = resources.memory(m.build().map_err(build_err)?);
    }
    if l.cpus > 0.0 {
        let period: u64 = 100_000;
        let quota = (l.cpus * period as f64).round() as i64;
        resources = resources.cpu(LinuxCpuBuilder::default().quota(quota).period(period).build().map_err(build_err)?);
    }
    if l.pids > 0 {
        resources = resources.pids(LinuxPidsBuilder::default().limit(l.pids).build().map_err(build_err)?);
    }
    let seccomp: Option<LinuxSeccomp> = match &input.seccomp {
        Some(v) => Some(serde_json::from_value(v.clone()).map_err(build_err)?),
        None => None,
    };
    let mut linux = LinuxBuilder::default()
        .namespaces(namespaces)
        .resources(resources.build().map_err(build_err)?)
        .cgroups_path(PathBuf::from(&input.cgroups_path))
        .masked_paths(get_default_maskedpaths())
        .readonly_paths(get_default_readonly_paths());
    if let Some(s) = seccomp {
        linux = linux.seccomp(s);
    }
    if let Some(base) = input.uid_base {
        let map = LinuxIdMappingBuilder::default()
            .container_id(0u32)
            .host_id(base)
            .size(super::remap::RANGE)
            .build()
            .map_err(build_err)?;
        linux = linux.uid_mappings(vec![map]).gid_mappings(vec![map]);
    }
    let mut spec = Spec::default();
    spec.set_hostname(Some(input.hostname.clone()));
    spec.set_process(Some(process));
    spec.set_root(Some(RootBuilder::default().path("rootfs").readonly(false).build().map_err(build_err)?));
    spec.set_mounts(Some(mounts));
    spec.set_linux(Some(linux.build().map_err(build_err)?));
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ByteSize;

    fn image(json: &str) -> ImageConfiguration {
        serde_json::from_str(json).unwrap()
    }

    fn input(img: &ImageConfiguration) -> SpecInput<'_> {
        SpecInput {
            hostname: "job-1".into(),
            image: img,
            args: None,
            env: vec![("FOO".into(), "bar".into()), ("PATH".into(), "/x".into())],
            workdir: None,
            binds: vec![Bind { source: "/h/ws".into(), destination: "/workspace".into(), readonly: false }],
            overlays: vec![Overlay {
                lower: "/r".into(),
                upper: "/j/up".into(),
                work: "/j/wk".into(),
                destination: "/actions-runner".into(),
            }],
            netns: Some("/run/netns/job-1".into()),
            limits: Limits { cpus: 1.5, memory: ByteSize(256 << 20), pids: 100 },
            swap_accounting: true,
            seccomp: Some(serde_json::json!({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": []})),
            cgroups_path: "/ephemerd/job-1".into(),
            uid_base: None,
        }
    }

    const IMG: &str = r#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]},
        "config":{"Env":["PATH=/usr/bin","FOO=img","LANG=C"],"Entrypoint":["/bin/sh","-c"],"Cmd":["echo hi"],"WorkingDir":"/src","User":"1000:100"}}"#;

    #[test]
    fn image_config_and_limits_land_in_the_spec() {
        let img = image(IMG);
        let spec = build(&input(&img)).unwrap();
        let v = serde_json::to_value(&spec).unwrap();
        assert_eq!(v["hostname"], "job-1");
        assert_eq!(v["root"]["path"], "rootfs");
        assert_eq!(v["process"]["args"], serde_json::json!(["/bin/sh", "-c", "echo hi"]));
        assert_eq!(v["process"]["env"], serde_json::json!(["PATH=/x", "FOO=bar", "LANG=C"]));
        assert_eq!(v["process"]["cwd"], "/src");
        assert_eq!(v["process"]["user"]["uid"], 1000);
        assert_eq!(v["process"]["user"]["gid"], 100);
        assert_eq!(v["process"]["noNewPrivileges"], true);
        let caps = v["process"]["capabilities"]["bounding"].as_array().unwrap();
        for forbidden in ["CAP_SYS_ADMIN", "CAP_NET_ADMIN", "CAP_MKNOD", "CAP_NET_RAW"] {
            assert!(!caps.iter().any(|c| c == forbidden), "{forbidden} granted");
        }
        assert!(caps.iter().any(|c| c == "CAP_CHOWN"));
        let res = &v["linux"]["resources"];
        assert_eq!(res["memory"]["limit"], 256 << 20);
        assert_eq!(res["memory"]["swap"], 256 << 20);
        assert_eq!(res["cpu"]["quota"], 150_000);
        assert_eq!(res["cpu"]["period"], 100_000);
        assert_eq!(res["pids"]["limit"], 100);
        assert_eq!(v["linux"]["cgroupsPath"], "/ephemerd/job-1");
        assert_eq!(v["linux"]["seccomp"]["defaultAction"], "SCMP_ACT_ERRNO");
        let ns = v["linux"]["namespaces"].as_array().unwrap();
        let net = ns.iter().find(|n| n["type"] == "network").unwrap();
        assert_eq!(net["path"], "/run/netns/job-1");
        let mounts = v["mounts"].as_array().unwrap();
        let runner = mounts.iter().find(|m| m["destination"] == "/actions-runner").unwrap();
        assert_eq!(runner["type"], "overlay");
        assert!(runner["options"].as_array().unwrap().iter().any(|o| o == "lowerdir=/r"));
        let ws = mounts.iter().find(|m| m["destination"] == "/workspace").unwrap();
        assert!(ws["options"].as_array().unwrap().iter().any(|o| o == "rw"));
        assert!(mounts.iter().any(|m| m["destination"] == "/proc"));
        let cgroup = mounts.iter().find(|m| m["destination"] == "/sys/fs/cgroup").unwrap();
        assert!(cgroup["options"].as_array().unwrap().iter().any(|o| o == "ro"), "the job's cgroup is read-only");
        assert!(v["linux"].get("sysctl").is_none(), "the job network's sysctls are set when it is made");
        assert!(v["linux"].get("uidMappings").is_none() && !ns.iter().any(|n| n["type"] == "user"));
    }

    #[test]
    fn a_user_namespace_maps_the_range_and_binds_sys() {
        let img = image(IMG);
        let mut i = input(&img);
        i.uid_base = Some(1 << 30);
        let v = serde_json::to_value(build(&i).unwrap()).unwrap();
        let map = serde_json::json!([{"containerID": 0, "hostID": 1u32 << 30, "size": 65536}]);
        assert_eq!((&v["linux"]["uidMappings"], &v["linux"]["gidMappings"]), (&map, &map));
        assert!(v["linux"]["namespaces"].as_array().unwrap().iter().any(|n| n["type"] == "user"));
        let sys = v["mounts"].as_array().unwrap().iter().find(|m| m["destination"] == "/sys").unwrap();
        assert_eq!(sys["type"], "bind");
        assert!(sys["options"].as_array().unwrap().iter().any(|o| o == "ro"));
        // A network namespace of the job's own (made with it, so its user namespace owns it) gets sysfs.
        i.netns = None;
        let v = serde_json::to_value(build(&i).unwrap()).unwrap();
        let sys = v["mounts"].as_array().unwrap().iter().find(|m| m["destination"] == "/sys").unwrap();
        assert_eq!(sys["type"], "sysfs");
        let net = v["linux"]["namespaces"].as_array().unwrap().iter().find(|n| n["type"] == "network").unwrap();
        assert!(net.get("path").is_none(), "a new namespace: {net}");
    }

    #[test]
    fn job_args_and_workdir_override_the_image() {
        let img = image(IMG);
        let mut i = input(&img);
        i.args = Some(vec!["/bin/true".into()]);
        i.workdir = Some("/w".into());
        i.swap_accounting = false;
        i.limits = Limits { cpus: 0.0, memory: ByteSize(0), pids: 0 };
        let v = serde_json::to_value(build(&i).unwrap()).unwrap();
        assert_eq!(v["process"]["args"], serde_json::json!(["/bin/true"]));
        assert_eq!(v["process"]["cwd"], "/w");
        assert!(v["linux"]["resources"].get("memory").is_none());
        assert!(v["linux"]["resources"].get("cpu").is_none());
    }

    #[test]
    fn users_and_missing_commands() {
        assert_eq!(parse_user("").unwrap(), (0, 0));
        assert_eq!(parse_user("1000").unwrap(), (1000, 0));
        assert_eq!(parse_user("1000:1000").unwrap(), (1000, 1000));
        assert!(parse_user("runner").is_err());
        let img = image(r#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#);
        let mut i = input(&img);
        i.args = None;
        assert!(matches!(build(&i), Err(SpecError::NoCommand)));
    }

    #[test]
    fn cap_names_are_prefixed_once() {
        let n = default_cap_names();
        assert!(n.contains(&"CAP_CHOWN".to_string()), "{n:?}");
        assert!(n.iter().all(|c| !c.starts_with("CAP_CAP_")));
    }
}

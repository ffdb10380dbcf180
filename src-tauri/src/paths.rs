//! Where the app finds the daemon: its control socket, its binary, and the files the app keeps itself.
//! The daemon's own rules are mirrored here (not imported: the app depends on the proto crate only):
//! `EPHEMERD_SOCKET`, else `EPHEMERD_DATA_DIR/run/control.sock`, else the default data dir's socket —
//! the user's own in user mode, the system's (root's) for the service.

use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    /// The socket of a daemon the app runs itself (user mode).
    pub socket: PathBuf,
    /// The socket of the system service (service mode).
    pub service_socket: PathBuf,
    /// The `ephemerd` binary the app runs (user mode, `service` commands).
    pub ephemerd: PathBuf,
    /// The app's own files: settings (no secrets) and the child daemon's log.
    pub app_dir: PathBuf,
}

/// What the paths are found from, so the rules are tested without touching the process environment.
pub struct Env<'a> {
    pub var: &'a dyn Fn(&str) -> Option<String>,
    pub is_root: bool,
    /// The app's own executable.
    pub exe: Option<PathBuf>,
}

pub fn default_data_dir(env: &Env) -> PathBuf {
    if env.is_root {
        return PathBuf::from("/var/lib/ephemerd");
    }
    if let Some(x) = (env.var)("XDG_DATA_HOME") {
        return PathBuf::from(x).join("ephemerd");
    }
    match (env.var)("HOME") {
        Some(h) => PathBuf::from(h).join(".local/share/ephemerd"),
        None => PathBuf::from("/var/lib/ephemerd"),
    }
}

fn app_dir(env: &Env) -> PathBuf {
    if let Some(d) = (env.var)("EPHEMERD_TRAY_DIR") {
        return PathBuf::from(d);
    }
    if let Some(x) = (env.var)("XDG_CONFIG_HOME") {
        return PathBuf::from(x).join("ephemerd-tray");
    }
    match (env.var)("HOME") {
        Some(h) => PathBuf::from(h).join(".config/ephemerd-tray"),
        None => std::env::temp_dir().join("ephemerd-tray"),
    }
}

/// `EPHEMERD_BIN`, else `ephemerd` beside the app (how the packages install it), else from `PATH`.
fn ephemerd(env: &Env, exists: &dyn Fn(&Path) -> bool) -> PathBuf {
    if let Some(b) = (env.var)("EPHEMERD_BIN") {
        return PathBuf::from(b);
    }
    let name = if cfg!(windows) { "ephemerd.exe" } else { "ephemerd" };
    if let Some(beside) = env.exe.as_ref().map(|e| e.with_file_name(name)).filter(|p| exists(p)) {
        return beside;
    }
    PathBuf::from(name)
}

pub fn find(env: &Env, exists: &dyn Fn(&Path) -> bool) -> Paths {
    let socket_in = |d: PathBuf| d.join("run").join(ephemerd_proto::SOCKET_NAME);
    let given = match ((env.var)("EPHEMERD_SOCKET"), (env.var)("EPHEMERD_DATA_DIR")) {
        (Some(s), _) => Some(PathBuf::from(s)),
        (None, Some(d)) => Some(socket_in(PathBuf::from(d))),
        (None, None) => None,
    };
    let socket = given.clone().unwrap_or_else(|| socket_in(default_data_dir(env)));
    let system = Env { var: env.var, is_root: true, exe: None };
    let service_socket = given.unwrap_or_else(|| socket_in(default_data_dir(&system)));
    Paths { socket, service_socket, ephemerd: ephemerd(env, exists), app_dir: app_dir(env) }
}

/// The paths for this process.
pub fn from_process() -> Paths {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    #[cfg(unix)]
    let is_root =
        std::fs::metadata("/proc/self").map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0).unwrap_or(false);
    #[cfg(not(unix))]
    let is_root = false;
    find(&Env { var: &var, is_root, exe: std::env::current_exe().ok() }, &|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
    }

    #[test]
    fn the_socket_follows_the_daemons_rules() {
        let v = env_of(&[("HOME", "/home/u")]);
        let env = Env { var: &v, is_root: false, exe: Some("/opt/e/ephemerd-tray".into()) };
        let p = find(&env, &|p| p == Path::new("/opt/e/ephemerd"));
        assert_eq!(p.socket, PathBuf::from("/home/u/.local/share/ephemerd/run/control.sock"));
        assert_eq!(p.service_socket, PathBuf::from("/var/lib/ephemerd/run/control.sock"));
        assert_eq!(p.ephemerd, PathBuf::from("/opt/e/ephemerd"));
        assert_eq!(p.app_dir, PathBuf::from("/home/u/.config/ephemerd-tray"));
        let p = find(&Env { var: &v, is_root: true, exe: None }, &|_| false);
        assert_eq!(p.socket, PathBuf::from("/var/lib/ephemerd/run/control.sock"));
        assert_eq!(p.ephemerd, PathBuf::from("ephemerd"));
        let v = env_of(&[("EPHEMERD_DATA_DIR", "/d"), ("EPHEMERD_BIN", "/b/ephemerd"), ("EPHEMERD_TRAY_DIR", "/t")]);
        let p = find(&Env { var: &v, is_root: false, exe: None }, &|_| true);
        assert_eq!(
            (p.socket, p.ephemerd, p.app_dir),
            ("/d/run/control.sock".into(), "/b/ephemerd".into(), "/t".into())
        );
        let v = env_of(&[("EPHEMERD_DATA_DIR", "/d"), ("EPHEMERD_SOCKET", "/s.sock")]);
        let p = find(&Env { var: &v, is_root: false, exe: None }, &|_| true);
        assert_eq!((p.socket, p.service_socket), (PathBuf::from("/s.sock"), PathBuf::from("/s.sock")));
    }
}

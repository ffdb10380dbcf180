//! Finding the external binaries ephemerd drives (containerd, its shim, runc, CNI plugins): the bundle next
//! to the executable first, then a configured directory, then the system's. A miss names every place looked.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
#[error("cannot find `{name}` ({what}); looked in: {}", looked.join(", "))]
pub struct NotFound {
    pub name: String,
    pub what: &'static str,
    pub looked: Vec<String>,
}

/// An ordered list of directories to search.
#[derive(Debug, Clone, Default)]
pub struct SearchPath {
    dirs: Vec<PathBuf>,
    /// Whether `PATH` is searched after `dirs`.
    use_env_path: bool,
}

/// The bundle dir shipped next to the daemon binary: `<dir of ephemerd>/ephemerd-bundle`.
pub fn bundle_dir() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    Some(exe.parent()?.join("ephemerd-bundle"))
}

impl SearchPath {
    /// Bundle, then `configured`, then `PATH`.
    pub fn for_executables(configured: Option<&Path>) -> Self {
        let mut dirs = Vec::new();
        dirs.extend(bundle_dir());
        dirs.extend(configured.map(Path::to_path_buf));
        Self { dirs, use_env_path: true }
    }

    /// Bundle's `cni/`, then `configured`, then the distributions' CNI directories.
    pub fn for_cni(configured: Option<&Path>) -> Self {
        let mut dirs = Vec::new();
        dirs.extend(bundle_dir().map(|b| b.join("cni")));
        dirs.extend(configured.map(Path::to_path_buf));
        dirs.extend(["/usr/lib/cni", "/opt/cni/bin", "/usr/libexec/cni"].map(PathBuf::from));
        Self { dirs, use_env_path: false }
    }

    pub fn explicit(dirs: Vec<PathBuf>, use_env_path: bool) -> Self {
        Self { dirs, use_env_path }
    }

    fn all_dirs(&self) -> Vec<PathBuf> {
        let mut all = self.dirs.clone();
        if self.use_env_path
            && let Some(p) = std::env::var_os("PATH")
        {
            all.extend(std::env::split_paths(&p));
        }
        all
    }

    /// Finds an executable file called `name`.
    pub fn find(&self, name: &str, what: &'static str) -> Result<PathBuf, NotFound> {
        let all = self.all_dirs();
        for d in &all {
            let p = d.join(name);
            if is_executable(&p) {
                return Ok(p);
            }
        }
        Err(NotFound { name: name.into(), what, looked: all.iter().map(|d| d.display().to_string()).collect() })
    }
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0).unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_directory_wins_and_misses_name_every_place() {
        use std::os::unix::fs::PermissionsExt;
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        for d in [a.path(), b.path()] {
            let p = d.join("tool");
            std::fs::write(&p, "#!/bin/sh\n").unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        std::fs::write(a.path().join("plain"), "").unwrap();
        let sp = SearchPath::explicit(vec![a.path().into(), b.path().into()], false);
        assert_eq!(sp.find("tool", "test").unwrap(), a.path().join("tool"));
        let err = sp.find("plain", "a test tool").unwrap_err().to_string();
        assert!(err.contains("`plain` (a test tool)"), "{err}");
        assert!(err.contains(&a.path().display().to_string()) && err.contains(&b.path().display().to_string()));
    }
}

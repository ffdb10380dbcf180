//! The control socket: a Unix socket in the data dir's run dir, mode 0660, group-owned by
//! `control.group` when set (and the directories on its path made traversable for that group), so a
//! desktop user in that group needs no root. A socket another daemon answers on is never taken over.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    #[error("another ephemerd already answers on {0}")]
    InUse(PathBuf),
    #[error("control socket {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("control.group: no group named `{0}`")]
    NoGroup(String),
}

/// Binds the control socket at `path` (removing a stale one), mode 0660, owned by `group` if given. `dirs`
/// are the directories above it that the group must be able to traverse (mode g+x).
pub async fn bind(path: &Path, group: Option<&str>, dirs: &[PathBuf]) -> Result<tokio::net::UnixListener, SocketError> {
    let io = |source| SocketError::Io { path: path.to_path_buf(), source };
    if tokio::net::UnixStream::connect(path).await.is_ok() {
        return Err(SocketError::InUse(path.to_path_buf()));
    }
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(e)),
    }
    let gid = match group {
        None => None,
        Some(name) => Some(
            nix::unistd::Group::from_name(name)
                .map_err(|e| io(std::io::Error::from(e)))?
                .ok_or_else(|| SocketError::NoGroup(name.to_string()))?
                .gid,
        ),
    };
    // The socket is created owned by root with the process's umask (connecting needs write access, which
    // the usual 022 gives nobody else), then set to 0660 and its group. The umask is not changed: it is
    // the whole process's, and other threads create files meanwhile.
    let listener = tokio::net::UnixListener::bind(path).map_err(io)?;
    if let Some(gid) = gid {
        nix::unistd::chown(path, None, Some(gid)).map_err(|e| io(e.into()))?;
        for d in dirs {
            let mode = std::fs::metadata(d).map_err(io)?.permissions().mode();
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(mode | 0o010)).map_err(io)?;
            nix::unistd::chown(d, None, Some(gid)).map_err(|e| io(e.into()))?;
        }
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660)).map_err(io)?;
    Ok(listener)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_live_socket_is_never_taken_over_and_a_stale_one_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("control.sock");
        let first = bind(&path, None, &[]).await.unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o660);
        let accept = tokio::spawn(async move { first.accept().await.map(drop) });
        let e = bind(&path, None, &[]).await.unwrap_err();
        assert!(matches!(e, SocketError::InUse(_)), "{e}");
        accept.abort();
        let _ = accept.await;
        // The listener is gone, its file stays: a stale socket, replaced.
        assert!(path.exists());
        bind(&path, None, &[]).await.unwrap();
        let e = bind(&dir.path().join("g.sock"), Some("no-such-group-here"), &[]).await.unwrap_err();
        assert!(e.to_string().contains("no-such-group-here"), "{e}");
    }
}

//! Credentials of a Linux *system* service, which has no Secret Service: systemd's encrypted credentials
//! (`systemd-creds`, sealed with the host key `/var/lib/systemd/credential.secret`, readable by root
//! only). Each secret is a `.cred` file under `DATA_DIR/credentials/` (mode 0600) whose content is
//! ciphertext bound to its name; the plain secret goes to `systemd-creds` on stdin and comes back on
//! stdout, never through argv or a plain file.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::forge::Secret;
use crate::secrets::{CredentialError, CredentialStore, check_name};

pub struct SystemdCreds {
    pub dir: PathBuf,
    pub program: PathBuf,
}

/// Which store a daemon uses: a root daemon with no session bus (a system service) seals its credentials
/// with `systemd-creds` when that is installed; everything else uses the OS keyring.
pub fn system_service_store(dir: &Path) -> Option<SystemdCreds> {
    let root = nix::unistd::geteuid().is_root();
    let session = std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_some_and(|v| !v.is_empty());
    let program = ["/usr/bin/systemd-creds", "/bin/systemd-creds"].iter().map(PathBuf::from).find(|p| p.is_file())?;
    (cfg!(target_os = "linux") && root && !session).then(|| SystemdCreds { dir: dir.to_path_buf(), program })
}

impl SystemdCreds {
    /// systemd's credential names allow no `:`: the provider name, hex-encoded (one file per name).
    fn cred_name(name: &str) -> Result<String, CredentialError> {
        check_name(name)?;
        Ok(format!("ephemerd-{}", hex::encode(name)))
    }

    fn file(&self, name: &str) -> Result<(String, PathBuf), CredentialError> {
        let n = Self::cred_name(name)?;
        let f = self.dir.join(format!("{n}.cred"));
        Ok((n, f))
    }

    fn run(&self, args: &[&std::ffi::OsStr], input: Option<&[u8]>) -> Result<Vec<u8>, CredentialError> {
        let unavailable = |m: String| CredentialError::Unavailable(format!("systemd-creds: {m}"));
        let mut child = Command::new(&self.program)
            .args(args)
            .stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| unavailable(e.to_string()))?;
        if let (Some(data), Some(mut stdin)) = (input, child.stdin.take()) {
            stdin.write_all(data).map_err(|e| unavailable(e.to_string()))?;
        }
        let out = child.wait_with_output().map_err(|e| unavailable(e.to_string()))?;
        if !out.status.success() {
            let said = String::from_utf8_lossy(&out.stderr);
            let last = said.lines().rev().find(|l| !l.contains("not located on encrypted media")).unwrap_or("failed");
            return Err(unavailable(last.trim().to_string()));
        }
        Ok(out.stdout)
    }
}

impl CredentialStore for SystemdCreds {
    fn kind(&self) -> &'static str {
        "systemd-creds"
    }

    fn get(&self, name: &str) -> Result<Option<Secret>, CredentialError> {
        let (n, f) = self.file(name)?;
        if !f.is_file() {
            return Ok(None);
        }
        let out = self.run(&["decrypt".as_ref(), format!("--name={n}").as_ref(), f.as_os_str(), "-".as_ref()], None)?;
        let s = String::from_utf8(out).map_err(|_| CredentialError::Unavailable(format!("{name}: not text")))?;
        Ok(Some(Secret::new(s)))
    }

    fn set(&self, name: &str, secret: &Secret) -> Result<(), CredentialError> {
        let (n, f) = self.file(name)?;
        if secret.expose().trim().is_empty() {
            return Err(CredentialError::Empty(name.to_string()));
        }
        let io = |e: std::io::Error| CredentialError::Unavailable(format!("{}: {e}", self.dir.display()));
        std::fs::create_dir_all(&self.dir).map_err(io)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&self.dir, std::fs::Permissions::from_mode(0o700)).map_err(io)?;
        }
        let tmp = f.with_extension("cred.new");
        let name_arg = format!("--name={n}");
        let args = ["encrypt".as_ref(), name_arg.as_ref(), "--with-key=host".as_ref(), "-".as_ref(), tmp.as_os_str()];
        self.run(&args, Some(secret.expose().as_bytes()))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
        }
        std::fs::rename(&tmp, &f).map_err(io)
    }

    fn delete(&self, name: &str) -> Result<bool, CredentialError> {
        let (_, f) = self.file(name)?;
        match std::fs::remove_file(&f) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(CredentialError::Unavailable(format!("{}: {e}", f.display()))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Needs root and systemd-creds (as CI has); the host key is created on first use.
    #[test]
    fn secrets_are_sealed_bound_to_their_name_and_never_written_plain() {
        let Some(program) = ["/usr/bin/systemd-creds"].iter().map(PathBuf::from).find(|p| p.is_file()) else {
            panic!("systemd-creds is missing (apt install systemd)");
        };
        let d = tempfile::tempdir().unwrap();
        let s = SystemdCreds { dir: d.path().join("credentials"), program };
        assert!(s.get("github:octo-org").unwrap().is_none());
        s.set("github:octo-org", &Secret::new("ghp_sealedSecret")).unwrap();
        assert_eq!(s.get("github:octo-org").unwrap().unwrap().expose(), "ghp_sealedSecret");
        let files: Vec<_> = std::fs::read_dir(d.path().join("credentials")).unwrap().flatten().collect();
        assert_eq!(files.len(), 1);
        let bytes = std::fs::read(files[0].path()).unwrap();
        assert!(!bytes.windows(6).any(|w| w == b"sealed"), "the secret is not in the file in plain");
        // A file renamed to another provider's name is refused, not read as that provider's.
        let other =
            d.path().join("credentials").join(format!("{}.cred", SystemdCreds::cred_name("github:evil").unwrap()));
        std::fs::copy(files[0].path(), &other).unwrap();
        assert!(matches!(s.get("github:evil"), Err(CredentialError::Unavailable(_))));
        assert!(s.delete("github:octo-org").unwrap() && !s.delete("github:octo-org").unwrap());
        assert!(s.get("github:octo-org").unwrap().is_none());
        assert!(matches!(s.set("github:o", &Secret::new(" ")), Err(CredentialError::Empty(_))));
    }
}

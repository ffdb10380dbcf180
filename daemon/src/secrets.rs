//! Credentials: the one place forge secrets are stored and read. `CredentialStore` is the seam: the OS
//! keyring in the daemon (Secret Service on Linux, Keychain on macOS, Credential Manager on Windows, via
//! the `keyring` crate), `systemd-creds` for a Linux system service (`secrets_systemd`), an in-memory
//! map in unit tests. A keyring that is missing or locked is an error that says so; a plain file is
//! never a fallback.

use crate::forge::Secret;

/// The keyring service name every ephemerd credential is stored under.
pub const SERVICE: &str = "ephemerd";

#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error(
        "the OS keyring is not available: {0} (on Linux ephemerd needs a Secret Service, such as gnome-keyring, in the daemon's session; it never keeps credentials in a file)"
    )]
    Unavailable(String),
    #[error("credential name `{0}` is not a provider name like github:octo-org")]
    BadName(String),
    #[error("the credential for {0} is empty")]
    Empty(String),
}

/// Where credentials live, by provider name (`github:octo-org`). Calls may block (D-Bus, Keychain).
pub trait CredentialStore: Send + Sync {
    /// What the settings window shows as where a stored credential lives.
    fn kind(&self) -> &'static str {
        "keyring"
    }
    fn get(&self, name: &str) -> Result<Option<Secret>, CredentialError>;
    fn set(&self, name: &str, secret: &Secret) -> Result<(), CredentialError>;
    /// Removes a credential; `false` if there was none.
    fn delete(&self, name: &str) -> Result<bool, CredentialError>;
}

/// A provider name: `<kind>:<owner or instance>`, printable, no spaces.
pub fn check_name(name: &str) -> Result<(), CredentialError> {
    let ok = name.split_once(':').is_some_and(|(kind, rest)| {
        !kind.is_empty()
            && kind.chars().all(|c| c.is_ascii_lowercase())
            && !rest.is_empty()
            && rest.len() <= 200
            && rest.chars().all(|c| c.is_ascii_alphanumeric() || "-_./:@".contains(c))
    });
    if ok { Ok(()) } else { Err(CredentialError::BadName(name.chars().take(80).collect())) }
}

/// The OS keyring.
pub struct Keyring;

impl Keyring {
    fn entry(name: &str) -> Result<keyring::Entry, CredentialError> {
        check_name(name)?;
        keyring::Entry::new(SERVICE, name).map_err(|e| CredentialError::Unavailable(e.to_string()))
    }
}

impl CredentialStore for Keyring {
    fn get(&self, name: &str) -> Result<Option<Secret>, CredentialError> {
        match Self::entry(name)?.get_password() {
            Ok(s) => Ok(Some(Secret::new(s))),
            Err(keyring::Error::NoEntry) => Ok(None),
            Err(e) => Err(CredentialError::Unavailable(e.to_string())),
        }
    }

    fn set(&self, name: &str, secret: &Secret) -> Result<(), CredentialError> {
        let entry = Self::entry(name)?;
        if secret.expose().trim().is_empty() {
            return Err(CredentialError::Empty(name.to_string()));
        }
        entry.set_password(secret.expose()).map_err(|e| CredentialError::Unavailable(e.to_string()))
    }

    fn delete(&self, name: &str) -> Result<bool, CredentialError> {
        match Self::entry(name)?.delete_credential() {
            Ok(()) => Ok(true),
            Err(keyring::Error::NoEntry) => Ok(false),
            Err(e) => Err(CredentialError::Unavailable(e.to_string())),
        }
    }
}

/// Credentials in memory, for unit tests of the code that uses a store.
#[cfg(test)]
#[derive(Default)]
pub struct Memory(std::sync::Mutex<std::collections::HashMap<String, String>>);

#[cfg(test)]
impl CredentialStore for Memory {
    fn get(&self, name: &str) -> Result<Option<Secret>, CredentialError> {
        Ok(self.0.lock().unwrap().get(name).map(|s| Secret::new(s.clone())))
    }
    fn set(&self, name: &str, secret: &Secret) -> Result<(), CredentialError> {
        check_name(name)?;
        self.0.lock().unwrap().insert(name.into(), secret.expose().into());
        Ok(())
    }
    fn delete(&self, name: &str) -> Result<bool, CredentialError> {
        Ok(self.0.lock().unwrap().remove(name).is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["github:octo-org", "gitlab:gitlab.example.com/group", "forgejo:codeberg.org"] {
            check_name(ok).unwrap();
        }
        for bad in ["", "github", ":x", "github:", "GitHub:x", "github:a b", "github:x\n"] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn errors_never_carry_the_secret() {
        let m = Memory::default();
        let e = m.set("not a name", &Secret::new("ghp_s3cret")).unwrap_err();
        assert!(!e.to_string().contains("ghp_s3cret"));
        m.set("github:o", &Secret::new("ghp_s3cret")).unwrap();
        assert_eq!(m.get("github:o").unwrap().unwrap().expose(), "ghp_s3cret");
        assert!(m.delete("github:o").unwrap() && !m.delete("github:o").unwrap());
    }
}

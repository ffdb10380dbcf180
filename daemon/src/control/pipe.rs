//! The control API's Windows transport, as data: the named pipe's name and its access control list (an
//! SDDL string). Pure, so it is tested on every platform; the thin `cfg(windows)` shim below only hands
//! them to the OS.
//!
//! Access: full control for LocalSystem and Administrators, read/write for the interactive user who
//! started the daemon in user mode (or a configured group's SID in service mode); nobody else — network
//! logons are denied explicitly, and the pipe refuses remote clients.

/// The pipe's name for a data dir: one daemon per data dir, as with the Unix socket.
pub fn pipe_name(data_dir_key: &str) -> String {
    // Pipe names may not hold backslashes past the prefix; anything but [A-Za-z0-9-] becomes '-'.
    let key: String = data_dir_key
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' { c.to_ascii_lowercase() } else { '-' })
        .collect();
    format!(r"\\.\pipe\ephemerd-control-{}", key.trim_matches('-'))
}

/// The pipe's security descriptor in SDDL: protected DACL (no inherited entries), SYSTEM and
/// Administrators full access, `client_sid` (a user or group SID such as `S-1-5-21-…`) read and write,
/// network logons denied.
pub fn pipe_sddl(client_sid: Option<&str>) -> Result<String, String> {
    let mut sddl = String::from("D:P(D;;GA;;;NU)(A;;GA;;;SY)(A;;GA;;;BA)");
    if let Some(sid) = client_sid {
        let valid = sid.starts_with("S-1-")
            && sid.len() <= 184
            && sid[4..].split('-').all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()));
        if !valid {
            return Err(format!("`{sid}` is not a security identifier (S-1-…)"));
        }
        sddl.push_str(&format!("(A;;GRGW;;;{sid})"));
    }
    Ok(sddl)
}

#[cfg(windows)]
#[allow(unsafe_code)]
pub mod windows {
    //! Binds the pipe with `pipe_sddl`'s ACL. (Not compiled on the Linux CI: kept to the OS calls only.)
    use tokio::net::windows::named_pipe::{NamedPipeServer, ServerOptions};
    use windows_sys::Win32::Foundation::LocalFree;
    use windows_sys::Win32::Security::Authorization::{
        ConvertStringSecurityDescriptorToSecurityDescriptorW, SDDL_REVISION_1,
    };
    use windows_sys::Win32::Security::SECURITY_ATTRIBUTES;

    /// Creates the first instance of the pipe; `first_pipe_instance` makes a second daemon fail here.
    pub fn create(name: &str, sddl: &str, first: bool) -> std::io::Result<NamedPipeServer> {
        let wide: Vec<u16> = sddl.encode_utf16().chain(Some(0)).collect();
        let mut sd = std::ptr::null_mut();
        // SAFETY: `wide` is NUL-terminated; on success `sd` is a LocalAlloc'd descriptor freed below.
        let ok = unsafe {
            ConvertStringSecurityDescriptorToSecurityDescriptorW(
                wide.as_ptr(),
                SDDL_REVISION_1,
                &mut sd,
                std::ptr::null_mut(),
            )
        };
        if ok == 0 {
            return Err(std::io::Error::last_os_error());
        }
        let mut attrs = SECURITY_ATTRIBUTES {
            nLength: std::mem::size_of::<SECURITY_ATTRIBUTES>() as u32,
            lpSecurityDescriptor: sd,
            bInheritHandle: 0,
        };
        // SAFETY: `attrs` and the descriptor it points to live until the call returns.
        let server = unsafe {
            ServerOptions::new()
                .first_pipe_instance(first)
                .reject_remote_clients(true)
                .create_with_security_attributes_raw(name, &mut attrs as *mut _ as *mut _)
        };
        // SAFETY: `sd` came from the conversion above and is not used after this.
        unsafe { LocalFree(sd as _) };
        server
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_pipe_safe_and_per_data_dir() {
        assert_eq!(pipe_name(r"C:\ProgramData\ephemerd"), r"\\.\pipe\ephemerd-control-c--programdata-ephemerd");
        assert_ne!(pipe_name("a"), pipe_name("b"));
    }

    #[test]
    fn the_acl_grants_system_admins_and_the_client_only() {
        assert_eq!(pipe_sddl(None).unwrap(), "D:P(D;;GA;;;NU)(A;;GA;;;SY)(A;;GA;;;BA)");
        let user = "S-1-5-21-1004336348-1177238915-682003330-512";
        assert_eq!(
            pipe_sddl(Some(user)).unwrap(),
            format!("D:P(D;;GA;;;NU)(A;;GA;;;SY)(A;;GA;;;BA)(A;;GRGW;;;{user})")
        );
        for bad in ["WD", "S-1-", "S-1-5-x", "S-1-5-21)(A;;GA;;;WD"] {
            assert!(pipe_sddl(Some(bad)).is_err(), "{bad}");
        }
    }
}

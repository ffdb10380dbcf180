//! Running `ephemerd service …` with the OS's elevation prompt, as command lines (pure, tested on every
//! OS): pkexec on Linux, an administrator-privileges AppleScript on macOS, `Start-Process -Verb RunAs` on
//! Windows. The shell runs what this returns and waits for it.

use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Os {
    Linux,
    MacOs,
    Windows,
}

impl Os {
    pub fn this() -> Os {
        if cfg!(windows) {
            Os::Windows
        } else if cfg!(target_os = "macos") {
            Os::MacOs
        } else {
            Os::Linux
        }
    }
}

/// POSIX shell quoting (for the AppleScript `do shell script`).
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// PowerShell single-quoted string (PowerShell also ends one at the typographic single quotes).
fn ps_quote(s: &str) -> String {
    let mut out = String::from("'");
    for c in s.chars() {
        if matches!(c, '\'' | '\u{2018}' | '\u{2019}' | '\u{201A}' | '\u{201B}') {
            out.push(c);
        }
        out.push(c);
    }
    out.push('\'');
    out
}

/// The program and arguments that run `ephemerd <args>` elevated.
pub fn command(os: Os, ephemerd: &Path, args: &[&str]) -> (String, Vec<String>) {
    let bin = ephemerd.display().to_string();
    match os {
        Os::Linux => {
            let mut a = vec![bin];
            a.extend(args.iter().map(|s| s.to_string()));
            ("pkexec".into(), a)
        }
        Os::MacOs => {
            let line = std::iter::once(bin.as_str()).chain(args.iter().copied()).map(sh_quote).collect::<Vec<_>>();
            let script = format!(
                "do shell script \"{}\" with administrator privileges",
                line.join(" ").replace('\\', "\\\\").replace('"', "\\\"")
            );
            ("osascript".into(), vec!["-e".into(), script])
        }
        Os::Windows => {
            let list = args.iter().map(|a| ps_quote(a)).collect::<Vec<_>>().join(",");
            let script = format!(
                "$p = Start-Process -FilePath {} -ArgumentList {} -Verb RunAs -WindowStyle Hidden -Wait -PassThru; exit $p.ExitCode",
                ps_quote(&bin),
                if list.is_empty() { "@()".into() } else { list }
            );
            ("powershell.exe".into(), vec!["-NoProfile".into(), "-NonInteractive".into(), "-Command".into(), script])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_os_gets_its_prompt_and_arguments_survive_quoting() {
        let bin = Path::new("/opt/e d/ephemerd");
        let (p, a) = command(Os::Linux, bin, &["service", "install"]);
        assert_eq!((p.as_str(), a), ("pkexec", vec!["/opt/e d/ephemerd".into(), "service".into(), "install".into()]));
        let (p, a) = command(Os::MacOs, bin, &["service", "start"]);
        assert_eq!(p, "osascript");
        assert_eq!(a[1], "do shell script \"'/opt/e d/ephemerd' 'service' 'start'\" with administrator privileges");
        let (p, a) = command(Os::Windows, Path::new(r"C:\Program Files\it's\ephemerd.exe"), &["service", "install"]);
        assert_eq!(p, "powershell.exe");
        assert_eq!(ps_quote("O\u{2019}Neil"), "'O\u{2019}\u{2019}Neil'");
        assert!(
            a[3].contains(
                r"-FilePath 'C:\Program Files\it''s\ephemerd.exe' -ArgumentList 'service','install' -Verb RunAs"
            ),
            "{}",
            a[3]
        );
    }
}

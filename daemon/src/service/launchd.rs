//! macOS launchd: a daemon in `/Library/LaunchDaemons`, loaded with `launchctl bootstrap system`. Kept alive
//! when it fails, with the drain's time to stop (`ExitTimeOut`). Built and tested as text here.

use std::path::{Path, PathBuf};

use super::{Definition, NAME, Step, under};

pub const LABEL: &str = "dev.ephemerd.daemon";

pub fn plist_path(root: &Path) -> PathBuf {
    under(root, &format!("/Library/LaunchDaemons/{LABEL}.plist"))
}

fn xml(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

pub fn plist(d: &Definition) -> String {
    let args: String = d.argv("serve").iter().map(|a| format!("        <string>{}</string>\n", xml(a))).collect();
    let log = xml(&d.data_dir.join(format!("{NAME}.log")).display().to_string());
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
    <key>Label</key>
    <string>{LABEL}</string>
    <key>ProgramArguments</key>
    <array>
{args}    </array>
    <key>RunAtLoad</key>
    <true/>
    <key>KeepAlive</key>
    <dict>
        <key>SuccessfulExit</key>
        <false/>
    </dict>
    <key>ExitTimeOut</key>
    <integer>{stop}</integer>
    <key>StandardErrorPath</key>
    <string>{log}</string>
</dict>
</plist>
"#,
        stop = d.stop_timeout_secs,
    )
}

pub fn install(d: &Definition, root: &Path) -> Vec<Step> {
    vec![
        Step::Write { path: plist_path(root), content: plist(d), mode: 0o644 },
        Step::Run {
            argv: vec!["launchctl".into(), "bootstrap".into(), "system".into(), plist_path(root).display().to_string()],
        },
    ]
}

pub fn uninstall(root: &Path) -> Vec<Step> {
    vec![
        Step::Run { argv: vec!["launchctl".into(), "bootout".into(), format!("system/{LABEL}")] },
        Step::Remove { path: plist_path(root) },
    ]
}

pub fn start() -> Vec<Step> {
    vec![Step::Run { argv: vec!["launchctl".into(), "kickstart".into(), format!("system/{LABEL}")] }]
}

pub fn stop() -> Vec<Step> {
    // SIGTERM drains; launchd waits ExitTimeOut before SIGKILL.
    vec![Step::Run { argv: vec!["launchctl".into(), "kill".into(), "SIGTERM".into(), format!("system/{LABEL}")] }]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plist() {
        let d = Definition {
            exe: "/usr/local/bin/ephemerd".into(),
            data_dir: "/Library/Application Support/ephemerd".into(),
            config: Some("/etc/ephemerd/a&b.toml".into()),
            stop_timeout_secs: 3630,
        };
        insta::assert_snapshot!(plist(&d));
        assert_eq!(
            install(&d, Path::new("/"))[1],
            Step::Run {
                argv: vec![
                    "launchctl".into(),
                    "bootstrap".into(),
                    "system".into(),
                    "/Library/LaunchDaemons/dev.ephemerd.daemon.plist".into()
                ]
            }
        );
    }
}

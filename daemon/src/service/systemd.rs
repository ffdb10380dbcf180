//! systemd: a system unit in `/etc/systemd/system`, enabled for `multi-user.target`. SIGTERM drains (the
//! daemon's own handling), only the main process gets it (`KillMode=mixed`, so containerd and running jobs
//! are not signalled behind the daemon's back), and the stop timeout covers the drain.

use std::path::{Path, PathBuf};

use super::{Definition, NAME, State, Step, quote, under};

/// An `ExecStart=` word: quoted like a shell word, with `%` doubled (systemd's specifier escape).
fn word(s: &str) -> String {
    quote(s).replace('%', "%%")
}

pub fn unit_path(root: &Path) -> PathBuf {
    under(root, &format!("/etc/systemd/system/{NAME}.service"))
}

pub fn unit(d: &Definition) -> String {
    let exec = |cmd: &str| d.argv(cmd).iter().map(|a| word(a)).collect::<Vec<_>>().join(" ");
    format!(
        "[Unit]
Description={desc}
After=network-online.target
Wants=network-online.target

[Service]
Type=simple
ExecStart={start}
ExecReload={reload}
KillMode=mixed
KillSignal=SIGTERM
TimeoutStopSec={stop}
Restart=on-failure
RestartSec=5s
Delegate=yes
LimitNOFILE=1048576
TasksMax=infinity

[Install]
WantedBy=multi-user.target
",
        desc = super::DESCRIPTION,
        start = exec("serve"),
        reload = exec("reload"),
        stop = d.stop_timeout_secs,
    )
}

/// `systemctl` with `--root` when the unit lives under a test root.
fn systemctl(systemctl: &str, root: &Path, args: &[&str]) -> Vec<String> {
    let mut v = vec![systemctl.to_string()];
    if root != Path::new("/") {
        v.push(format!("--root={}", root.display()));
    }
    v.extend(args.iter().map(|a| a.to_string()));
    v
}

pub fn install(d: &Definition, root: &Path, ctl: &str) -> Vec<Step> {
    let mut steps = vec![Step::Write { path: unit_path(root), content: unit(d), mode: 0o644 }];
    if root == Path::new("/") {
        steps.push(Step::Run { argv: systemctl(ctl, root, &["daemon-reload"]) });
    }
    steps.push(Step::Run { argv: systemctl(ctl, root, &["enable", &format!("{NAME}.service")]) });
    steps
}

pub fn uninstall(root: &Path, ctl: &str) -> Vec<Step> {
    let mut steps = Vec::new();
    if root == Path::new("/") {
        steps.push(Step::Run { argv: systemctl(ctl, root, &["stop", &format!("{NAME}.service")]) });
    }
    steps.push(Step::Run { argv: systemctl(ctl, root, &["disable", &format!("{NAME}.service")]) });
    steps.push(Step::Remove { path: unit_path(root) });
    if root == Path::new("/") {
        steps.push(Step::Run { argv: systemctl(ctl, root, &["daemon-reload"]) });
    }
    steps
}

pub fn start(ctl: &str) -> Vec<Step> {
    vec![Step::Run { argv: systemctl(ctl, Path::new("/"), &["start", &format!("{NAME}.service")]) }]
}

pub fn stop(ctl: &str) -> Vec<Step> {
    vec![Step::Run { argv: systemctl(ctl, Path::new("/"), &["stop", &format!("{NAME}.service")]) }]
}

/// The state from `systemctl is-enabled` / `is-active` (which answer on stdout even when they fail).
pub fn state(root: &Path, ctl: &str) -> State {
    let ask = |args: &[&str]| {
        std::process::Command::new(ctl)
            .args(systemctl(ctl, root, args).into_iter().skip(1))
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default()
    };
    let installed = unit_path(root).is_file();
    let enabled = installed && ask(&["is-enabled", &format!("{NAME}.service")]) == "enabled";
    let active = installed && root == Path::new("/") && ask(&["is-active", &format!("{NAME}.service")]) == "active";
    State { installed, enabled, active }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def() -> Definition {
        Definition {
            exe: "/usr/bin/ephemerd".into(),
            data_dir: "/var/lib/ephemerd".into(),
            config: Some("/etc/ephemerd/config with space 100%.toml".into()),
            stop_timeout_secs: 3630,
        }
    }

    #[test]
    fn the_unit() {
        insta::assert_snapshot!(unit(&def()));
    }

    #[test]
    fn install_and_uninstall_steps() {
        let root = Path::new("/");
        let steps = install(&def(), root, "systemctl");
        assert!(
            matches!(&steps[0], Step::Write { path, mode: 0o644, .. } if path == Path::new("/etc/systemd/system/ephemerd.service"))
        );
        assert_eq!(steps[1], Step::Run { argv: vec!["systemctl".into(), "daemon-reload".into()] });
        assert_eq!(steps[2], Step::Run { argv: vec!["systemctl".into(), "enable".into(), "ephemerd.service".into()] });
        let test_root = Path::new("/tmp/r");
        let steps = uninstall(test_root, "systemctl");
        assert_eq!(
            steps,
            vec![
                Step::Run {
                    argv: vec!["systemctl".into(), "--root=/tmp/r".into(), "disable".into(), "ephemerd.service".into()]
                },
                Step::Remove { path: "/tmp/r/etc/systemd/system/ephemerd.service".into() },
            ]
        );
    }
}

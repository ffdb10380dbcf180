//! `ephemerd service …` on Linux: the systemd unit, installed and driven for real.

use std::path::Path;
use std::time::Duration;

use ephemerd::config::Config;
use ephemerd::platform::DataDirs;
use ephemerd::service::{self, Definition, ServiceError, systemd};
use serde_json::json;

use super::{out, usage};
use crate::cli::ServiceCommand;

pub fn run(
    cmd: ServiceCommand,
    cfg: &Config,
    config: Option<&Path>,
    dirs: &DataDirs,
    json_out: bool,
) -> anyhow::Result<u8> {
    let root_needed = |root: &Path| -> anyhow::Result<()> {
        if root == Path::new("/") && !ephemerd::platform::is_root() {
            return Err(ServiceError::NotRoot.into());
        }
        Ok(())
    };
    match cmd {
        ServiceCommand::Install(a) => {
            root_needed(&a.root)?;
            let exe = std::env::current_exe()?;
            let config = match (&a.control_group, config) {
                // The group goes into the config file the service will read (the default one if none given).
                (Some(group), given) => {
                    let default = ephemerd::platform::default_config_path();
                    let path = match given {
                        Some(c) => c.to_path_buf(),
                        None => a.root.join(default.strip_prefix("/").unwrap_or(&default)),
                    };
                    let text = match std::fs::read_to_string(&path) {
                        Ok(t) => t,
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
                        Err(e) => return Err(usage(format!("config {}: {e}", path.display()))),
                    };
                    let text = ephemerd::control::forges::with_control_group(&text, group).map_err(usage)?;
                    ephemerd::control::edit::write_config(&path, &text).map_err(usage)?;
                    out!("{}: the control socket is open to group {group}", path.display());
                    Some(std::fs::canonicalize(&path)?)
                }
                (None, Some(c)) => {
                    Some(std::fs::canonicalize(c).map_err(|e| usage(format!("config {}: {e}", c.display())))?)
                }
                (None, None) => None,
            };
            let data_dir = std::path::absolute(&dirs.root)?;
            let stop = cfg.scheduler.drain_timeout + Duration::from_secs(30);
            let d = Definition { exe, data_dir, config, stop_timeout_secs: stop.as_secs() };
            service::carry_out(&systemd::install(&d, &a.root, &a.systemctl))?;
            out!(
                "installed and enabled {} (start it with `ephemerd service start`)",
                systemd::unit_path(&a.root).display()
            );
            Ok(0)
        }
        ServiceCommand::Uninstall(a) => {
            root_needed(&a.root)?;
            service::carry_out(&systemd::uninstall(&a.root, &a.systemctl))?;
            out!("removed the ephemerd service");
            Ok(0)
        }
        ServiceCommand::Start(a) => {
            root_needed(&a.root)?;
            service::carry_out(&systemd::start(&a.systemctl))?;
            Ok(0)
        }
        ServiceCommand::Stop(a) => {
            root_needed(&a.root)?;
            service::carry_out(&systemd::stop(&a.systemctl))?;
            Ok(0)
        }
        ServiceCommand::Status(a) => {
            let s = systemd::state(&a.root, &a.systemctl);
            if json_out {
                out!(
                    "{}",
                    json!({ "manager": "systemd", "installed": s.installed, "enabled": s.enabled, "active": s.active })
                );
            } else if !s.installed {
                out!("not installed (install it with `sudo ephemerd service install`)");
            } else {
                let yes = |b: bool| if b { "yes" } else { "no" };
                out!("installed: yes · enabled: {} · running: {}", yes(s.enabled), yes(s.active));
            }
            Ok(match (s.installed, s.active) {
                (true, true) => 0,
                (true, false) => 3,
                (false, _) => 4,
            })
        }
    }
}

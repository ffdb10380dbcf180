//! The tray as data: from the daemon's status (pushed by `WatchEvents`) and the supervisor's view of its
//! health, the icon variant, the tooltip, and the menu's items with their labels and enabled states. The
//! Tauri shell only renders this.

use ephemerd_proto::v1::{self, DaemonState};
use serde::Serialize;

use crate::supervisor::Health;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Icon {
    Idle,
    /// Jobs running (the count where the OS shows one).
    Running(u32),
    Paused,
    Draining,
    Error,
    Disconnected,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum ItemId {
    Status,
    /// A Linux worker's state (`Worker VM: ready`), one line each.
    Worker,
    PauseResume,
    Drain,
    StartDaemon,
    InstallDaemon,
    OpenJobs,
    Settings,
    StartAtLogin,
    Quit,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Item {
    pub id: ItemId,
    pub label: String,
    pub enabled: bool,
    /// `Some` for a checkbox item.
    pub checked: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Tray {
    pub icon: Icon,
    pub tooltip: String,
    pub items: Vec<Item>,
}

fn item(id: ItemId, label: impl Into<String>, enabled: bool) -> Item {
    Item { id, label: label.into(), enabled, checked: None }
}

/// "2 running · 1 queued", "idle", "paused · 1 running".
fn status_line(s: &v1::StatusReply) -> String {
    let state = DaemonState::try_from(s.state).unwrap_or(DaemonState::Unspecified);
    let mut parts = Vec::new();
    match state {
        DaemonState::Paused => parts.push("paused".to_string()),
        DaemonState::Draining => parts.push("draining".to_string()),
        DaemonState::Stopping => parts.push("stopping".to_string()),
        _ => {}
    }
    if s.active_jobs > 0 {
        parts.push(format!("{} running", s.active_jobs));
    }
    if s.queued_jobs > 0 {
        parts.push(format!("{} queued", s.queued_jobs));
    }
    if parts.is_empty() {
        parts.push("idle".into());
    }
    parts.join(" · ")
}

/// "Worker VM: ready", "Worker VM: stopped (it died; the next job boots another)".
fn worker_line(w: &v1::ComponentHealth) -> String {
    let mut name = w.name.clone();
    if let Some(first) = name.get(..1) {
        name = first.to_uppercase() + &name[1..];
    }
    let state = v1::WorkerState::word_of(w.state);
    match w.healthy {
        true => format!("{name}: {state}"),
        false => format!("{name}: {state} ({})", w.detail),
    }
}

/// The tray for a daemon `health`, with its last `status` when connected.
pub fn model(health: &Health, status: Option<&v1::StatusReply>, start_at_login: bool) -> Tray {
    let mut items = Vec::new();
    let (icon, tooltip);
    match (health, status) {
        (Health::Connected, Some(s)) => {
            let state = DaemonState::try_from(s.state).unwrap_or(DaemonState::Unspecified);
            let failing: Vec<&str> =
                s.providers.iter().filter(|p| !p.last_error.is_empty()).map(|p| p.name.as_str()).collect();
            let line = status_line(s);
            icon = match state {
                DaemonState::Paused => Icon::Paused,
                DaemonState::Draining | DaemonState::Stopping => Icon::Draining,
                _ if !failing.is_empty() => Icon::Error,
                _ if s.active_jobs > 0 => Icon::Running(s.active_jobs),
                _ => Icon::Idle,
            };
            tooltip = if failing.is_empty() {
                format!("ephemerd: {line}")
            } else {
                format!("ephemerd: {line} · cannot reach {}", failing.join(", "))
            };
            items.push(item(ItemId::Status, line, false));
            for w in &s.workers {
                items.push(item(ItemId::Worker, worker_line(w), false));
            }
            let ending = matches!(state, DaemonState::Draining | DaemonState::Stopping);
            let (label, enabled) = match state {
                DaemonState::Paused => ("Resume", true),
                _ => ("Pause", !ending),
            };
            items.push(item(ItemId::PauseResume, label, enabled));
            items.push(item(ItemId::Drain, "Drain…", !ending));
        }
        (Health::Connected, None) | (Health::Starting, _) => {
            icon = Icon::Disconnected;
            tooltip = "ephemerd: starting…".into();
            items.push(item(ItemId::Status, "starting…", false));
        }
        (Health::DaemonStopped, _) => {
            icon = Icon::Disconnected;
            tooltip = "ephemerd: the daemon is stopped".into();
            items.push(item(ItemId::Status, "daemon stopped", false));
            items.push(item(ItemId::StartDaemon, "Start daemon", true));
        }
        (Health::NotInstalled, _) => {
            icon = Icon::Disconnected;
            tooltip = "ephemerd: the daemon is not installed".into();
            items.push(item(ItemId::Status, "daemon not installed", false));
            items.push(item(ItemId::InstallDaemon, "Install daemon…", true));
        }
        (Health::Unreachable(why), _) => {
            icon = Icon::Error;
            tooltip = format!("ephemerd: cannot reach the daemon: {why}");
            items.push(item(ItemId::Status, "daemon unreachable", false));
        }
    }
    items.push(item(ItemId::OpenJobs, "Open jobs", matches!(health, Health::Connected)));
    items.push(item(ItemId::Settings, "Settings…", true));
    items.push(Item {
        id: ItemId::StartAtLogin,
        label: "Start at login".into(),
        enabled: true,
        checked: Some(start_at_login),
    });
    items.push(item(ItemId::Quit, "Quit", true));
    Tray { icon, tooltip, items }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(state: DaemonState, active: u32, queued: u32) -> v1::StatusReply {
        v1::StatusReply {
            state: state as i32,
            active_jobs: active,
            queued_jobs: queued,
            max_jobs: 4,
            ..Default::default()
        }
    }

    fn labels(t: &Tray) -> Vec<(String, bool)> {
        t.items.iter().map(|i| (i.label.clone(), i.enabled)).collect()
    }

    #[test]
    fn running_jobs() {
        let t = model(&Health::Connected, Some(&status(DaemonState::Running, 2, 1)), false);
        assert_eq!(t.icon, Icon::Running(2));
        assert_eq!(t.tooltip, "ephemerd: 2 running · 1 queued");
        assert_eq!(
            labels(&t),
            vec![
                ("2 running · 1 queued".into(), false),
                ("Pause".into(), true),
                ("Drain…".into(), true),
                ("Open jobs".into(), true),
                ("Settings…".into(), true),
                ("Start at login".into(), true),
                ("Quit".into(), true),
            ]
        );
        assert_eq!(t.items[5].checked, Some(false));
    }

    #[test]
    fn a_worker_vm_shows_its_state_under_the_status_line() {
        let mut s = status(DaemonState::Running, 0, 0);
        s.workers.push(v1::ComponentHealth {
            name: "worker VM".into(),
            healthy: true,
            detail: "qemu (kvm) · stops after 5m idle".into(),
            state: v1::WorkerState::WorkerBooting as i32,
        });
        let t = model(&Health::Connected, Some(&s), false);
        assert_eq!(
            labels(&t)[..3],
            [("idle".into(), false), ("Worker VM: booting".into(), false), ("Pause".into(), true)]
        );
        s.workers[0].healthy = false;
        s.workers[0].state = v1::WorkerState::WorkerStopped as i32;
        s.workers[0].detail = "qemu (kvm) · it died; the next job boots another".into();
        let t = model(&Health::Connected, Some(&s), false);
        assert_eq!(t.items[1].label, "Worker VM: stopped (qemu (kvm) · it died; the next job boots another)");
    }

    #[test]
    fn pause_flips_to_resume_and_drain_disables_both() {
        let paused = model(&Health::Connected, Some(&status(DaemonState::Paused, 1, 0)), true);
        assert_eq!((paused.icon, paused.items[0].label.as_str()), (Icon::Paused, "paused · 1 running"));
        assert_eq!((paused.items[1].label.as_str(), paused.items[1].enabled), ("Resume", true));
        let draining = model(&Health::Connected, Some(&status(DaemonState::Draining, 1, 0)), true);
        assert_eq!(draining.icon, Icon::Draining);
        assert!(!draining.items[1].enabled && !draining.items[2].enabled);
        let idle = model(&Health::Connected, Some(&status(DaemonState::Running, 0, 0)), true);
        assert_eq!((idle.icon, idle.tooltip.as_str()), (Icon::Idle, "ephemerd: idle"));
    }

    #[test]
    fn a_failing_forge_shows_as_error() {
        let mut s = status(DaemonState::Running, 0, 0);
        s.providers.push(v1::ProviderHealth {
            name: "github:o".into(),
            last_error: "401".into(),
            ..Default::default()
        });
        let t = model(&Health::Connected, Some(&s), false);
        assert_eq!(t.icon, Icon::Error);
        assert!(t.tooltip.ends_with("cannot reach github:o"), "{}", t.tooltip);
    }

    #[test]
    fn without_a_daemon_the_menu_offers_the_way_to_one() {
        let stopped = model(&Health::DaemonStopped, None, false);
        assert_eq!(stopped.icon, Icon::Disconnected);
        assert!(stopped.items.iter().any(|i| i.id == ItemId::StartDaemon && i.enabled));
        assert!(stopped.items.iter().any(|i| i.id == ItemId::OpenJobs && !i.enabled));
        let missing = model(&Health::NotInstalled, None, false);
        assert!(missing.items.iter().any(|i| i.id == ItemId::InstallDaemon));
        let broken = model(&Health::Unreachable("permission denied".into()), None, false);
        assert_eq!(broken.icon, Icon::Error);
        assert_eq!(broken.tooltip, "ephemerd: cannot reach the daemon: permission denied");
        assert!(!broken.items.iter().any(|i| i.id == ItemId::PauseResume));
    }
}

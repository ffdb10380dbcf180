//! How the control API's answers look on a terminal (aligned tables, relative times, colours only when
//! asked) and as JSON. Pure functions of the messages and the current time, so they are snapshot-tested.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ephemerd_proto::v1;
use serde_json::{Value, json};

/// Colours, or none.
#[derive(Clone, Copy)]
pub struct Style {
    pub color: bool,
}

impl Style {
    fn paint(self, code: &str, s: &str) -> String {
        if self.color { format!("\x1b[{code}m{s}\x1b[0m") } else { s.to_string() }
    }
}

fn secs(t: &Option<prost_types::Timestamp>) -> Option<i64> {
    t.as_ref().map(|t| t.seconds)
}

fn unix(now: SystemTime) -> i64 {
    now.duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// `45s`, `3m 05s`, `2h 07m`, `4d 03h`.
pub fn duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m {:02}s", s / 60, s % 60),
        3600..86400 => format!("{}h {:02}m", s / 3600, (s / 60) % 60),
        _ => format!("{}d {:02}h", s / 86400, (s / 3600) % 24),
    }
}

/// `12s ago`, `3m ago`, `2h ago`, `4d ago`; `-` for none.
pub fn ago(t: Option<i64>, now: SystemTime) -> String {
    let Some(t) = t else { return "-".into() };
    let s = (unix(now) - t).max(0) as u64;
    match s {
        0..60 => format!("{s}s ago"),
        60..3600 => format!("{}m ago", s / 60),
        3600..86400 => format!("{}h ago", s / 3600),
        _ => format!("{}d ago", s / 86400),
    }
}

fn rfc3339(t: Option<i64>) -> Value {
    match t {
        Some(t) if t >= 0 => {
            json!(humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(t as u64)).to_string())
        }
        _ => Value::Null,
    }
}

pub fn state_name(state: i32) -> &'static str {
    match v1::JobState::try_from(state).unwrap_or(v1::JobState::Unspecified) {
        v1::JobState::Unspecified => "unknown",
        v1::JobState::Queued => "queued",
        v1::JobState::Claiming => "claiming",
        v1::JobState::Claimed => "claimed",
        v1::JobState::Starting => "starting",
        v1::JobState::JobRunning => "running",
        v1::JobState::Finished => "finished",
        v1::JobState::Failed => "failed",
        v1::JobState::Cleaned => "gone",
    }
}

fn state_color(state: &str) -> &'static str {
    match state {
        "running" | "starting" => "34",
        "finished" => "32",
        "failed" => "31",
        "queued" | "claiming" | "claimed" => "33",
        _ => "2",
    }
}

pub fn daemon_state_name(state: i32) -> &'static str {
    match v1::DaemonState::try_from(state).unwrap_or(v1::DaemonState::Unspecified) {
        v1::DaemonState::Unspecified => "unknown",
        v1::DaemonState::Running => "running",
        v1::DaemonState::Paused => "paused",
        v1::DaemonState::Draining => "draining",
        v1::DaemonState::Stopping => "stopping",
    }
}

/// Rows as columns padded to their widest cell; `paint` colours a cell after padding (so escapes never
/// skew the alignment).
fn table(header: &[&str], rows: &[Vec<String>], paint: impl Fn(usize, &str, &str) -> String) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let last = cells.len().saturating_sub(1);
        let mut out = String::new();
        for (i, c) in cells.iter().enumerate() {
            let pad = if i == last { String::new() } else { " ".repeat(widths[i] - c.chars().count() + 2) };
            out.push_str(&paint(i, c, c));
            out.push_str(&pad);
        }
        out.trim_end().to_string() + "\n"
    };
    let mut out = line(header.iter().map(|h| h.to_string()).collect());
    for r in rows {
        out.push_str(&line(r.clone()));
    }
    out
}

fn job_duration(j: &v1::Job, now: SystemTime) -> String {
    match (secs(&j.started_at), secs(&j.finished_at)) {
        (Some(s), Some(f)) => duration(Duration::from_secs((f - s).max(0) as u64)),
        (Some(s), None) => duration(Duration::from_secs((unix(now) - s).max(0) as u64)),
        _ => "-".into(),
    }
}

pub fn jobs_table(jobs: &[v1::Job], now: SystemTime, style: Style) -> String {
    if jobs.is_empty() {
        return "no jobs\n".into();
    }
    let rows: Vec<Vec<String>> = jobs
        .iter()
        .map(|j| {
            vec![
                j.id.clone(),
                j.repo.clone(),
                format!("{} / {}", j.workflow, j.name),
                state_name(j.state).to_string(),
                ago(secs(&j.queued_at), now),
                job_duration(j, now),
                if j.conclusion.is_empty() { "-".into() } else { j.conclusion.clone() },
            ]
        })
        .collect();
    let header = ["ID", "REPO", "WORKFLOW / JOB", "STATE", "QUEUED", "DURATION", "CONCLUSION"];
    table(&header, &rows, |col, cell, _| if col == 3 { style.paint(state_color(cell), cell) } else { cell.to_string() })
}

pub fn job_detail(j: &v1::Job, now: SystemTime, style: Style) -> String {
    let state = state_name(j.state);
    let mut rows: Vec<(&str, String)> = vec![
        ("id", j.id.clone()),
        ("repo", j.repo.clone()),
        ("workflow", j.workflow.clone()),
        ("job", j.name.clone()),
        ("run", j.run_id.to_string()),
        ("labels", j.labels.join(", ")),
        ("state", style.paint(state_color(state), state)),
        ("conclusion", if j.conclusion.is_empty() { "-".into() } else { j.conclusion.clone() }),
        ("exit code", j.exit_code.map(|c| c.to_string()).unwrap_or_else(|| "-".into())),
        ("runner", if j.runner_name.is_empty() { "-".into() } else { j.runner_name.clone() }),
        ("image", if j.image.is_empty() { "-".into() } else { j.image.clone() }),
        ("target", j.target.clone()),
        ("container", if j.container_id.is_empty() { "-".into() } else { j.container_id.clone() }),
        ("queued", ago(secs(&j.queued_at), now)),
        ("claimed", ago(secs(&j.claimed_at), now)),
        ("started", ago(secs(&j.started_at), now)),
        ("finished", ago(secs(&j.finished_at), now)),
        (
            "pickup",
            j.pickup_latency.map(|d| duration(Duration::from_secs(d.seconds.max(0) as u64))).unwrap_or("-".into()),
        ),
        ("duration", job_duration(j, now)),
    ];
    if !j.html_url.is_empty() {
        rows.push(("link", j.html_url.clone()));
    }
    rows.iter().map(|(k, v)| format!("{:<11}{v}\n", format!("{k}:"))).collect()
}

pub fn job_json(j: &v1::Job) -> Value {
    json!({
        "id": j.id, "provider": j.provider, "forge_job_id": j.forge_job_id, "run_id": j.run_id, "repo": j.repo,
        "workflow": j.workflow, "name": j.name, "labels": j.labels,
        "runner_name": Some(&j.runner_name).filter(|s| !s.is_empty()),
        "image": Some(&j.image).filter(|s| !s.is_empty()), "target": j.target, "state": state_name(j.state),
        "conclusion": Some(&j.conclusion).filter(|s| !s.is_empty()), "exit_code": j.exit_code,
        "queued_at": rfc3339(secs(&j.queued_at)), "claimed_at": rfc3339(secs(&j.claimed_at)),
        "started_at": rfc3339(secs(&j.started_at)), "finished_at": rfc3339(secs(&j.finished_at)),
        "pickup_latency_secs": j.pickup_latency.map(|d| d.seconds),
        "html_url": Some(&j.html_url).filter(|s| !s.is_empty()),
        "container_id": Some(&j.container_id).filter(|s| !s.is_empty()),
    })
}

fn provider_line(p: &v1::ProviderHealth, now: SystemTime, style: Style) -> Vec<String> {
    let health = if p.connected {
        style.paint("32", "connected")
    } else if p.last_error.is_empty() {
        style.paint("33", "not polled yet")
    } else {
        style.paint("31", "error")
    };
    let rate = if p.rate_limit_remaining < 0 { "-".into() } else { p.rate_limit_remaining.to_string() };
    vec![p.name.clone(), p.url.clone(), p.discovery.clone(), health, ago(secs(&p.last_poll), now), rate]
}

pub fn providers_table(ps: &[v1::ProviderHealth], now: SystemTime, style: Style) -> String {
    if ps.is_empty() {
        return "no forges configured\n".into();
    }
    let plain = Style { color: false };
    let rows: Vec<Vec<String>> = ps.iter().map(|p| provider_line(p, now, plain)).collect();
    let mut out =
        table(&["PROVIDER", "URL", "DISCOVERY", "HEALTH", "LAST POLL", "RATE LEFT"], &rows, |col, cell, _| {
            if col == 3 {
                let code = match cell {
                    "connected" => "32",
                    "error" => "31",
                    _ => "33",
                };
                style.paint(code, cell)
            } else {
                cell.to_string()
            }
        });
    for p in ps.iter().filter(|p| !p.last_error.is_empty()) {
        out.push_str(&format!("{}: {}\n", p.name, p.last_error));
    }
    out
}

pub fn provider_json(p: &v1::ProviderHealth) -> Value {
    json!({
        "name": p.name, "kind": p.kind, "url": p.url, "discovery": p.discovery, "connected": p.connected,
        "last_poll": rfc3339(secs(&p.last_poll)), "last_error": Some(&p.last_error).filter(|s| !s.is_empty()),
        "rate_limit_remaining": (p.rate_limit_remaining >= 0).then_some(p.rate_limit_remaining),
        "rate_limit_reset": rfc3339(secs(&p.rate_limit_reset)),
    })
}

fn bytes(n: u64) -> String {
    let mib = n as f64 / (1024.0 * 1024.0);
    if mib >= 1024.0 { format!("{:.1} GiB", mib / 1024.0) } else { format!("{mib:.1} MiB") }
}

pub fn status_text(s: &v1::StatusReply, now: SystemTime, style: Style) -> String {
    let state = daemon_state_name(s.state);
    let painted = style.paint(
        match state {
            "running" => "32",
            "paused" | "draining" => "33",
            _ => "31",
        },
        state,
    );
    let uptime = s.uptime.map(|d| duration(Duration::from_secs(d.seconds.max(0) as u64))).unwrap_or("-".into());
    let mut out = format!("ephemerd {} · {painted} · up {uptime}\n", s.version);
    out.push_str(&format!("jobs:       {} running of {} · {} queued\n", s.active_jobs, s.max_jobs, s.queued_jobs));
    if let Some(d) = &s.drain_deadline {
        let left = (d.seconds - unix(now)).max(0) as u64;
        out.push_str(&format!("draining:   running jobs are stopped in {}\n", duration(Duration::from_secs(left))));
    }
    if let Some(c) = &s.containerd {
        let h = if c.healthy { style.paint("32", "healthy") } else { style.paint("31", "unhealthy") };
        out.push_str(&format!("containerd: {h} ({})\n", c.detail));
    }
    for w in &s.workers {
        out.push_str(&format!("worker:     {} {}\n", w.name, if w.healthy { "healthy" } else { "unhealthy" }));
    }
    out.push_str(&format!("data dir:   {} ({})\n", s.data_dir, bytes(s.data_dir_bytes)));
    out.push('\n');
    out.push_str(&providers_table(&s.providers, now, style));
    out
}

pub fn status_json(s: &v1::StatusReply) -> Value {
    json!({
        "version": s.version, "uptime_secs": s.uptime.map(|d| d.seconds), "state": daemon_state_name(s.state),
        "active_jobs": s.active_jobs, "max_jobs": s.max_jobs, "queued_jobs": s.queued_jobs,
        "providers": s.providers.iter().map(provider_json).collect::<Vec<_>>(),
        "containerd": s.containerd.as_ref().map(|c| json!({"healthy": c.healthy, "detail": c.detail})),
        "workers": s.workers.iter().map(|w| json!({"name": w.name, "healthy": w.healthy, "detail": w.detail})).collect::<Vec<_>>(),
        "data_dir": s.data_dir, "data_dir_bytes": s.data_dir_bytes,
        "drain_deadline": rfc3339(secs(&s.drain_deadline)),
    })
}

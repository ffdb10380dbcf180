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

/// A job state's word; a cleaned-up job is "gone" in the CLI.
pub fn state_name(state: i32) -> &'static str {
    match v1::JobState::word_of(state) {
        "cleaned" => "gone",
        w => w,
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
    v1::DaemonState::word_of(state)
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
    let line = |cells: &[String], header: bool| {
        let last = cells.len().saturating_sub(1);
        let mut out = String::new();
        for (i, c) in cells.iter().enumerate() {
            let pad = if i == last { String::new() } else { " ".repeat(widths[i] - c.chars().count() + 2) };
            out.push_str(&if header { c.clone() } else { paint(i, c, c) });
            out.push_str(&pad);
        }
        out.trim_end().to_string() + "\n"
    };
    let mut out = line(&header.iter().map(|h| h.to_string()).collect::<Vec<_>>(), true);
    for r in rows {
        out.push_str(&line(r, false));
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
    rows.iter().map(|(k, v)| format!("{:<12}{v}\n", format!("{k}:"))).collect()
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
        if p.last_error.starts_with(&p.name) {
            out.push_str(&format!("{}\n", p.last_error));
        } else {
            out.push_str(&format!("{}: {}\n", p.name, p.last_error));
        }
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

/// A provider check: a line, then what is missing, one per line.
pub fn test_text(name: &str, t: &v1::TestProviderReply, style: Style) -> String {
    let mark = if t.ok { style.paint("32", "ok") } else { style.paint("31", "FAILED") };
    let mut out = format!("{name}: {mark}: {}\n", t.message);
    for m in &t.missing_permissions {
        out.push_str(&format!("  missing: {m}\n"));
    }
    out
}

pub fn test_json(t: &v1::TestProviderReply) -> Value {
    json!({ "ok": t.ok, "message": t.message, "missing": t.missing_permissions })
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
        let state = v1::WorkerState::word_of(w.state);
        let state = if w.healthy { style.paint("32", state) } else { style.paint("31", state) };
        out.push_str(&format!("worker:     {} {state} ({})\n", w.name, w.detail));
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
        "workers": s.workers.iter().map(|w| json!({
            "name": w.name, "state": v1::WorkerState::word_of(w.state), "healthy": w.healthy, "detail": w.detail,
        })).collect::<Vec<_>>(),
        "data_dir": s.data_dir, "data_dir_bytes": s.data_dir_bytes,
        "drain_deadline": rfc3339(secs(&s.drain_deadline)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_790_000_000;

    fn ts(s: i64) -> Option<prost_types::Timestamp> {
        Some(prost_types::Timestamp { seconds: s, nanos: 0 })
    }

    fn jobs() -> Vec<v1::Job> {
        let base = |n: u64, name: &str, state: v1::JobState| v1::Job {
            id: format!("github:octo-org#{n}"),
            provider: "github:octo-org".into(),
            forge_job_id: n,
            run_id: n - 1,
            repo: "octo-org/app".into(),
            workflow: "CI".into(),
            name: name.into(),
            labels: vec!["self-hosted".into(), "linux".into()],
            target: "local".into(),
            state: state as i32,
            queued_at: ts(NOW - 400),
            ..Default::default()
        };
        let mut done = base(4102, "build (ubuntu)", v1::JobState::Finished);
        done.claimed_at = ts(NOW - 399);
        done.started_at = ts(NOW - 398);
        done.finished_at = ts(NOW - 200);
        done.exit_code = Some(0);
        done.conclusion = "success".into();
        done.runner_name = "ephemerd-host-7f3a".into();
        done.image = "localhost/ephemerd/job:bookworm".into();
        done.container_id = "7f3a9c".into();
        done.pickup_latency = Some(prost_types::Duration { seconds: 2, nanos: 0 });
        done.html_url = "https://github.com/octo-org/app/actions/runs/4101/job/4102".into();
        let mut running = base(4104, "test", v1::JobState::JobRunning);
        running.started_at = ts(NOW - 65);
        let queued = base(4106, "lint", v1::JobState::Queued);
        vec![queued, running, done]
    }

    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(NOW as u64)
    }

    fn status() -> v1::StatusReply {
        v1::StatusReply {
            version: "0.1.0".into(),
            uptime: Some(prost_types::Duration { seconds: 7384, nanos: 0 }),
            state: v1::DaemonState::Paused as i32,
            active_jobs: 1,
            max_jobs: 4,
            queued_jobs: 1,
            providers: vec![
                v1::ProviderHealth {
                    name: "github:octo-org".into(),
                    kind: "github".into(),
                    url: "https://api.github.com".into(),
                    connected: true,
                    last_poll: ts(NOW - 3),
                    rate_limit_remaining: 4987,
                    rate_limit_reset: ts(NOW + 1800),
                    discovery: "poll".into(),
                    ..Default::default()
                },
                v1::ProviderHealth {
                    name: "github:other".into(),
                    kind: "github".into(),
                    url: "https://ghe.example.com/api/v3".into(),
                    last_poll: ts(NOW - 40),
                    last_error: "github:other: credentials refused (401): Bad credentials".into(),
                    rate_limit_remaining: -1,
                    discovery: "webhook + poll".into(),
                    ..Default::default()
                },
            ],
            containerd: Some(v1::ComponentHealth {
                name: "containerd".into(),
                healthy: true,
                detail: "answering".into(),
                ..Default::default()
            }),
            workers: vec![v1::ComponentHealth {
                name: "worker VM".into(),
                healthy: true,
                detail: "qemu (kvm) · stops after 5m idle".into(),
                state: v1::WorkerState::WorkerReady as i32,
            }],
            data_dir: "/var/lib/ephemerd".into(),
            data_dir_bytes: 734 << 20,
            ..Default::default()
        }
    }

    const PLAIN: Style = Style { color: false };

    #[test]
    fn jobs_table_text() {
        insta::assert_snapshot!(jobs_table(&jobs(), now(), PLAIN));
        assert_eq!(jobs_table(&[], now(), PLAIN), "no jobs\n");
    }

    #[test]
    fn jobs_table_colours_only_the_state_and_keeps_alignment() {
        let plain = jobs_table(&jobs(), now(), PLAIN);
        let colored = jobs_table(&jobs(), now(), Style { color: true });
        let stripped =
            colored.replace("\x1b[33m", "").replace("\x1b[34m", "").replace("\x1b[32m", "").replace("\x1b[0m", "");
        assert_eq!(stripped, plain);
        assert!(colored.contains("\x1b[34mrunning\x1b[0m"));
    }

    #[test]
    fn job_detail_text() {
        insta::assert_snapshot!(job_detail(&jobs()[2], now(), PLAIN));
    }

    #[test]
    fn status_text_with_a_failing_provider() {
        insta::assert_snapshot!(status_text(&status(), now(), PLAIN));
    }

    #[test]
    fn json_forms() {
        let j: Vec<Value> = jobs().iter().map(job_json).collect();
        insta::assert_snapshot!(
            serde_json::to_string_pretty(&json!({ "jobs": j, "status": status_json(&status()) })).unwrap()
        );
    }

    #[test]
    fn relative_times_and_durations() {
        assert_eq!(ago(Some(NOW - 5), now()), "5s ago");
        assert_eq!(ago(Some(NOW - 7200), now()), "2h ago");
        assert_eq!(ago(Some(NOW + 50), now()), "0s ago", "a clock a little ahead is not the future");
        assert_eq!(ago(None, now()), "-");
        assert_eq!(duration(Duration::from_secs(65)), "1m 05s");
        assert_eq!(duration(Duration::from_secs(3 * 86400 + 7200)), "3d 02h");
    }
}

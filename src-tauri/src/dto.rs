//! What crosses the IPC bridge to the UI (`ui/src/api.ts` holds the same shapes): the daemon's proto
//! messages turned into camelCase JSON with words instead of enum numbers and RFC 3339 times, and the
//! settings window's forge turned into the proto's `ForgeSpec`. Secrets only ever go *to* the daemon.

use std::time::{Duration, SystemTime};

use ephemerd_proto::v1::{self, DaemonState, JobState};
use serde::{Deserialize, Serialize};

use crate::errors::UiError;
use crate::supervisor::{Health, Mode};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HealthDto {
    pub state: &'static str,
    pub reason: Option<String>,
}

impl From<&Health> for HealthDto {
    fn from(h: &Health) -> Self {
        let (state, reason) = match h {
            Health::Connected => ("connected", None),
            Health::Starting => ("starting", None),
            Health::DaemonStopped => ("daemon_stopped", None),
            Health::NotInstalled => ("not_installed", None),
            Health::Unreachable(r) => ("unreachable", Some(r.clone())),
        };
        Self { state, reason }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AppState {
    pub health: HealthDto,
    pub mode: &'static str,
    pub status: Option<Status>,
    pub start_at_login: bool,
    pub notifications: bool,
    pub onboarded: bool,
}

pub fn mode_name(m: Mode) -> &'static str {
    match m {
        Mode::User => "user",
        Mode::Service => "service",
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    pub version: String,
    pub state: &'static str,
    pub active_jobs: u32,
    pub max_jobs: u32,
    pub queued_jobs: u32,
    pub providers: Vec<Provider>,
    pub data_dir: String,
    pub drain_deadline: Option<String>,
    pub uptime_secs: u64,
    /// The Linux workers jobs run in (the worker VM), with their state.
    pub workers: Vec<Worker>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Worker {
    pub name: String,
    /// "stopped", "booting", "ready" or "stopping".
    pub state: &'static str,
    pub healthy: bool,
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Provider {
    pub name: String,
    pub kind: String,
    pub url: String,
    pub connected: bool,
    pub last_poll: Option<String>,
    pub last_error: String,
    pub rate_limit_remaining: i64,
    pub discovery: String,
    pub credential: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Job {
    pub id: String,
    pub provider: String,
    pub forge_job_id: u64,
    pub run_id: u64,
    pub repo: String,
    pub workflow: String,
    pub name: String,
    pub labels: Vec<String>,
    pub runner_name: String,
    pub image: String,
    pub target: String,
    pub state: &'static str,
    pub conclusion: String,
    pub exit_code: Option<i64>,
    pub queued_at: Option<String>,
    pub claimed_at: Option<String>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub html_url: String,
}

fn time(t: Option<prost_types::Timestamp>) -> Option<String> {
    let t = t?;
    let at = if t.seconds >= 0 {
        SystemTime::UNIX_EPOCH.checked_add(Duration::new(t.seconds as u64, t.nanos.clamp(0, 999_999_999) as u32))?
    } else {
        return None;
    };
    Some(humantime::format_rfc3339_millis(at).to_string())
}

impl From<&v1::ProviderHealth> for Provider {
    fn from(p: &v1::ProviderHealth) -> Self {
        Self {
            name: p.name.clone(),
            kind: p.kind.clone(),
            url: p.url.clone(),
            connected: p.connected,
            last_poll: time(p.last_poll),
            last_error: p.last_error.clone(),
            rate_limit_remaining: p.rate_limit_remaining,
            discovery: p.discovery.clone(),
            credential: if p.credential.is_empty() { "missing".into() } else { p.credential.clone() },
        }
    }
}

impl From<&v1::StatusReply> for Status {
    fn from(s: &v1::StatusReply) -> Self {
        Self {
            version: s.version.clone(),
            state: DaemonState::word_of(s.state),
            active_jobs: s.active_jobs,
            max_jobs: s.max_jobs,
            queued_jobs: s.queued_jobs,
            providers: s.providers.iter().map(Provider::from).collect(),
            data_dir: s.data_dir.clone(),
            drain_deadline: time(s.drain_deadline),
            uptime_secs: s.uptime.map(|d| d.seconds.max(0) as u64).unwrap_or(0),
            workers: s
                .workers
                .iter()
                .map(|w| Worker {
                    name: w.name.clone(),
                    state: v1::WorkerState::word_of(w.state),
                    healthy: w.healthy,
                    detail: w.detail.clone(),
                })
                .collect(),
        }
    }
}

impl From<&v1::Job> for Job {
    fn from(j: &v1::Job) -> Self {
        Self {
            id: j.id.clone(),
            provider: j.provider.clone(),
            forge_job_id: j.forge_job_id,
            run_id: j.run_id,
            repo: j.repo.clone(),
            workflow: j.workflow.clone(),
            name: j.name.clone(),
            labels: j.labels.clone(),
            runner_name: j.runner_name.clone(),
            image: j.image.clone(),
            target: j.target.clone(),
            state: JobState::word_of(j.state),
            conclusion: j.conclusion.clone(),
            exit_code: j.exit_code,
            queued_at: time(j.queued_at),
            claimed_at: time(j.claimed_at),
            started_at: time(j.started_at),
            finished_at: time(j.finished_at),
            html_url: j.html_url.clone(),
        }
    }
}

/// A log stream's events, sent over a Tauri channel.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum LogEvent {
    Data { text: String },
    End,
    Error { error: UiError },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum ForgeAuth {
    Token {
        token: String,
    },
    #[serde(rename_all = "camelCase")]
    App {
        app_id: u64,
        installation_id: u64,
        key_file: String,
    },
}

/// A forge as the settings window sends it. Its `Debug` never shows the secret.
#[derive(Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ForgeInput {
    pub kind: String,
    #[serde(default)]
    pub url: String,
    #[serde(default)]
    pub owner: String,
    #[serde(default)]
    pub repos: Vec<String>,
    /// `None`: keep the token stored for this forge (an edited forge).
    #[serde(default)]
    pub auth: Option<ForgeAuth>,
    #[serde(default)]
    pub poll_interval: Option<String>,
    #[serde(default)]
    pub webhook: bool,
    /// Labels the runners carry besides self-hosted, the OS and the architecture.
    #[serde(default)]
    pub labels: Vec<String>,
    /// The image this forge's jobs run in; empty: the default image.
    #[serde(default)]
    pub image: String,
    /// With `webhook`: the secret the forge signs deliveries with; empty keeps the stored one.
    #[serde(default)]
    pub webhook_secret: String,
}

impl std::fmt::Debug for ForgeInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ForgeInput").field("kind", &self.kind).field("owner", &self.owner).finish_non_exhaustive()
    }
}

impl ForgeInput {
    /// The proto's spec; what the daemon cannot take from the app is refused here, in words.
    pub fn into_spec(self) -> Result<v1::ForgeSpec, UiError> {
        let poll_interval = match self.poll_interval.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
            None => None,
            Some(s) => {
                let d = humantime::parse_duration(s).map_err(|_| {
                    UiError::invalid(format!("The poll interval `{s}` is not a duration (e.g. 10s or 1m)."))
                })?;
                Some(prost_types::Duration { seconds: d.as_secs() as i64, nanos: 0 })
            }
        };
        let auth = self.auth.map(|a| match a {
            ForgeAuth::Token { token } => v1::forge_spec::Auth::Token(token),
            ForgeAuth::App { app_id, installation_id, key_file } => {
                v1::forge_spec::Auth::App(v1::GithubAppAuth { app_id, installation_id, private_key_file: key_file })
            }
        });
        Ok(v1::ForgeSpec {
            kind: self.kind,
            url: self.url,
            owner: self.owner,
            repos: self.repos,
            auth,
            poll_interval,
            labels: self.labels,
            image: self.image,
            webhook: self.webhook,
            webhook_secret: if self.webhook { self.webhook_secret } else { String::new() },
        })
    }
}

/// How jobs run, as the settings window shows and edits it (the daemon checks and saves it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobSettings {
    pub max_concurrent: u32,
    pub default_image: String,
    #[serde(default)]
    pub profiles: Vec<LabelProfile>,
    /// Read-only: the daemon's config file.
    #[serde(default)]
    pub config_path: String,
    /// host:port the daemon takes webhook deliveries on; empty: none.
    #[serde(default)]
    pub webhook_listen: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LabelProfile {
    #[serde(default)]
    pub name: String,
    pub labels: Vec<String>,
    #[serde(default)]
    pub image: String,
}

impl From<v1::JobSettings> for JobSettings {
    fn from(s: v1::JobSettings) -> Self {
        JobSettings {
            max_concurrent: s.max_concurrent,
            default_image: s.default_image,
            profiles: s
                .profiles
                .into_iter()
                .map(|p| LabelProfile { name: p.name, labels: p.labels, image: p.image })
                .collect(),
            config_path: s.config_path,
            webhook_listen: s.webhook_listen,
        }
    }
}

impl From<JobSettings> for v1::JobSettings {
    fn from(s: JobSettings) -> Self {
        v1::JobSettings {
            max_concurrent: s.max_concurrent,
            default_image: s.default_image,
            profiles: s
                .profiles
                .into_iter()
                .map(|p| v1::LabelProfile { name: p.name, labels: p.labels, image: p.image })
                .collect(),
            config_path: s.config_path,
            webhook_listen: s.webhook_listen,
        }
    }
}

/// A saved forge as the settings window edits it (no secrets: `auth` is `None` for a stored token).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ForgeView {
    pub kind: String,
    pub url: String,
    pub owner: String,
    pub repos: Vec<String>,
    pub auth: Option<ForgeAuth>,
    pub poll_interval: Option<String>,
    pub webhook: bool,
    pub labels: Vec<String>,
    pub image: String,
}

impl From<v1::ForgeSpec> for ForgeView {
    fn from(s: v1::ForgeSpec) -> Self {
        let auth = match s.auth {
            Some(v1::forge_spec::Auth::App(a)) => Some(ForgeAuth::App {
                app_id: a.app_id,
                installation_id: a.installation_id,
                key_file: a.private_key_file,
            }),
            // A token never comes back from the daemon; were one sent, it would not be shown.
            Some(v1::forge_spec::Auth::Token(_)) | None => None,
        };
        // As the form takes it: 10s, 5m, 1h.
        let poll_interval = s.poll_interval.map(|d| match d.seconds.max(0) {
            n if n > 0 && n % 3600 == 0 => format!("{}h", n / 3600),
            n if n > 0 && n % 60 == 0 => format!("{}m", n / 60),
            n => format!("{n}s"),
        });
        ForgeView {
            kind: s.kind,
            url: s.url,
            owner: s.owner,
            repos: s.repos,
            auth,
            poll_interval,
            webhook: s.webhook,
            labels: s.labels,
            image: s.image,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct TestResult {
    pub ok: bool,
    pub missing: Vec<String>,
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_and_status_become_words_and_rfc3339_times() {
        let j = v1::Job {
            id: "github:o#1".into(),
            state: JobState::JobRunning as i32,
            queued_at: Some(prost_types::Timestamp { seconds: 1_700_000_000, nanos: 5_000_000 }),
            ..Default::default()
        };
        let v = serde_json::to_value(Job::from(&j)).unwrap();
        assert_eq!(v["state"], "running");
        assert_eq!(v["queuedAt"], "2023-11-14T22:13:20.005Z");
        assert_eq!(v["startedAt"], serde_json::Value::Null);
        assert_eq!(v["forgeJobId"], 0);
        let s = v1::StatusReply { state: DaemonState::Paused as i32, ..Default::default() };
        assert_eq!(serde_json::to_value(Status::from(&s)).unwrap()["state"], "paused");
    }

    #[test]
    fn a_forge_from_the_window_becomes_a_spec_and_its_secret_stays_out_of_debug() {
        let f: ForgeInput = serde_json::from_value(serde_json::json!({
            "kind": "github", "url": "", "owner": "octo-org", "repos": ["app"],
            "auth": {"type": "token", "token": "ghp_x"}, "pollInterval": "5s", "webhook": false
        }))
        .unwrap();
        assert!(!format!("{f:?}").contains("ghp_x"));
        let spec = f.into_spec().unwrap();
        assert_eq!(spec.poll_interval.map(|d| d.seconds), Some(5));
        assert_eq!(spec.auth, Some(v1::forge_spec::Auth::Token("ghp_x".into())));
        let app: ForgeInput = serde_json::from_value(serde_json::json!({
            "kind": "github", "owner": "o",
            "auth": {"type": "app", "appId": 1, "installationId": 2, "keyFile": "/k.pem"}
        }))
        .unwrap();
        let spec = app.into_spec().unwrap();
        assert!(matches!(spec.auth, Some(v1::forge_spec::Auth::App(ref a)) if a.installation_id == 2));
        let hook: ForgeInput = serde_json::from_value(serde_json::json!({
            "kind": "github", "owner": "o", "auth": {"type": "token", "token": "t"}, "webhook": true,
            "webhookSecret": "hook-secret-1"
        }))
        .unwrap();
        assert!(!format!("{hook:?}").contains("hook-secret"));
        let spec = hook.into_spec().unwrap();
        assert_eq!((spec.webhook, spec.webhook_secret.as_str()), (true, "hook-secret-1"));
        let off: ForgeInput = serde_json::from_value(serde_json::json!({
            "kind": "github", "owner": "o", "auth": {"type": "token", "token": "t"}, "webhookSecret": "stale"
        }))
        .unwrap();
        assert_eq!(off.into_spec().unwrap().webhook_secret, "", "no secret is sent without webhooks");
        let labelled: ForgeInput = serde_json::from_value(serde_json::json!({
            "kind": "github", "owner": "o", "auth": {"type": "token", "token": "t"},
            "labels": ["gpu"], "image": "debian:bookworm"
        }))
        .unwrap();
        let spec = labelled.into_spec().unwrap();
        assert_eq!((spec.labels, spec.image.as_str()), (vec!["gpu".to_string()], "debian:bookworm"));
    }

    #[test]
    fn a_saved_forge_reaches_the_window_without_secrets() {
        let spec = v1::ForgeSpec {
            kind: "github".into(),
            owner: "o".into(),
            auth: Some(v1::forge_spec::Auth::Token("ghp_never".into())),
            poll_interval: Some(prost_types::Duration { seconds: 90, nanos: 0 }),
            webhook: true,
            ..Default::default()
        };
        let v = serde_json::to_value(ForgeView::from(spec)).unwrap();
        assert_eq!((v["auth"].clone(), v["pollInterval"].clone()), (serde_json::Value::Null, "90s".into()));
        assert!(!v.to_string().contains("ghp_never"));
        let kept: ForgeInput =
            serde_json::from_value(serde_json::json!({"kind": "github", "owner": "o", "auth": null})).unwrap();
        assert_eq!(kept.into_spec().unwrap().auth, None, "the stored token is kept");
    }

    #[test]
    fn job_settings_cross_in_camel_case_both_ways() {
        let s: JobSettings = serde_json::from_value(serde_json::json!({
            "maxConcurrent": 3, "defaultImage": "debian:bookworm",
            "profiles": [{"labels": ["big"], "image": "ghcr.io/o/big:1"}]
        }))
        .unwrap();
        let v: v1::JobSettings = s.clone().into();
        assert_eq!((v.max_concurrent, v.profiles[0].name.as_str()), (3, ""));
        assert_eq!(JobSettings::from(v), s);
        assert_eq!(serde_json::to_value(&s).unwrap()["profiles"][0]["image"], "ghcr.io/o/big:1");
    }
}

//! The GitHub provider: repository- or organization-level just-in-time runners, discovery by polling queued
//! and in-progress workflow runs and their jobs with conditional requests (an idle poll is all 304s and
//! costs no rate limit), every page followed.

pub mod api;
pub mod webhook;

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};

use api::{Api, Auth};

use super::{Claim, ForgeError, ForgeJob, JobStatus, PollOutcome, Provider, RunnerInfo, RunnerRequest, Secret};

/// One `[[github]]` section of the config.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GithubConfig {
    /// The user or organization.
    pub owner: String,
    /// Repositories (names under `owner`) whose jobs to run, with runners registered per repository.
    /// Empty: every repository of the organization, with runners registered at the organization.
    #[serde(default)]
    pub repos: Vec<String>,
    /// The REST API root (GitHub Enterprise Server: `https://HOST/api/v3`).
    #[serde(default = "default_api_url")]
    pub api_url: String,
    /// Labels runners carry besides `self-hosted`, OS and architecture.
    #[serde(default)]
    pub labels: Vec<String>,
    /// The runner group JIT runners join (1 is the default group).
    #[serde(default = "default_group")]
    pub runner_group_id: u64,
    #[serde(default = "default_poll", with = "crate::config::humantime_serde_compat")]
    pub poll_interval: Duration,
    /// The image this provider's jobs run in when the job names none.
    pub image: Option<String>,
    /// A GitHub App instead of a token.
    pub app: Option<GithubApp>,
    /// The environment variable holding the webhook secret; set it to take `workflow_job` deliveries at
    /// `/hooks/github/<owner>` (see `webhook.listen`). Polling then goes on at `safety_poll_interval`.
    pub webhook_secret_env: Option<String>,
    /// Take `workflow_job` deliveries with the secret kept in the credential store as
    /// `github:<owner>/webhook` (what the settings window saves); `webhook_secret_env` wins when set.
    #[serde(default)]
    pub webhook: bool,
    #[serde(default = "default_safety_poll", with = "crate::config::humantime_serde_compat")]
    pub safety_poll_interval: Duration,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GithubApp {
    pub app_id: u64,
    pub installation_id: u64,
    /// The App's private key (PEM), read at start.
    pub private_key_file: PathBuf,
}

impl GithubConfig {
    /// A section for `owner` with every default.
    pub fn for_owner(owner: &str) -> Self {
        Self {
            owner: owner.into(),
            repos: Vec::new(),
            api_url: default_api_url(),
            labels: Vec::new(),
            runner_group_id: default_group(),
            poll_interval: default_poll(),
            image: None,
            app: None,
            webhook_secret_env: None,
            webhook: false,
            safety_poll_interval: default_safety_poll(),
        }
    }
}

fn default_api_url() -> String {
    "https://api.github.com".into()
}
fn default_group() -> u64 {
    1
}
fn default_poll() -> Duration {
    Duration::from_secs(10)
}
fn default_safety_poll() -> Duration {
    Duration::from_secs(60)
}

pub struct Github {
    name: String,
    cfg: GithubConfig,
    api: Api,
    webhook_secret: Option<Secret>,
}

/// The job status GitHub reports, in our terms.
fn status_of(job: &Value) -> JobStatus {
    match job["status"].as_str().unwrap_or("") {
        "queued" => JobStatus::Queued,
        "in_progress" => JobStatus::InProgress { runner_name: job["runner_name"].as_str().map(String::from) },
        "completed" => JobStatus::Completed { conclusion: job["conclusion"].as_str().map(String::from) },
        _ => JobStatus::Waiting,
    }
}

/// A job object (REST list-jobs item or webhook `workflow_job`) as a `ForgeJob`.
pub fn parse_job(provider: &str, repo: &str, job: &Value) -> Option<ForgeJob> {
    Some(ForgeJob {
        provider: provider.to_string(),
        id: job["id"].as_u64()?,
        run_id: job["run_id"].as_u64()?,
        repo: repo.to_string(),
        workflow: job["workflow_name"].as_str().unwrap_or("").to_string(),
        name: job["name"].as_str().unwrap_or("").to_string(),
        labels: job["labels"].as_array()?.iter().filter_map(|l| l.as_str().map(String::from)).collect(),
        html_url: job["html_url"].as_str().map(String::from),
        status: status_of(job),
    })
}

impl Github {
    pub fn new(cfg: GithubConfig, token: Option<Secret>) -> Result<Self, ForgeError> {
        let name = format!("github:{}", cfg.owner);
        let auth = match (&cfg.app, token) {
            (Some(app), _) => {
                let pem = std::fs::read_to_string(&app.private_key_file).map_err(|e| {
                    ForgeError::Config(format!("cannot read {}: {e}", app.private_key_file.display()), name.clone())
                })?;
                Auth::App {
                    app_id: app.app_id,
                    installation_id: app.installation_id,
                    private_key_pem: Secret::new(pem),
                }
            }
            (None, Some(t)) => Auth::Token(t),
            (None, None) => {
                return Err(ForgeError::Config(
                    format!(
                        "no credentials: pass --token or set GITHUB_TOKEN, store a token with `ephemerd credential set {name}`, or configure a GitHub App"
                    ),
                    name,
                ));
            }
        };
        let webhook_secret = match &cfg.webhook_secret_env {
            None => None,
            Some(var) => match std::env::var(var) {
                Ok(v) if !v.is_empty() => Some(Secret::new(v)),
                _ => {
                    return Err(ForgeError::Config(
                        format!("webhook secret: environment variable {var} is not set"),
                        name,
                    ));
                }
            },
        };
        let api = Api::new(&cfg.api_url, auth, &name)?;
        Ok(Self { name, cfg, api, webhook_secret })
    }

    /// Takes deliveries signed with `secret` (a secret from the credential store; one from
    /// `webhook_secret_env` stays).
    pub fn with_webhook_secret(mut self, secret: Secret) -> Self {
        if self.webhook_secret.is_none() {
            self.webhook_secret = Some(secret);
        }
        self
    }

    /// `owner/repo` of every repository to watch.
    async fn repos(&self, counted: &mut u32) -> Result<Vec<String>, ForgeError> {
        if !self.cfg.repos.is_empty() {
            return Ok(self.cfg.repos.iter().map(|r| format!("{}/{r}", self.cfg.owner)).collect());
        }
        let first = format!("/orgs/{}/repos?per_page=100", self.cfg.owner);
        let repos = self.list_all("list organization repositories", first, None, counted).await?;
        Ok(repos.iter().filter_map(|r| r["full_name"].as_str().map(String::from)).collect())
    }

    /// Every page of a list endpoint (`key` holds the items, `None` for a bare array).
    async fn list_all(
        &self,
        what: &str,
        first: String,
        key: Option<&str>,
        counted: &mut u32,
    ) -> Result<Vec<Value>, ForgeError> {
        let mut items = Vec::new();
        let mut url = first;
        loop {
            let got = self.api.get(what, &url).await?;
            if !got.not_modified {
                *counted += 1;
            }
            let list = match key {
                Some(k) => &got.body[k],
                None => &got.body,
            };
            items.extend(list.as_array().cloned().unwrap_or_default());
            match got.next {
                Some(n) => url = n,
                None => return Ok(items),
            }
        }
    }

    /// One read that needs `permission` on `scope`: what it says about the credentials, if anything.
    async fn needs(&self, path: &str, permission: &str, scope: &str) -> Result<Option<String>, String> {
        match self.api.probe("check a permission", path).await {
            Ok((200, _, _)) => Ok(None),
            Ok((403, h, _)) => {
                let accepted = h.get("x-accepted-github-permissions").and_then(|v| v.to_str().ok());
                Ok(Some(match accepted {
                    Some(a) => format!("{permission} on {scope} (GitHub accepts: {a})"),
                    None => format!("{permission} on {scope}"),
                }))
            }
            Ok((404, _, _)) => Ok(Some(format!("access to {scope} (not found, or the credentials cannot see it)"))),
            Ok((status, _, body)) => {
                Err(format!("{path}: unexpected answer {status}: {}", body.chars().take(120).collect::<String>()))
            }
            Err(e) => Err(e.to_string()),
        }
    }

    /// The scope a job's runner registers in: its repository, or the organization.
    fn scope_for(&self, repo: &str) -> String {
        if self.cfg.repos.is_empty() { self.cfg.owner.clone() } else { repo.to_string() }
    }

    fn runners_path(&self, scope: &str) -> String {
        if scope.contains('/') {
            format!("/repos/{scope}/actions/runners")
        } else {
            format!("/orgs/{scope}/actions/runners")
        }
    }
}

#[async_trait::async_trait]
impl Provider for Github {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "github"
    }

    fn url(&self) -> &str {
        &self.cfg.api_url
    }

    fn rate_limit(&self) -> Option<super::RateLimit> {
        self.api.rate_limit()
    }

    fn default_image(&self) -> Option<&str> {
        self.cfg.image.as_deref()
    }

    fn labels(&self) -> &[String] {
        &self.cfg.labels
    }

    fn poll_interval(&self) -> Duration {
        // With webhooks, polling is the safety net for lost deliveries.
        if self.webhook_secret.is_some() { self.cfg.safety_poll_interval } else { self.cfg.poll_interval }
    }

    fn endpoints(&self) -> Vec<String> {
        vec![self.cfg.api_url.clone()]
    }

    fn webhook(&self) -> Option<&dyn super::Webhook> {
        self.webhook_secret.as_ref().map(|_| self as &dyn super::Webhook)
    }

    async fn conclusion(&self, job: &ForgeJob) -> Result<Option<String>, ForgeError> {
        // A plain GET: one job asked once needs no ETag kept for it.
        let path = format!("/repos/{}/actions/jobs/{}", job.repo, job.id);
        let (status, _, body) = self.api.probe("get a job", &path).await?;
        if status != 200 {
            return Ok(None);
        }
        let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        Ok(match status_of(&body) {
            JobStatus::Completed { conclusion } => conclusion,
            _ => None,
        })
    }

    async fn test(&self) -> super::ProviderTest {
        let fail = |message: String| super::ProviderTest { ok: false, missing: vec![], message };
        // /rate_limit answers any valid credentials and costs no rate limit.
        let (status, headers, body) = match self.api.probe("check the credentials", "/rate_limit").await {
            Ok(r) => r,
            Err(e) => return fail(format!("cannot reach {}: {e}", self.cfg.api_url)),
        };
        match status {
            200 => {}
            401 => return fail(format!("{}: the credentials are refused (401)", self.name)),
            s => {
                let hint = body.chars().take(120).collect::<String>();
                return fail(format!(
                    "{} answers {s} at /rate_limit: is api_url a GitHub API root? {hint}",
                    self.cfg.api_url
                ));
            }
        }
        let mut missing = Vec::new();
        // A classic token lists its scopes; a fine-grained token or an App does not.
        if let Some(scopes) = headers.get("x-oauth-scopes").and_then(|v| v.to_str().ok()) {
            let need = if self.cfg.repos.is_empty() { "admin:org" } else { "repo" };
            if !scopes.split(',').any(|s| s.trim() == need) {
                missing.push(format!(
                    "token scope {need} (the token has: {})",
                    if scopes.trim().is_empty() { "none" } else { scopes.trim() }
                ));
            }
        }
        let mut checks: Vec<(String, &str, String)> = Vec::new();
        if self.cfg.repos.is_empty() {
            let org = &self.cfg.owner;
            checks.push((
                format!("/orgs/{org}/actions/runners?per_page=1"),
                "Self-hosted runners: read and write",
                format!("organization {org}"),
            ));
            checks.push((format!("/orgs/{org}/repos?per_page=1"), "Metadata: read", format!("organization {org}")));
        } else {
            for r in &self.cfg.repos {
                let repo = format!("{}/{r}", self.cfg.owner);
                checks.push((
                    format!("/repos/{repo}/actions/runners?per_page=1"),
                    "Administration: read and write",
                    repo.clone(),
                ));
                checks.push((format!("/repos/{repo}/actions/runs?per_page=1"), "Actions: read", repo));
            }
        }
        for (path, permission, scope) in checks {
            match self.needs(&path, permission, &scope).await {
                Ok(None) => {}
                Ok(Some(m)) => {
                    if !missing.contains(&m) {
                        missing.push(m)
                    }
                }
                Err(e) => return fail(e),
            }
        }
        let message = if missing.is_empty() {
            format!("{} reachable; the credentials can register runners and see jobs", self.cfg.api_url)
        } else {
            format!("the credentials lack {} permission(s)", missing.len())
        };
        super::ProviderTest { ok: missing.is_empty(), missing, message }
    }

    async fn poll(&self) -> Result<PollOutcome, ForgeError> {
        let mut counted = 0;
        let mut jobs = Vec::new();
        for repo in self.repos(&mut counted).await? {
            // A queued job may sit in a run that is already in progress (other jobs of it started).
            for status in ["queued", "in_progress"] {
                let first = format!("/repos/{repo}/actions/runs?status={status}&per_page=100");
                let runs = self.list_all("list workflow runs", first, Some("workflow_runs"), &mut counted).await?;
                for run in runs {
                    let Some(run_id) = run["id"].as_u64() else { continue };
                    let first = format!("/repos/{repo}/actions/runs/{run_id}/jobs?per_page=100");
                    let list = self.list_all("list jobs of a run", first, Some("jobs"), &mut counted).await?;
                    jobs.extend(
                        list.iter()
                            .filter_map(|j| parse_job(&self.name, &repo, j))
                            .filter(|j| matches!(j.status, JobStatus::Queued | JobStatus::InProgress { .. })),
                    );
                }
            }
        }
        Ok(PollOutcome { jobs, counted_requests: counted })
    }

    async fn claim(&self, job: &ForgeJob, runner: &RunnerRequest) -> Result<Claim, ForgeError> {
        let scope = self.scope_for(&job.repo);
        let body = json!({
            "name": runner.name,
            "runner_group_id": self.cfg.runner_group_id,
            "labels": runner.labels,
            "work_folder": "_work",
        });
        let path = format!("{}/generate-jitconfig", self.runners_path(&scope));
        let r = self.api.post("generate a JIT runner config", &path, &body).await?;
        let bad = |m: &str| ForgeError::BadAnswer {
            forge: self.name.clone(),
            what: "generate a JIT runner config".into(),
            message: m.to_string(),
        };
        let runner_id = r["runner"]["id"].as_u64().ok_or_else(|| bad("no runner.id"))?;
        let jit = r["encoded_jit_config"].as_str().ok_or_else(|| bad("no encoded_jit_config"))?;
        Ok(Claim {
            runner_id,
            runner_name: r["runner"]["name"].as_str().unwrap_or(&runner.name).to_string(),
            scope,
            env: vec![("ACTIONS_RUNNER_INPUT_JITCONFIG".into(), Secret::new(jit))],
        })
    }

    async fn release(&self, scope: &str, runner_id: u64) -> Result<(), ForgeError> {
        self.api.delete("delete a runner", &format!("{}/{runner_id}", self.runners_path(scope))).await
    }

    async fn runners(&self, prefix: &str) -> Result<Vec<RunnerInfo>, ForgeError> {
        let scopes: Vec<String> = if self.cfg.repos.is_empty() {
            vec![self.cfg.owner.clone()]
        } else {
            self.cfg.repos.iter().map(|r| format!("{}/{r}", self.cfg.owner)).collect()
        };
        let mut out = Vec::new();
        let mut counted = 0;
        for scope in scopes {
            let first = format!("{}?per_page=100", self.runners_path(&scope));
            for r in self.list_all("list runners", first, Some("runners"), &mut counted).await? {
                let (Some(id), Some(name)) = (r["id"].as_u64(), r["name"].as_str()) else { continue };
                if name.starts_with(prefix) {
                    out.push(RunnerInfo { id, name: name.to_string(), scope: scope.clone(), busy: r["busy"] == true });
                }
            }
        }
        Ok(out)
    }
}

impl super::Webhook for Github {
    fn deliver(&self, headers: &http::HeaderMap, body: &[u8]) -> Result<super::Hook, super::HookRejected> {
        let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
        let Some(secret) = &self.webhook_secret else {
            return Err(super::HookRejected { status: 404, message: "webhooks are not configured".into() });
        };
        webhook::handle(
            &self.name,
            &self.cfg.owner,
            &self.cfg.repos,
            secret,
            h("x-github-event"),
            h("x-hub-signature-256"),
            body,
        )
        .map_err(|e| super::HookRejected { status: e.status(), message: e.to_string() })
    }

    fn delivery_id(&self, headers: &http::HeaderMap) -> Option<String> {
        headers.get("x-github-delivery").and_then(|v| v.to_str().ok()).map(String::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_parse_from_the_rest_shape() {
        let j = json!({"id": 399444496u64, "run_id": 29679449u64, "status": "queued", "conclusion": null,
            "name": "build", "workflow_name": "CI", "labels": ["self-hosted", "linux"],
            "html_url": "https://github.com/o/r/actions/runs/29679449/job/399444496", "runner_name": null});
        let f = parse_job("github:o", "o/r", &j).unwrap();
        assert_eq!(f.id, 399444496);
        assert_eq!(f.run_id, 29679449);
        assert_eq!(f.labels, vec!["self-hosted", "linux"]);
        assert_eq!(f.status, JobStatus::Queued);
        assert_eq!(f.workflow, "CI");
        let mut k = j.clone();
        k["status"] = json!("in_progress");
        k["runner_name"] = json!("ephemerd-1");
        assert_eq!(
            parse_job("g", "o/r", &k).unwrap().status,
            JobStatus::InProgress { runner_name: Some("ephemerd-1".into()) }
        );
        assert!(parse_job("g", "o/r", &json!({"id": 1})).is_none());
    }

    #[test]
    fn config_defaults_and_unknown_keys() {
        let c: GithubConfig = toml::from_str("owner = \"o\"\nrepos = [\"r\"]").unwrap();
        assert_eq!(c.api_url, "https://api.github.com");
        assert_eq!(c.poll_interval, Duration::from_secs(10));
        assert_eq!(c.runner_group_id, 1);
        let e = toml::from_str::<GithubConfig>("owner = \"o\"\ntoken = \"x\"").unwrap_err().to_string();
        assert!(e.contains("token"), "{e}");
        let e = Github::new(c, None).err().unwrap().to_string();
        assert!(e.contains("GITHUB_TOKEN"), "{e}");
    }
}

//! The forges ephemerd takes jobs from. `Provider` is the seam the scheduler sees: it never names a forge.
//! A provider finds queued jobs (`poll`; webhooks come as a capability of their own), registers a
//! just-in-time runner for a job it is given (`claim`), deregisters it (`release`), and lists the runners it
//! registered (for reconciliation after a crash). Each provider module is the only importer of its client.

pub mod build;
pub mod github;

use std::fmt;
use std::time::{Duration, SystemTime};

/// A secret string (token, JIT config): never printed by `Debug` or `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }
    /// The secret itself, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// A job as a forge reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForgeJob {
    /// The provider instance that reported it.
    pub provider: String,
    pub id: u64,
    pub run_id: u64,
    /// `owner/name`.
    pub repo: String,
    pub workflow: String,
    pub name: String,
    /// Its `runs-on` labels.
    pub labels: Vec<String>,
    pub html_url: Option<String>,
    pub status: JobStatus,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobStatus {
    Queued,
    InProgress {
        runner_name: Option<String>,
    },
    Completed {
        conclusion: Option<String>,
    },
    /// Waiting on an environment's protection rule: not runnable yet.
    Waiting,
}

/// The runner a job gets: what it is called and the labels it registers with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunnerRequest {
    pub name: String,
    pub labels: Vec<String>,
}

/// A registered runner: what the container needs to start it, and what releasing it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub runner_id: u64,
    pub runner_name: String,
    /// Where the runner is registered (`owner/repo`, or the org).
    pub scope: String,
    /// Environment for the runner process (the JIT config goes here, never in argv).
    pub env: Vec<(String, Secret)>,
}

/// A runner as the forge lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunnerInfo {
    pub id: u64,
    pub name: String,
    pub scope: String,
    pub busy: bool,
}

/// What a forge call can fail with; the scheduler decides from `retry` and `wait`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ForgeError {
    #[error("{forge}: credentials refused ({status}): {message}")]
    Auth { forge: String, status: u16, message: String },
    #[error("{forge}: missing permission ({status}): {message}")]
    Permission { forge: String, status: u16, message: String },
    #[error("{forge}: rate limited until {}", humantime::format_rfc3339_seconds(*until))]
    RateLimited { forge: String, until: SystemTime },
    #[error("{forge}: {what} not found")]
    NotFound { forge: String, what: String },
    #[error("{forge}: {what}: {status} {message}")]
    Rejected { forge: String, what: String, status: u16, message: String },
    #[error("{forge}: server error {status} on {what}")]
    Server { forge: String, what: String, status: u16 },
    #[error("{forge}: {what}: {message}")]
    Transport { forge: String, what: String, message: String },
    #[error("{forge}: unexpected answer to {what}: {message}")]
    BadAnswer { forge: String, what: String, message: String },
    #[error("{forge}: {0}", forge = .1)]
    Config(String, String),
}

impl ForgeError {
    /// Whether trying again later may succeed.
    pub fn retryable(&self) -> bool {
        matches!(self, Self::RateLimited { .. } | Self::Server { .. } | Self::Transport { .. })
    }

    /// How long to wait before the next call, when the forge said so.
    pub fn wait(&self, now: SystemTime) -> Option<Duration> {
        match self {
            Self::RateLimited { until, .. } => Some(until.duration_since(now).unwrap_or_default()),
            _ => None,
        }
    }
}

/// One round of discovery: jobs seen, and when to look again.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PollOutcome {
    pub jobs: Vec<ForgeJob>,
    /// Requests that cost rate limit (anything but a 304).
    pub counted_requests: u32,
}

/// What a check of a provider's URL and credentials found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProviderTest {
    pub ok: bool,
    /// Permissions (or scopes, or access) the credentials lack, by the forge's names.
    pub missing: Vec<String>,
    pub message: String,
}

/// A forge's request budget, from its last answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub remaining: i64,
    pub reset: SystemTime,
}

/// What a verified webhook delivery says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hook {
    Job(ForgeJob),
    Ping,
    /// Another event, or a job of someone else's: acknowledged and ignored.
    Ignored(String),
}

/// A refused delivery: the HTTP status and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status}: {message}")]
pub struct HookRejected {
    pub status: u16,
    pub message: String,
}

/// A provider that takes webhook deliveries.
pub trait Webhook: Send + Sync {
    /// Verifies a delivery (headers and the raw body) and says what it reports.
    fn deliver(&self, headers: &http::HeaderMap, body: &[u8]) -> Result<Hook, HookRejected>;
    /// A delivery's id, for dedup (`X-GitHub-Delivery`).
    fn delivery_id(&self, headers: &http::HeaderMap) -> Option<String>;
}

/// A forge, as the scheduler sees it.
#[async_trait::async_trait]
pub trait Provider: Send + Sync {
    /// The instance name (`github:octo-org`), unique among the configured providers.
    fn name(&self) -> &str;
    /// The kind of forge (`github`).
    fn kind(&self) -> &'static str;
    /// The forge's API root, as configured.
    fn url(&self) -> &str;
    /// What the forge last said about the rate limit, if it says.
    fn rate_limit(&self) -> Option<RateLimit> {
        None
    }
    /// The image for jobs that name none.
    fn default_image(&self) -> Option<&str>;
    /// The labels runners of this provider carry besides `self-hosted`, OS and architecture.
    fn labels(&self) -> &[String];
    /// Looks for queued and in-progress jobs (conditional requests: an idle poll costs no rate limit).
    async fn poll(&self) -> Result<PollOutcome, ForgeError>;
    /// How often to poll.
    fn poll_interval(&self) -> Duration;
    /// Registers a just-in-time runner for `job`.
    async fn claim(&self, job: &ForgeJob, runner: &RunnerRequest) -> Result<Claim, ForgeError>;
    /// Deregisters a runner; a runner already gone is success.
    async fn release(&self, scope: &str, runner_id: u64) -> Result<(), ForgeError>;
    /// Runners this provider's scopes hold whose names start with `prefix`.
    async fn runners(&self, prefix: &str) -> Result<Vec<RunnerInfo>, ForgeError>;
    /// The forge's conclusion for a job (`success`, `failure`, `cancelled`…), once the forge calls it
    /// completed; `None` before that, or for a forge that does not say.
    async fn conclusion(&self, _job: &ForgeJob) -> Result<Option<String>, ForgeError> {
        Ok(None)
    }
    /// Checks the URL and the credentials, naming what is missing (read-only requests only).
    async fn test(&self) -> ProviderTest;
    /// URLs a runner of this provider must reach (the job's egress firewall lets their addresses through).
    fn endpoints(&self) -> Vec<String> {
        Vec::new()
    }
    /// The webhook capability, when this provider is configured for it.
    fn webhook(&self) -> Option<&dyn Webhook> {
        None
    }
    /// The path its webhook deliveries come to (`/hooks/<forge>/<owner>`).
    fn webhook_path(&self) -> String {
        format!("/hooks/{}", self.name().replace(':', "/"))
    }
}

//! A stateful fake of GitHub's REST API for self-hosted runners, speaking the public wire format: the
//! paths, query parameters, JSON fields and status codes of the endpoints ephemerd uses (runs, jobs,
//! generate-jitconfig, runners, organization repositories), `Authorization` checks, rate-limit headers,
//! weak ETags with `If-None-Match` → 304 (not counted against the limit), `Link` pagination, and injected
//! faults (5xx bursts, primary and secondary rate limits).

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const DOCS: &str = "https://docs.github.com/rest";

/// A fault the fake answers with instead of serving a request.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Answer this status (a 5xx burst is several of these, or `fail_for`).
    Status(u16),
    /// Primary rate limit exhausted until `reset` (unix seconds).
    RateLimited { reset: u64 },
    /// A secondary rate limit with `Retry-After`.
    Secondary { retry_after: u64 },
}

/// One request the fake saw.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path_and_query: String,
    pub status: u16,
}

#[derive(Default)]
pub struct GhState {
    pub token: String,
    /// `owner/repo` → its runs, jobs, runners.
    pub repos: BTreeMap<String, RepoState>,
    /// Organization-level runners, by org.
    pub org_runners: BTreeMap<String, Vec<Value>>,
    pub seen: Vec<Seen>,
    pub faults: VecDeque<Fault>,
    /// Answer every request with this status until then.
    pub fail_until: Option<(Instant, u16)>,
    pub remaining: i64,
    next_id: u64,
    base_url: String,
    /// The base URL runners (in job containers) reach the fake at.
    runner_url: String,
    /// Job id → the script its runner runs.
    pub scripts: BTreeMap<u64, String>,
    /// The most jobs in progress at once.
    pub max_in_progress: usize,
    /// When each job's runner asked for it (the runner process is up).
    pub acquired_at: BTreeMap<u64, Instant>,
    /// The path the REST API is served under (`/api/v3` like GitHub Enterprise Server, or empty).
    prefix: String,
    /// A GitHub App whose installation may exchange a signed JWT for installation tokens.
    pub app: Option<FakeApp>,
    /// Installation tokens handed out, with their expiry (unix seconds).
    pub installation_tokens: Vec<(String, u64)>,
    /// While set, runners asking for a job get none (GitHub has not assigned one yet).
    pub hold: bool,
    /// A classic token's scopes, sent in `X-OAuth-Scopes` (none: a fine-grained token).
    pub oauth_scopes: Option<String>,
    /// Paths containing the first string answer 403, naming the permission (second) GitHub would accept.
    pub denied: Vec<(String, String)>,
}

/// A GitHub App installed on the fake.
pub struct FakeApp {
    pub app_id: u64,
    pub installation_id: u64,
    /// The App's public key (PEM): JWTs must be RS256-signed with its private key.
    pub public_key_pem: String,
    /// How long an installation token lives (GitHub: one hour).
    pub token_ttl: Duration,
}

#[derive(Default, Clone)]
pub struct RepoState {
    pub runs: Vec<Value>,
    pub jobs: Vec<Value>,
    pub runners: Vec<Value>,
}

pub struct FakeGithub {
    pub addr: SocketAddr,
    pub state: Arc<Mutex<GhState>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeGithub {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn now_unix() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// Unix seconds as RFC 3339 UTC (the civil-from-days algorithm).
fn iso(t: u64) -> String {
    let (days, secs) = ((t / 86_400) as i64, t % 86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", secs / 3600, (secs / 60) % 60, secs % 60)
}

impl FakeGithub {
    /// Serves on a loopback port; requests must carry `token`.
    pub async fn start(token: &str) -> FakeGithub {
        Self::start_on("127.0.0.1:0", token).await
    }

    /// Serves on `bind` (e.g. `0.0.0.0:0`, so job containers can reach it through their gateway).
    pub async fn start_on(bind: &str, token: &str) -> FakeGithub {
        let listener = tokio::net::TcpListener::bind(bind).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let base_url = format!("http://127.0.0.1:{}", addr.port());
        let state = Arc::new(Mutex::new(GhState {
            token: token.to_string(),
            remaining: 5000,
            next_id: 1000,
            runner_url: base_url.clone(),
            base_url,
            ..Default::default()
        }));
        let app = axum::Router::new().fallback(handle).with_state(state.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeGithub { addr, state, task }
    }

    /// The API root, as `api_url` (with the `/api/v3` prefix in Enterprise Server mode).
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}{}", self.addr.port(), self.with(|s| s.prefix.clone()))
    }

    /// Serves the REST API under `/api/v3`, as GitHub Enterprise Server does.
    pub fn enterprise_server(&self) {
        self.with(|s| s.prefix = "/api/v3".into());
    }

    /// Installs a GitHub App: its installation tokens are accepted like the token.
    pub fn install_app(&self, app: FakeApp) {
        self.with(|s| s.app = Some(app));
    }

    /// Revokes every installation token handed out so far (GitHub then answers 401).
    pub fn revoke_installation_tokens(&self) {
        self.with(|s| s.installation_tokens.iter_mut().for_each(|t| t.1 = 0));
    }

    /// Acts as a classic token with these scopes (`X-OAuth-Scopes`).
    pub fn classic_scopes(&self, scopes: &str) {
        self.with(|s| s.oauth_scopes = Some(scopes.to_string()));
    }

    /// Refuses requests whose path contains `path_part`, as GitHub does a token that lacks a permission
    /// (`accepted`: the `X-Accepted-GitHub-Permissions` value, e.g. `administration=read`).
    pub fn deny(&self, path_part: &str, accepted: &str) {
        self.with(|s| s.denied.push((path_part.to_string(), accepted.to_string())));
    }

    /// While `hold`, no runner gets a job.
    pub fn hold_jobs(&self, hold: bool) {
        self.with(|s| s.hold = hold);
    }

    pub fn installation_tokens_issued(&self) -> usize {
        self.with(|s| s.installation_tokens.len())
    }

    /// The base URL written into JIT configs, for runners that reach the fake another way.
    pub fn set_runner_url(&self, url: &str) {
        self.with(|s| s.runner_url = url.to_string());
    }

    /// Queues a job whose runner runs `script` (bash).
    pub fn queue_script(&self, repo: &str, name: &str, labels: &[&str], script: &str) -> (u64, u64) {
        let ids = self.queue_job(repo, name, labels);
        self.with(|s| s.scripts.insert(ids.1, script.to_string()));
        ids
    }

    /// A `workflow_job` delivery body for a job (as GitHub sends it, unsigned).
    pub fn workflow_job_delivery(&self, job_id: u64, action: &str) -> String {
        self.with(|s| {
            let (repo, job) = s
                .repos
                .iter()
                .find_map(|(name, r)| r.jobs.iter().find(|j| j["id"] == job_id).map(|j| (name.clone(), j.clone())))
                .unwrap_or_default();
            let owner = repo.split('/').next().unwrap_or("").to_string();
            let api = format!("{}{}", s.base_url, s.prefix);
            json!({
                "action": action,
                "workflow_job": job,
                "repository": repository_json(&api, &repo, 1),
                "sender": user_json(&api, &owner, 2),
            })
            .to_string()
        })
    }

    /// What GitHub does some minutes after a runner vanishes mid-job: the job fails and the runner is no
    /// longer busy (so it can be deleted).
    pub fn lose_busy_runners(&self) {
        self.with(|s| {
            let mut lost: Vec<(u64, String)> = Vec::new();
            for r in s.repos.values_mut() {
                for x in r.runners.iter_mut().filter(|x| x["busy"] == true) {
                    x["busy"] = json!(false);
                    x["status"] = json!("offline");
                    lost.push((x["id"].as_u64().unwrap_or(0), x["name"].as_str().unwrap_or("").to_string()));
                }
            }
            let jobs: Vec<u64> = s
                .repos
                .values()
                .flat_map(|r| r.jobs.iter())
                .filter(|j| j["status"] == "in_progress" && lost.iter().any(|(_, n)| j["runner_name"] == n.as_str()))
                .filter_map(|j| j["id"].as_u64())
                .collect();
            for j in jobs {
                set_job_status(s, j, "completed", Some("failure"), None);
            }
        })
    }

    /// Every job, as the REST API shows it.
    pub fn jobs(&self) -> Vec<Value> {
        self.with(|s| s.repos.values().flat_map(|r| r.jobs.clone()).collect())
    }

    fn with<T>(&self, f: impl FnOnce(&mut GhState) -> T) -> T {
        f(&mut self.state.lock().unwrap())
    }

    /// Queues a run with one job in `repo`; returns (run id, job id).
    pub fn queue_job(&self, repo: &str, name: &str, labels: &[&str]) -> (u64, u64) {
        self.with(|s| {
            s.next_id += 1;
            let run_id = s.next_id;
            s.next_id += 1;
            let job_id = s.next_id;
            let t = now_unix();
            let base = "https://github.com";
            let api = format!("{}{}", s.base_url, s.prefix);
            let r = s.repos.entry(repo.to_string()).or_default();
            r.runs.push(json!({
                "id": run_id, "node_id": format!("WFR_{run_id}"), "name": "CI", "head_branch": "main",
                "head_sha": "009b8a3a9ccbb128af87f9b1c0f4c62e8a304f6d", "path": ".github/workflows/ci.yml",
                "display_title": "CI", "run_number": run_id % 1000, "event": "push", "status": "queued",
                "conclusion": null, "workflow_id": 7, "check_suite_id": run_id + 1, "run_attempt": 1,
                "url": format!("{api}/repos/{repo}/actions/runs/{run_id}"),
                "html_url": format!("{base}/{repo}/actions/runs/{run_id}"),
                "jobs_url": format!("{api}/repos/{repo}/actions/runs/{run_id}/jobs"),
                "logs_url": format!("{api}/repos/{repo}/actions/runs/{run_id}/logs"),
                "check_suite_url": format!("{api}/repos/{repo}/check-suites/{}", run_id + 1),
                "artifacts_url": format!("{api}/repos/{repo}/actions/runs/{run_id}/artifacts"),
                "cancel_url": format!("{api}/repos/{repo}/actions/runs/{run_id}/cancel"),
                "rerun_url": format!("{api}/repos/{repo}/actions/runs/{run_id}/rerun"),
                "workflow_url": format!("{api}/repos/{repo}/actions/workflows/7"),
                "created_at": iso(t), "updated_at": iso(t), "run_started_at": iso(t),
                "pull_requests": [],
                "head_commit": {"id": "009b8a3a9ccbb128af87f9b1c0f4c62e8a304f6d", "tree_id": "d23f6eedb1e1b9610bbc754ddb5197bfe7271223",
                    "message": "Test", "timestamp": iso(t), "author": {"name": "Octo", "email": "octo@example.com"},
                    "committer": {"name": "Octo", "email": "octo@example.com"}},
                "repository": repository_json(&api, repo, 1),
                "head_repository": repository_json(&api, repo, 1),
            }));
            r.jobs.push(json!({
                "id": job_id, "run_id": run_id, "node_id": format!("CR_{job_id}"),
                "run_url": format!("{api}/repos/{repo}/actions/runs/{run_id}"),
                "url": format!("{api}/repos/{repo}/actions/jobs/{job_id}"),
                "html_url": format!("{base}/{repo}/actions/runs/{run_id}/job/{job_id}"),
                "check_run_url": format!("{api}/repos/{repo}/check-runs/{job_id}"),
                "head_sha": "009b8a3a9ccbb128af87f9b1c0f4c62e8a304f6d", "head_branch": "main",
                "workflow_name": "CI", "name": name, "status": "queued", "conclusion": null,
                "created_at": iso(t), "started_at": iso(t), "completed_at": null,
                "labels": labels, "runner_id": null, "runner_name": null,
                "runner_group_id": null, "runner_group_name": null, "run_attempt": 1, "steps": [],
            }));
            (run_id, job_id)
        })
    }

    /// Moves a job on (as GitHub does when a runner takes it and finishes it).
    pub fn set_job(&self, job_id: u64, status: &str, conclusion: Option<&str>, runner: Option<&str>) {
        self.with(|s| set_job_status(s, job_id, status, conclusion, runner));
    }

    /// Runners registered in `scope` (`owner/repo` or an org).
    pub fn runners(&self, scope: &str) -> Vec<Value> {
        self.with(|s| {
            if scope.contains('/') {
                s.repos.get(scope).map(|r| r.runners.clone()).unwrap_or_default()
            } else {
                s.org_runners.get(scope).cloned().unwrap_or_default()
            }
        })
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.with(|s| s.seen.clone())
    }

    pub fn inject(&self, f: Fault) {
        self.with(|s| s.faults.push_back(f));
    }

    pub fn fail_for(&self, d: Duration, status: u16) {
        self.with(|s| s.fail_until = Some((Instant::now() + d, status)));
    }
}

/// A user object with every field GitHub's `simple-user` requires.
pub fn user_json(api: &str, login: &str, id: u64) -> Value {
    let u = format!("{api}/users/{login}");
    json!({
        "login": login, "id": id, "node_id": format!("U_{id}"), "avatar_url": format!("https://avatars.example/u/{id}"),
        "gravatar_id": "", "url": u, "html_url": format!("https://github.com/{login}"),
        "followers_url": format!("{u}/followers"), "following_url": format!("{u}/following{{/other_user}}"),
        "gists_url": format!("{u}/gists{{/gist_id}}"), "starred_url": format!("{u}/starred{{/owner}}{{/repo}}"),
        "subscriptions_url": format!("{u}/subscriptions"), "organizations_url": format!("{u}/orgs"),
        "repos_url": format!("{u}/repos"), "events_url": format!("{u}/events{{/privacy}}"),
        "received_events_url": format!("{u}/received_events"), "type": "Organization", "site_admin": false,
    })
}

/// A repository object with every field GitHub's `minimal-repository` and `repository-webhooks` require.
pub fn repository_json(api: &str, full_name: &str, id: u64) -> Value {
    let (owner, name) = full_name.split_once('/').unwrap_or((full_name, full_name));
    let u = format!("{api}/repos/{full_name}");
    let mut r = json!({
        "id": id, "node_id": format!("R_{id}"), "name": name, "full_name": full_name, "private": false,
        "owner": user_json(api, owner, 1), "html_url": format!("https://github.com/{full_name}"),
        "description": null, "fork": false, "url": u, "homepage": null, "language": null,
        "forks": 0, "forks_count": 0, "stargazers_count": 0, "watchers": 0, "watchers_count": 0, "size": 0,
        "default_branch": "main", "open_issues": 0, "open_issues_count": 0, "has_issues": true,
        "has_projects": true, "has_wiki": true, "has_pages": false, "has_downloads": true, "archived": false,
        "disabled": false, "mirror_url": null, "license": null, "pushed_at": "2026-01-01T00:00:00Z",
        "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z",
        "clone_url": format!("https://github.com/{full_name}.git"), "git_url": format!("git://github.com/{full_name}.git"),
        "ssh_url": format!("git@github.com:{full_name}.git"), "svn_url": format!("https://github.com/{full_name}"),
    });
    for (k, path) in [
        ("archive_url", "/{archive_format}{/ref}"),
        ("assignees_url", "/assignees{/user}"),
        ("blobs_url", "/git/blobs{/sha}"),
        ("branches_url", "/branches{/branch}"),
        ("collaborators_url", "/collaborators{/collaborator}"),
        ("comments_url", "/comments{/number}"),
        ("commits_url", "/commits{/sha}"),
        ("compare_url", "/compare/{base}...{head}"),
        ("contents_url", "/contents/{+path}"),
        ("contributors_url", "/contributors"),
        ("deployments_url", "/deployments"),
        ("downloads_url", "/downloads"),
        ("events_url", "/events"),
        ("forks_url", "/forks"),
        ("git_commits_url", "/git/commits{/sha}"),
        ("git_refs_url", "/git/refs{/sha}"),
        ("git_tags_url", "/git/tags{/sha}"),
        ("hooks_url", "/hooks"),
        ("issue_comment_url", "/issues/comments{/number}"),
        ("issue_events_url", "/issues/events{/number}"),
        ("issues_url", "/issues{/number}"),
        ("keys_url", "/keys{/key_id}"),
        ("labels_url", "/labels{/name}"),
        ("languages_url", "/languages"),
        ("merges_url", "/merges"),
        ("milestones_url", "/milestones{/number}"),
        ("notifications_url", "/notifications{?since,all,participating}"),
        ("pulls_url", "/pulls{/number}"),
        ("releases_url", "/releases{/id}"),
        ("stargazers_url", "/stargazers"),
        ("statuses_url", "/statuses/{sha}"),
        ("subscribers_url", "/subscribers"),
        ("subscription_url", "/subscription"),
        ("tags_url", "/tags"),
        ("teams_url", "/teams"),
        ("trees_url", "/git/trees{/sha}"),
    ] {
        r[k] = json!(format!("{u}{path}"));
    }
    r
}

fn error(status: u16, message: &str) -> (u16, Value) {
    (status, json!({ "message": message, "documentation_url": DOCS, "status": status.to_string() }))
}

fn rate_headers(h: &mut HeaderMap, remaining: i64) {
    let set = |h: &mut HeaderMap, k: &'static str, v: String| {
        if let Ok(v) = HeaderValue::from_str(&v) {
            h.insert(k, v);
        }
    };
    set(h, "x-ratelimit-limit", "5000".into());
    set(h, "x-ratelimit-remaining", remaining.max(0).to_string());
    set(h, "x-ratelimit-used", (5000 - remaining.max(0)).to_string());
    set(h, "x-ratelimit-reset", (now_unix() + 3600).to_string());
    set(h, "x-ratelimit-resource", "core".into());
}

fn query_of(uri: &Uri) -> BTreeMap<String, String> {
    uri.query()
        .unwrap_or("")
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// One page of `items` under `key`, with `Link` to the others.
fn page(base: &str, uri: &Uri, key: &str, items: Vec<Value>, h: &mut HeaderMap) -> Value {
    let q = query_of(uri);
    let per: usize = q.get("per_page").and_then(|v| v.parse().ok()).unwrap_or(30).clamp(1, 100);
    let pg: usize = q.get("page").and_then(|v| v.parse().ok()).unwrap_or(1).max(1);
    let last = items.len().div_ceil(per).max(1);
    let link_for = |n: usize| {
        let mut q2 = q.clone();
        q2.insert("page".into(), n.to_string());
        let qs: Vec<String> = q2.iter().map(|(k, v)| format!("{k}={v}")).collect();
        format!("{base}{}?{}", uri.path(), qs.join("&"))
    };
    let mut links = Vec::new();
    if pg < last {
        links.push(format!("<{}>; rel=\"next\"", link_for(pg + 1)));
        links.push(format!("<{}>; rel=\"last\"", link_for(last)));
    }
    if pg > 1 {
        links.push(format!("<{}>; rel=\"prev\"", link_for(pg - 1)));
        links.push(format!("<{}>; rel=\"first\"", link_for(1)));
    }
    if !links.is_empty()
        && let Ok(v) = HeaderValue::from_str(&links.join(", "))
    {
        h.insert("link", v);
    }
    let total = items.len();
    let slice: Vec<Value> = items.into_iter().skip((pg - 1) * per).take(per).collect();
    if key.is_empty() { Value::Array(slice) } else { json!({ "total_count": total, key: slice }) }
}

fn jit_config(base: &str, runner_id: u64, name: &str) -> String {
    let runner = json!({
        "agentId": runner_id, "agentName": name, "poolId": 1, "poolName": "Default",
        "serverUrl": format!("{base}/_runner/{runner_id}"), "gitHubUrl": base, "workFolder": "_work",
        "ephemeral": true, "useV2Flow": true,
    });
    let creds = json!({"scheme": "OAuth", "data": {"clientId": format!("00000000-0000-0000-0000-{runner_id:012}"),
        "authorizationUrl": format!("{base}/_runner/{runner_id}/token"), "requireFipsCryptography": "False"}});
    let files = json!({
        ".runner": B64.encode(runner.to_string()),
        ".credentials": B64.encode(creds.to_string()),
        ".credentials_rsaparams": B64.encode("{}"),
    });
    B64.encode(files.to_string())
}

async fn handle(
    State(state): State<Arc<Mutex<GhState>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut s = match state.lock() {
        Ok(s) => s,
        Err(e) => e.into_inner(),
    };
    let mut h = HeaderMap::new();
    let (status, body) = serve(&mut s, &method, &uri, &headers, &body, &mut h);
    let path_and_query = uri.path_and_query().map(|p| p.to_string()).unwrap_or_default();
    s.seen.push(Seen { method: method.to_string(), path_and_query, status });
    let mut resp = if status == 304 || status == 204 {
        StatusCode::from_u16(status).unwrap_or(StatusCode::OK).into_response()
    } else {
        let mut r = match body {
            // The runner protocol of the fake answers plain text.
            Value::String(text) => text.into_response(),
            body => axum::Json(body).into_response(),
        };
        *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        r
    };
    resp.headers_mut().extend(h);
    resp
}

fn serve(
    s: &mut GhState,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &Bytes,
    h: &mut HeaderMap,
) -> (u16, Value) {
    if let Some((until, status)) = s.fail_until {
        if Instant::now() < until {
            return error(status, "Server Error");
        }
        s.fail_until = None;
    }
    match s.faults.pop_front() {
        Some(Fault::Status(st)) => return error(st, "Server Error"),
        Some(Fault::RateLimited { reset }) => {
            for (k, v) in [("x-ratelimit-remaining", "0".to_string()), ("x-ratelimit-reset", reset.to_string())] {
                if let Ok(v) = HeaderValue::from_str(&v) {
                    h.insert(k, v);
                }
            }
            return error(403, "API rate limit exceeded for user ID 1.");
        }
        Some(Fault::Secondary { retry_after }) => {
            if let Ok(v) = HeaderValue::from_str(&retry_after.to_string()) {
                h.insert("retry-after", v);
            }
            return error(
                403,
                "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.",
            );
        }
        None => {}
    }
    if let ["_runner", id, what] = uri.path().trim_matches('/').split('/').collect::<Vec<_>>().as_slice() {
        return runner_protocol(s, id.parse().unwrap_or(0), what, &query_of(uri));
    }
    let Some(uri) = strip_prefix(&s.prefix, uri) else {
        return error(404, "Not Found");
    };
    let uri = &uri;
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("");
    let token = auth.strip_prefix("Bearer ").or_else(|| auth.strip_prefix("token ")).unwrap_or("");
    if let (&Method::POST, ["app", "installations", id, "access_tokens"]) =
        (method, uri.path().trim_matches('/').split('/').collect::<Vec<_>>().as_slice())
    {
        return installation_token(s, id, token);
    }
    let now = now_unix();
    let installation = s.installation_tokens.iter().any(|(t, exp)| t == token && *exp > now);
    if token != s.token && !installation {
        return error(401, "Bad credentials");
    }
    if let Some(scopes) = &s.oauth_scopes
        && let Ok(v) = HeaderValue::from_str(scopes)
    {
        h.insert("x-oauth-scopes", v);
    }
    if let Some((_, accepted)) = s.denied.iter().find(|(p, _)| uri.path().contains(p.as_str())) {
        if let Ok(v) = HeaderValue::from_str(accepted) {
            h.insert("x-accepted-github-permissions", v);
        }
        s.remaining -= 1;
        rate_headers(h, s.remaining);
        return error(403, "Resource not accessible by personal access token");
    }
    if *method == Method::GET && uri.path() == "/rate_limit" {
        // Not counted against the limit, as GitHub documents.
        rate_headers(h, s.remaining);
        let core =
            json!({"limit": 5000, "used": 5000 - s.remaining, "remaining": s.remaining, "reset": now_unix() + 3600});
        return (200, json!({"resources": {"core": core.clone()}, "rate": core}));
    }
    let (status, value) = route(s, method, uri, body, h);
    // Conditional GETs: a matching ETag is a 304 that costs nothing.
    if *method == Method::GET && status == 200 {
        let etag = format!("W/\"{}\"", hex::encode(Sha256::digest(value.to_string().as_bytes())));
        let matches = headers.get("if-none-match").and_then(|v| v.to_str().ok()) == Some(etag.as_str());
        if let Ok(v) = HeaderValue::from_str(&etag) {
            h.insert("etag", v);
        }
        if matches {
            rate_headers(h, s.remaining);
            return (304, Value::Null);
        }
    }
    s.remaining -= 1;
    rate_headers(h, s.remaining);
    (status, value)
}

/// The request's URI with the API prefix taken off; `None` outside the prefix.
fn strip_prefix(prefix: &str, uri: &Uri) -> Option<Uri> {
    if prefix.is_empty() {
        return Some(uri.clone());
    }
    let pq = uri.path_and_query()?.as_str();
    let rest = pq.strip_prefix(prefix)?;
    if !rest.starts_with('/') {
        return None;
    }
    rest.parse().ok()
}

/// `POST /app/installations/{id}/access_tokens`: a JWT signed with the App's key (RS256, `iss` the App id,
/// at most 10 minutes long) buys an installation token.
fn installation_token(s: &mut GhState, id: &str, jwt: &str) -> (u16, Value) {
    use jsonwebtoken::{Algorithm, DecodingKey, Validation};
    let Some(app) = &s.app else { return error(404, "Not Found") };
    if id.parse::<u64>().ok() != Some(app.installation_id) {
        return error(404, "Not Found");
    }
    let Ok(key) = DecodingKey::from_rsa_pem(app.public_key_pem.as_bytes()) else {
        return error(500, "bad test key");
    };
    let mut v = Validation::new(Algorithm::RS256);
    // `iss` is a number (the App id), which the library only checks as a string: checked below.
    v.set_required_spec_claims(&["exp"]);
    v.leeway = 60;
    let claims = match jsonwebtoken::decode::<Value>(jwt, &key, &v) {
        Ok(d) => d.claims,
        Err(_) => return error(401, "A JSON web token could not be decoded"),
    };
    let iss = claims["iss"].as_u64().or_else(|| claims["iss"].as_str().and_then(|x| x.parse().ok()));
    let (iat, exp) = (claims["iat"].as_u64().unwrap_or(0), claims["exp"].as_u64().unwrap_or(0));
    if iss != Some(app.app_id) {
        return error(401, "'Issuer' claim ('iss') must be an Integer");
    }
    if exp.saturating_sub(iat) > 600 {
        return error(401, "'Expiration time' claim ('exp') is too far in the future");
    }
    let expires = now_unix() + app.token_ttl.as_secs();
    s.next_id += 1;
    let token = format!("ghs_installation{:020}", s.next_id);
    s.installation_tokens.push((token.clone(), expires));
    (
        201,
        json!({
            "token": token, "expires_at": iso(expires),
            "permissions": {"actions": "read", "administration": "write", "organization_self_hosted_runners": "write"},
            "repository_selection": "all",
        }),
    )
}

fn route(s: &mut GhState, method: &Method, uri: &Uri, body: &Bytes, h: &mut HeaderMap) -> (u16, Value) {
    let segs: Vec<&str> = uri.path().trim_matches('/').split('/').collect();
    let base = format!("{}{}", s.base_url, s.prefix);
    let q = query_of(uri);
    match (method.clone(), segs.as_slice()) {
        (Method::GET, ["repos", o, r, "actions", "runs"]) => {
            let repo = format!("{o}/{r}");
            let runs: Vec<Value> = s
                .repos
                .get(&repo)
                .map(|x| x.runs.clone())
                .unwrap_or_default()
                .into_iter()
                .filter(|run| q.get("status").is_none_or(|st| run["status"] == st.as_str()))
                .collect();
            (200, page(&base, uri, "workflow_runs", runs, h))
        }
        (Method::GET, ["repos", o, r, "actions", "runs", run_id, "jobs"]) => {
            let repo = format!("{o}/{r}");
            let Ok(run_id) = run_id.parse::<u64>() else { return error(404, "Not Found") };
            let Some(rs) = s.repos.get(&repo) else { return error(404, "Not Found") };
            if !rs.runs.iter().any(|x| x["id"] == run_id) {
                return error(404, "Not Found");
            }
            let jobs: Vec<Value> = rs.jobs.iter().filter(|j| j["run_id"] == run_id).cloned().collect();
            (200, page(&base, uri, "jobs", jobs, h))
        }
        (Method::GET, ["repos", o, r, "actions", "jobs", job_id]) => {
            let repo = format!("{o}/{r}");
            let Ok(job_id) = job_id.parse::<u64>() else { return error(404, "Not Found") };
            match s.repos.get(&repo).and_then(|rs| rs.jobs.iter().find(|j| j["id"] == job_id)) {
                Some(j) => (200, j.clone()),
                None => error(404, "Not Found"),
            }
        }
        (Method::GET, ["orgs", org, "repos"]) => {
            let repos: Vec<Value> = s
                .repos
                .keys()
                .filter(|k| k.split('/').next() == Some(org))
                .map(|k| repository_json(&base, k, 1))
                .collect();
            (200, page(&base, uri, "", repos, h))
        }
        (Method::POST, [.., "actions", "runners", "generate-jitconfig"]) => {
            let scope = scope_of(&segs);
            let Ok(req) = serde_json::from_slice::<Value>(body) else { return error(400, "Problems parsing JSON") };
            let name = req["name"].as_str().unwrap_or("").to_string();
            let labels = req["labels"].as_array().cloned().unwrap_or_default();
            if name.is_empty()
                || req["runner_group_id"].as_u64().is_none()
                || labels.is_empty()
                || labels.len() > 100
                || labels.iter().any(|l| !l.is_string())
            {
                return error(422, "Invalid request.\n\nname, runner_group_id and 1-100 labels are required.");
            }
            let list = runners_mut(s, &scope);
            if list.iter().any(|r| r["name"] == name.as_str()) {
                return error(409, "Already exists - A runner with the same name already exists.");
            }
            s.next_id += 1;
            let id = s.next_id;
            let runner = json!({
                "id": id, "name": name, "os": "unknown", "status": "offline", "busy": false, "ephemeral": true,
                "runner_group_id": req["runner_group_id"],
                "labels": labels.iter().enumerate().map(|(i, l)| json!({"id": i + 1, "name": l,
                    "type": if i < 3 { "read-only" } else { "custom" }})).collect::<Vec<_>>(),
            });
            runners_mut(s, &scope).push(runner.clone());
            let runner_url = s.runner_url.clone();
            (201, json!({ "runner": runner, "encoded_jit_config": jit_config(&runner_url, id, &name) }))
        }
        (Method::GET, [.., "actions", "runners"]) => {
            let scope = scope_of(&segs);
            let list = runners_mut(s, &scope).clone();
            (200, page(&base, uri, "runners", list, h))
        }
        (Method::DELETE, [.., "actions", "runners", id]) => {
            let scope = scope_of(&segs[..segs.len() - 1]);
            let Ok(id) = id.parse::<u64>() else { return error(404, "Not Found") };
            let list = runners_mut(s, &scope);
            match list.iter().position(|r| r["id"] == id) {
                None => error(404, "Not Found"),
                Some(i) if list[i]["busy"] == true => error(422, "Bad request - Runner \"x\" is still running a job\""),
                Some(i) => {
                    list.remove(i);
                    (204, Value::Null)
                }
            }
        }
        _ => error(404, "Not Found"),
    }
}

/// `owner/repo` for `/repos/o/r/actions/runners...`, the org for `/orgs/org/actions/runners...`.
fn scope_of(segs: &[&str]) -> String {
    match segs {
        ["repos", o, r, ..] => format!("{o}/{r}"),
        ["orgs", org, ..] => org.to_string(),
        _ => String::new(),
    }
}

fn runners_mut<'a>(s: &'a mut GhState, scope: &str) -> &'a mut Vec<Value> {
    if scope.contains('/') {
        &mut s.repos.entry(scope.to_string()).or_default().runners
    } else {
        s.org_runners.entry(scope.to_string()).or_default()
    }
}

/// What a runner does with the service, reduced to two calls: `acquire` (the oldest queued job whose labels
/// the runner has all of, in its repository or organization: answered `JOB <id>` and the script; 204 when
/// none) and `complete?job=&conclusion=` (the job completes; the ephemeral runner is removed, as GitHub does).
fn runner_protocol(s: &mut GhState, runner_id: u64, what: &str, q: &BTreeMap<String, String>) -> (u16, Value) {
    let mut found: Option<(String, Value)> = None;
    for (repo, r) in &s.repos {
        if let Some(x) = r.runners.iter().find(|x| x["id"] == runner_id) {
            found = Some((repo.clone(), x.clone()));
        }
    }
    for (org, list) in &s.org_runners {
        if let Some(x) = list.iter().find(|x| x["id"] == runner_id) {
            found = Some((org.clone(), x.clone()));
        }
    }
    let Some((scope, runner)) = found else { return error(404, "no such runner") };
    let has: Vec<String> = runner["labels"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|l| l["name"].as_str().map(str::to_ascii_lowercase))
        .collect();
    let name = runner["name"].as_str().unwrap_or("").to_string();
    match what {
        "acquire" if s.hold => (204, Value::Null),
        "acquire" => {
            let in_scope = |repo: &str| repo == scope || repo.split('/').next() == Some(scope.as_str());
            let mut pick = None;
            for (repo, r) in &s.repos {
                if !in_scope(repo) {
                    continue;
                }
                for j in &r.jobs {
                    let labels_ok = j["labels"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .all(|l| l.as_str().is_some_and(|l| has.contains(&l.to_ascii_lowercase())));
                    if j["status"] == "queued" && labels_ok && pick.is_none() {
                        pick = j["id"].as_u64();
                    }
                }
            }
            let Some(job_id) = pick else { return (204, Value::Null) };
            for r in s.repos.values_mut() {
                for x in r.runners.iter_mut().filter(|x| x["id"] == runner_id) {
                    x["busy"] = json!(true);
                    x["status"] = json!("online");
                }
            }
            let script = s.scripts.get(&job_id).cloned().unwrap_or_else(|| "echo hello from the fake".into());
            set_job_status(s, job_id, "in_progress", None, Some(&name));
            s.acquired_at.insert(job_id, Instant::now());
            (200, Value::String(format!("JOB {job_id}\n{script}\n")))
        }
        "complete" => {
            let job_id: u64 = q.get("job").and_then(|v| v.parse().ok()).unwrap_or(0);
            let conclusion = q.get("conclusion").cloned().unwrap_or_else(|| "success".into());
            set_job_status(s, job_id, "completed", Some(&conclusion), Some(&name));
            for r in s.repos.values_mut() {
                r.runners.retain(|x| x["id"] != runner_id);
            }
            for list in s.org_runners.values_mut() {
                list.retain(|x| x["id"] != runner_id);
            }
            (200, Value::String("ok".into()))
        }
        _ => error(404, "Not Found"),
    }
}

fn set_job_status(s: &mut GhState, job_id: u64, status: &str, conclusion: Option<&str>, runner: Option<&str>) {
    for r in s.repos.values_mut() {
        let mut run_of = None;
        for j in r.jobs.iter_mut().filter(|j| j["id"] == job_id) {
            j["status"] = json!(status);
            j["conclusion"] = json!(conclusion);
            match status {
                "in_progress" => j["started_at"] = json!(iso(now_unix())),
                "completed" => j["completed_at"] = json!(iso(now_unix())),
                _ => {}
            }
            if let Some(n) = runner {
                j["runner_name"] = json!(n);
                j["runner_group_id"] = json!(1);
                j["runner_group_name"] = json!("Default");
            }
            run_of = j["run_id"].as_u64();
        }
        if let Some(run_id) = run_of {
            let statuses: Vec<String> = r
                .jobs
                .iter()
                .filter(|j| j["run_id"] == run_id)
                .map(|j| j["status"].as_str().unwrap_or("").to_string())
                .collect();
            let run_status = if statuses.iter().all(|s| s == "completed") {
                "completed"
            } else if statuses.iter().all(|s| s == "queued") {
                "queued"
            } else {
                "in_progress"
            };
            for run in r.runs.iter_mut().filter(|x| x["id"] == run_id) {
                run["status"] = json!(run_status);
            }
        }
    }
    let busy = s.repos.values().flat_map(|r| r.jobs.iter()).filter(|j| j["status"] == "in_progress").count();
    s.max_in_progress = s.max_in_progress.max(busy);
}

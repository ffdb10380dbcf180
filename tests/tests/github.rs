//! The GitHub provider against the fake GitHub (a real HTTP server speaking the REST wire format):
//! discovery across pages with conditional requests, JIT runners, release, runner listing, and the errors
//! the scheduler acts on (credentials, rate limits, server errors).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use ephemerd::forge::github::{Github, GithubConfig};
use ephemerd::forge::{ForgeError, JobStatus, Provider, RunnerRequest, Secret};
use ephemerd_e2e::fake_github::{FakeApp, FakeGithub, Fault};

const TOKEN: &str = "ghp_fakeTokenForTests0123456789";

fn provider(fake: &FakeGithub, repos: &[&str], token: &str) -> Github {
    let cfg: GithubConfig = toml_cfg(&format!(
        "owner = \"octo-org\"\nrepos = [{}]\napi_url = \"{}\"\nlabels = [\"fast\"]",
        repos.iter().map(|r| format!("\"{r}\"")).collect::<Vec<_>>().join(", "),
        fake.url()
    ));
    Github::new(cfg, Some(Secret::new(token))).unwrap()
}

fn toml_cfg(s: &str) -> GithubConfig {
    toml::from_str(s).unwrap()
}

#[tokio::test]
async fn poll_follows_every_page_and_an_idle_poll_costs_nothing() {
    let fake = FakeGithub::start(TOKEN).await;
    for i in 0..130 {
        fake.queue_job("octo-org/app", &format!("build-{i}"), &["self-hosted", "linux"]);
    }
    let gh = provider(&fake, &["app"], TOKEN);
    let first = gh.poll().await.unwrap();
    let runs_requests: Vec<_> = fake.seen().into_iter().filter(|r| r.path_and_query.contains("runs?")).collect();
    assert_eq!(first.jobs.len(), 130, "runs span two pages: {runs_requests:?}");
    assert!(first.jobs.iter().all(|j| j.status == JobStatus::Queued && j.repo == "octo-org/app"));
    assert!(first.counted_requests > 130);

    let before = fake.seen().len();
    let idle = gh.poll().await.unwrap();
    assert_eq!(idle.counted_requests, 0, "an unchanged poll is all 304s");
    assert_eq!(idle.jobs.len(), 130);
    let round: Vec<_> = fake.seen()[before..].to_vec();
    assert!(!round.is_empty() && round.iter().all(|r| r.status == 304), "{round:?}");

    // A job taken by a runner is reported in progress, with the runner's name; a finished one not at all.
    let taken = first.jobs[0].id;
    fake.set_job(taken, "in_progress", None, Some("someone-else"));
    fake.set_job(first.jobs[1].id, "completed", Some("success"), Some("someone-else"));
    let after = gh.poll().await.unwrap();
    assert_eq!(after.jobs.len(), 129);
    let t = after.jobs.iter().find(|j| j.id == taken).unwrap();
    assert_eq!(t.status, JobStatus::InProgress { runner_name: Some("someone-else".into()) });
    assert!(!after.jobs.iter().any(|j| j.id == first.jobs[1].id));
}

#[tokio::test]
async fn claim_registers_a_jit_runner_and_release_is_idempotent() {
    let fake = FakeGithub::start(TOKEN).await;
    fake.queue_job("octo-org/app", "build", &["self-hosted", "linux"]);
    let gh = provider(&fake, &["app"], TOKEN);
    let job = gh.poll().await.unwrap().jobs.remove(0);
    let req = RunnerRequest {
        name: "ephemerd-test-1".into(),
        labels: vec!["self-hosted".into(), "Linux".into(), "X64".into(), "fast".into()],
    };
    let claim = gh.claim(&job, &req).await.unwrap();
    assert_eq!(claim.scope, "octo-org/app");
    assert_eq!(claim.runner_name, "ephemerd-test-1");
    let runners = fake.runners("octo-org/app");
    assert_eq!(runners.len(), 1);
    assert_eq!(runners[0]["labels"].as_array().unwrap().len(), 4);
    let (k, jit) = &claim.env[0];
    assert_eq!(k, "ACTIONS_RUNNER_INPUT_JITCONFIG");
    let decoded: serde_json::Value =
        serde_json::from_slice(&base64::engine::general_purpose::STANDARD.decode(jit.expose()).unwrap()).unwrap();
    assert!(decoded.get(".runner").is_some() && decoded.get(".credentials").is_some());
    assert!(!format!("{claim:?}").contains(jit.expose()), "the JIT config never shows in Debug");

    // The same name again is refused by GitHub (409), not retried.
    let err = gh.claim(&job, &req).await.unwrap_err();
    assert!(matches!(err, ForgeError::Rejected { status: 409, .. }), "{err:?}");
    assert!(!err.retryable());

    let listed = gh.runners("ephemerd-").await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, claim.runner_id);
    gh.release(&claim.scope, claim.runner_id).await.unwrap();
    assert!(fake.runners("octo-org/app").is_empty());
    gh.release(&claim.scope, claim.runner_id).await.unwrap();
}

#[tokio::test]
async fn organization_level_watches_every_repository_and_registers_at_the_org() {
    let fake = FakeGithub::start(TOKEN).await;
    fake.queue_job("octo-org/one", "a", &["self-hosted"]);
    fake.queue_job("octo-org/two", "b", &["self-hosted"]);
    fake.queue_job("someone-else/three", "c", &["self-hosted"]);
    let gh = provider(&fake, &[], TOKEN);
    let mut jobs = gh.poll().await.unwrap().jobs;
    jobs.sort_by(|a, b| a.repo.cmp(&b.repo));
    let repos: Vec<&str> = jobs.iter().map(|j| j.repo.as_str()).collect();
    assert_eq!(repos, vec!["octo-org/one", "octo-org/two"]);
    let req = RunnerRequest { name: "ephemerd-org-1".into(), labels: vec!["self-hosted".into()] };
    let claim = gh.claim(&jobs[0], &req).await.unwrap();
    assert_eq!(claim.scope, "octo-org");
    assert_eq!(fake.runners("octo-org").len(), 1);
    gh.release(&claim.scope, claim.runner_id).await.unwrap();
    assert!(fake.runners("octo-org").is_empty());
}

#[tokio::test]
async fn errors_say_what_the_scheduler_must_do() {
    let fake = FakeGithub::start(TOKEN).await;
    fake.queue_job("octo-org/app", "build", &["self-hosted"]);
    let bad = provider(&fake, &["app"], "ghp_wrong");
    let e = bad.poll().await.unwrap_err();
    assert!(matches!(e, ForgeError::Auth { status: 401, .. }), "{e:?}");
    assert!(!e.to_string().contains("ghp_wrong"));

    let gh = provider(&fake, &["app"], TOKEN);
    let reset = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() + 42;
    fake.inject(Fault::RateLimited { reset });
    let e = gh.poll().await.unwrap_err();
    match &e {
        ForgeError::RateLimited { until, .. } => assert_eq!(*until, UNIX_EPOCH + Duration::from_secs(reset)),
        other => panic!("{other:?}"),
    }
    assert!(e.retryable());

    fake.inject(Fault::Secondary { retry_after: 30 });
    let e = gh.poll().await.unwrap_err();
    let wait = e.wait(SystemTime::now()).unwrap();
    assert!(wait > Duration::from_secs(25) && wait <= Duration::from_secs(30), "{wait:?}");

    fake.inject(Fault::Status(502));
    let e = gh.poll().await.unwrap_err();
    assert!(matches!(e, ForgeError::Server { status: 502, .. }) && e.retryable(), "{e:?}");

    // And after the faults, polling works again.
    assert_eq!(gh.poll().await.unwrap().jobs.len(), 1);
}

/// A fresh RSA key pair (PEM private, PEM public) made by openssl, as a GitHub App's key would be.
fn rsa_key_pair(dir: &std::path::Path) -> (std::path::PathBuf, String) {
    let private = dir.join("app.pem");
    let public = dir.join("app.pub.pem");
    let ok = |c: &mut std::process::Command| assert!(c.status().unwrap().success(), "{c:?}");
    ok(std::process::Command::new("openssl").args(["genrsa", "-out"]).arg(&private).arg("2048"));
    ok(std::process::Command::new("openssl").args(["rsa", "-pubout", "-in"]).arg(&private).arg("-out").arg(&public));
    (private, std::fs::read_to_string(public).unwrap())
}

fn app_provider(fake: &FakeGithub, key: &std::path::Path) -> Github {
    let cfg = toml_cfg(&format!(
        "owner = \"octo-org\"\nrepos = [\"app\"]\napi_url = \"{}\"\n[app]\napp_id = 4242\ninstallation_id = 77\nprivate_key_file = \"{}\"",
        fake.url(),
        key.display()
    ));
    Github::new(cfg, None).unwrap()
}

#[tokio::test]
async fn github_app_on_enterprise_server_buys_installation_tokens_and_renews_them() {
    let dir = tempfile::tempdir().unwrap();
    let (key, public_key_pem) = rsa_key_pair(dir.path());
    let fake = FakeGithub::start("a-token-nobody-has").await;
    // Enterprise Server mode: the API lives under /api/v3, and api_url is not api.github.com.
    fake.enterprise_server();
    fake.install_app(FakeApp {
        app_id: 4242,
        installation_id: 77,
        public_key_pem,
        token_ttl: Duration::from_secs(3600),
    });
    fake.queue_job("octo-org/app", "build", &["self-hosted"]);
    let gh = app_provider(&fake, &key);
    let jobs = gh.poll().await.map_err(|e| format!("{e}: {:?}", fake.seen())).unwrap().jobs;
    assert_eq!(jobs.len(), 1);
    let claim = gh
        .claim(&jobs[0], &RunnerRequest { name: "ephemerd-app-1".into(), labels: vec!["self-hosted".into()] })
        .await
        .unwrap();
    gh.release(&claim.scope, claim.runner_id).await.unwrap();
    assert_eq!(fake.installation_tokens_issued(), 1, "one token serves every request while it is valid");
    assert!(fake.seen().iter().all(|r| r.path_and_query.starts_with("/api/v3/")), "{:?}", fake.seen());

    // GitHub revokes the token (or it expired early): the next request gets a 401, and a new token is bought.
    fake.revoke_installation_tokens();
    assert_eq!(gh.poll().await.unwrap().jobs.len(), 1);
    assert_eq!(fake.installation_tokens_issued(), 2);

    // A token close to its expiry is renewed before it is used, not after GitHub refuses it.
    let public_key_pem = fake.state.lock().unwrap().app.as_ref().unwrap().public_key_pem.clone();
    fake.install_app(FakeApp { app_id: 4242, installation_id: 77, public_key_pem, token_ttl: Duration::from_secs(20) });
    fake.revoke_installation_tokens();
    gh.poll().await.unwrap();
    let before = fake.installation_tokens_issued();
    let refused = fake.seen().iter().filter(|r| r.status == 401).count();
    gh.poll().await.unwrap();
    assert!(fake.installation_tokens_issued() > before, "a token expiring within 30 s is renewed first");
    assert_eq!(fake.seen().iter().filter(|r| r.status == 401).count(), refused, "and no request is refused");
}

#[tokio::test]
async fn github_app_with_the_wrong_key_is_an_auth_error() {
    let dir = tempfile::tempdir().unwrap();
    let (key, _) = rsa_key_pair(dir.path());
    let other = tempfile::tempdir().unwrap();
    let (_, other_public) = rsa_key_pair(other.path());
    let fake = FakeGithub::start("a-token-nobody-has").await;
    fake.install_app(FakeApp {
        app_id: 4242,
        installation_id: 77,
        public_key_pem: other_public,
        token_ttl: Duration::from_secs(3600),
    });
    let e = app_provider(&fake, &key).poll().await.unwrap_err();
    assert!(matches!(e, ForgeError::Auth { .. }), "{e:?}");
    assert!(!e.retryable());
    assert_eq!(fake.installation_tokens_issued(), 0);

    let missing = toml_cfg(&format!(
        "owner = \"o\"\napi_url = \"{}\"\n[app]\napp_id = 1\ninstallation_id = 2\nprivate_key_file = \"/nonexistent/key.pem\"",
        fake.url()
    ));
    let e = Github::new(missing, None).err().unwrap();
    assert!(e.to_string().contains("/nonexistent/key.pem"), "{e}");
}

#[tokio::test]
async fn a_provider_test_names_what_the_credentials_lack() {
    let fake = FakeGithub::start(TOKEN).await;
    let ok = provider(&fake, &["app"], TOKEN).test().await;
    assert!(ok.ok && ok.missing.is_empty(), "{ok:?}");

    let refused = provider(&fake, &["app"], "ghp_wrong").test().await;
    assert!(!refused.ok && refused.message.contains("refused (401)"), "{refused:?}");
    assert!(!refused.message.contains("ghp_wrong"));

    // A classic token without `repo`, and a repository the token may not administer.
    fake.classic_scopes("read:org, workflow");
    fake.deny("/repos/octo-org/app/actions/runners", "administration=read");
    let lacking = provider(&fake, &["app"], TOKEN).test().await;
    assert!(!lacking.ok);
    assert_eq!(
        lacking.missing,
        vec![
            "token scope repo (the token has: read:org, workflow)".to_string(),
            "Administration: read and write on octo-org/app (GitHub accepts: administration=read)".to_string(),
        ]
    );
    // Organization level needs admin:org and the organization's runners.
    let org = provider(&fake, &[], TOKEN).test().await;
    assert!(org.missing.iter().any(|m| m.starts_with("token scope admin:org")), "{org:?}");

    let nowhere = toml_cfg("owner = \"o\"\napi_url = \"http://127.0.0.1:9\"");
    let t = Github::new(nowhere, Some(Secret::new(TOKEN))).unwrap().test().await;
    assert!(!t.ok && t.message.contains("cannot reach http://127.0.0.1:9"), "{t:?}");
}

//! Keeps the fake GitHub honest: its answers to every endpoint ephemerd uses, and its webhook deliveries,
//! are validated against GitHub's published OpenAPI descriptions (npm `@octokit/openapi` and
//! `@octokit/openapi-webhooks`, installed in `tests/schema` by scripts/test.sh) with a JSON Schema validator.

use std::path::Path;
use std::process::Command;

use ephemerd_e2e::fake_github::FakeGithub;
use ephemerd_e2e::http_request;
use serde_json::{Value, json};

const TOKEN: &str = "ghp_schemaTestToken00000000000000";

#[tokio::test(flavor = "multi_thread")]
async fn the_fakes_answers_validate_against_githubs_openapi_description() {
    let schema_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("schema");
    assert!(
        schema_dir.join("node_modules/@octokit/openapi").is_dir(),
        "run `npm ci` in {} first (scripts/test.sh does)",
        schema_dir.display()
    );
    let fake = FakeGithub::start(TOKEN).await;
    let addr = format!("127.0.0.1:{}", fake.addr.port());
    let (run, job) = fake.queue_job("octo-org/app", "build", &["self-hosted", "linux"]);
    fake.queue_job("octo-org/two", "test", &["self-hosted"]);
    let auth = format!("Bearer {TOKEN}");
    let mut lines: Vec<Value> = Vec::new();
    let mut call = |method: &str, path: &str, template: &str, body: Option<Value>| -> (u16, Value) {
        let data = body.map(|b| b.to_string()).unwrap_or_default();
        let h = [
            ("Authorization", auth.as_str()),
            ("Content-Type", "application/json"),
            ("Accept", "application/vnd.github+json"),
        ];
        let (status, text) =
            tokio::task::block_in_place(|| http_request(method, &addr, path, &h, data.as_bytes())).unwrap();
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        lines.push(json!({"kind": "rest", "method": method, "path": template, "status": status, "body": v}));
        (status, v)
    };
    call(
        "GET",
        "/repos/octo-org/app/actions/runs?status=queued&per_page=100",
        "/repos/{owner}/{repo}/actions/runs",
        None,
    );
    call(
        "GET",
        &format!("/repos/octo-org/app/actions/runs/{run}/jobs"),
        "/repos/{owner}/{repo}/actions/runs/{run_id}/jobs",
        None,
    );
    call(
        "GET",
        &format!("/repos/octo-org/app/actions/jobs/{job}"),
        "/repos/{owner}/{repo}/actions/jobs/{job_id}",
        None,
    );
    let jit = "/repos/{owner}/{repo}/actions/runners/generate-jitconfig";
    let req = json!({"name": "ephemerd-schema-1", "runner_group_id": 1, "labels": ["self-hosted", "Linux", "X64"], "work_folder": "_work"});
    let (st, created) = call("POST", "/repos/octo-org/app/actions/runners/generate-jitconfig", jit, Some(req.clone()));
    assert_eq!(st, 201);
    assert_eq!(call("POST", "/repos/octo-org/app/actions/runners/generate-jitconfig", jit, Some(req)).0, 409);
    let bad = json!({"name": "x", "runner_group_id": 1, "labels": []});
    assert_eq!(call("POST", "/repos/octo-org/app/actions/runners/generate-jitconfig", jit, Some(bad)).0, 422);
    let org_req = json!({"name": "ephemerd-schema-2", "runner_group_id": 1, "labels": ["self-hosted"]});
    call(
        "POST",
        "/orgs/octo-org/actions/runners/generate-jitconfig",
        "/orgs/{org}/actions/runners/generate-jitconfig",
        Some(org_req),
    );
    call("GET", "/repos/octo-org/app/actions/runners?per_page=100", "/repos/{owner}/{repo}/actions/runners", None);
    call("GET", "/orgs/octo-org/actions/runners", "/orgs/{org}/actions/runners", None);
    call("GET", "/orgs/octo-org/repos?per_page=100", "/orgs/{org}/repos", None);
    let id = created["runner"]["id"].as_u64().unwrap();
    let del = "/repos/{owner}/{repo}/actions/runners/{runner_id}";
    assert_eq!(call("DELETE", &format!("/repos/octo-org/app/actions/runners/{id}"), del, None).0, 204);

    for (action, event, status, conclusion) in [
        ("queued", "workflow-job-queued", "queued", None),
        ("in_progress", "workflow-job-in-progress", "in_progress", None),
        ("completed", "workflow-job-completed", "completed", Some("success")),
    ] {
        fake.set_job(job, status, conclusion, if status == "queued" { None } else { Some("ephemerd-schema-1") });
        let body: Value = serde_json::from_str(&fake.workflow_job_delivery(job, action)).unwrap();
        lines.push(json!({"kind": "webhook", "event": event, "body": body}));
    }

    let file = tempfile::NamedTempFile::new().unwrap();
    let text: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    std::fs::write(file.path(), text.join("\n")).unwrap();
    let out = Command::new("node").arg("validate.mjs").arg(file.path()).current_dir(&schema_dir).output().unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the fake's answers do not match GitHub's description:\n{report}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(report.contains(&format!("{} checked, 0 failed", lines.len())), "{report}");
}

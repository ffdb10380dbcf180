//! GitHub webhook deliveries: `X-Hub-Signature-256` checked in constant time against the raw body, then
//! `workflow_job` turned into a job report and `ping` acknowledged. Pure: the HTTP server is elsewhere.

use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

use super::parse_job;
use crate::forge::Secret;

/// Why a delivery is refused, with the HTTP status it gets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HookError {
    #[error("missing X-Hub-Signature-256")]
    NoSignature,
    #[error("signature does not match")]
    BadSignature,
    #[error("malformed payload: {0}")]
    Malformed(String),
}

impl HookError {
    pub fn status(&self) -> u16 {
        match self {
            Self::NoSignature | Self::BadSignature => 401,
            Self::Malformed(_) => 400,
        }
    }
}

pub use crate::forge::Hook;

/// `sha256=<hex>` of the body under `secret`.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    // HMAC takes keys of any length, so this never fails.
    match <Hmac<Sha256>>::new_from_slice(secret) {
        Ok(mut mac) => {
            mac.update(body);
            format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
        }
        Err(_) => String::new(),
    }
}

/// Checks the signature header against the body, in constant time.
pub fn verify(secret: &Secret, signature: Option<&str>, body: &[u8]) -> Result<(), HookError> {
    let sig = signature.ok_or(HookError::NoSignature)?;
    let hex_sig = sig.strip_prefix("sha256=").ok_or(HookError::BadSignature)?;
    let bytes = hex::decode(hex_sig.trim()).map_err(|_| HookError::BadSignature)?;
    let mut mac = <Hmac<Sha256>>::new_from_slice(secret.expose().as_bytes()).map_err(|_| HookError::BadSignature)?;
    mac.update(body);
    mac.verify_slice(&bytes).map_err(|_| HookError::BadSignature)
}

/// Verifies and reads a delivery for the provider `provider` watching `owner` (and `repos`, if any).
pub fn handle(
    provider: &str,
    owner: &str,
    repos: &[String],
    secret: &Secret,
    event: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
) -> Result<Hook, HookError> {
    verify(secret, signature, body)?;
    let v: Value = serde_json::from_slice(body).map_err(|e| HookError::Malformed(e.to_string()))?;
    match event {
        Some("ping") => Ok(Hook::Ping),
        Some("workflow_job") => {
            let repo = v["repository"]["full_name"]
                .as_str()
                .ok_or_else(|| HookError::Malformed("no repository.full_name".into()))?;
            let (repo_owner, name) = repo.split_once('/').unwrap_or((repo, ""));
            let ours = repo_owner.eq_ignore_ascii_case(owner)
                && (repos.is_empty() || repos.iter().any(|r| r.eq_ignore_ascii_case(name)));
            if !ours {
                return Ok(Hook::Ignored(format!("a job of {repo}")));
            }
            let job = parse_job(provider, repo, &v["workflow_job"])
                .ok_or_else(|| HookError::Malformed("workflow_job lacks id, run_id or labels".into()))?;
            Ok(Hook::Job(job))
        }
        Some(other) => Ok(Hook::Ignored(format!("event {other}"))),
        None => Err(HookError::Malformed("no X-GitHub-Event".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forge::JobStatus;

    #[test]
    fn githubs_documented_test_vector() {
        assert_eq!(
            sign(b"It's a Secret to Everybody", b"Hello, World!"),
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
        );
        let s = Secret::new("It's a Secret to Everybody");
        let good = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        assert_eq!(verify(&s, Some(good), b"Hello, World!"), Ok(()));
        assert_eq!(verify(&s, Some(good), b"Hello, World?"), Err(HookError::BadSignature));
        assert_eq!(verify(&s, None, b"x"), Err(HookError::NoSignature));
        assert_eq!(verify(&s, Some("sha1=abc"), b"x"), Err(HookError::BadSignature));
        assert_eq!(verify(&s, Some("sha256=zz"), b"x"), Err(HookError::BadSignature));
    }

    #[test]
    fn workflow_job_deliveries_become_jobs() {
        let secret = Secret::new("s3");
        let body = serde_json::json!({
            "action": "queued",
            "workflow_job": {"id": 289782451u64, "run_id": 2202229078u64, "status": "queued", "conclusion": null,
                "name": "build", "workflow_name": "CI", "labels": ["self-hosted", "k8s"], "runner_name": null,
                "html_url": "https://github.com/Codertocat/Hello-World/runs/1"},
            "repository": {"full_name": "Codertocat/Hello-World"},
            "sender": {"login": "Codertocat"}
        })
        .to_string();
        let sig = sign(b"s3", body.as_bytes());
        let h =
            handle("github:Codertocat", "codertocat", &[], &secret, Some("workflow_job"), Some(&sig), body.as_bytes());
        match h.unwrap() {
            Hook::Job(j) => {
                assert_eq!((j.id, j.run_id, j.status), (289782451, 2202229078, JobStatus::Queued));
                assert_eq!(j.repo, "Codertocat/Hello-World");
            }
            other => panic!("{other:?}"),
        }
        let other_repo =
            handle("g", "Codertocat", &["other".into()], &secret, Some("workflow_job"), Some(&sig), body.as_bytes());
        assert!(matches!(other_repo, Ok(Hook::Ignored(_))));
        let ping = r#"{"zen":"Anything added dilutes everything else.","hook_id":109948940,"hook":{}}"#;
        let psig = sign(b"s3", ping.as_bytes());
        assert_eq!(handle("g", "o", &[], &secret, Some("ping"), Some(&psig), ping.as_bytes()), Ok(Hook::Ping));
        let bad = b"{not json";
        let bsig = sign(b"s3", bad);
        assert_eq!(handle("g", "o", &[], &secret, Some("workflow_job"), Some(&bsig), bad).unwrap_err().status(), 400);
        assert_eq!(
            handle("g", "o", &[], &secret, Some("ping"), Some(&sig), ping.as_bytes()).unwrap_err().status(),
            401
        );
    }
}

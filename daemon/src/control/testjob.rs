//! The onboarding's test job: a tiny container in the default job image, through the same runtime path as
//! forge jobs (image, network namespace, limits, firewall), so a new user sees their machine run one.
//! It takes no scheduler slot and leaves nothing behind, not even its log.

use std::sync::Arc;
use std::time::Duration;

use tracing::Instrument;

use ephemerd_proto::v1;

use crate::config::Config;
use crate::target::new_job_id;
use crate::target::{LaunchSpec, Target, launch};

/// How long the test job may take once its image is there.
const TEST_TIMEOUT: Duration = Duration::from_secs(60);
/// The most of its output kept.
const OUTPUT_MAX: u64 = 64 * 1024;
const SCRIPT: &str = r#"echo "Hello from an ephemerd test job on $(uname -sm) in $(. /etc/os-release 2>/dev/null && echo "$PRETTY_NAME")""#;

/// Runs the test job to its end even when the caller goes away (its own task), so it always cleans up.
pub async fn run(target: Arc<dyn Target>, cfg: &Config) -> v1::RunTestJobReply {
    let image = cfg.image.default.clone();
    let img = image.clone();
    let done = tokio::spawn(async move { run_in(target, &img).await }).await;
    match done.unwrap_or_else(|e| Err(format!("the test job's task failed: {e}"))) {
        Ok((0, output)) => v1::RunTestJobReply {
            ok: true,
            output,
            message: format!("a job container ran in {image} and was removed: this machine can run jobs"),
        },
        Ok((code, output)) => v1::RunTestJobReply {
            ok: false,
            output,
            message: format!("the test job in {image} exited with code {code}"),
        },
        Err(message) => v1::RunTestJobReply { ok: false, output: String::new(), message },
    }
}

async fn run_in(target: Arc<dyn Target>, image: &str) -> Result<(u32, String), String> {
    let name =
        target.prepare_image(image, &|_| {}).await.map_err(|e| format!("cannot get the job image {image}: {e}"))?;
    let id = new_job_id();
    let span = tracing::info_span!("test_job", id = %id, image = %name);
    let log = target.log_path(&id);
    let setup = |_: &crate::target::Job| {
        Ok(LaunchSpec { args: Some(vec!["/bin/sh".into(), "-c".into(), SCRIPT.into()]), ..Default::default() })
    };
    let launched = launch(target, id, name, setup, |job| async move {
        match tokio::time::timeout(TEST_TIMEOUT, job.target.wait(&job.id)).await {
            Ok(Ok(exit)) => Ok(exit.code),
            Ok(Err(e)) => Err(format!("lost the test job's container: {e}")),
            Err(_) => Err(format!("the test job did not end within {} s", TEST_TIMEOUT.as_secs())),
        }
    })
    .instrument(span)
    .await;
    let output = read_head(&log);
    if let Err(e) = launched.destroyed {
        tracing::warn!(error = %e, "cannot remove the test job");
    }
    let _ = std::fs::remove_file(&log);
    let code = launched.outcome.map_err(|e| e.to_string())??;
    Ok((code, output))
}

fn read_head(path: &std::path::Path) -> String {
    use std::io::Read;
    let mut buf = Vec::new();
    if let Ok(f) = std::fs::File::open(path) {
        let _ = f.take(OUTPUT_MAX).read_to_end(&mut buf);
    }
    String::from_utf8_lossy(&buf).into_owned()
}

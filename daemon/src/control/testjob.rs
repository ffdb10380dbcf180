//! The onboarding's test job: a tiny container in the default job image, through the same runtime path as
//! forge jobs (image, network namespace, limits, firewall), so a new user sees their machine run one.
//! It takes no scheduler slot and leaves nothing behind, not even its log.

use std::sync::Arc;
use std::time::Duration;

use tracing::Instrument;

use ephemerd_proto::v1;

use crate::config::Config;
use crate::platform::DataDirs;
use crate::runtime::{JobSpec, Runtime, new_job_id};

/// How long the test job may take once its image is there.
const TEST_TIMEOUT: Duration = Duration::from_secs(60);
/// The most of its output kept.
const OUTPUT_MAX: u64 = 64 * 1024;
const SCRIPT: &str = r#"echo "Hello from an ephemerd test job on $(uname -sm) in $(. /etc/os-release 2>/dev/null && echo "$PRETTY_NAME")""#;

/// Runs the test job to its end even when the caller goes away (its own task), so it always cleans up.
pub async fn run(rt: Arc<Runtime>, dirs: DataDirs, cfg: &Config) -> v1::RunTestJobReply {
    let image = cfg.image.default.clone();
    let img = image.clone();
    let done = tokio::spawn(async move { run_in(&rt, &dirs, &img).await }).await;
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

async fn run_in(rt: &Runtime, dirs: &DataDirs, image: &str) -> Result<(u32, String), String> {
    let img = rt.images.ensure(image, &|_| {}).await.map_err(|e| format!("cannot get the job image {image}: {e}"))?;
    let id = new_job_id();
    let span = tracing::info_span!("test_job", id = %id, image = %img.name);
    run_job(rt, dirs, img, id).instrument(span).await
}

async fn run_job(
    rt: &Runtime,
    dirs: &DataDirs,
    img: crate::runtime::containerd::image::Image,
    id: String,
) -> Result<(u32, String), String> {
    if let Err(e) = rt.begin(&id, &img.name) {
        let _ = rt.destroy(&id).await;
        return Err(e.to_string());
    }
    let spec = JobSpec {
        id: id.clone(),
        image: img,
        args: Some(vec!["/bin/sh".into(), "-c".into(), SCRIPT.into()]),
        env: Vec::new(),
        workdir: None,
        binds: Vec::new(),
        limits: None,
        endpoints: Vec::new(),
    };
    let ran = async {
        rt.create(&spec).await.map_err(|e| format!("cannot create the test job's container: {e}"))?;
        rt.start(&id).await.map_err(|e| format!("cannot start the test job's container: {e}"))?;
        match tokio::time::timeout(TEST_TIMEOUT, rt.wait(&id)).await {
            Ok(Ok(exit)) => Ok(exit.code),
            Ok(Err(e)) => Err(format!("lost the test job's container: {e}")),
            Err(_) => Err(format!("the test job did not end within {} s", TEST_TIMEOUT.as_secs())),
        }
    }
    .await;
    let log = dirs.job_log(&id);
    let output = read_head(&log);
    if let Err(e) = rt.destroy(&id).await {
        tracing::warn!(error = %e, "cannot remove the test job");
    }
    let _ = std::fs::remove_file(&log);
    ran.map(|code| (code, output))
}

fn read_head(path: &std::path::Path) -> String {
    use std::io::Read;
    let mut buf = Vec::new();
    if let Ok(f) = std::fs::File::open(path) {
        let _ = f.take(OUTPUT_MAX).read_to_end(&mut buf);
    }
    String::from_utf8_lossy(&buf).into_owned()
}

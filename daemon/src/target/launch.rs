//! The one launch sequence, from a prepared image and what the caller wants run to a destroyed job: journal
//! the job and make its dir, let the caller put its files there and say what to run, create, start, let the
//! caller's body run while the job does, then destroy everything the job had, whatever failed on the way.
//! `serve` (a forge's runner), `ephemerd run` (a workflow's steps) and the test job all go through here.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use super::{LaunchSpec, Target, TargetError};

/// A job on its target, as the launch's setup and body see it.
#[derive(Clone)]
pub struct Job {
    pub target: Arc<dyn Target>,
    pub id: String,
    /// The image's full name.
    pub image: String,
    /// The job's own dir, removed with the job.
    pub dir: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error("cannot record the job: {0}")]
    Begin(#[source] TargetError),
    #[error("{0}")]
    Setup(String),
    #[error("cannot create the job's container: {0}")]
    Create(#[source] TargetError),
    #[error("cannot start the job's container: {0}")]
    Start(#[source] TargetError),
}

/// How a launch went: the body's result (or where the launch stopped before it), and the cleanup's.
pub struct Launched<T> {
    pub outcome: Result<T, LaunchError>,
    pub destroyed: Result<(), TargetError>,
}

/// Launches job `id` in `image` (prepared on `target`): `setup` gets the job once it has its dir and says
/// what to run; `body` runs once the job has started. The job is destroyed when `body` ends, or as soon as a
/// step before it fails.
pub async fn launch<T, Fut>(
    target: Arc<dyn Target>,
    id: String,
    image: String,
    setup: impl FnOnce(&Job) -> Result<LaunchSpec, String>,
    body: impl FnOnce(Job) -> Fut,
) -> Launched<T>
where
    Fut: Future<Output = T>,
{
    let outcome = async {
        let dir = target.begin(&id, &image).map_err(LaunchError::Begin)?;
        let job = Job { target: target.clone(), id: id.clone(), image: image.clone(), dir };
        let spec = setup(&job).map_err(LaunchError::Setup)?;
        target.create(&id, &image, &spec).await.map_err(LaunchError::Create)?;
        target.start(&id).await.map_err(LaunchError::Start)?;
        Ok(body(job).await)
    }
    .await;
    let destroyed = target.destroy(&id).await;
    Launched { outcome, destroyed }
}

//! [`LocalTarget`]: jobs on this machine's containerd, through [`Runtime`].

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;

use super::{LaunchSpec, ProgressFn, Target, TargetError};
use crate::runtime::{Exit, JobSpec, Reconciled, Runtime};

pub struct LocalTarget {
    rt: Arc<Runtime>,
}

impl LocalTarget {
    pub fn new(rt: Arc<Runtime>) -> Self {
        Self { rt }
    }
}

#[async_trait::async_trait]
impl Target for LocalTarget {
    async fn prepare_image(&self, reference: &str, progress: &ProgressFn) -> Result<String, TargetError> {
        Ok(self.rt.images.ensure(reference, progress).await?.name)
    }

    fn begin(&self, id: &str, image: &str) -> Result<PathBuf, TargetError> {
        Ok(self.rt.begin(id, image)?)
    }

    async fn create(&self, id: &str, image: &str, spec: &LaunchSpec) -> Result<(), TargetError> {
        // Prepared before: found, not pulled.
        let image = self.rt.images.ensure(image, &|_| {}).await?;
        let job = JobSpec {
            id: id.to_string(),
            image,
            args: spec.args.clone(),
            env: spec.env.clone(),
            workdir: spec.workdir.clone(),
            binds: spec.binds.clone(),
            limits: spec.limits.clone(),
            endpoints: spec.endpoints.clone(),
        };
        Ok(self.rt.create(&job).await?)
    }

    async fn start(&self, id: &str) -> Result<(), TargetError> {
        Ok(self.rt.start(id).await?)
    }

    async fn wait(&self, id: &str) -> Result<Exit, TargetError> {
        Ok(self.rt.wait(id).await?)
    }

    async fn exec(&self, id: &str, exec_id: &str, args: Vec<String>) -> Result<(), TargetError> {
        Ok(self.rt.exec(id, exec_id, args).await?)
    }

    async fn wait_exec(&self, id: &str, exec_id: &str) -> Result<u32, TargetError> {
        Ok(self.rt.wait_exec(id, exec_id).await?)
    }

    async fn delete_exec(&self, id: &str, exec_id: &str) -> Result<(), TargetError> {
        Ok(self.rt.delete_exec(id, exec_id).await?)
    }

    async fn kill(&self, id: &str, signal: u32) -> Result<(), TargetError> {
        Ok(self.rt.kill(id, signal).await?)
    }

    async fn destroy(&self, id: &str) -> Result<(), TargetError> {
        Ok(self.rt.destroy(id).await?)
    }

    async fn list(&self) -> Result<Vec<String>, TargetError> {
        Ok(self.rt.store().unclean_jobs()?.into_iter().map(|j| j.id).collect())
    }

    async fn reconcile(&self, live: &HashSet<String>) -> Result<Reconciled, TargetError> {
        Ok(self.rt.reconcile(live).await?)
    }

    fn log_path(&self, id: &str) -> PathBuf {
        self.rt.log_path(id)
    }

    fn oom_kills(&self, id: &str) -> u64 {
        self.rt.oom_kills(id)
    }

    fn record_exit(&self, id: &str, exit: Exit) -> Result<(), TargetError> {
        Ok(self.rt.record_exit(id, exit.code, exit.oom_killed)?)
    }
}

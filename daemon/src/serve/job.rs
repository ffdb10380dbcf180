//! One forge job's task: its image prepared, its launch spec built from the claim (the runner's
//! single-use config in its environment, the forge's addresses let through the firewall), the launch
//! through `target::launch`, its phases and exit journalled, and the forge asked how it ended.

use super::*;

/// How a job's runner is launched.
pub(super) struct Launch {
    pub(super) image: String,
    pub(super) limits: Limits,
    pub(super) cmd: Vec<String>,
    /// URLs of the forge the runner must reach.
    pub(super) endpoints: Vec<String>,
    /// The job's log is cut to this size when it ends.
    pub(super) log_max: u64,
}

/// Runs the job's runner in a fresh container (through the one launch path) and reports its start and exit.
pub(super) async fn run_job(
    target: Arc<dyn Target>,
    store: Store,
    key: JobKey,
    claim: Claim,
    launch_spec: Launch,
    tx: mpsc::UnboundedSender<Msg>,
) {
    let Launch { image, limits, cmd, endpoints, log_max } = launch_spec;
    let exited = |success| Msg::Machine(Event::Exited { key: key.clone(), success });
    let image = match target.prepare_image(&image, &|_| {}).await {
        Ok(name) => name,
        Err(e) => {
            warn!(error = %e, image, "cannot get the job image");
            let _ = tx.send(exited(false));
            return;
        }
    };
    let id = new_job_id();
    let _ = tx.send(Msg::Created(key.clone(), id.clone()));
    let mut env: Vec<(String, String)> = claim.env.iter().map(|(k, v)| (k.clone(), v.expose().to_string())).collect();
    // The runner refuses to run as root unless told; job containers are root inside their own namespaces.
    env.push(("RUNNER_ALLOW_RUNASROOT".into(), "1".into()));
    let spec = LaunchSpec {
        args: Some(cmd),
        env,
        limits: Some(limits),
        endpoints: resolve_endpoints(&endpoints).await,
        ..Default::default()
    };
    let setup = |job: &crate::target::Job| {
        store
            .forge_job_runtime(&key.provider, key.forge_job_id, &job.id, &job.image)
            .and_then(|()| store.forge_job_phase(&key.provider, key.forge_job_id, Phase::Starting))
            .map_err(|e| format!("cannot record the job: {e}"))?;
        Ok(spec)
    };
    let (body_store, body_key, body_tx) = (store.clone(), key.clone(), tx.clone());
    let body = |job: crate::target::Job| async move {
        let (store, key, tx) = (body_store, body_key, body_tx);
        info!(container = %job.id, "runner started");
        if let Err(e) = store.forge_job_phase(&key.provider, key.forge_job_id, Phase::Running) {
            warn!(error = %e, "cannot journal the job's phase");
        }
        let _ = tx.send(Msg::Machine(Event::Started(key.clone())));
        let success = match job.target.wait(&job.id).await {
            Ok(exit) => {
                info!(code = exit.code, oom = exit.oom_killed, "runner exited");
                if let Err(e) =
                    store.forge_job_outcome(&key.provider, key.forge_job_id, Some(i64::from(exit.code)), None)
                {
                    warn!(error = %e, "cannot journal the job's exit code");
                }
                // A runner stopped at the owner's request may still exit 0 (it reports the job and ends).
                let killed = store.forge_job(&key.provider, key.forge_job_id).ok().flatten().and_then(|r| r.conclusion)
                    == Some("killed".into());
                exit.code == 0 && !killed
            }
            Err(e) => {
                warn!(error = %e, "lost the job's container");
                false
            }
        };
        let log = job.target.log_path(&job.id);
        match tokio::task::spawn_blocking(move || crate::history::cap_log(&log, log_max)).await {
            Ok(Err(e)) => warn!(error = %e, "cannot cut the job's log to history.log_max"),
            Err(e) => warn!(error = %e, "cannot cut the job's log to history.log_max"),
            Ok(Ok(())) => {}
        }
        success
    };
    let launched = launch(target, id, image, setup, body).await;
    if let Err(e) = &launched.destroyed {
        warn!(error = %e, "cleanup left resources; the next start removes them");
    }
    let success = match launched.outcome {
        Ok(success) => success,
        Err(e) => {
            warn!(error = %e, "the job did not start");
            false
        }
    };
    let phase = if success { Phase::Finished } else { Phase::Failed };
    if let Err(e) = store.forge_job_phase(&key.provider, key.forge_job_id, phase) {
        warn!(error = %e, "cannot journal the job's phase");
    }
    let _ = tx.send(exited(success));
}

/// A journal write the loop goes on without: a failure is logged with what it was about (the record then
/// lags behind; the next sweep or restart reconciles it).
pub(super) fn journal<T>(what: &str, r: Result<T, crate::store::StoreError>) {
    if let Err(e) = r {
        warn!(error = %e, "cannot journal {what}");
    }
}

/// Asks the forge how a job ended, for the history (a conclusion of ours, such as `killed`, stays). The
/// runner reports before it exits, but the forge may take a moment to say so: asked a few times.
pub(super) async fn record_conclusion(store: &Store, p: &dyn Provider, job: &ForgeJob) {
    let ours = store.forge_job(&job.provider, job.id).ok().flatten().and_then(|r| r.conclusion);
    if ours.is_some() {
        return;
    }
    for attempt in 0..4u64 {
        match p.conclusion(job).await {
            Ok(Some(c)) => {
                info!(conclusion = %c, "the forge's conclusion");
                journal("the job's outcome", store.forge_job_outcome(&job.provider, job.id, None, Some(&c)));
                return;
            }
            Ok(None) => tokio::time::sleep(Duration::from_millis(500 << attempt)).await,
            Err(e) => {
                tracing::debug!(error = %e, "cannot ask the forge how the job ended");
                return;
            }
        }
    }
}

/// The IPv4 addresses of the hosts of `urls` (a forge on a private network must stay reachable).
pub async fn resolve_endpoints(urls: &[String]) -> Vec<std::net::Ipv4Addr> {
    let mut out = Vec::new();
    for u in urls {
        let Ok(url) = reqwest::Url::parse(u) else { continue };
        let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default()) else { continue };
        match tokio::net::lookup_host((host, port)).await {
            Ok(addrs) => {
                for a in addrs {
                    if let std::net::IpAddr::V4(v4) = a.ip()
                        && !v4.is_loopback()
                        && !out.contains(&v4)
                    {
                        out.push(v4);
                    }
                }
            }
            Err(e) => warn!(url = %u, error = %e, "cannot resolve the forge's address for the job firewall"),
        }
    }
    out
}

/// SIGTERM to every process of the job's container, then SIGKILL after `grace`.
pub(super) async fn stop_container(target: &dyn Target, id: &str, grace: Duration) {
    if let Err(e) = target.kill(id, 15).await {
        warn!(error = %e, "cannot signal the job's processes");
    }
    tokio::time::sleep(grace).await;
    // A job that ended meanwhile is gone: nothing to kill.
    let _ = target.kill(id, 9).await;
}

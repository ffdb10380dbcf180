//! `ephemerd serve`: a session, the configured providers, reconciliation with the forges, the event loop.

use std::sync::Arc;

use ephemerd::config::{Config, WorkerMode};
use ephemerd::forge::Secret;
use ephemerd::forge::build;
use ephemerd::platform::DataDirs;
use ephemerd::secrets::{CredentialStore, Keyring};
use ephemerd::serve::{Serve, Targets};
use ephemerd::target::Target;
use ephemerd::worker::WorkerTarget;

use ephemerd::control;
use ephemerd::control::live::Live;
use ephemerd::control::server::{ControlService, Parts};
use ephemerd::serve::{Control, Order};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{mpsc, watch};

use super::{Session, usage};
use crate::cli::ServeArgs;

pub async fn serve(
    args: ServeArgs,
    log_level: String,
    mut cfg: Config,
    config_path: Option<std::path::PathBuf>,
    dirs: DataDirs,
) -> anyhow::Result<u8> {
    let flag_token = args.token.filter(|t| !t.is_empty()).map(Secret::new);
    // A system service has no Secret Service: its credentials are sealed with systemd-creds instead.
    let credentials: Arc<dyn CredentialStore> =
        match ephemerd::secrets_systemd::system_service_store(&dirs.root.join("credentials")) {
            Some(s) => {
                tracing::info!("credentials: sealed with systemd-creds (a system service has no Secret Service)");
                Arc::new(s)
            }
            None => Arc::new(Keyring),
        };
    // Forges without credentials are reported in the status, not fatal: they can be fixed live.
    let built = tokio::task::block_in_place(|| build::build(&cfg, flag_token.as_ref(), credentials.as_ref()));
    // The config as the file says (a reload compares with this), before the runner is resolved into it.
    let as_read = cfg.clone();
    cfg.runner.dir = ephemerd::runner::ensure(&cfg.runner, &dirs.root.join("runners")).await.map_err(usage)?;
    if cfg.runner.dir.is_none() {
        return Err(usage(
            "serve needs a runner: set runner.dir to an actions/runner tree, or runner.url and runner.sha256",
        ));
    }
    let webhooks = match cfg.webhook.listen {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| usage(format!("webhook.listen: cannot listen on {addr}: {e}")))?,
        ),
        None => None,
    };
    let session = Session::start(&cfg, &dirs).await?;
    let store = session.runtime.store().clone();
    let hosts = ephemerd::worker::hosts_of(&cfg, &dirs, &log_level).map_err(usage)?;
    let start = |(host, what): ephemerd::worker::Described, which: &str| {
        tracing::info!("{which} run in {what}");
        let w = Arc::new(WorkerTarget::new(host, dirs.clone(), store.clone()));
        tokio::spawn(w.clone().stop_when_idle(cfg.worker.idle_stop));
        w
    };
    let worker = hosts.mode.map(|h| start(h, "jobs"));
    let vm = hosts.vm.map(|h| start(h, "the jobs of profiles with isolation = \"vm\""));
    let target: Arc<dyn Target> = match &worker {
        Some(w) => w.clone(),
        None => session.target.clone(),
    };
    let vm_target = match cfg.worker.mode {
        WorkerMode::Vm => worker.clone(),
        _ => vm.clone(),
    };
    let targets =
        Targets { default: target.clone(), local: session.target.clone(), vm: vm_target.map(|w| w as Arc<dyn Target>) };
    let workers: Vec<Arc<WorkerTarget>> = worker.into_iter().chain(vm).collect();
    let result = async {
        let serve = Serve::new(cfg.clone(), targets, store.clone(), dirs.clone(), built)?;
        let socket = dirs.run_dir().join(ephemerd_proto::SOCKET_NAME);
        let listener =
            control::socket::bind(&socket, cfg.control.group.as_deref(), &[dirs.root.clone(), dirs.run_dir()])
                .await
                .map_err(usage)?;
        let live = Arc::new(watch::channel(Live::new(cfg.scheduler.max_concurrent as u32, serve.provider_health())).0);
        let (tx, controls) = mpsc::unbounded_channel();
        signal_controls(tx.clone())?;
        let service = ControlService::new(Parts {
            store,
            live: live.subscribe(),
            controls: tx,
            dirs: dirs.clone(),
            credentials,
            providers: serve.providers(),
            flag_token,
            config_path,
            config: as_read,
            target: target.clone(),
            workers: workers.clone(),
        });
        let (stop_api, api_stopped) = tokio::sync::oneshot::channel::<()>();
        let api = tokio::spawn(
            tonic::transport::Server::builder().add_service(service.into_service()).serve_with_incoming_shutdown(
                tokio_stream::wrappers::UnixListenerStream::new(listener),
                async {
                    let _ = api_stopped.await;
                },
            ),
        );
        tracing::info!(socket = %socket.display(), "control API listening");
        serve.reconcile().await?;
        for w in &workers {
            // The worker's leftovers (a crashed daemon's jobs): it keeps none of them.
            let n = w.reconcile(&std::collections::HashSet::new()).await?;
            if !n.is_empty() {
                tracing::info!(jobs = n.jobs.len(), containers = n.containers, "removed the worker's leftovers");
            }
        }
        let code = serve.run(controls, webhooks, live).await;
        let _ = stop_api.send(());
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), api).await;
        let _ = std::fs::remove_file(&socket);
        Ok::<_, anyhow::Error>(code?)
    }
    .await;
    for w in workers {
        if let Err(e) = w.stop().await {
            tracing::warn!(error = %e, "cannot stop the worker cleanly; the next start removes what is left");
        }
    }
    session.stop().await;
    result
}

/// SIGUSR1 pauses, SIGUSR2 resumes, SIGTERM drains (a second SIGTERM stops), Ctrl-C stops: the control
/// API's main controls, for service managers and scripts.
fn signal_controls(tx: mpsc::UnboundedSender<Order>) -> anyhow::Result<()> {
    let mut term = signal(SignalKind::terminate())?;
    let mut usr1 = signal(SignalKind::user_defined1())?;
    let mut usr2 = signal(SignalKind::user_defined2())?;
    tokio::spawn(async move {
        let mut draining = false;
        loop {
            let c = tokio::select! {
                _ = tokio::signal::ctrl_c() => Control::Stop,
                _ = term.recv() => if draining { Control::Stop } else { draining = true; Control::Drain(None) },
                _ = usr1.recv() => Control::Pause,
                _ = usr2.recv() => Control::Resume,
            };
            if tx.send(c.into()).is_err() {
                return;
            }
        }
    });
    Ok(())
}

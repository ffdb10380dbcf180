//! `ephemerd serve`: a session, the configured providers, reconciliation with the forges, the event loop.

use std::sync::Arc;

use ephemerd::config::Config;
use ephemerd::forge::Provider;
use ephemerd::forge::Secret;
use ephemerd::forge::github::Github;
use ephemerd::platform::DataDirs;
use ephemerd::serve::Serve;

use ephemerd::serve::Control;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;

use super::{Session, usage};
use crate::cli::ServeArgs;

pub async fn serve(args: ServeArgs, mut cfg: Config, dirs: DataDirs) -> anyhow::Result<u8> {
    let token = args.token.filter(|t| !t.is_empty()).map(Secret::new);
    let mut providers: Vec<Arc<dyn Provider>> = Vec::new();
    for g in &cfg.github {
        providers.push(Arc::new(Github::new(g.clone(), token.clone()).map_err(usage)?));
    }
    if providers.is_empty() {
        return Err(usage("no forge configured: add a [[github]] section to the config (see docs/configuration.md)"));
    }
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
    let result = async {
        let serve = Serve::new(cfg.clone(), session.runtime.clone(), providers)?;
        serve.reconcile().await?;
        let controls = signal_controls()?;
        Ok::<_, anyhow::Error>(serve.run(controls, webhooks).await?)
    }
    .await;
    session.stop().await;
    result
}

/// Signals until the control API exists: SIGUSR1 pauses, SIGUSR2 resumes, SIGTERM drains (a second
/// SIGTERM stops), Ctrl-C stops.
fn signal_controls() -> anyhow::Result<mpsc::UnboundedReceiver<Control>> {
    let (tx, rx) = mpsc::unbounded_channel();
    let mut term = signal(SignalKind::terminate())?;
    let mut usr1 = signal(SignalKind::user_defined1())?;
    let mut usr2 = signal(SignalKind::user_defined2())?;
    tokio::spawn(async move {
        let mut draining = false;
        loop {
            let c = tokio::select! {
                _ = tokio::signal::ctrl_c() => Control::Stop,
                _ = term.recv() => if draining { Control::Stop } else { draining = true; Control::Drain },
                _ = usr1.recv() => Control::Pause,
                _ = usr2.recv() => Control::Resume,
            };
            if tx.send(c).is_err() {
                return;
            }
        }
    });
    Ok(rx)
}

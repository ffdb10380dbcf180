//! `ephemerd worker`: a Linux worker. It reads its boot token on stdin (the one channel to it that no job
//! can read), starts its own containerd through a `Session` (which removes what a previous boot left), and
//! serves Dispatch on `--listen`, every call checked against the token, until SIGTERM or SIGINT. It holds
//! no forge credential and reads none. With `--import` it first imports image archives its host handed over.

use std::sync::Arc;

use anyhow::Context;
use ephemerd::config::Config;
use ephemerd::dispatch::auth::{self, Token};
use ephemerd::dispatch::server::Worker;
use ephemerd::platform::DataDirs;
use ephemerd_proto::dispatch::v1::dispatch_server::DispatchServer;
use tokio::io::AsyncBufReadExt;
use tokio::signal::unix::{SignalKind, signal};

use super::{Session, out, usage};
use crate::cli::WorkerArgs;

/// How long the worker waits for its token.
const TOKEN_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

pub async fn run(args: WorkerArgs, cfg: Config, dirs: DataDirs) -> anyhow::Result<u8> {
    let mut line = String::new();
    let mut stdin = tokio::io::BufReader::new(tokio::io::stdin());
    let read = stdin.read_line(&mut line);
    match tokio::time::timeout(TOKEN_WAIT, read).await {
        Ok(Ok(n)) if n > 0 => {}
        Ok(Ok(_)) => return Err(usage("ephemerd worker reads its token on stdin, and stdin was empty")),
        Ok(Err(e)) => return Err(usage(format!("ephemerd worker cannot read its token on stdin: {e}"))),
        Err(_) => {
            return Err(usage(format!("ephemerd worker got no token on stdin within {} s", TOKEN_WAIT.as_secs())));
        }
    }
    let token = Token::parse(&line).map_err(|e| usage(format!("the token on stdin: {e}")))?;
    line.clear();
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| usage(format!("--listen: cannot listen on {}: {e}", args.listen)))?;
    let addr = listener.local_addr().context("the listening address")?;
    let session = Session::start(&cfg, &dirs).await?;
    for file in &args.imports {
        match session.runtime.images.import(file, &|_| {}).await {
            Ok(images) => {
                for i in images {
                    tracing::info!(image = %i.name, file = %file.display(), "imported");
                }
            }
            Err(e) => {
                session.stop().await;
                return Err(usage(format!("--import {}: {e}", file.display())));
            }
        }
    }
    let worker_id = nix::unistd::gethostname().map(|h| h.to_string_lossy().into_owned()).unwrap_or_default();
    let worker = Worker::new(session.target.clone(), worker_id, args.own_clock, dirs.root.clone());
    let service = DispatchServer::with_interceptor(worker, auth::require(Arc::new(token)));
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    out!("worker listening on {addr}");
    tracing::info!(%addr, "dispatch listening");
    let served = tonic::transport::Server::builder()
        .add_service(service)
        // Small replies go out at once (no Nagle delay on every call).
        .serve_with_incoming_shutdown(
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
            async {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            },
        )
        .await;
    session.stop().await;
    served.context("serving dispatch")?;
    Ok(0)
}

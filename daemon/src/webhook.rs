//! The webhook endpoint: one HTTP listener, a path per provider (`/hooks/<forge>/<owner>`), bodies capped at
//! 1 MiB (413 above), each delivery verified by its provider (401 on a bad or missing signature, 400 on a
//! malformed payload), duplicates (same delivery id) acknowledged without effect, jobs handed to `serve`.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use crate::forge::build::ProviderSet;
use crate::forge::{ForgeJob, Hook};

pub const MAX_BODY: usize = 1 << 20;
const REMEMBERED_DELIVERIES: usize = 10_000;

struct Shared {
    providers: ProviderSet,
    tx: mpsc::UnboundedSender<(String, ForgeJob)>,
    seen: Mutex<(HashSet<String>, VecDeque<String>)>,
}

/// Serves deliveries on `listener` until `shutdown` resolves (then open connections finish their request
/// and close); verified jobs go to `tx` with the name of their provider. The providers are looked up per
/// delivery, so a provider added or replaced while the daemon runs takes deliveries at once.
pub async fn serve(
    listener: TcpListener,
    providers: ProviderSet,
    tx: mpsc::UnboundedSender<(String, ForgeJob)>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let shared = Arc::new(Shared { providers, tx, seen: Mutex::new((HashSet::new(), VecDeque::new())) });
    let app = Router::new()
        .route("/hooks/{forge}/{owner}", axum::routing::post(deliver))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(shared);
    if let Ok(addr) = listener.local_addr() {
        info!(%addr, "listening for webhooks");
    }
    if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(shutdown).await {
        warn!(error = %e, "webhook listener stopped");
    }
}

async fn deliver(
    State(s): State<Arc<Shared>>,
    Path((forge, owner)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> impl IntoResponse {
    let path = format!("/hooks/{forge}/{owner}");
    let found = crate::forge::build::snapshot(&s.providers).into_iter().find(|p| p.webhook_path() == path);
    let Some(p) = found else {
        return (StatusCode::NOT_FOUND, "no provider here".to_string());
    };
    let Some(hook) = p.webhook() else { return (StatusCode::NOT_FOUND, "webhooks are not configured".into()) };
    let outcome = match hook.deliver(&headers, &body) {
        Ok(o) => o,
        Err(r) => {
            warn!(provider = p.name(), status = r.status, reason = %r.message, "webhook delivery refused");
            let code = StatusCode::from_u16(r.status).unwrap_or(StatusCode::BAD_REQUEST);
            return (code, r.message);
        }
    };
    if let Some(id) = hook.delivery_id(&headers)
        && let Ok(mut seen) = s.seen.lock()
    {
        if !seen.0.insert(id.clone()) {
            return (StatusCode::OK, "duplicate delivery".into());
        }
        seen.1.push_back(id);
        if seen.1.len() > REMEMBERED_DELIVERIES
            && let Some(old) = seen.1.pop_front()
        {
            seen.0.remove(&old);
        }
    }
    match outcome {
        Hook::Ping => (StatusCode::OK, "pong".into()),
        Hook::Ignored(what) => {
            debug!(provider = p.name(), what, "webhook ignored");
            (StatusCode::OK, "ignored".into())
        }
        Hook::Job(job) => match s.tx.send((p.name().to_string(), job)) {
            Ok(()) => (StatusCode::ACCEPTED, "accepted".into()),
            Err(_) => {
                // This listener is being replaced or the daemon stops: not taken, so the forge may
                // deliver it again (polling finds the job too).
                if let (Some(id), Ok(mut seen)) = (hook.delivery_id(&headers), s.seen.lock()) {
                    seen.0.remove(&id);
                }
                (StatusCode::SERVICE_UNAVAILABLE, "not taking deliveries now".into())
            }
        },
    }
}

//! How jobs are found: one poller per provider (at its interval, backing off on errors, waiting out rate
//! limits) feeding the event loop, and the providers' health and the scheduler's counts as the control
//! API shows them.

use super::*;

/// The health list for `providers` and `unconfigured`, keeping what `before` knew of a provider of the same
/// name (its last poll).
pub(super) fn health_of(
    providers: &[Arc<dyn Provider>],
    unconfigured: &[Unconfigured],
    sources: &std::collections::HashMap<String, &'static str>,
    before: &[ProviderHealth],
) -> Vec<ProviderHealth> {
    let mut out: Vec<ProviderHealth> = providers
        .iter()
        .map(|p| {
            let discovery = if p.webhook().is_some() { "webhook + poll" } else { "poll" };
            let mut h = ProviderHealth {
                name: p.name().to_string(),
                kind: p.kind().to_string(),
                url: p.url().to_string(),
                discovery: discovery.into(),
                connected: false,
                last_poll: None,
                last_error: None,
                rate_limit: None,
                credential: sources.get(p.name()).copied().unwrap_or("keyring"),
            };
            if let Some(b) = before.iter().find(|b| b.name == h.name && b.last_error.is_none()) {
                (h.connected, h.last_poll, h.rate_limit) = (b.connected, b.last_poll, b.rate_limit);
            }
            h
        })
        .collect();
    out.extend(unconfigured.iter().map(|u| ProviderHealth {
        name: u.name.clone(),
        kind: u.kind.to_string(),
        url: u.url.clone(),
        discovery: "not in use".into(),
        connected: false,
        last_poll: None,
        last_error: Some(u.reason.clone()),
        rate_limit: None,
        credential: "missing",
    }));
    out
}

/// The scheduler's counts, for the control API.
pub(super) fn publish(live: &LiveTx, m: &Machine) {
    let (active, queued) = (m.active() as u32, m.queued() as u32);
    live.send_if_modified(|l| {
        let changed = l.active != active || l.queued != queued;
        l.active = active;
        l.queued = queued;
        changed
    });
}

/// Polls one provider at its interval, backing off on errors and waiting out rate limits; reports its
/// health to the live status.
pub(super) async fn poller(p: Arc<dyn Provider>, tx: mpsc::UnboundedSender<Msg>, live: Arc<LiveTx>) {
    let mut failures = 0u32;
    loop {
        let result = p.poll().await;
        live.send_if_modified(|l| {
            let Some(h) = l.providers.iter_mut().find(|h| h.name == p.name()) else { return false };
            let before = (h.connected, h.last_error.clone(), h.rate_limit);
            h.connected = result.is_ok();
            h.last_poll = Some(SystemTime::now());
            h.last_error = result.as_ref().err().map(|e| e.to_string());
            h.rate_limit = p.rate_limit();
            // A successful idle poll changes nothing worth waking watchers for.
            before != (h.connected, h.last_error.clone(), h.rate_limit)
        });
        let wait = match result {
            Ok(outcome) => {
                failures = 0;
                tracing::debug!(
                    provider = p.name(),
                    jobs = outcome.jobs.len(),
                    counted = outcome.counted_requests,
                    "polled"
                );
                if tx.send(Msg::Polled { provider: p.name().to_string(), jobs: outcome.jobs }).is_err() {
                    return;
                }
                p.poll_interval()
            }
            Err(e) => {
                failures += 1;
                let wait = e
                    .wait(SystemTime::now())
                    .unwrap_or_else(|| Duration::from_secs((1u64 << failures.min(6)).min(60)))
                    .max(p.poll_interval());
                warn!(provider = p.name(), error = %e, backoff_secs = wait.as_secs(), "poll failed; backing off");
                wait
            }
        };
        tokio::time::sleep(wait).await;
    }
}

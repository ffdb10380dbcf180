//! Our types as the control API's messages, in one place: journal records as `Job`s, the live status as
//! `StatusReply`, and job ids (`<provider>#<forge job id>`) both ways.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ephemerd_proto::v1;

use super::live::{DaemonMode, Live, ProviderHealth};
use crate::job::Phase;
use crate::store::ForgeJobRecord;

/// A job's phase as the API's state.
pub fn state_of(phase: Phase) -> v1::JobState {
    match phase {
        Phase::Queued => v1::JobState::Queued,
        Phase::Claiming => v1::JobState::Claiming,
        Phase::Claimed => v1::JobState::Claimed,
        Phase::Starting => v1::JobState::Starting,
        Phase::Running => v1::JobState::JobRunning,
        Phase::Finished => v1::JobState::Finished,
        Phase::Failed => v1::JobState::Failed,
        Phase::Cleaned => v1::JobState::Cleaned,
    }
}

/// The phase of an API state (`None` for unspecified).
pub fn phase_of(state: v1::JobState) -> Option<Phase> {
    Phase::ALL.into_iter().find(|p| state_of(*p) == state)
}

pub fn job_id(provider: &str, forge_job_id: u64) -> String {
    format!("{provider}#{forge_job_id}")
}

/// A job id as given by a client: `<provider>#<n>`, or `<n>` alone.
pub enum JobRef {
    Full { provider: String, forge_job_id: u64 },
    Number(u64),
}

pub fn parse_job_id(id: &str) -> Option<JobRef> {
    let id = id.trim();
    match id.rsplit_once('#') {
        Some((provider, n)) if !provider.is_empty() => {
            Some(JobRef::Full { provider: provider.to_string(), forge_job_id: n.parse().ok()? })
        }
        Some(_) => None,
        None => Some(JobRef::Number(id.parse().ok()?)),
    }
}

fn ts(unix: i64) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds: unix, nanos: 0 }
}

fn ts_of(t: SystemTime) -> prost_types::Timestamp {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    prost_types::Timestamp { seconds: d.as_secs() as i64, nanos: d.subsec_nanos() as i32 }
}

fn dur(d: Duration) -> prost_types::Duration {
    prost_types::Duration { seconds: d.as_secs() as i64, nanos: d.subsec_nanos() as i32 }
}

pub fn job(r: &ForgeJobRecord) -> v1::Job {
    let pickup = r.started_at.map(|s| dur(Duration::from_secs((s - r.queued_at).max(0) as u64)));
    v1::Job {
        id: job_id(&r.provider, r.forge_job_id),
        provider: r.provider.clone(),
        forge_job_id: r.forge_job_id,
        run_id: r.run_id,
        repo: r.repo.clone(),
        workflow: r.workflow.clone(),
        name: r.name.clone(),
        labels: r.labels.clone(),
        runner_name: r.runner_name.clone().unwrap_or_default(),
        image: r.image.clone().unwrap_or_default(),
        target: "local".into(),
        state: state_of(r.phase) as i32,
        conclusion: r.conclusion.clone().unwrap_or_default(),
        exit_code: r.exit_code,
        queued_at: Some(ts(r.queued_at)),
        claimed_at: r.claimed_at.map(ts),
        started_at: r.started_at.map(ts),
        finished_at: r.finished_at.map(ts),
        pickup_latency: pickup,
        html_url: r.html_url.clone().unwrap_or_default(),
        container_id: r.runtime_id.clone().unwrap_or_default(),
    }
}

pub fn provider(p: &ProviderHealth) -> v1::ProviderHealth {
    v1::ProviderHealth {
        name: p.name.clone(),
        kind: p.kind.clone(),
        url: p.url.clone(),
        connected: p.connected,
        last_poll: p.last_poll.map(ts_of),
        last_error: p.last_error.clone().unwrap_or_default(),
        rate_limit_remaining: p.rate_limit.map(|r| r.remaining).unwrap_or(-1),
        rate_limit_reset: p.rate_limit.map(|r| ts_of(r.reset)),
        discovery: p.discovery.clone(),
        credential: p.credential.into(),
    }
}

/// What `Status` says beyond the live status: containerd's health, the workers and the data dir.
pub struct Host {
    pub containerd: v1::ComponentHealth,
    pub workers: Vec<crate::worker::WorkerStatus>,
    pub data_dir: String,
    pub data_dir_bytes: u64,
}

pub fn worker(w: &crate::worker::WorkerStatus) -> v1::ComponentHealth {
    use crate::worker::WorkerState as S;
    let state = match w.state {
        S::Stopped => v1::WorkerState::WorkerStopped,
        S::Booting => v1::WorkerState::WorkerBooting,
        S::Ready => v1::WorkerState::WorkerReady,
        S::Stopping => v1::WorkerState::WorkerStopping,
    };
    v1::ComponentHealth { name: w.name.clone(), healthy: w.healthy, detail: w.detail.clone(), state: state as i32 }
}

pub fn status(l: &Live, host: Host) -> v1::StatusReply {
    let state = match l.mode {
        DaemonMode::Running => v1::DaemonState::Running,
        DaemonMode::Paused => v1::DaemonState::Paused,
        DaemonMode::Draining => v1::DaemonState::Draining,
        DaemonMode::Stopping => v1::DaemonState::Stopping,
    };
    v1::StatusReply {
        version: env!("CARGO_PKG_VERSION").into(),
        uptime: Some(dur(l.started.elapsed())),
        state: state as i32,
        active_jobs: l.active,
        max_jobs: l.max,
        queued_jobs: l.queued,
        providers: l.providers.iter().map(provider).collect(),
        containerd: Some(host.containerd),
        workers: host.workers.iter().map(worker).collect(),
        data_dir_bytes: host.data_dir_bytes,
        data_dir: host.data_dir,
        drain_deadline: l.drain_deadline.map(ts_of),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_and_states_map_both_ways() {
        for p in Phase::ALL {
            assert_eq!(phase_of(state_of(p)), Some(p));
            assert_eq!(state_of(p).word(), p.as_str(), "the API's word is the journal's");
        }
        assert_eq!(phase_of(v1::JobState::Unspecified), None);
    }

    #[test]
    fn job_ids() {
        assert!(matches!(parse_job_id("github:octo-org#42"), Some(JobRef::Full { forge_job_id: 42, .. })));
        assert!(matches!(parse_job_id(" 42 "), Some(JobRef::Number(42))));
        assert!(parse_job_id("#42").is_none());
        assert!(parse_job_id("github:o#x").is_none());
        assert!(parse_job_id("abc").is_none());
        assert_eq!(job_id("github:o", 7), "github:o#7");
    }
}

//! The scheduler's decisions, without I/O: it takes events (a job seen queued, a runner registered, a
//! container started or exited, pause/resume/drain, the clock) and the current time, and returns the actions
//! to carry out. Per job: queued → claiming → claimed → starting → running → finished/failed → cleaned.
//! It dedups jobs across sources, keeps within `max_concurrent` slots (a slot is held from the claim until
//! the job's resources are cleaned), retries failed claims with backoff, stops runners that never got their
//! job and jobs over their timeout, and exits a drain when the last job is cleaned or its deadline passes.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// A forge job, the same whichever source (webhook or poll) reported it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct JobKey {
    pub provider: String,
    pub forge_job_id: u64,
}

pub use crate::job::Phase;

/// Why the scheduler stops a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// The runner started but the forge never gave it its job.
    NeverPickedUp,
    Timeout,
    DrainTimeout,
}

/// The daemon's mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Active,
    /// No new claims; running jobs go on.
    Paused,
    /// Paused, and the daemon exits once no job holds a slot (or at the deadline, stopping what runs).
    Draining {
        deadline: Instant,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A job is queued at the forge and ours (labels matched).
    Queued(JobKey),
    /// The forge no longer has the job queued (cancelled, or taken elsewhere).
    Gone(JobKey),
    Claimed(JobKey),
    ClaimFailed {
        key: JobKey,
        retry: bool,
    },
    Started(JobKey),
    /// The forge reports the job in progress on our runner.
    PickedUp(JobKey),
    Exited {
        key: JobKey,
        success: bool,
    },
    Cleaned(JobKey),
    Pause,
    Resume,
    Drain {
        timeout: Duration,
    },
    Tick,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Register a just-in-time runner for the job.
    Claim(JobKey),
    /// Create and start its container.
    Start(JobKey),
    /// Stop its container (the job then exits and is cleaned up).
    Stop(JobKey, StopReason),
    /// Destroy its resources and deregister its runner.
    Cleanup(JobKey),
    /// The drain is over: the daemon exits.
    Exit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    pub max_concurrent: usize,
    /// How long a started runner may wait for its job before it is removed.
    pub pickup_timeout: Duration,
    pub job_timeout: Duration,
    /// How long finished jobs are remembered (so a late duplicate report does not run them again).
    pub remember: Duration,
}

#[derive(Debug, Clone)]
struct Entry {
    phase: Phase,
    seen: Instant,
    since: Instant,
    picked_up: bool,
    stopping: bool,
    claim_attempts: u32,
    not_before: Instant,
}

pub struct Machine {
    settings: Settings,
    mode: Mode,
    jobs: BTreeMap<JobKey, Entry>,
    exited: bool,
}

/// Backoff before claim attempt `n` (1-based): 1 s doubling to 60 s.
pub fn claim_backoff(n: u32) -> Duration {
    Duration::from_secs((1u64 << n.saturating_sub(1).min(6)).min(60))
}

impl Machine {
    pub fn new(settings: Settings, mode: Mode) -> Self {
        Self { settings, mode, jobs: BTreeMap::new(), exited: false }
    }

    /// New limits, from a config reload: jobs already running keep running; free slots are filled at the
    /// next event.
    pub fn set_settings(&mut self, settings: Settings) {
        self.settings = settings;
    }

    pub fn phase(&self, key: &JobKey) -> Option<Phase> {
        self.jobs.get(key).map(|e| e.phase)
    }

    /// Jobs holding a slot.
    pub fn active(&self) -> usize {
        self.jobs.values().filter(|e| e.phase.holds_slot()).count()
    }

    pub fn queued(&self) -> usize {
        self.jobs.values().filter(|e| e.phase == Phase::Queued).count()
    }

    fn set(&mut self, key: &JobKey, phase: Phase, now: Instant) {
        if let Some(e) = self.jobs.get_mut(key) {
            e.phase = phase;
            e.since = now;
        }
    }

    pub fn handle(&mut self, ev: Event, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        match ev {
            Event::Queued(key) => {
                self.jobs.entry(key).or_insert(Entry {
                    phase: Phase::Queued,
                    seen: now,
                    since: now,
                    picked_up: false,
                    stopping: false,
                    claim_attempts: 0,
                    not_before: now,
                });
            }
            Event::Gone(key) => {
                if self.phase(&key) == Some(Phase::Queued) {
                    self.jobs.remove(&key);
                }
            }
            Event::Claimed(key) => {
                if self.phase(&key) == Some(Phase::Claiming) {
                    self.set(&key, Phase::Claimed, now);
                    out.push(Action::Start(key.clone()));
                    self.set(&key, Phase::Starting, now);
                }
            }
            Event::ClaimFailed { key, retry } => {
                if self.phase(&key) == Some(Phase::Claiming) {
                    if retry {
                        if let Some(e) = self.jobs.get_mut(&key) {
                            e.phase = Phase::Queued;
                            e.since = now;
                            e.not_before = now + claim_backoff(e.claim_attempts);
                        }
                    } else {
                        self.jobs.remove(&key);
                    }
                }
            }
            Event::Started(key) => {
                if self.phase(&key) == Some(Phase::Starting) {
                    self.set(&key, Phase::Running, now);
                }
            }
            Event::PickedUp(key) => {
                if let Some(e) = self.jobs.get_mut(&key) {
                    e.picked_up = true;
                }
            }
            Event::Exited { key, success } => {
                if matches!(self.phase(&key), Some(Phase::Starting | Phase::Running | Phase::Claimed)) {
                    self.set(&key, if success { Phase::Finished } else { Phase::Failed }, now);
                    out.push(Action::Cleanup(key));
                }
            }
            Event::Cleaned(key) => {
                if self.jobs.contains_key(&key) {
                    self.set(&key, Phase::Cleaned, now);
                }
            }
            Event::Pause => {
                if self.mode == Mode::Active {
                    self.mode = Mode::Paused;
                }
            }
            // A drain is not undone by a resume.
            Event::Resume => {
                if self.mode == Mode::Paused {
                    self.mode = Mode::Active;
                }
            }
            Event::Drain { timeout } => {
                // A far-off deadline (or one past what time can hold) is no deadline.
                let deadline = now.checked_add(timeout).unwrap_or(now + Duration::from_secs(10 * 365 * 86400));
                match self.mode {
                    // A second drain (or a stop) may only bring the deadline closer.
                    Mode::Draining { deadline: d } if d <= deadline => {}
                    _ => self.mode = Mode::Draining { deadline },
                }
            }
            Event::Tick => {}
        }
        self.supervise(now, &mut out);
        self.admit(now, &mut out);
        self.drain(now, &mut out);
        self.forget(now);
        out
    }

    /// Claims queued jobs, oldest first, into free slots.
    fn admit(&mut self, now: Instant, out: &mut Vec<Action>) {
        if self.mode != Mode::Active {
            return;
        }
        let mut free = self.settings.max_concurrent.saturating_sub(self.active());
        let mut ready: Vec<(Instant, JobKey)> = self
            .jobs
            .iter()
            .filter(|(_, e)| e.phase == Phase::Queued && e.not_before <= now)
            .map(|(k, e)| (e.seen, k.clone()))
            .collect();
        ready.sort();
        for (_, key) in ready {
            if free == 0 {
                break;
            }
            if let Some(e) = self.jobs.get_mut(&key) {
                e.phase = Phase::Claiming;
                e.since = now;
                e.claim_attempts += 1;
            }
            out.push(Action::Claim(key));
            free -= 1;
        }
    }

    /// Stops runners that never got their job and jobs over their timeout.
    fn supervise(&mut self, now: Instant, out: &mut Vec<Action>) {
        let s = self.settings;
        for (key, e) in self.jobs.iter_mut() {
            if e.phase != Phase::Running || e.stopping {
                continue;
            }
            let ran = now.saturating_duration_since(e.since);
            let reason = if !e.picked_up && ran >= s.pickup_timeout {
                Some(StopReason::NeverPickedUp)
            } else if ran >= s.job_timeout {
                Some(StopReason::Timeout)
            } else {
                None
            };
            if let Some(r) = reason {
                e.stopping = true;
                out.push(Action::Stop(key.clone(), r));
            }
        }
    }

    fn drain(&mut self, now: Instant, out: &mut Vec<Action>) {
        let Mode::Draining { deadline } = self.mode else { return };
        if self.exited {
            return;
        }
        if self.active() == 0 {
            self.exited = true;
            out.push(Action::Exit);
            return;
        }
        if now >= deadline {
            for (key, e) in self.jobs.iter_mut() {
                if matches!(e.phase, Phase::Running | Phase::Starting) && !e.stopping {
                    e.stopping = true;
                    out.push(Action::Stop(key.clone(), StopReason::DrainTimeout));
                }
            }
        }
    }

    fn forget(&mut self, now: Instant) {
        let keep = self.settings.remember;
        self.jobs.retain(|_, e| e.phase != Phase::Cleaned || now.saturating_duration_since(e.since) < keep);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u64) -> JobKey {
        JobKey { provider: "github".into(), forge_job_id: n }
    }

    /// Takes job `n` through queued, claimed and started.
    fn run(m: &mut Machine, n: u64, t: Instant) {
        m.handle(Event::Queued(key(n)), t);
        m.handle(Event::Claimed(key(n)), t);
        m.handle(Event::Started(key(n)), t);
    }

    fn settings(max: usize) -> Settings {
        Settings {
            max_concurrent: max,
            pickup_timeout: Duration::from_secs(120),
            job_timeout: Duration::from_secs(3600),
            remember: Duration::from_secs(600),
        }
    }

    /// Plays the actor: carries out claims and starts at once, runs jobs to completion in order.
    #[test]
    fn twenty_jobs_four_slots_all_complete_never_more_than_four() {
        let t0 = Instant::now();
        let mut m = Machine::new(settings(4), Mode::Active);
        let mut pending: Vec<Action> = Vec::new();
        for n in 0..20 {
            pending.extend(m.handle(Event::Queued(key(n)), t0));
        }
        let mut finished = 0;
        let mut max_seen = 0;
        let mut running: Vec<JobKey> = Vec::new();
        let mut steps = 0;
        while finished < 20 {
            steps += 1;
            assert!(steps < 1000, "no progress");
            max_seen = max_seen.max(m.active());
            if let Some(a) = pending.pop() {
                let next = match a {
                    Action::Claim(k) => m.handle(Event::Claimed(k), t0),
                    Action::Start(k) => {
                        running.push(k.clone());
                        m.handle(Event::Started(k), t0)
                    }
                    Action::Cleanup(k) => {
                        finished += 1;
                        m.handle(Event::Cleaned(k), t0)
                    }
                    other => panic!("{other:?}"),
                };
                pending.extend(next);
            } else if let Some(k) = running.pop() {
                pending.extend(m.handle(Event::Exited { key: k, success: true }, t0));
            }
        }
        assert_eq!(max_seen, 4);
        assert_eq!(m.active(), 0);
        assert_eq!(m.queued(), 0);
    }

    #[test]
    fn the_same_job_from_two_sources_is_claimed_once() {
        let t = Instant::now();
        let mut m = Machine::new(settings(4), Mode::Active);
        assert_eq!(m.handle(Event::Queued(key(1)), t), vec![Action::Claim(key(1))]);
        assert_eq!(m.handle(Event::Queued(key(1)), t), vec![]);
        m.handle(Event::Claimed(key(1)), t);
        m.handle(Event::Started(key(1)), t);
        m.handle(Event::Exited { key: key(1), success: true }, t);
        m.handle(Event::Cleaned(key(1)), t);
        // A late duplicate report of a finished job does not run it again...
        assert_eq!(m.handle(Event::Queued(key(1)), t + Duration::from_secs(5)), vec![]);
        // ...until it is forgotten.
        let later = t + Duration::from_secs(601);
        m.handle(Event::Tick, later);
        assert_eq!(m.handle(Event::Queued(key(1)), later), vec![Action::Claim(key(1))]);
    }

    #[test]
    fn pause_holds_queued_jobs_and_resume_claims_them() {
        let t = Instant::now();
        let mut m = Machine::new(settings(4), Mode::Active);
        m.handle(Event::Pause, t);
        assert_eq!(m.handle(Event::Queued(key(1)), t), vec![]);
        assert_eq!(m.queued(), 1);
        assert_eq!(m.handle(Event::Resume, t), vec![Action::Claim(key(1))]);
    }

    #[test]
    fn drain_exits_when_running_jobs_finish_and_claims_nothing_new() {
        let t = Instant::now();
        let mut m = Machine::new(settings(4), Mode::Active);
        for n in [1, 2] {
            run(&mut m, n, t);
        }
        assert_eq!(m.handle(Event::Drain { timeout: Duration::from_secs(600) }, t), vec![]);
        assert_eq!(m.handle(Event::Queued(key(3)), t), vec![], "no new claims while draining");
        m.handle(Event::Exited { key: key(1), success: true }, t);
        assert_eq!(m.handle(Event::Cleaned(key(1)), t), vec![]);
        assert_eq!(m.handle(Event::Exited { key: key(2), success: false }, t), vec![Action::Cleanup(key(2))]);
        assert_eq!(m.handle(Event::Cleaned(key(2)), t), vec![Action::Exit]);
        assert_eq!(m.handle(Event::Tick, t), vec![], "exit is said once");
    }

    #[test]
    fn drain_deadline_stops_what_still_runs() {
        let t = Instant::now();
        let mut m = Machine::new(settings(4), Mode::Active);
        run(&mut m, 1, t);
        m.handle(Event::PickedUp(key(1)), t);
        m.handle(Event::Drain { timeout: Duration::from_secs(10) }, t);
        assert_eq!(m.handle(Event::Tick, t + Duration::from_secs(9)), vec![]);
        let late = t + Duration::from_secs(10);
        assert_eq!(m.handle(Event::Tick, late), vec![Action::Stop(key(1), StopReason::DrainTimeout)]);
        assert_eq!(m.handle(Event::Tick, late), vec![], "stopped once");
        m.handle(Event::Exited { key: key(1), success: false }, late);
        assert_eq!(m.handle(Event::Cleaned(key(1)), late), vec![Action::Exit]);
    }

    #[test]
    fn idle_runners_and_overlong_jobs_are_stopped() {
        let t = Instant::now();
        let mut m = Machine::new(settings(4), Mode::Active);
        for n in [1, 2] {
            run(&mut m, n, t);
        }
        m.handle(Event::PickedUp(key(2)), t);
        let a = m.handle(Event::Tick, t + Duration::from_secs(120));
        assert_eq!(a, vec![Action::Stop(key(1), StopReason::NeverPickedUp)]);
        let a = m.handle(Event::Tick, t + Duration::from_secs(3600));
        assert_eq!(a, vec![Action::Stop(key(2), StopReason::Timeout)]);
    }

    #[test]
    fn failed_claims_retry_with_backoff_or_give_up() {
        let t = Instant::now();
        let t1 = t + Duration::from_millis(1);
        let mut m = Machine::new(settings(1), Mode::Active);
        m.handle(Event::Queued(key(1)), t);
        m.handle(Event::Queued(key(2)), t1);
        assert_eq!(m.handle(Event::ClaimFailed { key: key(1), retry: true }, t1), vec![Action::Claim(key(2))]);
        m.handle(Event::ClaimFailed { key: key(2), retry: false }, t1);
        assert_eq!(m.phase(&key(2)), None, "a job the forge refuses for good is dropped");
        assert_eq!(m.handle(Event::Tick, t1), vec![], "backing off");
        assert_eq!(m.handle(Event::Tick, t1 + claim_backoff(1)), vec![Action::Claim(key(1))]);
        assert_eq!(claim_backoff(1), Duration::from_secs(1));
        assert_eq!(claim_backoff(3), Duration::from_secs(4));
        assert_eq!(claim_backoff(30), Duration::from_secs(60));
    }

    #[test]
    fn gone_jobs_leave_the_queue_but_not_a_claim() {
        let t = Instant::now();
        let mut m = Machine::new(settings(1), Mode::Paused);
        m.handle(Event::Queued(key(1)), t);
        m.handle(Event::Gone(key(1)), t);
        assert_eq!(m.phase(&key(1)), None);
        m.handle(Event::Resume, t);
        m.handle(Event::Queued(key(2)), t);
        m.handle(Event::Gone(key(2)), t);
        assert_eq!(m.phase(&key(2)), Some(Phase::Claiming));
    }

    #[test]
    fn a_drain_is_not_undone_by_a_resume_and_a_stop_brings_its_deadline_closer() {
        let t = Instant::now();
        let mut m = Machine::new(settings(2), Mode::Active);
        run(&mut m, 1, t);
        // A deadline past what time can hold does not panic; it is simply far away.
        m.handle(Event::Drain { timeout: Duration::MAX }, t);
        m.handle(Event::Resume, t);
        m.handle(Event::Queued(key(2)), t);
        assert_eq!(m.phase(&key(2)), Some(Phase::Queued), "still draining: nothing new is claimed");
        m.handle(Event::PickedUp(key(1)), t);
        assert_eq!(m.handle(Event::Tick, t + Duration::from_secs(60)), vec![], "the running job goes on");
        // A stop (a drain with no time) stops it now.
        let stop = m.handle(Event::Drain { timeout: Duration::ZERO }, t + Duration::from_secs(60));
        assert_eq!(stop, vec![Action::Stop(key(1), StopReason::DrainTimeout)]);
        // A later, longer drain does not push the deadline back (the job is already being stopped).
        assert_eq!(m.handle(Event::Drain { timeout: Duration::from_secs(3600) }, t + Duration::from_secs(61)), vec![]);
    }
}

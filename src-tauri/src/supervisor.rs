//! Keeping a daemon running, as a pure state machine: what the app observes (its socket, the service's
//! state, its child exiting) goes in with the time; the health to show and what to do come out. The
//! shell carries the actions out (spawn `ephemerd serve`, `ephemerd service start`, …).
//!
//! - **User mode** (the Windows default: WSL distros belong to the logged-in user): the app runs
//!   `ephemerd serve` as its child, restarts it with backoff when it dies, and drains it on quit — asking
//!   first when jobs run.
//! - **Service mode** (the Linux and macOS default): systemd / launchd / the SCM run the daemon; the app
//!   offers to install or start it, and restarts it through the service manager when it dies.

use std::time::{Duration, Instant};

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Mode {
    User,
    Service,
}

impl Mode {
    pub fn default_for_this_os() -> Mode {
        if cfg!(windows) { Mode::User } else { Mode::Service }
    }
}

/// What the app shows about the daemon; never a silent blank.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Health {
    Connected,
    Starting,
    DaemonStopped,
    NotInstalled,
    Unreachable(String),
}

/// The control socket, as a connection attempt found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Socket {
    Answers,
    /// No socket, or nobody listening on it.
    Missing,
    /// Something else: permission denied, a broken answer (the words to show).
    Refused(String),
}

/// `ephemerd service status`: exit 0, 3, 4.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceState {
    Running,
    Stopped,
    NotInstalled,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Probe {
        socket: Socket,
        service: Option<ServiceState>,
    },
    ChildStarted,
    ChildExited {
        code: Option<i32>,
    },
    StartRequested,
    InstallRequested,
    /// The user quits; `running` jobs are in progress.
    Quit {
        running: u32,
    },
    /// The user confirmed quitting although jobs run.
    QuitConfirmed,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    SpawnChild,
    /// Spawn the child again after this backoff.
    SpawnChildAfter(Duration),
    StartService,
    /// Start the service again after this backoff (it died under us).
    RestartServiceAfter(Duration),
    InstallService,
    AskBeforeQuit {
        running: u32,
    },
    /// Drain the child (running jobs finish), then exit.
    DrainChildThenExit,
    Exit,
}

/// How long a daemon may take to open its socket before it counts as unreachable.
pub const START_GRACE: Duration = Duration::from_secs(30);
/// A daemon that ran this long has its restart backoff reset.
pub const STABLE_AFTER: Duration = Duration::from_secs(300);

/// 1 s, 2 s, 4 s … up to a minute.
pub fn backoff(failures: u32) -> Duration {
    Duration::from_secs(1u64 << failures.saturating_sub(1).min(6)).min(Duration::from_secs(60))
}

#[derive(Debug, Clone)]
pub struct Supervisor {
    pub mode: Mode,
    pub health: Health,
    failures: u32,
    /// When the daemon we started (child or service) was started.
    started: Option<Instant>,
    /// The child process is alive (user mode).
    child: bool,
    /// The daemon answered since it was last started.
    was_connected: bool,
    quitting: bool,
}

impl Supervisor {
    pub fn new(mode: Mode) -> Self {
        Self {
            mode,
            health: Health::Starting,
            failures: 0,
            started: None,
            child: false,
            was_connected: false,
            quitting: false,
        }
    }

    pub fn handle(&mut self, ev: Event, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        match ev {
            Event::Probe { socket: Socket::Answers, .. } => {
                self.health = Health::Connected;
                self.was_connected = true;
                if self.started.is_some_and(|t| now.duration_since(t) >= STABLE_AFTER) {
                    self.failures = 0;
                }
            }
            Event::Probe { socket: Socket::Refused(why), .. } => self.health = Health::Unreachable(why),
            Event::Probe { socket: Socket::Missing, service } => self.missing(service, now, &mut out),
            Event::ChildStarted => {
                self.child = true;
                self.started = Some(now);
                self.health = Health::Starting;
            }
            Event::ChildExited { code } => {
                self.child = false;
                self.was_connected = false;
                if self.quitting {
                    out.push(Action::Exit);
                } else if self.mode == Mode::User {
                    if self.started.is_some_and(|t| now.duration_since(t) >= STABLE_AFTER) {
                        self.failures = 0;
                    }
                    self.failures += 1;
                    self.health = match code {
                        Some(c) => Health::Unreachable(format!("the daemon exited with code {c}; restarting")),
                        None => Health::Unreachable("the daemon was killed; restarting".into()),
                    };
                    out.push(Action::SpawnChildAfter(backoff(self.failures)));
                }
            }
            Event::StartRequested => match self.mode {
                Mode::User if !self.child => out.push(Action::SpawnChild),
                Mode::User => {}
                Mode::Service => {
                    self.started = Some(now);
                    self.health = Health::Starting;
                    out.push(Action::StartService);
                }
            },
            Event::InstallRequested => {
                if self.mode == Mode::Service {
                    out.push(Action::InstallService);
                }
            }
            Event::Quit { running } => {
                if running > 0 && self.mode == Mode::User && self.child {
                    out.push(Action::AskBeforeQuit { running });
                } else {
                    out.extend(self.quit());
                }
            }
            Event::QuitConfirmed => out.extend(self.quit()),
        }
        out
    }

    fn quit(&mut self) -> Vec<Action> {
        self.quitting = true;
        // A child is drained (its jobs finish) and the app exits when it is gone; a service keeps running.
        if self.mode == Mode::User && self.child { vec![Action::DrainChildThenExit] } else { vec![Action::Exit] }
    }

    fn missing(&mut self, service: Option<ServiceState>, now: Instant, out: &mut Vec<Action>) {
        let in_grace = self.started.is_some_and(|t| now.duration_since(t) < START_GRACE);
        match self.mode {
            Mode::User => {
                if self.child {
                    self.health = if in_grace {
                        Health::Starting
                    } else {
                        Health::Unreachable("the daemon runs but does not answer on its socket".into())
                    };
                } else if !self.quitting && self.failures == 0 {
                    // Nobody runs it yet: start our own (a restart after a crash comes from ChildExited).
                    self.health = Health::Starting;
                    out.push(Action::SpawnChild);
                }
            }
            Mode::Service => match service {
                Some(ServiceState::NotInstalled) => self.health = Health::NotInstalled,
                Some(ServiceState::Running) if in_grace || self.started.is_none() => self.health = Health::Starting,
                Some(ServiceState::Running) => {
                    self.health = Health::Unreachable("the service runs but does not answer on its socket".into())
                }
                Some(ServiceState::Stopped) | None => {
                    self.health = Health::DaemonStopped;
                    // It was up and went away without being asked: restart it through the service manager.
                    if self.was_connected && !self.quitting {
                        self.was_connected = false;
                        self.failures += 1;
                        self.started = Some(now);
                        out.push(Action::RestartServiceAfter(backoff(self.failures)));
                    }
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(socket: Socket, service: Option<ServiceState>) -> Event {
        Event::Probe { socket, service }
    }

    #[test]
    fn user_mode_starts_its_daemon_restarts_it_with_backoff_and_drains_it_on_quit() {
        let t = Instant::now();
        let mut s = Supervisor::new(Mode::User);
        assert_eq!(s.handle(probe(Socket::Missing, None), t), vec![Action::SpawnChild]);
        s.handle(Event::ChildStarted, t);
        assert_eq!(s.handle(probe(Socket::Missing, None), t + Duration::from_secs(2)), vec![]);
        assert_eq!(s.health, Health::Starting);
        s.handle(probe(Socket::Answers, None), t + Duration::from_secs(3));
        assert_eq!(s.health, Health::Connected);
        // It dies: restarted after 1 s, then 2 s, 4 s…
        let mut waits = Vec::new();
        for i in 0..4u64 {
            let a = s.handle(Event::ChildExited { code: Some(1) }, t + Duration::from_secs(10 + i));
            waits.push(a);
            s.handle(Event::ChildStarted, t + Duration::from_secs(10 + i));
        }
        let secs = |n| vec![Action::SpawnChildAfter(Duration::from_secs(n))];
        assert_eq!(waits, vec![secs(1), secs(2), secs(4), secs(8)]);
        assert!(matches!(s.health, Health::Starting));
        // After a stable run the backoff starts over.
        let later = t + STABLE_AFTER + Duration::from_secs(60);
        assert_eq!(s.handle(Event::ChildExited { code: None }, later), secs(1));
        assert_eq!(s.health, Health::Unreachable("the daemon was killed; restarting".into()));
        s.handle(Event::ChildStarted, later);
        // Quitting with jobs running asks first; confirmed, the child is drained, then the app exits.
        assert_eq!(s.handle(Event::Quit { running: 2 }, later), vec![Action::AskBeforeQuit { running: 2 }]);
        assert_eq!(s.handle(Event::QuitConfirmed, later), vec![Action::DrainChildThenExit]);
        assert_eq!(s.handle(Event::ChildExited { code: Some(0) }, later), vec![Action::Exit]);
    }

    #[test]
    fn user_mode_reports_a_daemon_that_never_answers() {
        let t = Instant::now();
        let mut s = Supervisor::new(Mode::User);
        s.handle(Event::ChildStarted, t);
        s.handle(probe(Socket::Missing, None), t + START_GRACE);
        assert!(matches!(s.health, Health::Unreachable(_)));
        s.handle(probe(Socket::Refused("permission denied".into()), None), t + START_GRACE);
        assert_eq!(s.health, Health::Unreachable("permission denied".into()));
        assert_eq!(s.handle(Event::Quit { running: 0 }, t), vec![Action::DrainChildThenExit]);
    }

    #[test]
    fn service_mode_offers_install_and_start_and_restarts_a_service_that_died() {
        let t = Instant::now();
        let mut s = Supervisor::new(Mode::Service);
        assert_eq!(s.handle(probe(Socket::Missing, Some(ServiceState::NotInstalled)), t), vec![]);
        assert_eq!(s.health, Health::NotInstalled);
        assert_eq!(s.handle(Event::InstallRequested, t), vec![Action::InstallService]);
        assert_eq!(
            s.handle(probe(Socket::Missing, Some(ServiceState::Stopped)), t),
            vec![],
            "never started: offer Start"
        );
        assert_eq!(s.health, Health::DaemonStopped);
        assert_eq!(s.handle(Event::StartRequested, t), vec![Action::StartService]);
        s.handle(probe(Socket::Missing, Some(ServiceState::Running)), t + Duration::from_secs(1));
        assert_eq!(s.health, Health::Starting);
        s.handle(probe(Socket::Answers, Some(ServiceState::Running)), t + Duration::from_secs(2));
        assert_eq!(s.health, Health::Connected);
        // The service dies: restarted through the service manager, once per death.
        let died = t + Duration::from_secs(100);
        let a = s.handle(probe(Socket::Missing, Some(ServiceState::Stopped)), died);
        assert_eq!(a, vec![Action::RestartServiceAfter(Duration::from_secs(1))]);
        assert_eq!(s.handle(probe(Socket::Missing, Some(ServiceState::Stopped)), died), vec![]);
        // Quitting the app leaves the service running.
        assert_eq!(s.handle(Event::Quit { running: 3 }, died), vec![Action::Exit]);
    }

    #[test]
    fn backoff_is_capped() {
        assert_eq!(backoff(1), Duration::from_secs(1));
        assert_eq!(backoff(3), Duration::from_secs(4));
        assert_eq!(backoff(40), Duration::from_secs(60));
    }
}

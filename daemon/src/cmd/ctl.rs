//! The CLI's client commands: each connects to the daemon's control socket, makes its calls, and prints
//! text or JSON. A daemon that does not answer exits 69 with how to start it; a refused call exits 1.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::SystemTime;

use ephemerd_proto::v1;
use tokio_stream::StreamExt;

use super::render::{self, Style};
use super::{err, out};
use crate::cli::{Command, CredentialCommand, JobsArgs};

/// The daemon does not answer (sysexits' EX_UNAVAILABLE).
pub const EXIT_UNAVAILABLE: u8 = 69;
/// The daemon refused the call (no such job, not running...).
pub const EXIT_FAILURE: u8 = 1;

pub struct Ctl {
    pub socket: PathBuf,
    pub json: bool,
}

pub fn style() -> Style {
    Style { color: std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none() }
}

fn print_json(v: &serde_json::Value) {
    out!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

/// A refused call, in the daemon's words.
fn refused(s: &tonic::Status) -> u8 {
    if matches!(s.code(), tonic::Code::Unavailable | tonic::Code::Unknown) && ephemerd_proto::reason_of(s).is_none() {
        err!("ephemerd: the daemon went away: {}", s.message());
        return EXIT_UNAVAILABLE;
    }
    err!("ephemerd: {}", s.message());
    EXIT_FAILURE
}

/// A secret from stdin: its first line. On a terminal, asked for without echo.
fn read_secret(provider: &str) -> Option<String> {
    let stdin = std::io::stdin();
    let mut line = String::new();
    if stdin.is_terminal() {
        let _ = write!(std::io::stderr(), "token for {provider}: ");
        let read = without_echo(|| stdin.read_line(&mut line));
        err!("");
        read.ok()?;
    } else {
        stdin.read_line(&mut line).ok()?;
    }
    let secret = line.trim_end_matches(['\r', '\n']).to_string();
    (!secret.is_empty()).then_some(secret)
}

/// Runs `f` with the terminal's echo off (a secret typed is not shown).
#[cfg(unix)]
fn without_echo<T>(f: impl FnOnce() -> T) -> T {
    use nix::sys::termios::{LocalFlags, SetArg, tcgetattr, tcsetattr};
    let stdin = std::io::stdin();
    let saved = tcgetattr(&stdin).ok();
    if let Some(t) = &saved {
        let mut quiet = t.clone();
        quiet.local_flags.remove(LocalFlags::ECHO);
        let _ = tcsetattr(&stdin, SetArg::TCSANOW, &quiet);
    }
    let r = f();
    if let Some(t) = &saved {
        let _ = tcsetattr(&stdin, SetArg::TCSANOW, t);
    }
    r
}

/// Runs `f` with the console's echo off (a secret typed is not shown).
#[cfg(windows)]
#[allow(unsafe_code)]
fn without_echo<T>(f: impl FnOnce() -> T) -> T {
    use windows_sys::Win32::System::Console::{
        ENABLE_ECHO_INPUT, GetConsoleMode, GetStdHandle, STD_INPUT_HANDLE, SetConsoleMode,
    };
    // SAFETY: the standard input handle of this process, and a mode word on the stack.
    unsafe {
        let h = GetStdHandle(STD_INPUT_HANDLE);
        let mut mode = 0;
        if GetConsoleMode(h, &mut mode) == 0 {
            return f();
        }
        SetConsoleMode(h, mode & !ENABLE_ECHO_INPUT);
        let r = f();
        SetConsoleMode(h, mode);
        r
    }
}

impl Ctl {
    pub async fn run(&self, command: Command) -> u8 {
        let mut c = match ephemerd_proto::connect(&self.socket).await {
            Ok(c) => c,
            Err(e) => {
                err!("ephemerd: {e}");
                err!(
                    "start it with `ephemerd serve` (or `systemctl start ephemerd` where it is installed as a service)"
                );
                return EXIT_UNAVAILABLE;
            }
        };
        let r = self.call(&mut c, command).await;
        r.unwrap_or_else(|s| refused(&s))
    }

    async fn call(&self, c: &mut ephemerd_proto::Client, command: Command) -> Result<u8, tonic::Status> {
        let now = SystemTime::now();
        match command {
            Command::Status => {
                let s = c.status(v1::StatusRequest {}).await?.into_inner();
                if self.json {
                    print_json(&render::status_json(&s))
                } else {
                    print!("{}", render::status_text(&s, now, style()))
                }
            }
            Command::Jobs(a) => self.jobs(c, a, now).await?,
            Command::Job { id } => {
                let j = c.get_job(v1::GetJobRequest { id }).await?.into_inner();
                if self.json {
                    print_json(&render::job_json(&j))
                } else {
                    print!("{}", render::job_detail(&j, now, style()))
                }
            }
            Command::Logs { id, follow } => {
                let mut stream = c.get_job_logs(v1::GetJobLogsRequest { id, follow }).await?.into_inner();
                let mut stdout = std::io::stdout();
                while let Some(chunk) = stream.next().await {
                    let chunk = chunk?;
                    if stdout.write_all(&chunk.data).and_then(|()| stdout.flush()).is_err() {
                        return Ok(0);
                    }
                }
            }
            Command::Kill { id } => {
                let j = c.kill_job(v1::KillJobRequest { id }).await?.into_inner().job.unwrap_or_default();
                if self.json {
                    print_json(&render::job_json(&j))
                } else {
                    out!("killing {} ({} / {})", j.id, j.workflow, j.name)
                }
            }
            Command::Pause => {
                self.state(c.pause(v1::PauseRequest {}).await?.into_inner(), "paused: no new jobs; running ones go on")
            }
            Command::Resume => self.state(c.resume(v1::ResumeRequest {}).await?.into_inner(), "resumed: taking jobs"),
            Command::Drain { wait, timeout } => {
                let timeout = timeout
                    .map(|d| prost_types::Duration { seconds: d.as_secs() as i64, nanos: d.subsec_nanos() as i32 });
                // Watch first, so the daemon's exit is seen even when it comes at once.
                let events =
                    if wait { Some(c.watch_events(v1::WatchEventsRequest {}).await?.into_inner()) } else { None };
                let s = c.drain(v1::DrainRequest { timeout }).await?.into_inner();
                self.state(
                    s.clone(),
                    &format!(
                        "draining: no new jobs; the daemon exits when its {} running job(s) are done",
                        s.active_jobs
                    ),
                );
                if let Some(mut events) = events {
                    while let Some(ev) = events.next().await {
                        if ev.is_err() {
                            break;
                        }
                    }
                    // The stream ends as the daemon goes; it then stops containerd and closes its socket.
                    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
                    while ephemerd_proto::connect(&self.socket).await.is_ok() {
                        if std::time::Instant::now() > deadline {
                            err!("ephemerd: the daemon stopped its events but still answers after a minute");
                            return Ok(EXIT_FAILURE);
                        }
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    }
                    if !self.json {
                        out!("the daemon has exited");
                    }
                }
            }
            Command::Providers { test } => {
                let ps = c.list_providers(v1::ListProvidersRequest {}).await?.into_inner().providers;
                let mut tests = Vec::new();
                if test {
                    for p in &ps {
                        tests.push(
                            c.test_provider(v1::TestProviderRequest { name: p.name.clone() }).await?.into_inner(),
                        );
                    }
                }
                if self.json {
                    let list = ps.iter().enumerate().map(|(i, p)| {
                        let mut v = render::provider_json(p);
                        if let Some(t) = tests.get(i) {
                            v["test"] = render::test_json(t);
                        }
                        v
                    });
                    print_json(&serde_json::Value::Array(list.collect()))
                } else {
                    print!("{}", render::providers_table(&ps, now, style()));
                    for (p, t) in ps.iter().zip(&tests) {
                        print!("{}", render::test_text(&p.name, t, style()));
                    }
                }
                if tests.iter().any(|t| !t.ok) {
                    return Ok(EXIT_FAILURE);
                }
            }
            Command::Credential(CredentialCommand::Set { provider }) => {
                let Some(secret) = read_secret(&provider) else {
                    err!("ephemerd: no secret on stdin");
                    return Ok(super::EXIT_USAGE);
                };
                let r = c.set_credential(v1::SetCredentialRequest { provider: provider.clone(), secret }).await?;
                if self.json {
                    print_json(&serde_json::json!({ "provider": provider, "note": r.into_inner().note }))
                } else {
                    out!("{provider}: {}", r.into_inner().note)
                }
            }
            Command::Credential(CredentialCommand::Delete { provider }) => {
                let existed = c.delete_credential(v1::DeleteCredentialRequest { provider: provider.clone() }).await?;
                let existed = existed.into_inner().existed;
                if self.json {
                    print_json(&serde_json::json!({ "provider": provider, "existed": existed }))
                } else if existed {
                    out!("{provider}: credential deleted from the OS keyring")
                } else {
                    out!("{provider}: there was no stored credential")
                }
            }
            Command::Reload => {
                let r = c.reload_config(v1::ReloadConfigRequest {}).await?.into_inner();
                if self.json {
                    print_json(&serde_json::json!({ "applied": r.applied, "needs_restart": r.needs_restart }));
                } else {
                    if r.applied.is_empty() && r.needs_restart.is_empty() {
                        out!("the config has not changed");
                    }
                    if !r.applied.is_empty() {
                        out!("applied: {}", r.applied.join(", "));
                    }
                    if !r.needs_restart.is_empty() {
                        out!("needs a restart: {}", r.needs_restart.join(", "));
                    }
                }
            }
            _ => return Ok(super::EXIT_USAGE),
        }
        Ok(0)
    }

    fn state(&self, s: v1::StatusReply, words: &str) {
        if self.json { print_json(&render::status_json(&s)) } else { out!("{words}") }
    }

    async fn jobs(&self, c: &mut ephemerd_proto::Client, a: JobsArgs, now: SystemTime) -> Result<(), tonic::Status> {
        use v1::JobState::*;
        let states = if a.all { vec![] } else { vec![Queued, Claiming, Claimed, Starting, JobRunning] };
        let req = v1::ListJobsRequest {
            states: states.into_iter().map(|s| s as i32).collect(),
            provider: a.provider.unwrap_or_default(),
            repo: a.repo.unwrap_or_default(),
            page_size: a.limit.clamp(1, 500),
            page_token: String::new(),
        };
        let jobs = c.list_jobs(req).await?.into_inner().jobs;
        if self.json {
            print_json(&serde_json::Value::Array(jobs.iter().map(render::job_json).collect()));
        } else {
            print!("{}", render::jobs_table(&jobs, now, style()));
        }
        Ok(())
    }
}

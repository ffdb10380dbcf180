//! `ephemerd run`: one workflow job in a fresh container, through the same runtime path as forge jobs,
//! with its steps' output live on the terminal. Each step runs as a process of its own in the job's
//! container, started and waited for from here: which steps run, and how each ended, is decided outside the
//! job. Ctrl-C stops the job and cleans up.

use std::io::{IsTerminal, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use ephemerd::config::Config;
use ephemerd::platform::DataDirs;
use ephemerd::runtime::containerd::image::normalize;
use ephemerd::runtime::containerd::spec::Bind;
use ephemerd::runtime::{Exit, new_job_id};
use ephemerd::target::{Job, LaunchSpec, launch};
use ephemerd::workflow::output::Renderer;
use ephemerd::workflow::plan::{JobPlan, StepKind, WORKSPACE};
use ephemerd::workflow::{driver, model, plan, workspace};
use tokio::signal::unix::{SignalKind, signal};
use tracing::Instrument;

use super::{EXIT_INTERRUPTED, Session, err, out, progress_printer, unless_interrupted, usage};
use crate::cli::RunArgs;

/// The .yml/.yaml files in `dir`, sorted.
fn workflows_in(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| p.is_file() && matches!(p.extension().and_then(|e| e.to_str()), Some("yml" | "yaml")))
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found
}

/// The workflow file: the given one (a repository directory stands for its only workflow), else the only
/// one in `.github/workflows`.
fn find_workflow(given: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    if let Some(p) = given {
        if p.is_dir() {
            let dir = if p.join(".github/workflows").is_dir() { p.join(".github/workflows") } else { p.clone() };
            let mut found = workflows_in(&dir);
            return match found.len() {
                1 => Ok(found.remove(0)),
                0 => Err(usage(format!("{} is a directory with no workflow (.yml) in it", p.display()))),
                _ => Err(usage(format!(
                    "{} holds several workflows; name one: {}",
                    p.display(),
                    found.iter().map(|f| f.display().to_string()).collect::<Vec<_>>().join(", ")
                ))),
            };
        }
        if !p.is_file() {
            return Err(usage(format!("workflow file {} does not exist", p.display())));
        }
        return Ok(p);
    }
    let mut found = workflows_in(Path::new(".github/workflows"));
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => Err(usage("no workflow given and none found in .github/workflows")),
        _ => Err(usage(format!(
            "several workflows in .github/workflows; name one: {}",
            found.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
        ))),
    }
}

pub async fn run(args: RunArgs, cfg: Config, dirs: DataDirs) -> anyhow::Result<u8> {
    // Everything about the input is checked before containerd starts.
    let file = find_workflow(args.workflow)?;
    let shown = file.display().to_string();
    let text = std::fs::read_to_string(&file).map_err(|e| usage(format!("cannot read {shown}: {e}")))?;
    let wf = model::parse(&text).map_err(|e| usage(format!("{shown}: {e}")))?;
    let plan = plan::plan(&wf, &shown, args.job.as_deref()).map_err(usage)?;
    let rendered = driver::render(&plan).map_err(|e| usage(format!("{shown}: {e}")))?;
    let image_ref = args.image.unwrap_or_else(|| cfg.image.default.clone());
    normalize(&image_ref).map_err(usage)?;
    for w in &plan.warnings {
        err!("warning: {w}");
    }
    let root = workspace::repo_root(&file);

    let session = Session::start(&cfg, &dirs).await?;
    let r = run_job(&session, &plan, &rendered, &image_ref, &root).await;
    session.stop().await;
    r
}

async fn run_job(
    s: &Session,
    plan: &JobPlan,
    rendered: &driver::Rendered,
    image_ref: &str,
    root: &Path,
) -> anyhow::Result<u8> {
    let target = s.target.clone();
    let progress = progress_printer(format!("Pulling {image_ref}"));
    let Some(image) = unless_interrupted(target.prepare_image(image_ref, &progress)).await? else {
        err!("\nInterrupted before the job started.");
        return Ok(EXIT_INTERRUPTED);
    };
    let image = image?;
    let id = new_job_id();
    let span = tracing::info_span!("job", id = %id, workflow = %plan.workflow, job = %plan.job_id, image = %image, container = %id);
    let color = std::io::stdout().is_terminal();
    let bold = |s: &str| if color { format!("\x1b[1m{s}\x1b[0m") } else { s.to_string() };
    out!("{}", bold(&format!("Job `{}` of {} in {image} (job id {id})", plan.name, plan.workflow)));

    let started = Instant::now();
    let mut renderer = Renderer::new(plan, color);
    let mut cursor = LogCursor::default();
    let log = target.log_path(&id);
    let setup = |job: &Job| -> Result<LaunchSpec, String> {
        let scripts = job.dir.join("ephemerd");
        for (rel, content) in &rendered.files {
            let p = scripts.join(rel);
            if let Some(parent) = p.parent() {
                std::fs::create_dir_all(parent).map_err(|e| format!("writing the step scripts: {e}"))?;
            }
            std::fs::write(&p, content).map_err(|e| format!("writing the step scripts: {e}"))?;
        }
        let ws = job.dir.join("workspace");
        let skip = [std::fs::canonicalize(&s.data_root).unwrap_or_else(|_| s.data_root.clone())];
        std::fs::create_dir_all(&ws)
            .and_then(|()| workspace::copy_repository(root, &ws, &skip))
            .map_err(|e| format!("copying {} into the job: {e}", root.display()))?;
        Ok(LaunchSpec {
            args: Some(driver::keeper_args()),
            workdir: Some(WORKSPACE.into()),
            binds: vec![
                Bind { source: ws, destination: WORKSPACE.into(), readonly: false },
                Bind { source: scripts, destination: driver::SCRIPTS_DIR.into(), readonly: true },
            ],
            ..Default::default()
        })
    };
    let (r, cur) = (&mut renderer, &mut cursor);
    let body = move |job: Job| async move { run_steps(&job, plan, r, cur).await };
    let launched = launch(target, id, image, setup, body).instrument(span).await;
    // The task's output is complete once it is deleted: print what is left.
    print_new(&log, &mut cursor, &mut renderer, true);
    let (outcome, destroyed) = (launched.outcome.map_err(anyhow::Error::from).and_then(|r| r), launched.destroyed);
    let took = started.elapsed().as_secs_f64();
    let end = match outcome {
        Err(e) => Err(e),
        Ok(Ended::Interrupted) => {
            err!("Job stopped (interrupted); its container and network are removed.");
            Ok(EXIT_INTERRUPTED)
        }
        Ok(Ended::TimedOut(t)) => {
            out!("{}", bold(&format!("Job `{}` timed out after {:.0}s and was stopped", plan.name, t.as_secs_f64())));
            Ok(1)
        }
        Ok(Ended::Exited(exit)) => Ok(report(plan, &renderer, exit, took, &bold)),
    };
    match destroyed {
        Err(e) if end.is_ok() => Err(anyhow::Error::new(e).context("cleaning up the job")),
        Err(e) => {
            err!("ephemerd: warning: cleaning up the job: {e}");
            end
        }
        Ok(()) => end,
    }
}

fn report(plan: &JobPlan, r: &Renderer, exit: Exit, took: f64, bold: &dyn Fn(&str) -> String) -> u8 {
    if exit.oom_killed && exit.code != 0 {
        out!("{}", bold(&format!("Job `{}` failed: out of memory (killed by the kernel's OOM killer)", plan.name)));
        return u8::try_from(exit.code).unwrap_or(1).max(1);
    }
    if exit.oom_killed {
        // The job went on past the kill: a continue-on-error step (or a process it could do without) died.
        out!("warning: the kernel's OOM killer stopped a process of job `{}`; the job went on", plan.name);
    }
    match (exit.code, r.first_failure()) {
        (0, _) => {
            out!("{}", bold(&format!("Job `{}` succeeded in {took:.1}s", plan.name)));
            0
        }
        (code, Some((n, name, rc))) => {
            out!("{}", bold(&format!("Job `{}` failed: step {n} `{name}` exited with {rc} ({took:.1}s)", plan.name)));
            u8::try_from(code).unwrap_or(1).max(1)
        }
        (code, None) => {
            out!("{}", bold(&format!("Job `{}` failed with exit code {code} ({took:.1}s)", plan.name)));
            u8::try_from(code).unwrap_or(1).max(1)
        }
    }
}

enum Ended {
    Exited(Exit),
    Interrupted,
    TimedOut(Duration),
}

#[derive(Default)]
struct LogCursor {
    offset: u64,
}

/// Prints whatever the log gained since `cur`.
fn print_new(path: &Path, cur: &mut LogCursor, r: &mut Renderer, last: bool) {
    if let Ok(mut f) = std::fs::File::open(path)
        && f.seek(SeekFrom::Start(cur.offset)).is_ok()
    {
        let mut buf = Vec::new();
        if let Ok(n) = f.read_to_end(&mut buf) {
            cur.offset += n as u64;
            let mut text = r.feed(&buf);
            if last {
                text.push_str(&r.finish());
            }
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(text.as_bytes());
            let _ = out.flush();
        }
    }
}

/// Prints `text` as it is.
fn print(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

/// Runs the job's steps in order (each when its condition holds, given how the earlier ones ended), with
/// their output live, until they are done or the job is interrupted or times out. The job's exit code is the
/// first failing step's, 0 when none failed (a `continue-on-error` step's failure does not count).
async fn run_steps(job: &Job, plan: &JobPlan, r: &mut Renderer, cur: &mut LogCursor) -> anyhow::Result<Ended> {
    let (rt, id) = (job.target.as_ref(), job.id.as_str());
    let log = rt.log_path(id);
    let mut stop = Stops {
        int: signal(SignalKind::interrupt()).context("installing the SIGINT handler")?,
        term: signal(SignalKind::terminate()).context("installing the SIGTERM handler")?,
        deadline: plan.timeout.map(|t| (tokio::time::Instant::now() + t, t)),
    };
    let (mut all_passed, mut first_rc, mut failed_by_oom, mut any_oom) = (true, 0u32, false, false);
    for step in &plan.steps {
        let n = step.number;
        if !matches!(step.kind, StepKind::Run { .. }) || !step.cond.holds(all_passed) {
            print(&r.skip(n));
            continue;
        }
        print(&r.start(n));
        let exec_id = format!("step-{n}");
        let ooms = rt.oom_kills(id);
        rt.exec(id, &exec_id, driver::step_args(n)).await.with_context(|| format!("starting step {n}"))?;
        let watched = watch(job, &exec_id, &mut stop, r, cur).await;
        let deleted = rt.delete_exec(id, &exec_id).await;
        print_new(&log, cur, r, false);
        let watched = watched?;
        deleted.with_context(|| format!("removing step {n}'s process"))?;
        let rc = match watched {
            Watched::Exited(rc) => rc,
            Watched::Stopped(ended) => {
                print(&r.finish());
                return Ok(ended);
            }
        };
        print(&r.end(n, i32::try_from(rc).unwrap_or(i32::MAX)));
        let oom = rt.oom_kills(id) > ooms;
        any_oom |= oom;
        if rc != 0 && !step.continue_on_error {
            if all_passed {
                (first_rc, failed_by_oom) = (rc, oom);
            }
            all_passed = false;
        }
    }
    let exit = Exit { code: first_rc, oom_killed: if first_rc == 0 { any_oom } else { failed_by_oom } };
    rt.record_exit(id, exit)?;
    Ok(Ended::Exited(exit))
}

/// What stops a job before its steps are done.
struct Stops {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
    /// When the job times out, and its timeout.
    deadline: Option<(tokio::time::Instant, Duration)>,
}

enum Watched {
    Exited(u32),
    Stopped(Ended),
}

/// Streams a step's output until its process exits (its exit code), or the job is interrupted or times out
/// (then every process of the job is stopped, and how it ended).
async fn watch(
    job: &Job,
    exec_id: &str,
    stop: &mut Stops,
    r: &mut Renderer,
    cur: &mut LogCursor,
) -> anyhow::Result<Watched> {
    let (rt, id) = (job.target.as_ref(), job.id.as_str());
    let log = rt.log_path(id);
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    let far = tokio::time::Instant::now() + Duration::from_secs(u64::MAX / 4);
    let deadline = tokio::time::sleep_until(stop.deadline.map_or(far, |(at, _)| at));
    tokio::pin!(deadline);
    let wait = rt.wait_exec(id, exec_id);
    tokio::pin!(wait);
    let mut stopping: Option<Ended> = None;
    let mut kill_at: Option<Instant> = None;
    loop {
        tokio::select! {
            rc = &mut wait => {
                let rc = rc?;
                print_new(&log, cur, r, false);
                return Ok(stopping.map_or(Watched::Exited(rc), Watched::Stopped));
            }
            _ = tick.tick() => {
                print_new(&log, cur, r, false);
                if kill_at.is_some_and(|t| Instant::now() >= t) {
                    rt.kill(id, 9).await?;
                    kill_at = None;
                }
            }
            _ = stop.int.recv(), if stopping.is_none() => {
                err!("\nStopping the job (Ctrl-C)…");
                stopping = Some(Ended::Interrupted);
                rt.kill(id, 15).await?;
                kill_at = Some(Instant::now() + Duration::from_secs(5));
            }
            _ = stop.term.recv(), if stopping.is_none() => {
                err!("Stopping the job (SIGTERM)…");
                stopping = Some(Ended::Interrupted);
                rt.kill(id, 15).await?;
                kill_at = Some(Instant::now() + Duration::from_secs(5));
            }
            _ = &mut deadline, if stopping.is_none() => {
                stopping = Some(Ended::TimedOut(stop.deadline.map(|(_, t)| t).unwrap_or_default()));
                rt.kill(id, 9).await?;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_stands_for_its_only_workflow() {
        let repo = tempfile::tempdir().unwrap();
        let wf = repo.path().join(".github/workflows");
        std::fs::create_dir_all(&wf).unwrap();
        let empty = find_workflow(Some(repo.path().to_path_buf())).unwrap_err().to_string();
        assert!(empty.contains("is a directory with no workflow"), "{empty}");
        std::fs::write(wf.join("ci.yml"), "on: push\n").unwrap();
        assert_eq!(find_workflow(Some(repo.path().to_path_buf())).unwrap(), wf.join("ci.yml"));
        assert_eq!(find_workflow(Some(wf.clone())).unwrap(), wf.join("ci.yml"), "the workflows dir itself too");
        std::fs::write(wf.join("release.yaml"), "on: push\n").unwrap();
        let two = find_workflow(Some(repo.path().to_path_buf())).unwrap_err().to_string();
        assert!(two.contains("several workflows") && two.contains("ci.yml") && two.contains("release.yaml"), "{two}");
        let missing = find_workflow(Some(repo.path().join("nope.yml"))).unwrap_err().to_string();
        assert!(missing.contains("does not exist"), "{missing}");
    }
}

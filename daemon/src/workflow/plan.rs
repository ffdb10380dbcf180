//! From a parsed workflow to the plan of one job: which job, its steps in order with their final
//! environment (workflow < job < step), shell, working directory and run condition; what is skipped and why.
//! Pure: every rule here is tested as a table.

use std::time::Duration;

use super::model::{Scalar, Step, Workflow};

/// Where the repository is in the job container (what `actions/checkout` gives).
pub const WORKSPACE: &str = "/workspace";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{place}: {message}")]
pub struct PlanError {
    pub place: String,
    pub message: String,
}

/// When a step runs, from its `if:`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cond {
    /// No earlier step failed (the default, `success()`).
    Success,
    /// An earlier step failed (`failure()`).
    Failure,
    /// Whatever happened (`always()`, `!cancelled()`).
    Always,
    /// Never (`cancelled()` in a run that is not cancelled, or `false`).
    Never,
}

impl Cond {
    /// Whether a step with this condition runs, given whether every earlier step passed.
    pub fn holds(self, all_passed: bool) -> bool {
        match self {
            Cond::Success => all_passed,
            Cond::Failure => !all_passed,
            Cond::Always => true,
            Cond::Never => false,
        }
    }
}

/// The shell a `run:` step uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shell {
    /// Unspecified: `bash -e {0}`, or `sh -e {0}` where bash is missing (GitHub's rule).
    Default,
    /// A command template with `{0}` for the script path, and the script's file extension.
    Template { command: Vec<String>, ext: &'static str },
}

#[derive(Debug, Clone, PartialEq)]
pub enum StepKind {
    Run {
        script: String,
        shell: Shell,
        workdir: String,
    },
    /// A `uses:` step; `ephemerd run` does not run actions.
    Skipped {
        uses: String,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct StepPlan {
    /// 1-based position in the job.
    pub number: usize,
    pub name: String,
    pub kind: StepKind,
    pub env: Vec<(String, String)>,
    pub cond: Cond,
    pub continue_on_error: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct JobPlan {
    pub workflow: String,
    pub job_id: String,
    pub name: String,
    pub steps: Vec<StepPlan>,
    pub timeout: Option<Duration>,
    /// Things in the workflow that `ephemerd run` ignores, one line each.
    pub warnings: Vec<String>,
}

fn err(place: impl Into<String>, message: impl Into<String>) -> PlanError {
    PlanError { place: place.into(), message: message.into() }
}

/// Parses an `if:` expression; `${{ }}` is optional, as in GitHub.
pub fn parse_cond(expr: &str) -> Option<Cond> {
    let e = expr.trim();
    let e = e.strip_prefix("${{").and_then(|x| x.strip_suffix("}}")).unwrap_or(e).trim();
    Some(match e {
        "" | "success()" | "true" => Cond::Success,
        "failure()" => Cond::Failure,
        "always()" | "!cancelled()" | "success() || failure()" | "failure() || success()" => Cond::Always,
        "cancelled()" | "false" => Cond::Never,
        _ => return None,
    })
}

/// Resolves a `shell:` value as GitHub documents it.
pub fn parse_shell(s: &str) -> Option<Shell> {
    let t = |c: &[&str], ext| Shell::Template { command: c.iter().map(|x| x.to_string()).collect(), ext };
    Some(match s.trim() {
        "bash" => t(&["bash", "--noprofile", "--norc", "-eo", "pipefail", "{0}"], "sh"),
        "sh" => t(&["sh", "-e", "{0}"], "sh"),
        "python" => t(&["python3", "{0}"], "py"),
        "pwsh" => t(&["pwsh", "-command", ". '{0}'"], "ps1"),
        custom if custom.contains("{0}") => {
            Shell::Template { command: custom.split_whitespace().map(String::from).collect(), ext: "sh" }
        }
        _ => return None,
    })
}

fn merge(into: &mut Vec<(String, String)>, from: &indexmap::IndexMap<String, Scalar>) {
    for (k, Scalar(v)) in from {
        match into.iter_mut().find(|(x, _)| x == k) {
            Some(e) => e.1 = v.clone(),
            None => into.push((k.clone(), v.clone())),
        }
    }
}

fn step_name(step: &Step) -> String {
    if let Some(n) = &step.name {
        return n.clone();
    }
    if let Some(u) = &step.uses {
        return format!("Run {u}");
    }
    let first = step.run.as_deref().unwrap_or("").lines().find(|l| !l.trim().is_empty()).unwrap_or("").trim();
    format!("Run {first}")
}

/// What `${{ }}` expressions can see in `ephemerd run`.
struct ExprContext<'a> {
    env: &'a [(String, String)],
    job: &'a str,
    workflow: &'a str,
}

/// Replaces `${{ expr }}` in `text`. Only plain context lookups are supported; anything else is an error
/// naming the expression (a shell would otherwise fail on it with a confusing "bad substitution").
fn expand(text: &str, ctx: &ExprContext<'_>) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 3..];
        let end = after.find("}}").ok_or_else(|| format!("`{}` has no closing }}}}", &rest[start..]))?;
        let expr = after[..end].trim();
        let value = match expr {
            "github.workspace" => WORKSPACE.to_string(),
            "github.job" => ctx.job.to_string(),
            "github.workflow" => ctx.workflow.to_string(),
            "runner.os" => "Linux".to_string(),
            "runner.temp" => "/tmp".to_string(),
            "runner.arch" => match std::env::consts::ARCH {
                "aarch64" => "ARM64".to_string(),
                _ => "X64".to_string(),
            },
            e if e.starts_with("env.") => {
                let k = &e[4..];
                ctx.env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()).unwrap_or_default()
            }
            e => {
                return Err(format!(
                    "expression `${{{{ {e} }}}}` is not supported by `ephemerd run` (it knows env.*, \
                     github.workspace, github.job, github.workflow, runner.os, runner.arch, runner.temp)"
                ));
            }
        };
        out.push_str(&value);
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

fn resolve_workdir(dir: Option<&str>) -> String {
    match dir {
        None | Some("") => WORKSPACE.to_string(),
        Some(d) if d.starts_with('/') => d.to_string(),
        Some(d) => format!("{WORKSPACE}/{}", d.trim_start_matches("./")),
    }
}

/// Plans job `job` (the first one when `None`) of `wf`, read from `file` (used in messages).
pub fn plan(wf: &Workflow, file: &str, job: Option<&str>) -> Result<JobPlan, PlanError> {
    let (job_id, j) = match job {
        Some(name) => wf.jobs.get_key_value(name).ok_or_else(|| {
            let known: Vec<&str> = wf.jobs.keys().map(String::as_str).collect();
            err(file, format!("no job named `{name}` (jobs: {})", known.join(", ")))
        })?,
        None => wf.jobs.first().ok_or_else(|| err(file, "the workflow has no jobs"))?,
    };
    let place = format!("{file}: jobs.{job_id}");
    if let Some(u) = &j.uses {
        return Err(err(&place, format!("calls the reusable workflow `{u}`, which `ephemerd run` cannot run")));
    }
    if j.steps.is_empty() {
        return Err(err(&place, "the job has no steps"));
    }
    let mut warnings = Vec::new();
    for (field, present) in [
        ("container", j.container.is_some()),
        ("services", j.services.is_some()),
        ("strategy", j.strategy.is_some()),
        ("needs", j.needs.is_some()),
    ] {
        if present {
            warnings.push(format!("jobs.{job_id}.{field} is ignored by `ephemerd run`"));
        }
    }
    if let Some(Scalar(c)) = &j.if_ {
        warnings.push(format!("jobs.{job_id}.if (`{c}`) is ignored: the job always runs"));
    }

    let workflow_name = wf.name.clone().unwrap_or_else(|| file.to_string());
    let mut base_env = vec![
        ("CI".to_string(), "true".to_string()),
        ("GITHUB_WORKSPACE".to_string(), WORKSPACE.to_string()),
        ("GITHUB_JOB".to_string(), job_id.clone()),
        ("GITHUB_WORKFLOW".to_string(), wf.name.clone().unwrap_or_else(|| file.to_string())),
        ("RUNNER_OS".to_string(), "Linux".to_string()),
        ("RUNNER_TEMP".to_string(), "/tmp".to_string()),
        ("EPHEMERD".to_string(), "1".to_string()),
    ];
    merge(&mut base_env, &wf.env);
    merge(&mut base_env, &j.env);

    let default_shell = j.defaults.run.shell.as_ref().or(wf.defaults.run.shell.as_ref());
    let default_dir = j.defaults.run.working_directory.as_ref().or(wf.defaults.run.working_directory.as_ref());

    let mut steps = Vec::new();
    for (i, s) in j.steps.iter().enumerate() {
        let number = i + 1;
        let sp = format!("{place}.steps[{i}]");
        let cond = match &s.if_ {
            None => Cond::Success,
            Some(Scalar(e)) => parse_cond(e).ok_or_else(|| {
                err(&sp, format!("`if: {e}` is not supported; use success(), failure(), always() or cancelled()"))
            })?,
        };
        let continue_on_error = match &s.continue_on_error {
            None => false,
            Some(Scalar(v)) if v == "true" => true,
            Some(Scalar(v)) if v == "false" => false,
            Some(Scalar(v)) => return Err(err(&sp, format!("continue-on-error must be true or false, not `{v}`"))),
        };
        let mut env = base_env.clone();
        merge(&mut env, &s.env);
        let raw = env.clone();
        let ctx = ExprContext { env: &raw, job: job_id, workflow: &workflow_name };
        for (_, v) in env.iter_mut() {
            *v = expand(v, &ctx).map_err(|m| err(format!("{sp}.env"), m))?;
        }
        let ctx = ExprContext { env: &env, job: job_id, workflow: &workflow_name };
        let ex = |field: &str, text: &str| expand(text, &ctx).map_err(|m| err(format!("{sp}.{field}"), m));
        let kind = match (&s.run, &s.uses) {
            (Some(_), Some(_)) => return Err(err(&sp, "a step has either `run` or `uses`, not both")),
            (None, None) => return Err(err(&sp, "a step needs `run` or `uses`")),
            (None, Some(u)) => StepKind::Skipped { uses: u.clone() },
            (Some(script), None) => {
                let shell = match s.shell.as_ref().or(default_shell) {
                    None => Shell::Default,
                    Some(sh) => parse_shell(sh).ok_or_else(|| {
                        err(&sp, format!("shell `{sh}` is not bash, sh, python, pwsh or a command with {{0}}"))
                    })?,
                };
                let dir = s.working_directory.as_deref().or(default_dir.map(String::as_str));
                let dir = dir.map(|d| ex("working-directory", d)).transpose()?;
                let workdir = resolve_workdir(dir.as_deref());
                StepKind::Run { script: ex("run", script)?, shell, workdir }
            }
        };
        if s.timeout_minutes.is_some() {
            warnings.push(format!("jobs.{job_id}.steps[{i}].timeout-minutes is ignored; the job timeout applies"));
        }
        let name = ex("name", &step_name(s))?;
        steps.push(StepPlan { number, name, kind, env, cond, continue_on_error });
    }
    let skipped: Vec<String> = steps
        .iter()
        .filter_map(|s| match &s.kind {
            StepKind::Skipped { uses } => Some(format!("{} ({uses})", s.number)),
            _ => None,
        })
        .collect();
    if !skipped.is_empty() {
        warnings.push(format!(
            "`uses:` steps are not run by `ephemerd run` and are skipped: step {}; the repository is already in {WORKSPACE}",
            skipped.join(", step ")
        ));
    }
    let timeout = match j.timeout_minutes {
        Some(m) if m > 0.0 && m.is_finite() => Some(Duration::from_secs_f64(m * 60.0)),
        Some(m) => return Err(err(&place, format!("timeout-minutes must be positive, not {m}"))),
        None => None,
    };
    Ok(JobPlan {
        workflow: wf.name.clone().unwrap_or_else(|| file.to_string()),
        job_id: job_id.clone(),
        name: j.name.clone().unwrap_or_else(|| job_id.clone()),
        steps,
        timeout,
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::super::model::parse;
    use super::*;

    const WF: &str = r#"
name: demo
env: { LEVEL: workflow, WF_ONLY: "1" }
defaults:
  run:
    working-directory: sub
jobs:
  build:
    runs-on: [self-hosted, linux]
    env: { LEVEL: job, JOB_ONLY: 2 }
    steps:
      - uses: actions/checkout@v4
      - name: Greet
        run: echo "$LEVEL"
        env: { LEVEL: step }
      - run: |
          exit 3
        shell: bash
        working-directory: /tmp
      - name: After failure
        if: ${{ failure() }}
        run: echo cleanup
      - if: always()
        run: echo always
        continue-on-error: true
  other:
    steps:
      - run: echo other
"#;

    #[test]
    fn plans_the_first_job_with_layered_env() {
        let wf = parse(WF).unwrap();
        let p = plan(&wf, "demo.yml", None).unwrap();
        assert_eq!(p.job_id, "build");
        assert_eq!(p.steps.len(), 5);
        assert!(matches!(p.steps[0].kind, StepKind::Skipped { .. }));
        let greet = &p.steps[1];
        assert_eq!(greet.name, "Greet");
        let get = |k: &str| greet.env.iter().find(|(x, _)| x == k).map(|(_, v)| v.clone());
        assert_eq!(get("LEVEL").as_deref(), Some("step"));
        assert_eq!(get("WF_ONLY").as_deref(), Some("1"));
        assert_eq!(get("JOB_ONLY").as_deref(), Some("2"));
        assert_eq!(get("CI").as_deref(), Some("true"));
        match &greet.kind {
            StepKind::Run { shell, workdir, .. } => {
                assert_eq!(*shell, Shell::Default);
                assert_eq!(workdir, "/workspace/sub");
            }
            k => panic!("{k:?}"),
        }
        match &p.steps[2].kind {
            StepKind::Run { shell: Shell::Template { command, .. }, workdir, .. } => {
                assert_eq!(command[0], "bash");
                assert!(command.contains(&"pipefail".to_string()));
                assert_eq!(workdir, "/tmp");
            }
            k => panic!("{k:?}"),
        }
        assert_eq!(p.steps[2].name, "Run exit 3");
        assert_eq!(p.steps[3].cond, Cond::Failure);
        assert_eq!(p.steps[4].cond, Cond::Always);
        assert!(p.steps[4].continue_on_error);
        assert!(p.warnings.iter().any(|w| w.contains("step 1 (actions/checkout@v4)")), "{:?}", p.warnings);
    }

    #[test]
    fn picks_a_job_by_name_and_names_the_known_ones() {
        let wf = parse(WF).unwrap();
        assert_eq!(plan(&wf, "demo.yml", Some("other")).unwrap().steps.len(), 1);
        let e = plan(&wf, "demo.yml", Some("nope")).unwrap_err().to_string();
        assert_eq!(e, "demo.yml: no job named `nope` (jobs: build, other)");
    }

    #[test]
    fn bad_steps_are_named_by_place() {
        let cases = [
            ("jobs: {a: {steps: [{name: x}]}}", "jobs.a.steps[0]: a step needs `run` or `uses`"),
            ("jobs: {a: {steps: [{run: x, uses: y}]}}", "jobs.a.steps[0]: a step has either"),
            (
                "jobs: {a: {steps: [{run: x, if: 'github.ref == 1'}]}}",
                "jobs.a.steps[0]: `if: github.ref == 1` is not supported",
            ),
            ("jobs: {a: {steps: [{run: x, shell: fish}]}}", "jobs.a.steps[0]: shell `fish`"),
            ("jobs: {a: {steps: []}}", "jobs.a: the job has no steps"),
            ("jobs: {a: {uses: o/r/.github/workflows/x.yml@v1}}", "reusable workflow"),
            ("jobs: {}", "the workflow has no jobs"),
        ];
        for (text, want) in cases {
            let wf = parse(text).unwrap();
            let e = plan(&wf, "f.yml", None).unwrap_err().to_string();
            assert!(e.starts_with("f.yml") && e.contains(want), "{text}: {e}");
        }
    }

    #[test]
    fn yaml_errors_say_where() {
        let e = parse("jobs:\n  a:\n    steps: [\n").unwrap_err();
        assert!(e.contains("line"), "{e}");
        let e = parse("name: x\n").unwrap_err();
        assert!(e.contains("jobs"), "{e}");
    }

    #[test]
    fn expressions_are_expanded_or_named() {
        let wf = parse(
            "name: W\nenv: {A: a1}\njobs:\n  j:\n    steps:\n      - name: Use ${{ env.A }}\n        env: {B: '${{ runner.os }}-x'}\n        working-directory: ${{ github.workspace }}/sub\n        run: echo ${{ env.A }} ${{env.B}} ${{ github.job }} ${{ github.workflow }} ${{ env.MISSING }}.\n",
        )
        .unwrap();
        let p = plan(&wf, "f.yml", None).unwrap();
        let s = &p.steps[0];
        assert_eq!(s.name, "Use a1");
        match &s.kind {
            StepKind::Run { script, workdir, .. } => {
                assert_eq!(script, "echo a1 Linux-x j W .");
                assert_eq!(workdir, "/workspace/sub");
            }
            k => panic!("{k:?}"),
        }
        let wf = parse("jobs:\n  j:\n    steps:\n      - run: echo ${{ secrets.TOKEN }}\n").unwrap();
        let e = plan(&wf, "f.yml", None).unwrap_err().to_string();
        assert!(e.starts_with("f.yml: jobs.j.steps[0].run: expression `${{ secrets.TOKEN }}` is not supported"), "{e}");
        let wf = parse("jobs:\n  j:\n    steps:\n      - run: echo ${{ env.X\n").unwrap();
        assert!(plan(&wf, "f.yml", None).unwrap_err().to_string().contains("no closing"));
    }

    #[test]
    fn conditions_and_shells() {
        for (e, c) in [
            ("", Cond::Success),
            ("${{ success() }}", Cond::Success),
            ("failure()", Cond::Failure),
            ("${{always()}}", Cond::Always),
            ("!cancelled()", Cond::Always),
            ("cancelled()", Cond::Never),
        ] {
            assert_eq!(parse_cond(e), Some(c), "{e}");
        }
        assert_eq!(parse_cond("github.event_name == 'push'"), None);
        assert!(matches!(parse_shell("python"), Some(Shell::Template { ext: "py", .. })));
        assert!(matches!(parse_shell("perl {0}"), Some(Shell::Template { .. })));
        assert_eq!(parse_shell("zsh"), None);
    }
}

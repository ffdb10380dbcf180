//! The files that run a planned job's steps inside its container: each step's script and a wrapper that sets
//! its env and directory and execs its shell. The host runs each step as a process of its own in the job's
//! container (see `cmd::run`), so which step is running, and how it ended, is known outside the job: no
//! step can forge another's result. The container's own process only keeps it alive between steps.

use super::plan::{JobPlan, Shell, StepKind};

/// Where the job's scripts are mounted (read-only) in the container.
pub const SCRIPTS_DIR: &str = "/ephemerd";

/// Files to write under the job's scripts dir (relative path, content).
#[derive(Debug)]
pub struct Rendered {
    pub files: Vec<(String, String)>,
}

/// The container's own process: it idles until stopped, and reaps what the steps leave behind.
pub fn keeper_args() -> Vec<String> {
    ["/bin/sh", "-c", "trap 'exit 0' TERM INT; while :; do sleep 3600 & wait $!; done"].map(String::from).to_vec()
}

/// The command that runs step `n` (a `run:` step) in the job's container.
pub fn step_args(n: usize) -> Vec<String> {
    vec!["/bin/sh".into(), format!("{SCRIPTS_DIR}/steps/{n}.run")]
}

/// Quotes a string for POSIX sh.
pub fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn valid_env_name(k: &str) -> bool {
    let mut c = k.chars();
    matches!(c.next(), Some(ch) if ch == '_' || ch.is_ascii_alphabetic())
        && c.all(|ch| ch == '_' || ch.is_ascii_alphanumeric())
}

pub fn render(plan: &JobPlan) -> Result<Rendered, String> {
    let mut files = Vec::new();
    for s in &plan.steps {
        let n = s.number;
        let StepKind::Run { script, shell, workdir } = &s.kind else {
            continue;
        };

        let ext = match shell {
            Shell::Default => "sh",
            Shell::Template { ext, .. } => ext,
        };
        let script_path = format!("{SCRIPTS_DIR}/steps/{n}.{ext}");
        files.push((format!("steps/{n}.{ext}"), script.clone()));
        let mut wrapper = String::from("# step wrapper: env, directory, shell\n");
        for (k, v) in &s.env {
            if !valid_env_name(k) {
                return Err(format!("step {n}: `{k}` is not a valid environment variable name"));
            }
            wrapper.push_str(&format!("export {k}={}\n", sh_quote(v)));
        }
        wrapper.push_str(&format!(
            "cd {wd} 2>/dev/null || {{ echo \"working directory {wd_msg} does not exist\" >&2; exit 1; }}\n",
            wd = sh_quote(workdir),
            wd_msg = workdir.replace(['"', '$', '`', '\\'], "")
        ));
        match shell {
            Shell::Default => wrapper.push_str(&format!(
                "if command -v bash >/dev/null 2>&1; then exec bash -e {p}; else exec sh -e {p}; fi\n",
                p = sh_quote(&script_path)
            )),
            Shell::Template { command, .. } => {
                let words: Vec<String> = command.iter().map(|w| sh_quote(&w.replace("{0}", &script_path))).collect();
                wrapper.push_str(&format!("exec {}\n", words.join(" ")));
            }
        }
        files.push((format!("steps/{n}.run"), wrapper));
    }
    Ok(Rendered { files })
}

#[cfg(test)]
mod tests {
    use super::super::{model::parse, plan::plan};
    use super::*;

    #[test]
    fn each_run_step_gets_its_script_and_a_wrapper() {
        let wf = parse(
            "env: {A: \"it's\"}\njobs:\n  j:\n    steps:\n      - uses: actions/checkout@v4\n      - run: echo 1\n      - run: echo 2\n        if: failure()\n        shell: python\n",
        )
        .unwrap();
        let p = plan(&wf, "w.yml", None).unwrap();
        let r = render(&p).unwrap();
        let get = |name: &str| r.files.iter().find(|(n, _)| n == name).map(|(_, c)| c.clone()).unwrap();
        assert!(!r.files.iter().any(|(n, _)| n.starts_with("steps/1.")), "a `uses:` step has no files");
        assert_eq!(get("steps/2.sh"), "echo 1");
        let w2 = get("steps/2.run");
        assert!(w2.contains("export A='it'\\''s'\n"), "{w2}");
        assert!(w2.contains("cd '/workspace'"));
        assert!(w2.contains("exec bash -e '/ephemerd/steps/2.sh'"));
        assert!(get("steps/3.run").contains("exec 'python3' '/ephemerd/steps/3.py'"));
        assert_eq!(step_args(2), vec!["/bin/sh", "/ephemerd/steps/2.run"]);
    }

    #[test]
    fn bad_env_names_are_refused() {
        let wf = parse("jobs:\n  j:\n    steps:\n      - run: x\n        env: {\"A B\": 1}\n").unwrap();
        let p = plan(&wf, "w.yml", None).unwrap();
        assert!(render(&p).unwrap_err().contains("`A B`"));
    }
}

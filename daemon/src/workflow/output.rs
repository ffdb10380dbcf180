//! Turns the job's raw log (step output interleaved with the driver's marker lines) into what the user
//! sees: a header per step, the step's output as it comes, a result line per step, and the job's outcome.
//! Pure: fed bytes, it returns text, and it remembers which step failed first.

use std::time::{Duration, Instant};

use super::driver::marker;
use super::plan::JobPlan;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepResult {
    Passed,
    Failed(i32),
    Skipped,
}

pub struct Renderer {
    marker: String,
    names: Vec<String>,
    total: usize,
    partial: Vec<u8>,
    started: Option<Instant>,
    pub results: Vec<(usize, StepResult)>,
    color: bool,
}

impl Renderer {
    pub fn new(plan: &JobPlan, nonce: &str, color: bool) -> Self {
        Self {
            marker: marker(nonce),
            names: plan.steps.iter().map(|s| s.name.clone()).collect(),
            total: plan.steps.len(),
            partial: Vec::new(),
            started: None,
            results: Vec::new(),
            color,
        }
    }

    fn name(&self, n: usize) -> &str {
        self.names.get(n.wrapping_sub(1)).map(String::as_str).unwrap_or("?")
    }

    fn paint(&self, code: &str, s: &str) -> String {
        if self.color { format!("\x1b[{code}m{s}\x1b[0m") } else { s.to_string() }
    }

    /// Feeds raw log bytes; returns the text to print (complete lines only).
    pub fn feed(&mut self, bytes: &[u8]) -> String {
        self.partial.extend_from_slice(bytes);
        let mut out = String::new();
        while let Some(pos) = self.partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=pos).collect();
            let line = String::from_utf8_lossy(&line[..line.len() - 1]).into_owned();
            out.push_str(&self.line(&line));
        }
        out
    }

    /// Flushes a last line without a newline.
    pub fn finish(&mut self) -> String {
        if self.partial.is_empty() {
            return String::new();
        }
        let rest = String::from_utf8_lossy(&std::mem::take(&mut self.partial)).into_owned();
        self.line(&rest)
    }

    fn line(&mut self, line: &str) -> String {
        let Some(rest) = line.strip_prefix(self.marker.as_str()) else {
            return format!("{line}\n");
        };
        let parts: Vec<&str> = rest.split("::").collect();
        let n: usize = parts.get(1).and_then(|x| x.parse().ok()).unwrap_or(0);
        let name = self.name(n).to_string();
        match parts.first().copied() {
            Some("start") => {
                self.started = Some(Instant::now());
                self.paint("1;36", &format!("▶ Step {n}/{}: {name}", self.total)) + "\n"
            }
            Some("skip") => {
                self.results.push((n, StepResult::Skipped));
                self.paint("2", &format!("○ Step {n}/{}: {name} (skipped)", self.total)) + "\n"
            }
            Some("end") => {
                let rc: i32 = parts.get(2).and_then(|x| x.parse().ok()).unwrap_or(-1);
                let took = self.started.take().map(|s| s.elapsed()).unwrap_or(Duration::ZERO);
                if rc == 0 {
                    self.results.push((n, StepResult::Passed));
                    self.paint("32", &format!("✓ {name} ({:.1}s)", took.as_secs_f64())) + "\n"
                } else {
                    self.results.push((n, StepResult::Failed(rc)));
                    self.paint("1;31", &format!("✗ {name} failed with exit code {rc} ({:.1}s)", took.as_secs_f64()))
                        + "\n"
                }
            }
            _ => format!("{line}\n"),
        }
    }

    /// The first failed step: (number, name, exit code).
    pub fn first_failure(&self) -> Option<(usize, String, i32)> {
        self.results.iter().find_map(|(n, r)| match r {
            StepResult::Failed(rc) => Some((*n, self.name(*n).to_string(), *rc)),
            _ => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::{model::parse, plan::plan};
    use super::*;

    #[test]
    fn markers_become_headers_and_results() {
        let wf = parse("jobs:\n  j:\n    steps:\n      - {name: One, run: a}\n      - {name: Two, run: b}\n      - {name: Three, run: c, if: failure()}\n").unwrap();
        let p = plan(&wf, "w.yml", None).unwrap();
        let mut r = Renderer::new(&p, "n1", false);
        let mut out = r.feed(b"::ephemerd-n1::start::1\nhello\n::ephemerd-n1::end::1::0\n::ephemerd-n1::sta");
        out +=
            &r.feed(b"rt::2\n::ephemerd-n2::end::2::0\nboom\n::ephemerd-n1::end::2::7\n::ephemerd-n1::skip::3\ntail");
        out += &r.finish();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "▶ Step 1/3: One");
        assert_eq!(lines[1], "hello");
        assert!(lines[2].starts_with("✓ One ("));
        assert_eq!(lines[3], "▶ Step 2/3: Two");
        assert_eq!(lines[4], "::ephemerd-n2::end::2::0", "a forged marker is plain output");
        assert_eq!(lines[5], "boom");
        assert!(lines[6].starts_with("✗ Two failed with exit code 7"));
        assert_eq!(lines[7], "○ Step 3/3: Three (skipped)");
        assert_eq!(lines[8], "tail");
        assert_eq!(r.first_failure(), Some((2, "Two".to_string(), 7)));
    }
}

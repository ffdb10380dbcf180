//! What the user sees of a job run by `ephemerd run`: a header per step, the step's output as it comes, a
//! result line per step, and which step failed first. The host tells it when a step starts, is skipped or
//! ends (it runs each step as a process of its own), so nothing a step prints can pass for a result. Pure:
//! fed events and bytes, it returns text.

use std::time::{Duration, Instant};

use super::plan::JobPlan;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepResult {
    Passed,
    Failed(i32),
    Skipped,
}

pub struct Renderer {
    names: Vec<String>,
    total: usize,
    partial: Vec<u8>,
    started: Option<Instant>,
    pub results: Vec<(usize, StepResult)>,
    color: bool,
}

impl Renderer {
    pub fn new(plan: &JobPlan, color: bool) -> Self {
        Self {
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

    /// Feeds output bytes; returns the text to print (complete lines only).
    pub fn feed(&mut self, bytes: &[u8]) -> String {
        self.partial.extend_from_slice(bytes);
        let mut out = String::new();
        while let Some(pos) = self.partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=pos).collect();
            out.push_str(&String::from_utf8_lossy(&line));
        }
        out
    }

    /// Flushes a last line without a newline.
    pub fn finish(&mut self) -> String {
        if self.partial.is_empty() {
            return String::new();
        }
        let rest = String::from_utf8_lossy(&std::mem::take(&mut self.partial)).into_owned();
        format!("{rest}\n")
    }

    /// Step `n` starts.
    pub fn start(&mut self, n: usize) -> String {
        self.started = Some(Instant::now());
        self.paint("1;36", &format!("▶ Step {n}/{}: {}", self.total, self.name(n))) + "\n"
    }

    /// Step `n` does not run (its condition is false, or it is a `uses:` step).
    pub fn skip(&mut self, n: usize) -> String {
        self.results.push((n, StepResult::Skipped));
        self.paint("2", &format!("○ Step {n}/{}: {} (skipped)", self.total, self.name(n))) + "\n"
    }

    /// Step `n` exited with `rc`: its output's last partial line, then its result.
    pub fn end(&mut self, n: usize, rc: i32) -> String {
        let mut out = self.finish();
        let took = self.started.take().map(|s| s.elapsed()).unwrap_or(Duration::ZERO).as_secs_f64();
        let name = self.name(n).to_string();
        if rc == 0 {
            self.results.push((n, StepResult::Passed));
            out += &(self.paint("32", &format!("✓ {name} ({took:.1}s)")) + "\n");
        } else {
            self.results.push((n, StepResult::Failed(rc)));
            out += &(self.paint("1;31", &format!("✗ {name} failed with exit code {rc} ({took:.1}s)")) + "\n");
        }
        out
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
    fn steps_get_headers_output_and_results() {
        let wf = parse("jobs:\n  j:\n    steps:\n      - {name: One, run: a}\n      - {name: Two, run: b}\n      - {name: Three, run: c, if: failure()}\n").unwrap();
        let p = plan(&wf, "w.yml", None).unwrap();
        let mut r = Renderer::new(&p, false);
        let mut out = r.start(1);
        out += &r.feed(b"hello\n\xff half");
        out += &r.feed(b" a line");
        out += &r.end(1, 0);
        out += &r.start(2);
        out += &r.feed(b"\xe2\x9c\x93 Two (0.0s)\n");
        out += &r.end(2, 7);
        out += &r.skip(3);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "▶ Step 1/3: One");
        assert_eq!(lines[1], "hello");
        assert_eq!(lines[2], "\u{fffd} half a line", "a partial line is flushed when its step ends");
        assert!(lines[3].starts_with("✓ One ("));
        assert_eq!(lines[4], "▶ Step 2/3: Two");
        assert_eq!(lines[5], "✓ Two (0.0s)", "what a step prints is only output");
        assert!(lines[6].starts_with("✗ Two failed with exit code 7"));
        assert_eq!(lines[7], "○ Step 3/3: Three (skipped)");
        assert_eq!(r.first_failure(), Some((2, "Two".to_string(), 7)));
    }
}

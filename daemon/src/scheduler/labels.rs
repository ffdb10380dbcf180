//! Which jobs are ours: a job is taken only when every label of its `runs-on` is one of ours, compared
//! case-insensitively as GitHub does (registering a runner the forge can never assign strands it). Label
//! profiles give jobs with given labels their own image and limits.

/// A profile: jobs whose labels include all of `labels` run with its image and limits.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    pub name: String,
    pub labels: Vec<String>,
}

fn eq(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

fn contains(set: &[String], l: &str) -> bool {
    set.iter().any(|x| eq(x, l))
}

/// The labels every runner of ours carries: `self-hosted`, the OS and the architecture as the forge spells
/// them, and the configured ones.
pub fn base_labels(os: &str, arch: &str, configured: &[String]) -> Vec<String> {
    let mut v = vec!["self-hosted".to_string(), os.to_string(), arch.to_string()];
    for l in configured {
        if !contains(&v, l) {
            v.push(l.clone());
        }
    }
    v
}

/// GitHub's names for this host's OS and architecture (`Linux`, `X64`).
pub fn github_platform_labels() -> (&'static str, &'static str) {
    let os = match std::env::consts::OS {
        "macos" => "macOS",
        "windows" => "Windows",
        _ => "Linux",
    };
    let arch = match std::env::consts::ARCH {
        "aarch64" => "ARM64",
        "arm" => "ARM",
        "x86" => "X86",
        _ => "X64",
    };
    (os, arch)
}

/// The decision for one job: `None` when it is not ours, else the profile it runs with (index into
/// `profiles`, or `None` for the default) and the labels its runner registers with.
pub fn route(job: &[String], base: &[String], profiles: &[Profile]) -> Option<(Option<usize>, Vec<String>)> {
    // The most specific profile whose labels the job asks for all of.
    let profile = profiles
        .iter()
        .enumerate()
        .filter(|(_, p)| !p.labels.is_empty() && p.labels.iter().all(|l| contains(job, l)))
        .max_by_key(|(_, p)| p.labels.len())
        .map(|(i, _)| i);
    let mut ours = base.to_vec();
    if let Some(i) = profile {
        for l in &profiles[i].labels {
            if !contains(&ours, l) {
                ours.push(l.clone());
            }
        }
    }
    if job.is_empty() || !job.iter().all(|l| contains(&ours, l)) {
        return None;
    }
    Some((profile, ours))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(x: &[&str]) -> Vec<String> {
        x.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_job_is_ours_only_when_every_label_is() {
        let base = base_labels("Linux", "X64", &v(&["fast"]));
        let profiles = vec![
            Profile { name: "gpu".into(), labels: v(&["gpu"]) },
            Profile { name: "big-gpu".into(), labels: v(&["gpu", "big"]) },
        ];
        let cases: &[(&[&str], Option<Option<usize>>)] = &[
            (&["self-hosted"], Some(None)),
            (&["self-hosted", "linux"], Some(None)),
            (&["SELF-HOSTED", "Linux", "x64", "FAST"], Some(None)),
            (&["self-hosted", "gpu"], Some(Some(0))),
            (&["self-hosted", "gpu", "big"], Some(Some(1))),
            (&["self-hosted", "windows"], None),
            (&["ubuntu-latest"], None),
            (&["self-hosted", "big"], None),
            (&[], None),
        ];
        for (job, want) in cases {
            let got = route(&v(job), &base, &profiles).map(|(p, _)| p);
            assert_eq!(got, *want, "{job:?}");
        }
        let (_, labels) = route(&v(&["self-hosted", "gpu", "big"]), &base, &profiles).unwrap();
        assert_eq!(labels, v(&["self-hosted", "Linux", "X64", "fast", "gpu", "big"]));
    }

    #[test]
    fn configured_labels_do_not_repeat_the_base_ones() {
        assert_eq!(base_labels("Linux", "X64", &v(&["linux", "extra"])), v(&["self-hosted", "Linux", "X64", "extra"]));
    }
}

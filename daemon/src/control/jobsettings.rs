//! The job settings the settings window edits (`JobSettings`): how many jobs run at once, the default
//! image, the label profiles' labels and images, and the webhook address. Read from the running config; checked; written into
//! the config file with its comments and every other key kept (a profile's limits and runner command
//! stay with the profile of the same name).

use std::path::Path;

use ephemerd_proto::v1;
use toml_edit::{Array, ArrayOfTables, DocumentMut, Item, Table};

use super::edit::{check_image, check_labels, checked, invalid, parse, set};
use super::errors::ControlError;
use crate::config::Config;

/// The most jobs at once the window accepts (each is a container with its own limits).
pub const MAX_CONCURRENT: u32 = 256;

/// The settings the daemon runs with, and the file they are saved in.
pub fn of(cfg: &Config, path: &Path) -> v1::JobSettings {
    v1::JobSettings {
        max_concurrent: cfg.scheduler.max_concurrent.min(u32::MAX as usize) as u32,
        default_image: cfg.image.default.clone(),
        profiles: cfg
            .scheduler
            .profiles
            .iter()
            .map(|p| v1::LabelProfile {
                name: p.name.clone(),
                labels: p.labels.clone(),
                image: p.image.clone().unwrap_or_default(),
            })
            .collect(),
        config_path: path.display().to_string(),
        webhook_listen: cfg.webhook.listen.map(|a| a.to_string()).unwrap_or_default(),
    }
}

/// Checked settings, ready to be written.
#[derive(Debug, Clone, PartialEq)]
pub struct Checked {
    pub max_concurrent: u32,
    pub default_image: String,
    pub profiles: Vec<Profile>,
    pub webhook_listen: Option<std::net::SocketAddr>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    pub name: String,
    pub labels: Vec<String>,
    pub image: Option<String>,
}

/// Checks what the window sent.
pub fn check(s: v1::JobSettings) -> Result<Checked, ControlError> {
    if s.max_concurrent == 0 || s.max_concurrent > MAX_CONCURRENT {
        return Err(invalid("max_concurrent", format!("between 1 and {MAX_CONCURRENT} jobs at once")));
    }
    let default_image = check_image("default_image", &s.default_image)?;
    let mut profiles: Vec<Profile> = Vec::new();
    for p in s.profiles {
        let labels = check_labels("profiles.labels", &p.labels)?;
        if labels.is_empty() {
            return Err(invalid("profiles.labels", "a label profile needs at least one label"));
        }
        let name = match p.name.trim() {
            "" => labels.join("-"),
            n => n.to_string(),
        };
        if profiles.iter().any(|q| q.name.eq_ignore_ascii_case(&name)) {
            return Err(invalid("profiles.name", format!("two profiles are named `{name}`")));
        }
        let image = match p.image.trim() {
            "" => None,
            i => Some(check_image("profiles.image", i)?),
        };
        profiles.push(Profile { name, labels, image });
    }
    let webhook_listen = match s.webhook_listen.trim() {
        "" => None,
        a => Some(a.parse().map_err(|_| {
            invalid("webhook_listen", format!("`{a}` is not an address and port, e.g. 127.0.0.1:8089 or [::1]:8089"))
        })?),
    };
    Ok(Checked { max_concurrent: s.max_concurrent, default_image, profiles, webhook_listen })
}

/// Group members may change these, but not make a root daemon listen on a new port below 1024 (which
/// they could not open themselves); `now` is where it listens.
pub fn check_caller(s: &Checked, privileged: bool, now: Option<std::net::SocketAddr>) -> Result<(), ControlError> {
    match s.webhook_listen {
        Some(addr) if !privileged && addr.port() < 1024 && Some(addr) != now => Err(ControlError::NotAllowed(format!(
            "only root may make the daemon listen on port {} (below 1024); use a port from 1024 up",
            addr.port()
        ))),
        _ => Ok(()),
    }
}

fn section<'a>(doc: &'a mut DocumentMut, key: &str) -> Result<&'a mut Table, ControlError> {
    if !doc.contains_key(key) {
        doc.insert(key, Item::Table(Table::new()));
    }
    doc.get_mut(key)
        .and_then(|i| i.as_table_mut())
        .ok_or_else(|| ControlError::InvalidConfig(format!("`{key}` in the config file is not a section")))
}

/// The config file's text with these settings. Profiles are matched by name: one the window no longer
/// lists goes, a kept one keeps its other keys (limits, runner command) and comments. Checked as a whole.
pub fn with_job_settings(text: &str, s: &Checked) -> Result<String, ControlError> {
    let mut doc = parse(text)?;
    set(section(&mut doc, "image")?, "default", s.default_image.as_str());
    let scheduler = section(&mut doc, "scheduler")?;
    set(scheduler, "max_concurrent", i64::from(s.max_concurrent));
    let mut old = match scheduler.remove("profiles") {
        None => ArrayOfTables::new(),
        Some(Item::ArrayOfTables(a)) => a,
        Some(_) => {
            return Err(ControlError::InvalidConfig(
                "`scheduler.profiles` in the config file is not a list of [[scheduler.profiles]] sections".into(),
            ));
        }
    };
    let mut profiles = ArrayOfTables::new();
    for p in &s.profiles {
        let named = |t: &Table| t.get("name").and_then(|n| n.as_str()).is_some_and(|n| n.eq_ignore_ascii_case(&p.name));
        let found = old.iter().position(named);
        let mut t = match found {
            Some(i) => {
                let t = old.get(i).cloned().unwrap_or_default();
                old.remove(i);
                t
            }
            None => Table::new(),
        };
        set(&mut t, "name", p.name.as_str());
        set(&mut t, "labels", p.labels.iter().map(String::as_str).collect::<Array>());
        match &p.image {
            Some(i) => {
                set(&mut t, "image", i.as_str());
            }
            None => {
                t.remove("image");
            }
        }
        profiles.push(t);
    }
    if !profiles.is_empty() {
        scheduler.insert("profiles", Item::ArrayOfTables(profiles));
    }
    match s.webhook_listen {
        Some(addr) => set(section(&mut doc, "webhook")?, "listen", addr.to_string()),
        None if doc.contains_key("webhook") => {
            let webhook = section(&mut doc, "webhook")?;
            webhook.remove("listen");
            if webhook.is_empty() {
                doc.remove("webhook");
            }
        }
        None => {}
    }
    checked(doc.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(n: u32, image: &str, profiles: &[(&str, &[&str], &str)]) -> v1::JobSettings {
        v1::JobSettings {
            max_concurrent: n,
            default_image: image.into(),
            profiles: profiles
                .iter()
                .map(|(name, labels, image)| v1::LabelProfile {
                    name: name.to_string(),
                    labels: labels.iter().map(|l| l.to_string()).collect(),
                    image: image.to_string(),
                })
                .collect(),
            config_path: String::new(),
            webhook_listen: String::new(),
        }
    }

    const FILE: &str = r#"# My runner.
data_dir = "/srv/ephemerd"

[scheduler]
# Keep it small.
max_concurrent = 2
job_timeout = "2h"

# The big machines.
[[scheduler.profiles]]
name = "big"
labels = ["big"]
memory = "16GiB"
cpus = 8.0

[[scheduler.profiles]]
name = "old"
labels = ["old"]
image = "debian:buster"

[[github]]
owner = "octo-org"
"#;

    #[test]
    fn settings_are_written_with_comments_limits_and_other_keys_kept() {
        let s = check(settings(
            4,
            " ghcr.io/octo-org/ci:1 ",
            &[("big", &["big", "BIG", " "], "ghcr.io/octo-org/big:1"), ("", &["gpu", "cuda"], "")],
        ))
        .unwrap();
        assert_eq!(s.profiles[1].name, "gpu-cuda", "a name is made from the labels");
        assert_eq!(s.profiles[0].labels, vec!["big"], "labels once, ignoring case");
        let text = with_job_settings(FILE, &s).unwrap();
        for kept in
            ["# My runner.", "# Keep it small.", "# The big machines.", "job_timeout = \"2h\"", "memory = \"16GiB\""]
        {
            assert!(text.contains(kept), "{kept} went:\n{text}");
        }
        assert!(!text.contains("buster"), "a profile the window dropped goes:\n{text}");
        let cfg = Config::parse(&text).unwrap();
        assert_eq!(cfg.scheduler.max_concurrent, 4);
        assert_eq!(cfg.image.default, "ghcr.io/octo-org/ci:1");
        assert_eq!(cfg.scheduler.job_timeout.as_secs(), 7200);
        assert_eq!(cfg.github.len(), 1);
        let big = &cfg.scheduler.profiles[0];
        assert_eq!(
            (big.name.as_str(), big.image.as_deref(), big.cpus),
            ("big", Some("ghcr.io/octo-org/big:1"), Some(8.0))
        );
        assert_eq!(cfg.scheduler.profiles[1].labels, vec!["gpu", "cuda"]);
        assert_eq!(cfg.scheduler.profiles[1].image, None);
        // What is read back is what was written.
        let back = of(&cfg, Path::new("/etc/ephemerd/config.toml"));
        assert_eq!(check(back).unwrap(), s);
    }

    #[test]
    fn an_empty_file_gets_its_sections_and_no_profiles_means_none_written() {
        let text = with_job_settings("", &check(settings(1, "debian:bookworm", &[])).unwrap()).unwrap();
        assert!(!text.contains("profiles"), "{text}");
        let cfg = Config::parse(&text).unwrap();
        assert_eq!((cfg.scheduler.max_concurrent, cfg.image.default.as_str()), (1, "debian:bookworm"));
        let cleared = with_job_settings(FILE, &check(settings(2, "debian:bookworm", &[])).unwrap()).unwrap();
        assert!(Config::parse(&cleared).unwrap().scheduler.profiles.is_empty(), "{cleared}");
    }

    #[test]
    fn the_webhook_address_is_set_and_removed() {
        let mut s = settings(2, "debian", &[]);
        s.webhook_listen = " 127.0.0.1:8089 ".into();
        let text = with_job_settings(FILE, &check(s.clone()).unwrap()).unwrap();
        let cfg = Config::parse(&text).unwrap();
        assert_eq!(cfg.webhook.listen, Some("127.0.0.1:8089".parse().unwrap()));
        assert_eq!(of(&cfg, Path::new("/c")).webhook_listen, "127.0.0.1:8089");
        s.webhook_listen = String::new();
        let off = with_job_settings(&text, &check(s.clone()).unwrap()).unwrap();
        assert!(!off.contains("webhook"), "{off}");
        let kept = with_job_settings("[webhook]\n# mine\nlisten = \"[::1]:9\"\n", &check(s.clone()).unwrap()).unwrap();
        assert_eq!(Config::parse(&kept).unwrap().webhook.listen, None);
        s.webhook_listen = "0.0.0.0:80".into();
        let low = check(s.clone()).unwrap();
        assert!(matches!(check_caller(&low, false, None), Err(ControlError::NotAllowed(_))));
        assert!(check_caller(&low, true, None).is_ok());
        assert!(check_caller(&low, false, low.webhook_listen).is_ok(), "an unchanged address is not a change");
        s.webhook_listen = "localhost".into();
        assert!(matches!(check(s), Err(ControlError::InvalidField { field: "webhook_listen", .. })));
    }

    #[test]
    fn bad_settings_are_refused_by_field() {
        let field = |s: v1::JobSettings| match check(s) {
            Err(ControlError::InvalidField { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        assert_eq!(field(settings(0, "debian", &[])), "max_concurrent");
        assert_eq!(field(settings(MAX_CONCURRENT + 1, "debian", &[])), "max_concurrent");
        assert_eq!(field(settings(1, " ", &[])), "default_image");
        assert_eq!(field(settings(1, "Not An Image", &[])), "default_image");
        assert_eq!(field(settings(1, "debian", &[("x", &[" "], "")])), "profiles.labels");
        assert_eq!(field(settings(1, "debian", &[("x", &["two words"], "")])), "profiles.labels");
        assert_eq!(field(settings(1, "debian", &[("x", &["a"], ""), ("X", &["b"], "")])), "profiles.name");
        assert_eq!(field(settings(1, "debian", &[("x", &["a"], "UPPER:case:bad")])), "profiles.image");
    }

    #[test]
    fn a_file_whose_sections_are_not_sections_is_refused_untouched() {
        let s = check(settings(1, "debian", &[])).unwrap();
        assert!(matches!(with_job_settings("scheduler = 3\n", &s), Err(ControlError::InvalidConfig(_))));
        let bad = "[scheduler]\nprofiles = 1\n";
        assert!(matches!(with_job_settings(bad, &s), Err(ControlError::InvalidConfig(_))));
        assert!(matches!(with_job_settings("[[image]]\n", &s), Err(ControlError::InvalidConfig(_))));
    }
}

//! Forges as the settings window gives them (`ForgeSpec`): checked, turned into a `[[github]]` section,
//! and written into the config file with its comments and other keys kept. Secrets never go into the
//! file: a token goes to the keyring under the provider's name; a GitHub App's key stays a path.

use std::path::Path;
use std::time::Duration;

use ephemerd_proto::v1;
use toml_edit::{Array, ArrayOfTables, DocumentMut, Item, Table, value};

use super::edit::{check_image, check_labels, checked, parse, set};
use super::errors::ControlError;
use crate::config::Config;
use crate::forge::Secret;
use crate::forge::github::{GithubApp, GithubConfig};

/// A forge to test or save: its section, the token to store (none for a GitHub App), and a new webhook
/// secret to store (with `github.webhook` set).
#[derive(Debug)]
pub struct Forge {
    pub name: String,
    pub github: GithubConfig,
    pub token: Option<Secret>,
    pub webhook_secret: Option<Secret>,
}

fn invalid(field: &'static str, message: impl Into<String>) -> ControlError {
    ControlError::InvalidField { field, message: message.into() }
}

/// Checks a spec and builds the forge it describes.
pub fn from_spec(spec: v1::ForgeSpec) -> Result<Forge, ControlError> {
    match spec.kind.as_str() {
        "github" => {}
        "forgejo" => return Err(ControlError::NotImplemented("Forgejo forges")),
        "gitea" => return Err(ControlError::NotImplemented("Gitea forges")),
        "gitlab" => return Err(ControlError::NotImplemented("GitLab forges")),
        "woodpecker" => return Err(ControlError::NotImplemented("Woodpecker forges")),
        k => {
            return Err(invalid(
                "kind",
                format!("`{k}` is not a forge kind (github, forgejo, gitea, gitlab, woodpecker)"),
            ));
        }
    }
    let owner = spec.owner.trim().to_string();
    if owner.is_empty() {
        return Err(invalid("owner", "give the user or organization whose jobs to run"));
    }
    if !owner.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.') {
        return Err(invalid("owner", format!("`{owner}` is not a GitHub user or organization name")));
    }
    let mut repos = Vec::new();
    for r in spec.repos.iter().map(|r| r.trim()).filter(|r| !r.is_empty()) {
        // "owner/repo" is accepted when the owner matches.
        let name = match r.split_once('/') {
            Some((o, n)) if o.eq_ignore_ascii_case(&owner) => n,
            Some(_) => return Err(invalid("repos", format!("`{r}` is not a repository of {owner}"))),
            None => r,
        };
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
            return Err(invalid("repos", format!("`{r}` is not a repository name")));
        }
        if !repos.iter().any(|x: &String| x == name) {
            repos.push(name.to_string());
        }
    }
    let url = spec.url.trim().trim_end_matches('/').to_string();
    let api_url = if url.is_empty() { "https://api.github.com".to_string() } else { url };
    match reqwest::Url::parse(&api_url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
        _ => return Err(invalid("url", format!("`{api_url}` is not an http(s) URL"))),
    }
    let poll_interval = match spec.poll_interval {
        None => Duration::from_secs(10),
        Some(d) if d.seconds < 1 || d.seconds > 86400 => {
            return Err(invalid("poll_interval", "between 1 s and 24 h"));
        }
        Some(d) => Duration::from_secs(d.seconds as u64),
    };
    let (token, app) = match spec.auth {
        Some(v1::forge_spec::Auth::Token(t)) if !t.trim().is_empty() => (Some(Secret::new(t.trim())), None),
        Some(v1::forge_spec::Auth::App(a)) => {
            if a.app_id == 0 || a.installation_id == 0 {
                return Err(invalid("app", "give the App's id and the installation id"));
            }
            let key = Path::new(a.private_key_file.trim());
            if !key.is_absolute() {
                return Err(invalid("app.private_key_file", "give the absolute path of the App's private key (PEM)"));
            }
            let app = GithubApp { app_id: a.app_id, installation_id: a.installation_id, private_key_file: key.into() };
            (None, Some(app))
        }
        // The token stored for this forge (checked when saving).
        None => (None, None),
        _ => return Err(invalid("token", "give a token, or a GitHub App")),
    };
    let labels = check_labels("labels", &spec.labels)?;
    let image = match spec.image.trim() {
        "" => None,
        i => Some(check_image("image", i)?),
    };
    let webhook_secret = match (spec.webhook, spec.webhook_secret.trim()) {
        (false, _) | (true, "") => None,
        (true, s) if s.len() < 8 => {
            return Err(invalid("webhook_secret", "use a longer secret (8 characters or more)"));
        }
        (true, s) => Some(Secret::new(s)),
    };
    let webhook = spec.webhook;
    let github =
        GithubConfig { repos, api_url, poll_interval, app, labels, image, webhook, ..GithubConfig::for_owner(&owner) };
    Ok(Forge { name: format!("github:{owner}"), github, token, webhook_secret })
}

fn tables(doc: &mut DocumentMut) -> Result<&mut ArrayOfTables, ControlError> {
    if !doc.contains_key("github") {
        doc.insert("github", Item::ArrayOfTables(ArrayOfTables::new()));
    }
    doc.get_mut("github").and_then(|i| i.as_array_of_tables_mut()).ok_or_else(|| {
        ControlError::InvalidConfig("`github` in the config file is not a list of [[github]] sections".into())
    })
}

/// The config file's text with `g` added, or replacing the section of the same owner (keys the settings
/// window does not manage, like `runner_group_id` or the webhook's, are kept). The result is checked as a
/// whole config.
pub fn with_forge(text: &str, g: &GithubConfig) -> Result<String, ControlError> {
    let mut doc = parse(text)?;
    let list = tables(&mut doc)?;
    let same = |t: &Table| t.get("owner").and_then(|o| o.as_str()).is_some_and(|o| o.eq_ignore_ascii_case(&g.owner));
    let pos = list.iter().position(same);
    let t = match pos {
        Some(i) => list.get_mut(i).ok_or_else(|| ControlError::InvalidConfig("section vanished".into()))?,
        None => {
            list.push(Table::new());
            let last = list.len() - 1;
            list.get_mut(last).ok_or_else(|| ControlError::InvalidConfig("section vanished".into()))?
        }
    };
    set(t, "owner", g.owner.as_str());
    if g.repos.is_empty() {
        t.remove("repos");
    } else {
        set(t, "repos", g.repos.iter().map(String::as_str).collect::<Array>());
    }
    if g.api_url == "https://api.github.com" {
        t.remove("api_url");
    } else {
        set(t, "api_url", g.api_url.as_str());
    }
    set(t, "poll_interval", humantime::format_duration(g.poll_interval).to_string());
    if g.labels.is_empty() {
        t.remove("labels");
    } else {
        set(t, "labels", g.labels.iter().map(String::as_str).collect::<Array>());
    }
    match &g.image {
        None => {
            t.remove("image");
        }
        Some(i) => {
            set(t, "image", i.as_str());
        }
    }
    if g.webhook {
        set(t, "webhook", true);
    } else {
        // Webhooks off: also those whose secret came from the environment.
        t.remove("webhook");
        t.remove("webhook_secret_env");
    }
    match &g.app {
        None => {
            t.remove("app");
        }
        Some(a) => {
            let mut app = Table::new();
            app.insert("app_id", value(a.app_id as i64));
            app.insert("installation_id", value(a.installation_id as i64));
            app.insert("private_key_file", value(a.private_key_file.display().to_string()));
            t.insert("app", Item::Table(app));
        }
    }
    checked(doc.to_string())
}

/// The config file's text with `[control] group = group` (the rest kept).
pub fn with_control_group(text: &str, group: &str) -> Result<String, ControlError> {
    if group.is_empty() || !group.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
        return Err(invalid("control_group", format!("`{group}` is not a group name")));
    }
    let mut doc = parse(text)?;
    if !doc.contains_key("control") {
        doc.insert("control", Item::Table(Table::new()));
    }
    let t = doc
        .get_mut("control")
        .and_then(|i| i.as_table_mut())
        .ok_or_else(|| ControlError::InvalidConfig("`control` in the config file is not a section".into()))?;
    set(t, "group", group);
    checked(doc.to_string())
}

/// The config file's text without the section of `owner`; `None` when there is none.
pub fn without_forge(text: &str, owner: &str) -> Result<Option<String>, ControlError> {
    let mut doc = parse(text)?;
    let list = tables(&mut doc)?;
    let same = |t: &Table| t.get("owner").and_then(|o| o.as_str()).is_some_and(|o| o.eq_ignore_ascii_case(owner));
    let Some(pos) = list.iter().position(same) else {
        return Ok(None);
    };
    list.remove(pos);
    if list.is_empty() {
        doc.remove("github");
    }
    checked(doc.to_string()).map(Some)
}

/// Who may save or test what. A caller that is neither root nor the daemon's own user (a member of
/// `control.group`) must not make the daemon read a key file with its rights, nor lend the daemon's own
/// `--token`/`GITHUB_TOKEN` to a forge of the caller's choosing.
pub fn check_caller(
    forge: &Forge,
    privileged: bool,
    daemon_has_flag_token: bool,
    current: Option<&GithubConfig>,
) -> Result<(), ControlError> {
    if privileged {
        return Ok(());
    }
    // The server the forge's saved credential was given for.
    let same_server = current.is_some_and(|c| same_url(&c.api_url, &forge.github.api_url));
    if let Some(app) = &forge.github.app {
        // Only the App already configured, for its own server: its key signs what the daemon sends there.
        let same = same_server
            && current.and_then(|c| c.app.as_ref()).is_some_and(|a| {
                (a.app_id, a.installation_id, &a.private_key_file)
                    == (app.app_id, app.installation_id, &app.private_key_file)
            });
        if !same {
            return Err(ControlError::NotAllowed(
                "only root or the daemon's own user may configure a GitHub App (the daemon reads its key file)".into(),
            ));
        }
    }
    if daemon_has_flag_token {
        return Err(ControlError::NotAllowed(
            "this daemon was started with --token or GITHUB_TOKEN, which every forge would use: only root or the \
             daemon's own user may add forges to it"
                .into(),
        ));
    }
    if forge.token.is_none() && forge.github.app.is_none() {
        // The stored token is kept: only for the server it was given for.
        let same = same_server && current.is_some_and(|c| c.app.is_none());
        if !same {
            return Err(ControlError::NotAllowed(
                "enter the token: only root or the daemon's own user may keep a stored token for another server".into(),
            ));
        }
    }
    Ok(())
}

fn same_url(a: &str, b: &str) -> bool {
    a.trim().trim_end_matches('/').eq_ignore_ascii_case(b.trim().trim_end_matches('/'))
}

/// The section of `owner` (compared ignoring case) in a config file's text, if it parses.
pub fn section_of(text: &str, owner: &str) -> Option<GithubConfig> {
    Config::parse(text).ok()?.github.into_iter().find(|g| g.owner.eq_ignore_ascii_case(owner))
}

/// A saved section as the settings window edits it: no secrets, `auth` unset for a stored token.
pub fn to_spec(g: &GithubConfig) -> v1::ForgeSpec {
    let auth = g.app.as_ref().map(|a| {
        v1::forge_spec::Auth::App(v1::GithubAppAuth {
            app_id: a.app_id,
            installation_id: a.installation_id,
            private_key_file: a.private_key_file.display().to_string(),
        })
    });
    v1::ForgeSpec {
        kind: "github".into(),
        url: if g.api_url == "https://api.github.com" { String::new() } else { g.api_url.clone() },
        owner: g.owner.clone(),
        repos: g.repos.clone(),
        auth,
        poll_interval: Some(prost_types::Duration {
            // Whole seconds, at least one (what the window takes back).
            seconds: g.poll_interval.as_secs().clamp(1, 86400) as i64,
            nanos: 0,
        }),
        labels: g.labels.clone(),
        image: g.image.clone().unwrap_or_default(),
        webhook: g.webhook || g.webhook_secret_env.is_some(),
        webhook_secret: String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(owner: &str, auth: v1::forge_spec::Auth) -> v1::ForgeSpec {
        v1::ForgeSpec {
            kind: "github".into(),
            url: String::new(),
            owner: owner.into(),
            repos: vec!["app".into(), format!("{owner}/lib"), "app".into()],
            auth: Some(auth),
            poll_interval: None,
            labels: vec![],
            image: String::new(),
            webhook: false,
            webhook_secret: String::new(),
        }
    }

    #[test]
    fn webhooks_are_a_key_in_the_section_and_their_secret_stays_out_of_it() {
        let mut s = spec("octo-org", v1::forge_spec::Auth::Token("ghp_secret".into()));
        (s.webhook, s.webhook_secret) = (true, " hook-secret-1 ".into());
        let f = from_spec(s).unwrap();
        assert_eq!(f.webhook_secret.as_ref().map(|s| s.expose().to_string()), Some("hook-secret-1".into()));
        let text = with_forge("", &f.github).unwrap();
        assert!(text.contains("webhook = true") && !text.contains("hook-secret"), "{text}");
        assert!(Config::parse(&text).unwrap().github[0].webhook);
        let off = from_spec(spec("octo-org", v1::forge_spec::Auth::Token("t".into()))).unwrap();
        assert!(off.webhook_secret.is_none());
        assert!(!with_forge(&text, &off.github).unwrap().contains("webhook"));
    }

    #[test]
    fn a_spec_becomes_a_section_and_its_token_stays_out_of_it() {
        let f = from_spec(spec("octo-org", v1::forge_spec::Auth::Token("ghp_secret".into()))).unwrap();
        assert_eq!(f.name, "github:octo-org");
        assert_eq!(f.github.repos, vec!["app", "lib"]);
        let text = with_forge("# mine\n[scheduler]\nmax_concurrent = 2\n", &f.github).unwrap();
        assert!(text.starts_with("# mine\n[scheduler]\nmax_concurrent = 2\n"), "{text}");
        assert!(!text.contains("ghp_"), "{text}");
        let cfg = Config::parse(&text).unwrap();
        assert_eq!(cfg.github[0].owner, "octo-org");
        assert_eq!(cfg.github[0].repos, vec!["app", "lib"]);
        assert_eq!(cfg.github[0].api_url, "https://api.github.com");
    }

    #[test]
    fn saving_an_owner_again_replaces_its_section_and_keeps_keys_the_window_does_not_manage() {
        let text = "[[github]]\nowner = \"a\"\nrunner_group_id = 3\nlabels = [\"old\"]\nimage = \"debian:buster\"\nrepos = [\"x\"]\n\n[[github]]\nowner = \"b\"\n";
        let app = v1::forge_spec::Auth::App(v1::GithubAppAuth {
            app_id: 7,
            installation_id: 9,
            private_key_file: "/keys/app.pem".into(),
        });
        let mut s = spec("a", app);
        s.repos.clear();
        s.url = "https://ghe.example/api/v3/".into();
        s.labels = vec!["gpu".into(), " ".into(), "GPU".into()];
        let f = from_spec(s).unwrap();
        assert!(f.token.is_none());
        let out = with_forge(text, &f.github).unwrap();
        let cfg = Config::parse(&out).unwrap();
        assert_eq!(cfg.github.len(), 2);
        let a = &cfg.github[0];
        assert_eq!((a.labels.clone(), a.repos.is_empty()), (vec!["gpu".to_string()], true));
        assert_eq!((a.runner_group_id, a.image.as_deref()), (3, None), "the window's image (none) replaces buster");
        assert_eq!(a.api_url, "https://ghe.example/api/v3");
        assert_eq!(a.app.as_ref().map(|x| (x.app_id, x.installation_id)), Some((7, 9)));
        let gone = without_forge(&out, "a").unwrap().unwrap();
        let cfg = Config::parse(&gone).unwrap();
        assert_eq!(cfg.github.iter().map(|g| g.owner.as_str()).collect::<Vec<_>>(), vec!["b"]);
        assert!(without_forge(&gone, "a").unwrap().is_none());
        assert!(!without_forge(&gone, "b").unwrap().unwrap().contains("github"));
    }

    #[test]
    fn group_members_cannot_make_the_daemon_read_keys_or_lend_its_token() {
        let tok = from_spec(spec("o", v1::forge_spec::Auth::Token("t".into()))).unwrap();
        let app = from_spec(spec(
            "o",
            v1::forge_spec::Auth::App(v1::GithubAppAuth {
                app_id: 1,
                installation_id: 2,
                private_key_file: "/k".into(),
            }),
        ))
        .unwrap();
        assert!(check_caller(&app, true, true, None).is_ok());
        assert!(matches!(check_caller(&app, false, false, None), Err(ControlError::NotAllowed(_))));
        assert!(check_caller(&app, false, false, Some(&app.github)).is_ok(), "the App already configured");
        let slash = GithubConfig { api_url: format!("{}/", app.github.api_url), ..app.github.clone() };
        assert!(check_caller(&app, false, false, Some(&slash)).is_ok(), "the same server, written with a slash");
        let evil = GithubConfig { api_url: "https://evil.example/api/v3".into(), ..app.github.clone() };
        assert!(
            matches!(check_caller(&app, false, false, Some(&evil)), Err(ControlError::NotAllowed(_))),
            "the App's key never signs for another server"
        );
        assert!(matches!(check_caller(&tok, false, true, None), Err(ControlError::NotAllowed(_))));
        assert!(check_caller(&tok, false, false, None).is_ok());
        // Keeping the stored token: for the same server only.
        let mut keep = spec("o", v1::forge_spec::Auth::Token("t".into()));
        keep.auth = None;
        let keep = from_spec(keep).unwrap();
        assert!(keep.token.is_none() && keep.github.app.is_none());
        assert!(check_caller(&keep, false, false, Some(&tok.github)).is_ok());
        let elsewhere = GithubConfig { api_url: "https://evil.example".into(), ..tok.github.clone() };
        assert!(matches!(check_caller(&keep, false, false, Some(&elsewhere)), Err(ControlError::NotAllowed(_))));
        assert!(matches!(check_caller(&keep, false, false, None), Err(ControlError::NotAllowed(_))));
        assert!(check_caller(&keep, true, false, None).is_ok());
        // The same owner in another case is the same section.
        let text = with_forge("[[github]]\nowner = \"Octo\"\n", &tok.github).unwrap();
        let text = with_forge(&text, &from_spec(spec("OCTO", v1::forge_spec::Auth::Token("t".into()))).unwrap().github)
            .unwrap();
        let owners: Vec<String> = Config::parse(&text).unwrap().github.iter().map(|g| g.owner.clone()).collect();
        assert_eq!(owners, vec!["OCTO", "o"], "{text}");
    }

    #[test]
    fn a_saved_section_reads_back_as_the_spec_that_writes_it() {
        let mut s = spec("octo-org", v1::forge_spec::Auth::Token("ghp_secret".into()));
        (s.url, s.labels, s.image, s.webhook) =
            ("https://ghe.example/api/v3".into(), vec!["gpu".into()], "debian:bookworm".into(), true);
        s.poll_interval = Some(prost_types::Duration { seconds: 30, nanos: 0 });
        let f = from_spec(s.clone()).unwrap();
        let text = with_forge("", &f.github).unwrap();
        let back = to_spec(&section_of(&text, "OCTO-ORG").unwrap());
        assert_eq!(back, v1::ForgeSpec { auth: None, repos: vec!["app".into(), "lib".into()], ..s });
        assert!(section_of(&text, "nobody").is_none());
    }

    #[test]
    fn a_control_group_is_set_and_the_rest_kept() {
        let out = with_control_group("# keep\n[scheduler]\nmax_concurrent = 3\n", "alice").unwrap();
        let cfg = Config::parse(&out).unwrap();
        assert_eq!((cfg.control.group.as_deref(), cfg.scheduler.max_concurrent), (Some("alice"), 3));
        assert!(out.starts_with("# keep\n"));
        assert!(with_control_group("", "a b").is_err());
    }

    #[test]
    fn bad_specs_name_the_field_and_other_kinds_say_they_are_not_there_yet() {
        let tok = || v1::forge_spec::Auth::Token("t".into());
        let err = |s: v1::ForgeSpec| from_spec(s).unwrap_err().to_string();
        assert!(err(spec("", tok())).starts_with("owner:"));
        assert!(err(spec("a b", tok())).starts_with("owner:"));
        assert!(err(spec("a", v1::forge_spec::Auth::Token(" ".into()))).starts_with("token:"));
        let mut s = spec("a", tok());
        s.url = "ftp://x".into();
        assert!(err(s).starts_with("url:"));
        let mut s = spec("a", tok());
        s.repos = vec!["other/x".into()];
        assert!(err(s).starts_with("repos:"));
        let mut s = spec("a", tok());
        s.labels = vec!["has space".into()];
        assert!(err(s).starts_with("labels:"));
        let mut s = spec("a", tok());
        s.image = "Bad Image".into();
        assert!(err(s).starts_with("image:"));
        let mut s = spec("a", tok());
        (s.webhook, s.webhook_secret) = (true, "short".into());
        assert!(err(s).starts_with("webhook_secret:"));
        let mut s = spec("a", tok());
        s.kind = "gitlab".into();
        assert!(matches!(from_spec(s), Err(ControlError::NotImplemented(_))));
        let bad = "[[github]]\nowner = 1\n";
        let f = from_spec(spec("a", tok())).unwrap();
        assert!(matches!(with_forge(bad, &f.github), Err(ControlError::InvalidConfig(_))));
        assert!(matches!(with_forge("github = 3", &f.github), Err(ControlError::InvalidConfig(_))));
    }
}

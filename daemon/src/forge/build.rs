//! Building the configured providers with their credentials: `--token`/`GITHUB_TOKEN` first, then the OS
//! keyring (`github:<owner>`), or the GitHub App's key. A provider that cannot be built (no credentials,
//! an unreadable key) is not an error for the daemon: it is reported as unconfigured, with the reason,
//! so the daemon still runs and the user can fix it through the control API (`SetCredential`,
//! `ReloadConfig`) without a restart.

use std::sync::{Arc, RwLock};

use super::github::Github;
use super::{Provider, Secret};
use crate::config::Config;
use crate::secrets::CredentialStore;

/// The providers in use, shared by the event loop, the webhook endpoint and the control API.
pub type ProviderSet = Arc<RwLock<Vec<Arc<dyn Provider>>>>;

/// A configured provider that is not running, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unconfigured {
    pub name: String,
    pub kind: &'static str,
    pub url: String,
    pub reason: String,
}

/// The providers built from a config (what `serve` starts with, and what replaces them when credentials or
/// `[[github]]` sections change), with the configured ones that could not be built.
#[derive(Default, Clone)]
pub struct Built {
    pub providers: Vec<Arc<dyn Provider>>,
    pub unconfigured: Vec<Unconfigured>,
    /// Where each built provider's credential comes from (see `ProviderHealth.credential`).
    pub sources: std::collections::HashMap<String, &'static str>,
}

impl std::fmt::Debug for Built {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.providers.iter().map(|p| p.name()).collect();
        f.debug_struct("Built").field("providers", &names).field("unconfigured", &self.unconfigured).finish()
    }
}

/// Builds every configured provider (blocking: the keyring may be asked).
pub fn build(cfg: &Config, flag_token: Option<&Secret>, credentials: &dyn CredentialStore) -> Built {
    let mut out = Built::default();
    for g in &cfg.github {
        let name = format!("github:{}", g.owner);
        let source = match (flag_token, &g.app) {
            (_, Some(_)) => "app_key",
            (Some(_), None) => "environment",
            (None, None) => credentials.kind(),
        };
        let token = match (flag_token, &g.app) {
            (Some(t), _) => Ok(Some(t.clone())),
            (None, Some(_)) => Ok(None),
            (None, None) => credentials.get(&name).map_err(|e| format!("no --token or GITHUB_TOKEN, and {e}")),
        };
        let built = token.and_then(|t| Github::new(g.clone(), t).map_err(|e| e.to_string())).and_then(|p| {
            if !g.webhook || g.webhook_secret_env.is_some() {
                return Ok(p);
            }
            match credentials.get(&webhook_secret_name(&name)) {
                Ok(Some(secret)) => Ok(p.with_webhook_secret(secret)),
                Ok(None) => Err(format!(
                    "webhook = true, but no webhook secret is stored: save the forge again with its secret, or run `ephemerd credential set {}`",
                    webhook_secret_name(&name)
                )),
                Err(e) => Err(format!("webhook secret: {e}")),
            }
        });
        match built {
            Ok(p) => {
                out.sources.insert(name, source);
                out.providers.push(Arc::new(p));
            }
            Err(reason) => out.unconfigured.push(Unconfigured { name, kind: "github", url: g.api_url.clone(), reason }),
        }
    }
    out
}

/// Where a provider's webhook secret is kept in the credential store.
pub fn webhook_secret_name(provider: &str) -> String {
    format!("{provider}/webhook")
}

/// Reads a provider set (a poisoned lock still holds the last list).
pub fn snapshot(set: &ProviderSet) -> Vec<Arc<dyn Provider>> {
    match set.read() {
        Ok(v) => v.clone(),
        Err(e) => e.into_inner().clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::Memory;

    // The GitHub client needs a runtime to be built in.
    #[tokio::test]
    async fn credentials_come_from_the_flag_then_the_keyring_and_a_missing_one_is_reported() {
        let cfg = Config::parse("[[github]]\nowner = \"a\"\n[[github]]\nowner = \"b\"").unwrap();
        let keyring = Memory::default();
        let none = build(&cfg, None, &keyring);
        assert!(none.providers.is_empty());
        assert_eq!(none.unconfigured.len(), 2);
        assert!(none.unconfigured[0].reason.contains("ephemerd credential set github:a"), "{:?}", none.unconfigured);
        keyring.set("github:b", &Secret::new("ghp_b")).unwrap();
        let some = build(&cfg, None, &keyring);
        assert_eq!(some.providers.iter().map(|p| p.name().to_string()).collect::<Vec<_>>(), vec!["github:b"]);
        assert_eq!(some.unconfigured.iter().map(|u| u.name.as_str()).collect::<Vec<_>>(), vec!["github:a"]);
        let all = build(&cfg, Some(&Secret::new("ghp_flag")), &keyring);
        assert_eq!((all.providers.len(), all.unconfigured.len()), (2, 0));
        assert_eq!(some.sources.get("github:b"), Some(&"keyring"));
        assert_eq!(all.sources.get("github:a"), Some(&"environment"));
        assert!(!format!("{:?}", all.unconfigured).contains("ghp_"));
    }

    #[tokio::test]
    async fn a_stored_webhook_secret_turns_webhooks_on_and_a_missing_one_is_reported() {
        let cfg = Config::parse("[[github]]\nowner = \"a\"\nwebhook = true").unwrap();
        let keyring = Memory::default();
        keyring.set("github:a", &Secret::new("ghp_a")).unwrap();
        let missing = build(&cfg, None, &keyring);
        assert!(missing.providers.is_empty());
        assert!(missing.unconfigured[0].reason.contains("github:a/webhook"), "{:?}", missing.unconfigured);
        keyring.set("github:a/webhook", &Secret::new("hook-secret")).unwrap();
        let built = build(&cfg, None, &keyring);
        assert!(built.providers[0].webhook().is_some(), "deliveries are taken");
        let off = build(&Config::parse("[[github]]\nowner = \"a\"").unwrap(), None, &keyring);
        assert!(off.providers[0].webhook().is_none(), "a stored secret alone does not turn webhooks on");
    }
}

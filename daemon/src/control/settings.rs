//! The settings window's RPCs: test a forge before saving it, save it (secret to the keyring, section to
//! the config file, applied at once), remove it; read and save the job settings. One config-file edit
//! runs at a time.

use std::path::PathBuf;

use ephemerd_proto::v1;

use super::errors::ControlError;
use super::jobsettings;
use super::server::ControlService;
use super::{edit, forges};
use crate::config::Config;
use crate::forge::Provider;
use crate::forge::build::webhook_secret_name;
use crate::forge::github::Github;

impl ControlService {
    /// The file forges are saved to: the one the daemon was started with, else the default one.
    fn config_file(&self) -> PathBuf {
        self.config().0.clone().unwrap_or_else(crate::platform::default_config_path)
    }

    fn set_config_file(&self, path: PathBuf) {
        self.config().0 = Some(path);
    }

    fn read_config_file(path: &std::path::Path) -> Result<String, ControlError> {
        match std::fs::read_to_string(path) {
            Ok(t) => Ok(t),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
            Err(e) => Err(ControlError::InvalidConfig(format!("cannot read {}: {e}", path.display()))),
        }
    }

    pub(super) async fn test_forge_spec(
        &self,
        spec: v1::ForgeSpec,
        privileged: bool,
    ) -> Result<crate::forge::ProviderTest, ControlError> {
        let f = forges::from_spec(spec)?;
        // The test uses the credentials given; a token kept from before only for the server it was given
        // for (or for root and the daemon's own user).
        let current = forges::section_of(&Self::read_config_file(&self.config_file())?, &f.github.owner);
        forges::check_caller(&f, privileged, false, current.as_ref())?;
        let name = f.name.clone();
        let token = match (&f.token, &f.github.app) {
            (None, None) => self.flag_token.clone().or(self.stored(&name).await?),
            _ => f.token,
        };
        match Github::new(f.github, token) {
            Ok(p) => Ok(p.test().await),
            Err(e) => Ok(crate::forge::ProviderTest { ok: false, missing: vec![], message: format!("{name}: {e}") }),
        }
    }

    pub(super) async fn save_forge_spec(
        &self,
        spec: v1::ForgeSpec,
        privileged: bool,
    ) -> Result<v1::SaveForgeReply, ControlError> {
        let f = forges::from_spec(spec)?;
        let _one = self.editing.lock().await;
        let path = self.config_file();
        let before = Self::read_config_file(&path)?;
        let current = forges::section_of(&before, &f.github.owner);
        forges::check_caller(&f, privileged, self.flag_token.is_some(), current.as_ref())?;
        let text = forges::with_forge(&before, &f.github)?;
        let keeps_token = f.token.is_none() && f.github.app.is_none();
        if keeps_token && current.as_ref().is_some_and(|c| c.app.is_some()) {
            return Err(ControlError::InvalidField {
                field: "token",
                message: format!("give a token: {} signed in with a GitHub App until now", f.name),
            });
        }
        if keeps_token && self.flag_token.is_none() && self.stored(&f.name).await?.is_none() {
            return Err(ControlError::InvalidField {
                field: "token",
                message: format!("give a token: none is stored for {}", f.name),
            });
        }
        let hook_name = webhook_secret_name(&f.name);
        let env_secret = current.as_ref().is_some_and(|c| c.webhook_secret_env.is_some());
        if f.github.webhook && f.webhook_secret.is_none() && !env_secret && self.stored(&hook_name).await?.is_none() {
            return Err(ControlError::InvalidField {
                field: "webhook_secret",
                message: "give the secret the forge signs its webhook deliveries with".into(),
            });
        }
        let stored = f.token.is_some();
        if let Some(token) = f.token {
            self.store(&f.name, token).await?;
            tracing::info!(provider = %f.name, "credential stored in the OS keyring");
        }
        if let Some(secret) = f.webhook_secret.clone() {
            self.store(&hook_name, secret).await?;
            tracing::info!(provider = %f.name, "webhook secret stored in the OS keyring");
        }
        edit::write_config(&path, &text)?;
        if !f.github.webhook {
            self.forget(&hook_name).await;
        }
        self.set_config_file(path.clone());
        tracing::info!(provider = %f.name, config = %path.display(), "forge saved");
        let plan = self.reload().await?;
        if (stored || f.webhook_secret.is_some()) && !plan.applied.iter().any(|k| k == "github") {
            // The section is as it was; the new secret is used from now on all the same.
            self.rebuild_providers(self.running_config()).await?;
        }
        let mut note = match (stored, self.flag_token.is_some()) {
            (true, false) => format!("{}: token stored in the OS keyring; the forge is in use", f.name),
            (true, true) => format!(
                "{}: token stored in the OS keyring; this daemon was started with --token or GITHUB_TOKEN, which wins",
                f.name
            ),
            (false, _) if keeps_token => format!("{}: saved, with the token stored before", f.name),
            (false, _) => format!("{}: the GitHub App is in use", f.name),
        };
        if f.github.webhook && self.config().1.webhook.listen.is_none() {
            note.push_str("; webhooks arrive once a webhook address is set (Settings → Jobs)");
        }
        note.push_str(&format!(" (saved in {})", path.display()));
        Ok(v1::SaveForgeReply { name: f.name, note, config_path: path.display().to_string() })
    }

    /// A saved forge's section (from the config file, else as the daemon runs it), without secrets.
    pub(super) fn forge_spec(&self, name: &str) -> Result<v1::ForgeSpec, ControlError> {
        let owner = name.strip_prefix("github:").ok_or_else(|| ControlError::ProviderNotFound(name.into()))?;
        let path = self.config_file();
        let from_file = Self::read_config_file(&path).ok().and_then(|t| forges::section_of(&t, owner));
        let running = || self.config().1.github.iter().find(|g| g.owner.eq_ignore_ascii_case(owner)).cloned();
        let g = from_file.or_else(running).ok_or_else(|| ControlError::ProviderNotFound(name.into()))?;
        Ok(forges::to_spec(&g))
    }

    pub(super) async fn remove_forge_named(&self, name: String) -> Result<v1::RemoveForgeReply, ControlError> {
        let owner = name.strip_prefix("github:").ok_or_else(|| ControlError::ProviderNotFound(name.clone()))?;
        let _one = self.editing.lock().await;
        let path = self.config_file();
        let text = forges::without_forge(&Self::read_config_file(&path)?, owner)?
            .ok_or_else(|| ControlError::ProviderNotFound(format!("{name} in {}", path.display())))?;
        edit::write_config(&path, &text)?;
        let credential_deleted = self.forget(&name).await;
        self.forget(&webhook_secret_name(&name)).await;
        tracing::info!(provider = %name, credential_deleted, "forge removed");
        self.reload().await?;
        Ok(v1::RemoveForgeReply { credential_deleted })
    }

    async fn stored(&self, name: &str) -> Result<Option<crate::forge::Secret>, ControlError> {
        let (store, name) = (self.credentials.clone(), name.to_string());
        Ok(tokio::task::spawn_blocking(move || store.get(&name))
            .await
            .map_err(|e| ControlError::InvalidConfig(e.to_string()))??)
    }

    async fn store(&self, name: &str, secret: crate::forge::Secret) -> Result<(), ControlError> {
        let (store, name) = (self.credentials.clone(), name.to_string());
        Ok(tokio::task::spawn_blocking(move || store.set(&name, &secret))
            .await
            .map_err(|e| ControlError::InvalidConfig(e.to_string()))??)
    }

    /// Deletes a secret that is no longer used; whether one was deleted. A failure is logged, not returned
    /// (the edit is done).
    async fn forget(&self, name: &str) -> bool {
        let (store, n) = (self.credentials.clone(), name.to_string());
        let failed = match tokio::task::spawn_blocking(move || store.delete(&n)).await {
            Ok(Ok(existed)) => return existed,
            Ok(Err(e)) => e.to_string(),
            Err(e) => e.to_string(),
        };
        tracing::warn!(credential = %name, error = %failed, "an unused secret could not be deleted");
        false
    }

    /// The job settings as the config file has them (what a save edits), else as the daemon runs them.
    pub(super) fn job_settings(&self) -> v1::JobSettings {
        let path = self.config_file();
        match Config::load(Some(&path)) {
            Ok(file) if path.exists() => jobsettings::of(&file, &path),
            _ => jobsettings::of(&self.config().1, &path),
        }
    }

    pub(super) async fn save_job_settings_as(
        &self,
        settings: v1::JobSettings,
        privileged: bool,
    ) -> Result<v1::SaveJobSettingsReply, ControlError> {
        let checked = jobsettings::check(settings)?;
        let _one = self.editing.lock().await;
        let listening = self.config().1.webhook.listen;
        jobsettings::check_caller(&checked, privileged, listening)?;
        let path = self.config_file();
        let before = Self::read_config_file(&path)?;
        let text = jobsettings::with_job_settings(&before, &checked)?;
        edit::write_config(&path, &text)?;
        self.set_config_file(path.clone());
        let plan = match self.reload().await {
            Ok(plan) => plan,
            Err(e) => {
                // Not applied (e.g. the webhook address is taken): the file goes back to what it was.
                edit::write_config(&path, &before)?;
                return Err(e);
            }
        };
        tracing::info!(config = %path.display(), applied = ?plan.applied, "job settings saved");
        let mut note = match plan.applied.is_empty() {
            true => format!("Nothing changed (saved in {}).", path.display()),
            false => format!("Saved in {} and in use now.", path.display()),
        };
        if !plan.needs_restart.is_empty() {
            note.push_str(&format!(
                " Other changes in the file ({}) take effect when ephemerd restarts.",
                plan.needs_restart.join(", ")
            ));
        }
        Ok(v1::SaveJobSettingsReply { settings: Some(self.job_settings()), note })
    }
}

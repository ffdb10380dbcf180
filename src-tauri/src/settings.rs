//! The app's own settings (never a secret): supervision mode, notifications, whether onboarding is done.
//! A JSON file in the app's dir, written whole; a missing or broken file gives the defaults (and a broken
//! one is kept aside, not lost).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::supervisor::Mode;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct AppSettings {
    pub mode: ModeSetting,
    pub notifications: bool,
    pub onboarded: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModeSetting {
    User,
    Service,
}

impl From<ModeSetting> for Mode {
    fn from(m: ModeSetting) -> Self {
        match m {
            ModeSetting::User => Mode::User,
            ModeSetting::Service => Mode::Service,
        }
    }
}

impl Default for AppSettings {
    fn default() -> Self {
        let mode = match Mode::default_for_this_os() {
            Mode::User => ModeSetting::User,
            Mode::Service => ModeSetting::Service,
        };
        Self { mode, notifications: true, onboarded: false }
    }
}

pub fn file(app_dir: &Path) -> PathBuf {
    app_dir.join("settings.json")
}

pub fn load(app_dir: &Path) -> AppSettings {
    let path = file(app_dir);
    let Ok(text) = std::fs::read_to_string(&path) else { return AppSettings::default() };
    match serde_json::from_str(&text) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, file = %path.display(), "settings unreadable; using defaults (kept as .broken)");
            let _ = std::fs::rename(&path, path.with_extension("json.broken"));
            AppSettings::default()
        }
    }
}

pub fn save(app_dir: &Path, s: &AppSettings) -> std::io::Result<()> {
    std::fs::create_dir_all(app_dir)?;
    let path = file(app_dir);
    let tmp = path.with_extension("json.new");
    std::fs::write(&tmp, serde_json::to_vec_pretty(s).map_err(std::io::Error::other)?)?;
    std::fs::rename(tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_round_trip_and_a_broken_file_is_kept_aside() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(load(d.path()), AppSettings::default());
        let s = AppSettings { mode: ModeSetting::User, notifications: false, onboarded: true };
        save(d.path(), &s).unwrap();
        assert_eq!(load(d.path()), s);
        std::fs::write(file(d.path()), "{not json").unwrap();
        assert_eq!(load(d.path()), AppSettings::default());
        assert!(d.path().join("settings.json.broken").exists());
    }
}

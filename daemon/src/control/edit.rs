//! Editing the config file as the settings window does: parsed with its comments kept, a key set with its
//! decoration kept, the result checked as a whole config, and written whole or not at all; and the checks
//! of the fields the window sends (an image reference, runner labels). Used by `forges` and `jobsettings`.

use std::path::Path;

use toml_edit::{DocumentMut, Item, Table};

use super::errors::ControlError;
use crate::config::Config;

/// Sets `key` in `t`, keeping the comment above the key and the spacing around its old value.
pub(super) fn set(t: &mut Table, key: &str, v: impl Into<toml_edit::Value>) {
    let mut v = v.into();
    match t.get_mut(key) {
        Some(Item::Value(old)) => {
            *v.decor_mut() = old.decor().clone();
            *old = v;
        }
        Some(other) => *other = Item::Value(v),
        None => {
            t.insert(key, Item::Value(v));
        }
    }
}

pub(super) fn parse(text: &str) -> Result<DocumentMut, ControlError> {
    text.parse::<DocumentMut>().map_err(|e| ControlError::InvalidConfig(e.to_string().trim_end().replace('\n', " ")))
}

pub(super) fn checked(text: String) -> Result<String, ControlError> {
    let cfg = Config::parse(&text).map_err(ControlError::InvalidConfig)?;
    cfg.validate().map_err(|e| ControlError::InvalidConfig(e.to_string()))?;
    Ok(text)
}

pub(super) fn invalid(field: &'static str, message: impl Into<String>) -> ControlError {
    ControlError::InvalidField { field, message: message.into() }
}

/// An image reference as a job would pull it (`debian:bookworm`, `ghcr.io/o/ci:1`, `localhost:5000/x`).
pub fn check_image(field: &'static str, image: &str) -> Result<String, ControlError> {
    let image = image.trim();
    if image.is_empty() {
        return Err(invalid(field, "name an image, e.g. debian:bookworm or ghcr.io/owner/ci:latest"));
    }
    image
        .parse::<oci_client::Reference>()
        .map_err(|e| invalid(field, format!("invalid image reference `{image}`: {e}")))?;
    Ok(image.to_string())
}

/// Runner labels: trimmed, none empty, no spaces or commas, each once (GitHub compares them ignoring case).
pub fn check_labels(field: &'static str, labels: &[String]) -> Result<Vec<String>, ControlError> {
    let mut out: Vec<String> = Vec::new();
    for l in labels.iter().map(|l| l.trim()).filter(|l| !l.is_empty()) {
        if l.len() > 100 || l.chars().any(|c| c.is_whitespace() || c == ',' || c.is_control()) {
            return Err(invalid(field, format!("`{l}` is not a label (no spaces or commas, at most 100 characters)")));
        }
        if !out.iter().any(|x| x.eq_ignore_ascii_case(l)) {
            out.push(l.to_string());
        }
    }
    Ok(out)
}

/// Writes the config file whole or not at all (a synced temporary file renamed over it), keeping its
/// mode; a symlinked config (a dotfile manager's) is written where the link points.
pub fn write_config(path: &Path, text: &str) -> Result<(), ControlError> {
    use std::io::Write;
    let path = &std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let fail = |e: std::io::Error| ControlError::InvalidConfig(format!("cannot write {}: {e}", path.display()));
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(fail)?;
    }
    let tmp = path.with_extension("toml.new");
    let mut f = std::fs::File::create(&tmp).map_err(fail)?;
    f.write_all(text.as_bytes()).and_then(|()| f.sync_all()).map_err(fail)?;
    if let Ok(m) = std::fs::metadata(path) {
        std::fs::set_permissions(&tmp, m.permissions()).map_err(fail)?;
    }
    std::fs::rename(&tmp, path).map_err(fail)
}

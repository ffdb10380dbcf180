//! What the app asks of the desktop through Tauri's plugins: start at login, and opening a link in the
//! user's browser. A plugin that is not there (the mock runtime in tests) is a clear error, not a panic.

use tauri::{AppHandle, Manager, Runtime};

use crate::errors::UiError;

/// Turns start at login on or off.
pub fn set_autostart<R: Runtime>(app: &AppHandle<R>, on: bool) -> Result<(), UiError> {
    let Some(m) = app.try_state::<tauri_plugin_autostart::AutoLaunchManager>() else {
        return Err(UiError::new("not_implemented", "Start at login is not available here."));
    };
    let r = if on { m.enable() } else { m.disable() };
    r.map_err(|e| UiError::internal(format!("cannot change start at login: {e}")))
}

/// Opens `url` in the default browser.
pub fn open_url<R: Runtime>(app: &AppHandle<R>, url: &str) -> Result<(), UiError> {
    use tauri_plugin_opener::OpenerExt;
    if app.try_state::<tauri_plugin_opener::Opener<R>>().is_none() {
        return Err(UiError::new("not_implemented", "Opening links is not available here."));
    }
    app.opener().open_url(url, None::<&str>).map_err(|e| UiError::internal(format!("cannot open {url}: {e}")))
}

//! `ephemerd-tray`: the tray app. It talks to the daemon only through the control API (`ephemerd-proto`),
//! never through the daemon crate.
//!
//! Pure logic, tested without a desktop: `supervisor` (how to keep a daemon running: user mode's child
//! process or the OS service manager), `tray` (the daemon's status as the tray's icon, tooltip and menu),
//! `errors` (failures as `{code, message}` in words), `dto` (what crosses the IPC bridge), `paths`,
//! `settings` (the app's own, never a secret) and `elevate` (the OS's admin prompt as a command line).
//! Live: `daemon` carries out the supervisor's actions and follows the daemon's events; `commands` are
//! what the UI invokes; `desktop` is start at login and opening links; `shell` is the Tauri app (plugins,
//! tray, window).

pub mod commands;
pub mod daemon;
pub mod desktop;
pub mod dto;
pub mod elevate;
pub mod errors;
pub mod paths;
pub mod settings;
pub mod shell;
pub mod supervisor;
pub mod tray;

//! `ephemerd-tray`: the tray app's logic, kept out of the Tauri shell so it is tested without a desktop.
//! It talks to the daemon only through the control API (`ephemerd-proto`), never through the daemon
//! crate. `supervisor` decides how to keep a daemon running (user mode: a child process; service mode:
//! the OS service manager); `tray` turns the daemon's status into the tray's icon, tooltip and menu;
//! `errors` turns failures into `{code, message}` the UI shows in words a user understands.

pub mod errors;
pub mod supervisor;
pub mod tray;

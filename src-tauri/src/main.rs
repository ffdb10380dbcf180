//! The `ephemerd-tray` binary: the whole app lives in the library (`ephemerd_tray::shell`).
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

fn main() -> std::process::ExitCode {
    #[cfg(target_os = "linux")]
    ephemerd_tray::shell::without_gl();
    ephemerd_tray::shell::run()
}

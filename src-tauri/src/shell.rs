//! The Tauri side: plugins (single instance first), the tray rendered from `tray::model`, the one window
//! ("main", opened on demand at a route), events to the UI, notifications and dialogs. Everything it shows
//! comes from `daemon::Core`; nothing here talks to the daemon directly.

use std::process::ExitCode;
use std::sync::Arc;

use tauri::menu::{CheckMenuItem, Menu, MenuItem, PredefinedMenuItem};
use tauri::tray::TrayIconBuilder;
use tauri::{AppHandle, Emitter, Manager, RunEvent, Runtime, WebviewUrl, WebviewWindowBuilder};

use crate::daemon::{Core, Ui};
use crate::dto::{AppState, Job};
use crate::supervisor::Event;
use crate::tray::{Icon, ItemId, Tray};

const TRAY_ID: &str = "main";
const WINDOW: &str = "main";

/// The app with its state and commands, on any runtime (the mock runtime in tests).
pub fn builder<R: Runtime>(b: tauri::Builder<R>, core: Arc<Core>) -> tauri::Builder<R> {
    b.manage(core).invoke_handler(crate::commands::handler())
}

fn item_key(id: &ItemId) -> &'static str {
    match id {
        ItemId::Status => "status",
        ItemId::Worker => "worker",
        ItemId::PauseResume => "pause_resume",
        ItemId::Drain => "drain",
        ItemId::StartDaemon => "start_daemon",
        ItemId::InstallDaemon => "install_daemon",
        ItemId::OpenJobs => "open_jobs",
        ItemId::Settings => "settings",
        ItemId::StartAtLogin => "start_at_login",
        ItemId::Quit => "quit",
    }
}

fn icon(i: Icon) -> tauri::image::Image<'static> {
    match i {
        Icon::Idle => tauri::include_image!("icons/tray-idle.png"),
        Icon::Running(_) => tauri::include_image!("icons/tray-running.png"),
        Icon::Paused => tauri::include_image!("icons/tray-paused.png"),
        Icon::Draining => tauri::include_image!("icons/tray-draining.png"),
        Icon::Error => tauri::include_image!("icons/tray-error.png"),
        Icon::Disconnected => tauri::include_image!("icons/tray-disconnected.png"),
    }
}

fn menu<R: Runtime>(app: &AppHandle<R>, t: &Tray) -> tauri::Result<Menu<R>> {
    let m = Menu::new(app)?;
    for (n, it) in t.items.iter().enumerate() {
        let key = item_key(&it.id);
        if matches!(it.id, ItemId::OpenJobs | ItemId::StartAtLogin | ItemId::Quit) {
            m.append(&PredefinedMenuItem::separator(app)?)?;
        }
        match it.checked {
            Some(on) => m.append(&CheckMenuItem::with_id(app, key, &it.label, it.enabled, on, None::<&str>)?)?,
            None => m.append(&MenuItem::with_id(app, key, &it.label, it.enabled, None::<&str>)?)?,
        }
        // The status lines (the daemon's, then each worker's), then a separator.
        let next_is_status = t.items.get(n + 1).is_some_and(|i| i.id == ItemId::Worker);
        if matches!(it.id, ItemId::Status | ItemId::Worker) && !next_is_status {
            m.append(&PredefinedMenuItem::separator(app)?)?;
        }
    }
    Ok(m)
}

fn render_tray<R: Runtime>(app: &AppHandle<R>, t: &Tray) {
    let Some(tray) = app.tray_by_id(TRAY_ID) else { return };
    let _ = tray.set_icon(Some(icon(t.icon)));
    let _ = tray.set_tooltip(Some(&t.tooltip));
    // Where the OS shows a title next to the icon (macOS, some Linux panels): the running count.
    let title = match t.icon {
        Icon::Running(n) => n.to_string(),
        _ => String::new(),
    };
    let _ = tray.set_title(Some(title));
    match menu(app, t) {
        Ok(m) => {
            let _ = tray.set_menu(Some(m));
        }
        Err(e) => tracing::warn!(error = %e, "cannot build the tray menu"),
    }
}

/// Opens (or brings forward) the window at `route` (`#/jobs`, `#/settings`, …).
pub fn open_window<R: Runtime>(app: &AppHandle<R>, route: &str) {
    if let Some(w) = app.get_webview_window(WINDOW) {
        let _ = w.emit("navigate", route);
        let _ = w.show();
        let _ = w.unminimize();
        let _ = w.set_focus();
        return;
    }
    let script = format!("if (!window.location.hash) window.location.hash = {};", serde_json::json!(route));
    let built = WebviewWindowBuilder::new(app, WINDOW, WebviewUrl::App("index.html".into()))
        .title("ephemerd")
        .inner_size(1100.0, 720.0)
        .min_inner_size(720.0, 480.0)
        .initialization_script(&script)
        .build();
    if let Err(e) = built {
        tracing::warn!(error = %e, "cannot open the window");
    }
}

/// The `Ui` of the real app.
struct TauriUi<R: Runtime> {
    app: AppHandle<R>,
}

impl<R: Runtime> Ui for TauriUi<R> {
    fn state(&self, state: &AppState) {
        let _ = self.app.emit("daemon:state", state);
    }
    fn tray(&self, tray: &Tray) {
        render_tray(&self.app, tray);
    }
    fn jobs(&self, jobs: &[Job]) {
        let _ = self.app.emit("daemon:jobs", jobs);
    }
    fn job(&self, job: &Job) {
        let _ = self.app.emit("daemon:job", job);
    }
    fn notify(&self, title: &str, body: &str) {
        use tauri_plugin_notification::NotificationExt;
        if let Err(e) = self.app.notification().builder().title(title).body(body).show() {
            tracing::info!(error = %e, "cannot show a notification");
        }
    }
    fn confirm_quit(&self, running: u32) -> bool {
        use tauri_plugin_dialog::{DialogExt, MessageDialogButtons, MessageDialogKind};
        let jobs = if running == 1 { "1 job is".to_string() } else { format!("{running} jobs are") };
        self.app
            .dialog()
            .message(format!("{jobs} running. Quitting lets them finish, takes no new jobs, then stops the daemon."))
            .title("Quit ephemerd?")
            .kind(MessageDialogKind::Warning)
            .buttons(MessageDialogButtons::OkCancelCustom("Finish jobs and quit".into(), "Keep running".into()))
            .blocking_show()
    }
    fn exit(&self) {
        self.app.exit(0);
    }
}

fn on_menu<R: Runtime>(app: &AppHandle<R>, core: &Arc<Core>, key: &str) {
    match key {
        "pause_resume" => {
            let paused = core.state().status.map(|s| s.state == "paused").unwrap_or(false);
            let core = core.clone();
            tauri::async_runtime::spawn(async move {
                let r = if paused {
                    core.call(|mut c| async move { c.resume(ephemerd_proto::v1::ResumeRequest {}).await }).await
                } else {
                    core.call(|mut c| async move { c.pause(ephemerd_proto::v1::PauseRequest {}).await }).await
                };
                if let Err(e) = r {
                    tracing::warn!(error = %e.message, "pause/resume refused");
                }
            });
        }
        "drain" => {
            use tauri_plugin_dialog::{DialogExt, MessageDialogButtons};
            let core = core.clone();
            app.dialog()
                .message("Finish the running jobs, take no new ones, then stop the daemon?")
                .title("Drain ephemerd")
                .buttons(MessageDialogButtons::OkCancelCustom("Drain".into(), "Cancel".into()))
                .show(move |yes| {
                    if yes {
                        tauri::async_runtime::spawn(async move {
                            let r = core
                                .call(|mut c| async move {
                                    c.drain(ephemerd_proto::v1::DrainRequest { timeout: None }).await
                                })
                                .await;
                            if let Err(e) = r {
                                tracing::warn!(error = %e.message, "drain refused");
                            }
                        });
                    }
                });
        }
        "start_daemon" => core.handle(Event::StartRequested),
        "install_daemon" => core.handle(Event::InstallRequested),
        "open_jobs" => open_window(app, "#/jobs"),
        "settings" => open_window(app, "#/settings"),
        "start_at_login" => {
            let on = !core.state().start_at_login;
            match crate::desktop::set_autostart(app, on) {
                Ok(()) => core.set_start_at_login_seen(on),
                Err(e) => tracing::warn!(error = %e.message, "start at login"),
            }
        }
        "quit" => core.quit(),
        _ => {}
    }
}

/// Linux: GTK opens OpenGL when it starts (Mesa's llvmpipe alone keeps ~45 MiB resident), although the
/// tray never draws with it and the window is a plain page. The app runs without it unless `GDK_GL` is
/// set. It re-executes itself with the variable set: changing a running process's environment is unsafe.
#[cfg(target_os = "linux")]
pub fn without_gl() {
    use std::os::unix::process::CommandExt;
    if std::env::var_os("GDK_GL").is_some() {
        return;
    }
    let Ok(exe) = std::env::current_exe() else { return };
    let err = std::process::Command::new(exe).args(std::env::args_os().skip(1)).env("GDK_GL", "disable").exec();
    eprintln!("ephemerd-tray: cannot run itself again without OpenGL ({err}); going on with it");
}

fn init_tracing() {
    let filter = std::env::var("EPHEMERD_TRAY_LOG").unwrap_or_else(|_| "info".into());
    let filter =
        tracing_subscriber::EnvFilter::try_new(filter).unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}

/// The app: `--show` opens the window at start (as does a first run, at the onboarding).
pub fn run() -> ExitCode {
    init_tracing();
    let launched = std::time::Instant::now();
    let show = std::env::args().any(|a| a == "--show");
    let core = Core::new(crate::paths::from_process());
    tracing::info!(socket = %core.socket().display(), ephemerd = %core.paths.ephemerd.display(), "starting");
    let setup_core = core.clone();
    let menu_core = core.clone();
    let b = tauri::Builder::default()
        .plugin(tauri_plugin_single_instance::init(|app, _argv, _cwd| open_window(app, "#/jobs")))
        .plugin(tauri_plugin_autostart::init(tauri_plugin_autostart::MacosLauncher::LaunchAgent, None))
        .plugin(tauri_plugin_notification::init())
        .plugin(tauri_plugin_dialog::init())
        .plugin(tauri_plugin_opener::init());
    let app = builder(b, core)
        .setup(move |app| {
            let core = setup_core;
            let handle = app.handle().clone();
            #[cfg(target_os = "macos")]
            app.set_activation_policy(tauri::ActivationPolicy::Accessory);
            let tray = core.tray();
            TrayIconBuilder::with_id(TRAY_ID)
                .icon(icon(tray.icon))
                .tooltip(&tray.tooltip)
                .menu(&menu(&handle, &tray)?)
                .show_menu_on_left_click(true)
                .on_menu_event(move |app, ev| on_menu(app, &menu_core, ev.id().as_ref()))
                .build(app)?;
            if let Some(m) = app.try_state::<tauri_plugin_autostart::AutoLaunchManager>() {
                core.set_start_at_login_seen(m.is_enabled().unwrap_or(false));
            }
            core.set_ui(Arc::new(TauriUi { app: handle.clone() }));
            tauri::async_runtime::spawn(core.clone().supervise());
            let onboarded = core.state().onboarded;
            if show || !onboarded {
                open_window(&handle, if onboarded { "#/jobs" } else { "#/onboarding" });
            }
            tracing::info!(ms = launched.elapsed().as_millis() as u64, "tray ready");
            Ok(())
        })
        .build(tauri::generate_context!());
    let app = match app {
        Ok(a) => a,
        Err(e) => {
            eprintln!("ephemerd-tray: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    app.run(|_, ev| {
        // Closing the window keeps the tray; only Quit (app.exit) ends the app.
        if let RunEvent::ExitRequested { code: None, api, .. } = ev {
            api.prevent_exit();
        }
    });
    ExitCode::SUCCESS
}

//! The commands the UI invokes (`ui/src/api.ts` is the other side). Each is a thin call into `Core` or one
//! control-API RPC; failures reach the UI as `{code, message}`. Secrets travel only towards the daemon.

use std::sync::Arc;

use ephemerd_proto::v1;
use serde::Serialize;
use tauri::ipc::Channel;
use tauri::{AppHandle, Runtime, State};

use crate::daemon::Core;
use crate::dto::{self, AppState, ForgeInput, ForgeView, Job, JobSettings, LogEvent, TestResult};
use crate::errors::UiError;
use crate::settings::ModeSetting;
use crate::supervisor::Event;

type Res<T> = Result<T, UiError>;

#[tauri::command]
pub fn app_state(core: State<'_, Arc<Core>>) -> AppState {
    core.state()
}

#[tauri::command]
pub async fn list_jobs(core: State<'_, Arc<Core>>, all: bool) -> Res<Vec<Job>> {
    let page_size = if all { 500 } else { 100 };
    let r = core
        .call(|mut c| async move { c.list_jobs(v1::ListJobsRequest { page_size, ..Default::default() }).await })
        .await?;
    Ok(r.jobs.iter().map(Job::from).collect())
}

#[tauri::command]
pub async fn get_job(core: State<'_, Arc<Core>>, id: String) -> Res<Job> {
    let j = core.call(|mut c| async move { c.get_job(v1::GetJobRequest { id }).await }).await?;
    Ok(Job::from(&j))
}

#[tauri::command]
pub async fn follow_logs(core: State<'_, Arc<Core>>, id: String, on_event: Channel<LogEvent>) -> Res<u32> {
    Ok(core.follow_logs(id, move |ev| on_event.send(ev).is_ok()))
}

#[tauri::command]
pub fn stop_logs(core: State<'_, Arc<Core>>, handle: u32) {
    core.stop_logs(handle)
}

#[tauri::command]
pub async fn kill_job(core: State<'_, Arc<Core>>, id: String) -> Res<()> {
    core.call(|mut c| async move { c.kill_job(v1::KillJobRequest { id }).await }).await?;
    Ok(())
}

#[tauri::command]
pub async fn pause(core: State<'_, Arc<Core>>) -> Res<dto::Status> {
    let s = core.call(|mut c| async move { c.pause(v1::PauseRequest {}).await }).await?;
    Ok(dto::Status::from(&s))
}

#[tauri::command]
pub async fn resume(core: State<'_, Arc<Core>>) -> Res<dto::Status> {
    let s = core.call(|mut c| async move { c.resume(v1::ResumeRequest {}).await }).await?;
    Ok(dto::Status::from(&s))
}

#[tauri::command]
pub async fn drain(core: State<'_, Arc<Core>>, timeout_secs: Option<u64>) -> Res<dto::Status> {
    let timeout = timeout_secs.map(|s| prost_types::Duration { seconds: s.min(i64::MAX as u64) as i64, nanos: 0 });
    let s = core.call(|mut c| async move { c.drain(v1::DrainRequest { timeout }).await }).await?;
    Ok(dto::Status::from(&s))
}

#[tauri::command]
pub async fn test_forge(core: State<'_, Arc<Core>>, forge: ForgeInput) -> Res<TestResult> {
    let spec = forge.into_spec()?;
    let r = core.call(|mut c| async move { c.test_forge(v1::TestForgeRequest { forge: Some(spec) }).await }).await?;
    Ok(TestResult { ok: r.ok, missing: r.missing_permissions, message: r.message })
}

#[derive(Debug, Serialize)]
pub struct Saved {
    pub name: String,
    pub note: String,
}

#[tauri::command]
pub async fn save_forge(core: State<'_, Arc<Core>>, forge: ForgeInput) -> Res<Saved> {
    let spec = forge.into_spec()?;
    // Long enough for a keyring that asks to be unlocked.
    let r = core
        .call_within(std::time::Duration::from_secs(180), |mut c| async move {
            c.save_forge(v1::SaveForgeRequest { forge: Some(spec) }).await
        })
        .await?;
    Ok(Saved { name: r.name, note: r.note })
}

#[tauri::command]
pub async fn get_forge(core: State<'_, Arc<Core>>, name: String) -> Res<ForgeView> {
    let spec = core.call(|mut c| async move { c.get_forge(v1::GetForgeRequest { name }).await }).await?;
    Ok(spec.into())
}

#[tauri::command]
pub async fn remove_forge(core: State<'_, Arc<Core>>, name: String) -> Res<()> {
    core.call(|mut c| async move { c.remove_forge(v1::RemoveForgeRequest { name }).await }).await?;
    Ok(())
}

#[derive(Debug, Serialize)]
pub struct Note {
    pub note: String,
}

#[tauri::command]
pub async fn set_credential(core: State<'_, Arc<Core>>, provider: String, secret: String) -> Res<Note> {
    if secret.trim().is_empty() {
        return Err(UiError::invalid("Enter the new token."));
    }
    let r =
        core.call(|mut c| async move { c.set_credential(v1::SetCredentialRequest { provider, secret }).await }).await?;
    Ok(Note { note: r.note })
}

#[tauri::command]
pub async fn get_job_settings(core: State<'_, Arc<Core>>) -> Res<JobSettings> {
    let r = core.call(|mut c| async move { c.get_job_settings(v1::GetJobSettingsRequest {}).await }).await?;
    Ok(r.into())
}

#[derive(Debug, Serialize)]
pub struct SavedJobSettings {
    pub settings: Option<JobSettings>,
    pub note: String,
}

#[tauri::command]
pub async fn save_job_settings(core: State<'_, Arc<Core>>, settings: JobSettings) -> Res<SavedJobSettings> {
    let settings = v1::JobSettings::from(settings);
    let r = core
        .call(|mut c| async move { c.save_job_settings(v1::SaveJobSettingsRequest { settings: Some(settings) }).await })
        .await?;
    Ok(SavedJobSettings { settings: r.settings.map(JobSettings::from), note: r.note })
}

#[tauri::command]
pub fn start_daemon(core: State<'_, Arc<Core>>) {
    core.handle(Event::StartRequested)
}

#[tauri::command]
pub fn install_daemon(core: State<'_, Arc<Core>>) {
    core.handle(Event::InstallRequested)
}

#[tauri::command]
pub fn set_mode(core: State<'_, Arc<Core>>, mode: ModeSetting) -> Res<AppState> {
    core.update_settings(|s| s.mode = mode)
}

#[tauri::command]
pub fn set_notifications(core: State<'_, Arc<Core>>, enabled: bool) -> Res<AppState> {
    core.update_settings(|s| s.notifications = enabled)
}

#[tauri::command]
pub fn finish_onboarding(core: State<'_, Arc<Core>>) -> Res<AppState> {
    core.update_settings(|s| s.onboarded = true)
}

#[tauri::command]
pub fn set_start_at_login<R: Runtime>(app: AppHandle<R>, core: State<'_, Arc<Core>>, enabled: bool) -> Res<AppState> {
    crate::desktop::set_autostart(&app, enabled)?;
    core.set_start_at_login_seen(enabled);
    Ok(core.state())
}

#[derive(Debug, Serialize)]
pub struct TestJob {
    pub ok: bool,
    pub output: String,
    pub message: String,
}

#[tauri::command]
pub async fn run_test_job(core: State<'_, Arc<Core>>) -> Res<TestJob> {
    // The daemon may pull the job image first.
    let r = core
        .call_within(std::time::Duration::from_secs(900), |mut c| async move {
            c.run_test_job(v1::RunTestJobRequest {}).await
        })
        .await?;
    Ok(TestJob { ok: r.ok, output: r.output, message: r.message })
}

#[tauri::command]
pub fn open_url<R: Runtime>(app: AppHandle<R>, url: String) -> Res<()> {
    if !(url.starts_with("https://") || url.starts_with("http://")) {
        return Err(UiError::invalid(format!("`{url}` is not a web address.")));
    }
    crate::desktop::open_url(&app, &url)
}

/// Every command, for `Builder::invoke_handler` (the real app and the mock-runtime tests).
pub fn handler<R: Runtime>() -> impl Fn(tauri::ipc::Invoke<R>) -> bool + Send + Sync + 'static {
    tauri::generate_handler![
        app_state,
        list_jobs,
        get_job,
        follow_logs,
        stop_logs,
        kill_job,
        pause,
        resume,
        drain,
        test_forge,
        save_forge,
        get_forge,
        remove_forge,
        set_credential,
        get_job_settings,
        save_job_settings,
        start_daemon,
        install_daemon,
        set_mode,
        set_notifications,
        finish_onboarding,
        set_start_at_login,
        run_test_job,
        open_url,
    ]
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use serde_json::{Value, json};
    use tauri::ipc::{CallbackFn, InvokeBody};
    use tauri::test::{INVOKE_KEY, MockRuntime, get_ipc_response, mock_builder, mock_context, noop_assets};
    use tauri::webview::InvokeRequest;

    use crate::daemon::Core;
    use crate::paths::Paths;

    /// The app on Tauri's mock runtime, with no daemon at its socket.
    fn app(dir: &Path) -> (tauri::App<MockRuntime>, tauri::WebviewWindow<MockRuntime>) {
        let nowhere = dir.join("run/control.sock");
        let paths = Paths {
            socket: nowhere.clone(),
            service_socket: nowhere,
            ephemerd: dir.join("no-ephemerd"),
            app_dir: dir.join("app"),
        };
        let app = crate::shell::builder(mock_builder(), Core::new(paths)).build(mock_context(noop_assets())).unwrap();
        let w = tauri::WebviewWindowBuilder::new(&app, "main", Default::default()).build().unwrap();
        (app, w)
    }

    fn invoke(w: &tauri::WebviewWindow<MockRuntime>, cmd: &str, body: Value) -> Result<Value, Value> {
        let req = InvokeRequest {
            cmd: cmd.into(),
            callback: CallbackFn(0),
            error: CallbackFn(1),
            url: "tauri://localhost".parse().unwrap(),
            body: InvokeBody::Json(body),
            headers: Default::default(),
            invoke_key: INVOKE_KEY.to_string(),
        };
        get_ipc_response(w, req).map(|b| b.deserialize::<Value>().unwrap())
    }

    #[test]
    fn the_state_says_what_is_known_and_settings_are_saved_without_secrets() {
        let d = tempfile::tempdir().unwrap();
        let (_app, w) = app(d.path());
        let s = invoke(&w, "app_state", json!({})).unwrap();
        assert_eq!(s["health"]["state"], "starting");
        assert_eq!((s["status"].clone(), s["onboarded"].clone()), (Value::Null, json!(false)));
        let s = invoke(&w, "set_notifications", json!({"enabled": false})).unwrap();
        assert_eq!(s["notifications"], false);
        let s = invoke(&w, "set_mode", json!({"mode": "user"})).unwrap();
        assert_eq!(s["mode"], "user");
        let s = invoke(&w, "finish_onboarding", json!({})).unwrap();
        assert_eq!(s["onboarded"], true);
        let saved: Value = serde_json::from_slice(&std::fs::read(d.path().join("app/settings.json")).unwrap()).unwrap();
        assert_eq!(saved, json!({"mode": "user", "notifications": false, "onboarded": true}));
        let e = invoke(&w, "set_mode", json!({"mode": "root"})).unwrap_err();
        assert!(e.to_string().contains("root"), "{e}");
    }

    #[test]
    fn without_a_daemon_calls_fail_in_words_and_bad_input_is_refused_before_sending() {
        let d = tempfile::tempdir().unwrap();
        let (_app, w) = app(d.path());
        let e = invoke(&w, "list_jobs", json!({"all": false})).unwrap_err();
        assert_eq!(e["code"], "daemon_unavailable");
        assert_eq!(e["message"], "ephemerd is not running.");
        assert_eq!(invoke(&w, "pause", json!({})).unwrap_err()["code"], "daemon_unavailable");
        assert_eq!(invoke(&w, "get_job_settings", json!({})).unwrap_err()["code"], "daemon_unavailable");
        assert_eq!(invoke(&w, "get_forge", json!({"name": "github:o"})).unwrap_err()["code"], "daemon_unavailable");
        let settings = json!({"maxConcurrent": 2, "defaultImage": "debian", "profiles": []});
        let e = invoke(&w, "save_job_settings", json!({"settings": settings})).unwrap_err();
        assert_eq!(e["code"], "daemon_unavailable");
        let e = invoke(&w, "save_job_settings", json!({"settings": {"maxConcurrent": "many"}})).unwrap_err();
        assert!(e.to_string().contains("invalid args `settings`"), "{e}");
        let forge = json!({"kind": "github", "owner": "o", "auth": {"type": "token", "token": "ghp_x"},
            "webhook": true, "webhookSecret": "hook-secret-1"});
        let e = invoke(&w, "save_forge", json!({"forge": forge})).unwrap_err();
        assert_eq!(e["code"], "daemon_unavailable");
        assert!(!e.to_string().contains("ghp_x") && !e.to_string().contains("hook-secret"));
        let e = invoke(
            &w,
            "test_forge",
            json!({"forge": {"kind": "github", "owner": "o",
            "auth": {"type": "token", "token": "t"}, "pollInterval": "soon"}}),
        )
        .unwrap_err();
        assert_eq!(e["code"], "invalid_field");
        let e = invoke(&w, "set_credential", json!({"provider": "github:o", "secret": " "})).unwrap_err();
        assert_eq!(e["code"], "invalid_field");
        assert_eq!(invoke(&w, "open_url", json!({"url": "file:///etc/passwd"})).unwrap_err()["code"], "invalid_field");
        // No autostart plugin on the mock runtime: said so, not a crash.
        assert_eq!(invoke(&w, "set_start_at_login", json!({"enabled": true})).unwrap_err()["code"], "not_implemented");
    }
}

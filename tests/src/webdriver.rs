//! The tray app in a real window, driven over WebDriver: an Xvfb display, `tauri-driver` (which runs
//! WebKitWebDriver, which runs the app), and a small W3C WebDriver client over plain HTTP. Everything
//! runs with the environment the test gives, so the app finds its daemon, keyring and files there.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use serde_json::{Value, json};

/// An X server of our own.
pub struct Xvfb {
    child: Child,
    pub display: String,
}

impl Xvfb {
    pub fn start() -> Result<Xvfb> {
        for n in 70..120 {
            let sock = PathBuf::from(format!("/tmp/.X11-unix/X{n}"));
            let lock = PathBuf::from(format!("/tmp/.X{n}-lock"));
            if lock.exists() && !held(&lock) {
                // Left by an X server that is gone (killed before it could clean up).
                let _ = std::fs::remove_file(&lock);
                let _ = std::fs::remove_file(&sock);
            }
            if sock.exists() || lock.exists() {
                continue;
            }
            let child = Command::new("Xvfb")
                .args([format!(":{n}").as_str(), "-screen", "0", "1280x800x24", "-nolisten", "tcp", "-ac"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .context("Xvfb (apt install xvfb)")?;
            let mut x = Xvfb { child, display: format!(":{n}") };
            let deadline = Instant::now() + Duration::from_secs(10);
            while !sock.exists() {
                if let Ok(Some(_)) = x.child.try_wait() {
                    break; // Lost a race for the display: try the next one.
                }
                if Instant::now() > deadline {
                    bail!("Xvfb :{n} did not come up");
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            if sock.exists() {
                return Ok(x);
            }
        }
        bail!("no free X display between :70 and :119")
    }
}

/// Whether an X display's lock file names a live process.
fn held(lock: &Path) -> bool {
    let pid = std::fs::read_to_string(lock).ok().and_then(|t| t.trim().parse::<i32>().ok());
    pid.is_some_and(|p| Path::new(&format!("/proc/{p}")).exists())
}

impl Drop for Xvfb {
    fn drop(&mut self) {
        // SIGTERM lets Xvfb remove its lock file and socket; SIGKILL if it does not go.
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `tauri-driver` on a free port: from `TAURI_DRIVER`, else `~/.cache/ephemerd/tools/bin`, else `PATH`.
pub struct Driver {
    child: Child,
    pub addr: String,
}

pub fn tauri_driver_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("TAURI_DRIVER") {
        return p.into();
    }
    let cached = std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/ephemerd/tools/bin/tauri-driver"));
    cached.filter(|p| p.is_file()).unwrap_or_else(|| "tauri-driver".into())
}

impl Driver {
    pub fn start(env: &[(String, String)], log: &Path) -> Result<Driver> {
        let port = crate::free_port();
        let native = crate::free_port();
        use std::os::unix::process::CommandExt;
        let out = std::fs::File::create(log)?;
        // Its own process group: WebKitWebDriver and the app it starts go with it.
        let child = Command::new(tauri_driver_bin())
            .process_group(0)
            .args(["--port", &port.to_string(), "--native-port", &native.to_string()])
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::from(out.try_clone()?))
            .stderr(Stdio::from(out))
            .spawn()
            .context("tauri-driver (cargo install tauri-driver --locked --version 2.1.0)")?;
        let d = Driver { child, addr: format!("127.0.0.1:{port}") };
        // Ready when WebKitWebDriver answers on its own port and tauri-driver listens on its port. Not by
        // asking tauri-driver: a request through it leaves a pooled connection to WebKitWebDriver that may
        // be closed as idle by the time `POST /session` is sent over it, and tauri-driver does not retry
        // that (see `request`), nor can we, safely, for a new session.
        let native_addr = format!("127.0.0.1:{native}");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let native_up =
                matches!(request("GET", &native_addr, "/status", None, Duration::from_secs(2)), Ok((200, _)));
            if native_up && std::net::TcpStream::connect(&d.addr).is_ok() {
                return Ok(d);
            }
            if Instant::now() > deadline {
                bail!("tauri-driver did not answer on {}", d.addr);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A session: the app started with `args`.
    pub fn session(&self, app: &Path, args: &[&str]) -> Result<Session> {
        let body = json!({"capabilities": {"alwaysMatch": {"tauri:options": {
            "application": app.display().to_string(), "args": args
        }}}});
        let (code, v) = request("POST", &self.addr, "/session", Some(&body), Duration::from_secs(90))?;
        if code != 200 {
            bail!("new session refused ({code}): {v}");
        }
        let id = v["value"]["sessionId"].as_str().ok_or_else(|| anyhow!("no session id in {v}"))?.to_string();
        Ok(Session { addr: self.addr.clone(), id })
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let group = nix::unistd::Pid::from_raw(-(self.child.id() as i32));
        let _ = nix::sys::signal::kill(group, nix::sys::signal::Signal::SIGKILL);
        let _ = self.child.wait();
    }
}

/// One request with a JSON body; the JSON answer.
///
/// tauri-driver forwards each request over a pooled keep-alive connection to WebKitWebDriver, without
/// retrying one the other side has just closed as idle (`retry_canceled_requests(false)`); it then
/// closes our connection with no answer, and the command never reached WebKitWebDriver. Such a
/// request is sent again (a new session is not: it may have started the app).
fn request(method: &str, addr: &str, path: &str, body: Option<&Value>, timeout: Duration) -> Result<(u16, Value)> {
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let json = [("Content-Type", "application/json")];
    let mut tries = if path == "/session" { 1 } else { 3 };
    let (code, payload) = loop {
        tries -= 1;
        match crate::http_request_within(method, addr, path, &json, body.as_bytes(), timeout) {
            Err(e) if tries > 0 && unanswered(&e) => {
                eprintln!("{method} {path}: {e:#}; sending it again");
                std::thread::sleep(Duration::from_millis(200));
            }
            other => break other.with_context(|| format!("{method} {path}"))?,
        }
    };
    let v = if payload.is_empty() { Value::Null } else { serde_json::from_slice(&payload)? };
    Ok((code, v))
}

/// A WebDriver error answer: its HTTP status and W3C error code (e.g. `no such element`).
#[derive(Debug)]
pub struct WebDriverError {
    pub code: u16,
    pub error: String,
}

impl std::fmt::Display for WebDriverError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "WebDriver error {} ({})", self.error, self.code)
    }
}

impl std::error::Error for WebDriverError {}

/// The connection was closed with no answer at all (not a timeout, not a reset that may come after the
/// command was forwarded: such a command is not resent).
fn unanswered(e: &anyhow::Error) -> bool {
    e.to_string() == "no HTTP answer: "
}

pub struct Session {
    addr: String,
    pub id: String,
}

impl Session {
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value> {
        self.call_within(method, path, body, Duration::from_secs(60))
    }

    fn call_within(&self, method: &str, path: &str, body: Option<Value>, timeout: Duration) -> Result<Value> {
        let full = format!("/session/{}{path}", self.id);
        let (code, v) = request(method, &self.addr, &full, body.as_ref(), timeout)?;
        if code != 200 {
            return Err(WebDriverError { code, error: v["value"]["error"].as_str().unwrap_or_default().into() })
                .with_context(|| format!("{method} {path}: {code} {v}"));
        }
        Ok(v["value"].clone())
    }

    /// The first element matching `css`, if any. A driver that does not answer is an error, never
    /// "no such element": a test waiting for an element to go must not take one for the other.
    pub fn try_find(&self, css: &str) -> Result<Option<String>> {
        match self.call("POST", "/element", Some(json!({"using": "css selector", "value": css}))) {
            Ok(v) => {
                let id = v.as_object().and_then(|o| o.values().next()).and_then(Value::as_str);
                Ok(Some(id.ok_or_else(|| anyhow!("no element id in {v}"))?.to_string()))
            }
            Err(e) if e.downcast_ref::<WebDriverError>().is_some_and(|w| w.error == "no such element") => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The first element matching `css`; `None` when there is none or the driver did not answer.
    pub fn find(&self, css: &str) -> Option<String> {
        self.try_find(css).ok().flatten()
    }

    /// Waits until no element matches `css` (the driver answering so).
    pub fn wait_gone(&self, css: &str, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let last = self.try_find(css);
            if let Ok(None) = last {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("`{css}` still there after {timeout:?} ({last:?})");
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Waits for an element matching `css`.
    pub fn wait_for(&self, css: &str, timeout: Duration) -> Result<String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(e) = self.find(css) {
                return Ok(e);
            }
            if Instant::now() > deadline {
                bail!("no element `{css}` after {timeout:?}; the page says:\n{}", self.body_text());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Waits until the text of `css` satisfies `ok`; returns it.
    pub fn wait_text(&self, css: &str, timeout: Duration, ok: impl Fn(&str) -> bool) -> Result<String> {
        let deadline = Instant::now() + timeout;
        let mut last = String::new();
        loop {
            if let Some(e) = self.find(css) {
                last = self.text(&e).unwrap_or_default();
                if ok(&last) {
                    return Ok(last);
                }
            }
            if Instant::now() > deadline {
                bail!("`{css}` never matched after {timeout:?}; last text: {last:?}; page:\n{}", self.body_text());
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    pub fn click(&self, css: &str) -> Result<()> {
        let e = self.wait_for(css, Duration::from_secs(20))?;
        match self.call("POST", &format!("/element/{e}/click"), Some(json!({}))) {
            Ok(_) => Ok(()),
            // Covered by the sticky header after scrolling into view: click it the way a script would.
            Err(err) if err.to_string().contains("intercepted") => {
                let js = format!("document.querySelector({}).click(); return 1;", json!(css));
                self.script(&js).map(|_| ())
            }
            Err(err) => Err(err),
        }
    }

    /// Replaces an input's value, as typing would (the W3C `text` field).
    pub fn fill(&self, css: &str, text: &str) -> Result<()> {
        let e = self.wait_for(css, Duration::from_secs(20))?;
        self.call("POST", &format!("/element/{e}/clear"), Some(json!({})))?;
        self.call("POST", &format!("/element/{e}/value"), Some(json!({"text": text}))).map(|_| ())
    }

    pub fn text(&self, element: &str) -> Result<String> {
        Ok(self.call("GET", &format!("/element/{element}/text"), None)?.as_str().unwrap_or_default().to_string())
    }

    /// A DOM property (what the page holds now, e.g. an input's `value`), not the HTML attribute.
    pub fn property(&self, css: &str, name: &str) -> Option<Value> {
        let e = self.find(css)?;
        self.call("GET", &format!("/element/{e}/property/{name}"), None).ok()
    }

    pub fn body_text(&self) -> String {
        self.find("body").and_then(|b| self.text(&b).ok()).unwrap_or_default()
    }

    pub fn script(&self, js: &str) -> Result<Value> {
        self.call("POST", "/execute/sync", Some(json!({"script": js, "args": []})))
    }

    pub fn screenshot(&self, to: &Path) -> Result<()> {
        use base64::Engine;
        // WebKitWebDriver takes the screenshot at the page's next paint, and a page that does not
        // change is not painted again (seen under Xvfb on a still jobs table): keep a pixel changing
        // for a few seconds, then ask. Give up after a while all the same, and let the caller retry.
        self.script(REPAINT)?;
        let v = self.call_within("GET", "/screenshot", None, Duration::from_secs(15))?;
        let png = base64::engine::general_purpose::STANDARD.decode(v.as_str().unwrap_or_default())?;
        if let Some(d) = to.parent() {
            std::fs::create_dir_all(d)?;
        }
        std::fs::write(to, png)?;
        Ok(())
    }

    pub fn close(self) {
        let _ = request("DELETE", &self.addr, &format!("/session/{}", self.id), None, Duration::from_secs(20));
    }
}

/// Keeps one transparent pixel changing for three seconds, so the page paints.
const REPAINT: &str = "const d = document.createElement('div');
d.style.cssText = 'position:fixed;left:0;top:0;width:1px;height:1px;pointer-events:none';
document.body.appendChild(d);
let n = 0;
const t = setInterval(() => {
  d.style.background = n % 2 ? 'rgba(0,0,0,0.01)' : 'rgba(0,0,0,0.02)';
  if (++n > 60) { clearInterval(t); d.remove(); }
}, 50);
return 1;";

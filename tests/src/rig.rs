//! A runtime under test: a supervised containerd in a fresh data dir (its own instance) and a `Runtime`
//! on it, with helpers to run a bash script as a job and to check that nothing of the instance is left.

use std::time::Duration;

use ephemerd::config::{Config, Limits};
use ephemerd::platform::{DataDirLock, DataDirs};
use ephemerd::runtime::binaries::SearchPath;
use ephemerd::runtime::containerd::spec::Bind;
use ephemerd::runtime::containerd::{Binaries, Containerd, Image, Supervisor, task};
use ephemerd::runtime::{Exit, JobSpec, Runtime, new_job_id};
use ephemerd::store::Store;

use crate::{config_text, job_image_archive, leftovers, short_tempdir};

/// Fields drop in this order: the lock is released before a failed test's cleanup takes it, and the
/// data dir goes last.
pub struct Rig {
    pub dirs: DataDirs,
    pub sup: Supervisor,
    pub ctr: Containerd,
    pub rt: Runtime,
    _lock: DataDirLock,
    _cleanup: CleanupOnPanic,
    pub dir: tempfile::TempDir,
}

/// A test that panics leaves its containerd and jobs running; they would hold the shared test bridge
/// and fail every later test. `ephemerd cleanup` removes them (it stops the stale containerd first).
struct CleanupOnPanic {
    dir: std::path::PathBuf,
}

impl Drop for CleanupOnPanic {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let _ = crate::ephemerd(&self.dir, &self.dir.join("config.toml"), &["cleanup"]);
        }
    }
}

impl Rig {
    pub async fn start(extra: &str) -> Rig {
        let dir = short_tempdir();
        let text = config_text(extra);
        let cfg = Config::parse(&text).unwrap();
        cfg.validate().unwrap();
        std::fs::write(dir.path().join("config.toml"), &text).unwrap();
        let dirs = DataDirs::new(dir.path());
        let lock = DataDirLock::acquire(&dirs).unwrap();
        let bins = Binaries::find(&SearchPath::for_executables(None)).unwrap();
        let sup = Supervisor::start(&dirs, bins, Duration::from_secs(30)).await.unwrap();
        let ctr = Containerd::connect(sup.socket()).await.unwrap();
        let store = Store::open(&dirs.journal()).unwrap();
        let rt = Runtime::new(&cfg, dirs.clone(), ctr.clone(), store).unwrap();
        let _cleanup = CleanupOnPanic { dir: dir.path().to_path_buf() };
        Rig { dirs, sup, ctr, rt, _lock: lock, _cleanup, dir }
    }

    pub async fn import_job_image(&self) -> Image {
        let archive = job_image_archive().unwrap();
        let imgs = self.rt.images.import(&archive, &|_| {}).await.unwrap();
        imgs.into_iter().next().unwrap()
    }

    /// Runs `script` with bash in a fresh container; returns how it ended and its log.
    pub async fn run(&self, image: &Image, script: &str, limits: Option<Limits>, binds: Vec<Bind>) -> (Exit, String) {
        let id = new_job_id();
        self.rt.begin(&id, &image.name).unwrap();
        let spec = JobSpec {
            id: id.clone(),
            image: image.clone(),
            args: Some(vec!["bash".into(), "-c".into(), script.into()]),
            env: vec![("FROM_JOB".into(), "yes".into())],
            workdir: None,
            binds,
            limits,
            endpoints: vec![],
        };
        let r = async {
            self.rt.create(&spec).await?;
            self.rt.start(&id).await?;
            self.rt.wait(&id).await
        }
        .await;
        self.rt.destroy(&id).await.unwrap();
        // Idempotent: a second destroy finds nothing to do.
        self.rt.destroy(&id).await.unwrap();
        let exit = r.unwrap_or_else(|e| panic!("job {id}: {e}"));
        let log = std::fs::read_to_string(self.rt.log_path(&id)).unwrap();
        (exit, log)
    }

    pub async fn assert_clean(&self) {
        let mut left = leftovers(self.dir.path());
        for c in task::owned_containers(&self.ctr).await.unwrap() {
            left.push(format!("container {c}"));
        }
        for s in task::owned_snapshots(&self.ctr).await.unwrap() {
            left.push(format!("snapshot {s}"));
        }
        assert!(left.is_empty(), "left behind: {left:#?}");
    }

    pub async fn stop(self) {
        self.rt.shutdown().await.unwrap();
        self.assert_clean().await;
        self.sup.stop().await;
        let socket = self.dirs.containerd_socket();
        for s in [socket.clone(), socket.with_extension("sock.ttrpc")] {
            assert!(!s.exists(), "{} is left after containerd stopped", s.display());
        }
    }
}

//! The journal: job records and the resources each job owns, in SQLite (WAL). A resource is recorded
//! *before* it is created, so a daemon killed at any point finds at its next start everything it may have
//! left behind and removes it (see `runtime::Runtime::reconcile`).

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension, params};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("journal {path}: {source}")]
    Open { path: String, source: rusqlite::Error },
    #[error("journal: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("journal: lock poisoned")]
    Poisoned,
    #[error("journal: unknown resource kind `{0}`")]
    UnknownKind(String),
}

/// Kinds of world objects a job owns, in the order they are created. Destruction goes in reverse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ResourceKind {
    /// A per-job directory on the host (scratch dir, runner overlay).
    Dir,
    /// A named network namespace (path of its bind mount).
    Netns,
    /// A CNI attachment (the netns path; the IP lease lives with it).
    Cni,
    /// iptables rules tagged with the job id.
    Firewall,
    /// A containerd snapshot (its key).
    Snapshot,
    /// A containerd container record (and its task).
    Container,
}

impl ResourceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Dir => "dir",
            Self::Netns => "netns",
            Self::Cni => "cni",
            Self::Firewall => "firewall",
            Self::Snapshot => "snapshot",
            Self::Container => "container",
        }
    }
    fn parse(s: &str) -> Result<Self, StoreError> {
        Ok(match s {
            "dir" => Self::Dir,
            "netns" => Self::Netns,
            "cni" => Self::Cni,
            "firewall" => Self::Firewall,
            "snapshot" => Self::Snapshot,
            "container" => Self::Container,
            other => return Err(StoreError::UnknownKind(other.into())),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    pub kind: ResourceKind,
    pub name: String,
}

/// A job's lifecycle as the journal sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobState {
    /// Resources are being created or the job runs.
    Active,
    /// The job's process ended; resources may still exist.
    Exited,
    /// Every resource was removed.
    Cleaned,
}

impl JobState {
    fn parse(s: &str) -> Self {
        match s {
            "exited" => Self::Exited,
            "cleaned" => Self::Cleaned,
            _ => Self::Active,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct JobRecord {
    pub id: String,
    pub image: String,
    pub state: JobState,
    pub created_at: i64,
    pub finished_at: Option<i64>,
    pub exit_code: Option<i64>,
    pub oom_killed: bool,
}

/// A handle to the journal; cheap to clone, safe to share between tasks (calls are short and synchronous).
#[derive(Clone)]
pub struct Store {
    conn: Arc<Mutex<Connection>>,
}

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

impl Store {
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let open_err = |source| StoreError::Open { path: path.display().to_string(), source };
        let conn = Connection::open(path).map_err(open_err)?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(open_err)?;
        conn.pragma_update(None, "synchronous", "NORMAL").map_err(open_err)?;
        conn.pragma_update(None, "foreign_keys", "ON").map_err(open_err)?;
        conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(open_err)?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS jobs (
                id TEXT PRIMARY KEY,
                image TEXT NOT NULL,
                state TEXT NOT NULL,
                created_at INTEGER NOT NULL,
                finished_at INTEGER,
                exit_code INTEGER,
                oom_killed INTEGER NOT NULL DEFAULT 0
            );
            CREATE TABLE IF NOT EXISTS daemon_state (
                key TEXT PRIMARY KEY,
                value TEXT NOT NULL
            );
            CREATE TABLE IF NOT EXISTS forge_jobs (
                provider TEXT NOT NULL,
                forge_job_id INTEGER NOT NULL,
                run_id INTEGER NOT NULL,
                repo TEXT NOT NULL,
                workflow TEXT NOT NULL,
                name TEXT NOT NULL,
                labels TEXT NOT NULL,
                html_url TEXT,
                phase TEXT NOT NULL,
                runner_name TEXT,
                runner_id INTEGER,
                scope TEXT,
                image TEXT,
                runtime_id TEXT,
                exit_code INTEGER,
                conclusion TEXT,
                queued_at INTEGER NOT NULL,
                claimed_at INTEGER,
                started_at INTEGER,
                finished_at INTEGER,
                PRIMARY KEY (provider, forge_job_id)
            );
            CREATE TABLE IF NOT EXISTS resources (
                job_id TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
                seq INTEGER NOT NULL,
                kind TEXT NOT NULL,
                name TEXT NOT NULL,
                PRIMARY KEY (job_id, kind, name)
            );",
        )
        .map_err(open_err)?;
        Ok(Self { conn: Arc::new(Mutex::new(conn)) })
    }

    fn with<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T, StoreError> {
        let conn = self.conn.lock().map_err(|_| StoreError::Poisoned)?;
        Ok(f(&conn)?)
    }

    pub fn create_job(&self, id: &str, image: &str) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(
                "INSERT INTO jobs (id, image, state, created_at) VALUES (?1, ?2, 'active', ?3)",
                params![id, image, now()],
            )
            .map(drop)
        })
    }

    /// Records that `job_id` is about to own `name` of `kind`. Recording twice is harmless.
    pub fn add_resource(&self, job_id: &str, kind: ResourceKind, name: &str) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(
                "INSERT OR IGNORE INTO resources (job_id, seq, kind, name)
                 VALUES (?1, (SELECT COALESCE(MAX(seq), 0) + 1 FROM resources WHERE job_id = ?1), ?2, ?3)",
                params![job_id, kind.as_str(), name],
            )
            .map(drop)
        })
    }

    /// Forgets a resource once it is gone from the world.
    pub fn remove_resource(&self, job_id: &str, kind: ResourceKind, name: &str) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(
                "DELETE FROM resources WHERE job_id = ?1 AND kind = ?2 AND name = ?3",
                params![job_id, kind.as_str(), name],
            )
            .map(drop)
        })
    }

    /// The job's resources, newest first (the order to destroy them in).
    pub fn resources(&self, job_id: &str) -> Result<Vec<Resource>, StoreError> {
        let rows: Vec<(String, String)> = self.with(|c| {
            let mut st = c.prepare("SELECT kind, name FROM resources WHERE job_id = ?1 ORDER BY seq DESC")?;
            st.query_map(params![job_id], |r| Ok((r.get(0)?, r.get(1)?)))?.collect()
        })?;
        rows.into_iter().map(|(k, name)| Ok(Resource { kind: ResourceKind::parse(&k)?, name })).collect()
    }

    pub fn set_exited(&self, id: &str, exit_code: i64, oom_killed: bool) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(
                "UPDATE jobs SET state = 'exited', exit_code = ?2, oom_killed = ?3, finished_at = ?4 WHERE id = ?1",
                params![id, exit_code, oom_killed, now()],
            )
            .map(drop)
        })
    }

    pub fn set_cleaned(&self, id: &str) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(
                "UPDATE jobs SET state = 'cleaned', finished_at = COALESCE(finished_at, ?2) WHERE id = ?1",
                params![id, now()],
            )
            .map(drop)
        })
    }

    pub fn job(&self, id: &str) -> Result<Option<JobRecord>, StoreError> {
        self.with(|c| {
            c.query_row(
                "SELECT id, image, state, created_at, finished_at, exit_code, oom_killed FROM jobs WHERE id = ?1",
                params![id],
                row_to_job,
            )
            .optional()
        })
    }

    /// Jobs that are not yet cleaned up (after a crash: the ones to reconcile).
    pub fn unclean_jobs(&self) -> Result<Vec<JobRecord>, StoreError> {
        self.with(|c| {
            let mut st = c.prepare(
                "SELECT id, image, state, created_at, finished_at, exit_code, oom_killed FROM jobs
                 WHERE state != 'cleaned' ORDER BY created_at",
            )?;
            st.query_map([], row_to_job)?.collect()
        })
    }

    pub fn job_exists(&self, id: &str) -> Result<bool, StoreError> {
        Ok(self.job(id)?.is_some())
    }
}

/// A forge job's history record: what it was, where it ran, how it went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForgeJobRecord {
    pub provider: String,
    pub forge_job_id: u64,
    pub run_id: u64,
    pub repo: String,
    pub workflow: String,
    pub name: String,
    pub labels: Vec<String>,
    pub html_url: Option<String>,
    pub phase: String,
    pub runner_name: Option<String>,
    pub runner_id: Option<u64>,
    pub scope: Option<String>,
    pub image: Option<String>,
    pub runtime_id: Option<String>,
    pub exit_code: Option<i64>,
    pub conclusion: Option<String>,
    pub queued_at: i64,
    pub claimed_at: Option<i64>,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
}

impl Store {
    /// Remembers a piece of daemon state (such as being paused) across restarts.
    pub fn set_state(&self, key: &str, value: &str) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(
                "INSERT INTO daemon_state (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = ?2",
                params![key, value],
            )
            .map(drop)
        })
    }

    pub fn state(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.with(|c| {
            c.query_row("SELECT value FROM daemon_state WHERE key = ?1", params![key], |r| r.get(0)).optional()
        })
    }

    /// Records a job first seen queued (a second report of the same job changes nothing).
    #[allow(clippy::too_many_arguments)]
    pub fn forge_job_seen(
        &self,
        provider: &str,
        id: u64,
        run_id: u64,
        repo: &str,
        workflow: &str,
        name: &str,
        labels: &[String],
        html_url: Option<&str>,
    ) -> Result<(), StoreError> {
        let labels = serde_json::to_string(labels).unwrap_or_else(|_| "[]".into());
        self.with(|c| {
            c.execute(
                "INSERT INTO forge_jobs (provider, forge_job_id, run_id, repo, workflow, name, labels, html_url, phase, queued_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'queued', ?9)
                 ON CONFLICT (provider, forge_job_id) DO NOTHING",
                params![provider, id as i64, run_id as i64, repo, workflow, name, labels, html_url, now()],
            )
            .map(drop)
        })
    }

    /// Moves a job to `phase`, stamping the time for the phases that have one.
    pub fn forge_job_phase(&self, provider: &str, id: u64, phase: &str) -> Result<(), StoreError> {
        let stamp = match phase {
            "claimed" => Some("claimed_at"),
            "running" => Some("started_at"),
            "finished" | "failed" => Some("finished_at"),
            _ => None,
        };
        self.with(|c| {
            let sql = match stamp {
                Some(col) => format!(
                    "UPDATE forge_jobs SET phase = ?3, {col} = COALESCE({col}, ?4) WHERE provider = ?1 AND forge_job_id = ?2"
                ),
                None => "UPDATE forge_jobs SET phase = ?3 WHERE provider = ?1 AND forge_job_id = ?2 AND ?4 = ?4".into(),
            };
            c.execute(&sql, params![provider, id as i64, phase, now()]).map(drop)
        })
    }

    pub fn forge_job_claimed(
        &self,
        provider: &str,
        id: u64,
        runner_name: &str,
        runner_id: u64,
        scope: &str,
    ) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(
                "UPDATE forge_jobs SET runner_name = ?3, runner_id = ?4, scope = ?5 WHERE provider = ?1 AND forge_job_id = ?2",
                params![provider, id as i64, runner_name, runner_id as i64, scope],
            )
            .map(drop)
        })
    }

    pub fn forge_job_runtime(&self, provider: &str, id: u64, runtime_id: &str, image: &str) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(
                "UPDATE forge_jobs SET runtime_id = ?3, image = ?4 WHERE provider = ?1 AND forge_job_id = ?2",
                params![provider, id as i64, runtime_id, image],
            )
            .map(drop)
        })
    }

    pub fn forge_job_outcome(
        &self,
        provider: &str,
        id: u64,
        exit_code: Option<i64>,
        conclusion: Option<&str>,
    ) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(
                "UPDATE forge_jobs SET exit_code = COALESCE(?3, exit_code), conclusion = COALESCE(?4, conclusion)
                 WHERE provider = ?1 AND forge_job_id = ?2",
                params![provider, id as i64, exit_code, conclusion],
            )
            .map(drop)
        })
    }

    pub fn forge_job(&self, provider: &str, id: u64) -> Result<Option<ForgeJobRecord>, StoreError> {
        self.with(|c| {
            c.query_row(
                &format!("{FORGE_JOB_SELECT} WHERE provider = ?1 AND forge_job_id = ?2"),
                params![provider, id as i64],
                row_to_forge_job,
            )
            .optional()
        })
    }

    /// Forge jobs not yet cleaned up (after a crash: to close and reconcile).
    pub fn unfinished_forge_jobs(&self) -> Result<Vec<ForgeJobRecord>, StoreError> {
        self.with(|c| {
            let mut st = c.prepare(&format!("{FORGE_JOB_SELECT} WHERE phase NOT IN ('cleaned') ORDER BY queued_at"))?;
            st.query_map([], row_to_forge_job)?.collect()
        })
    }

    /// Every forge job, newest first.
    pub fn forge_jobs(&self) -> Result<Vec<ForgeJobRecord>, StoreError> {
        self.with(|c| {
            let mut st = c.prepare(&format!("{FORGE_JOB_SELECT} ORDER BY queued_at DESC, forge_job_id DESC"))?;
            st.query_map([], row_to_forge_job)?.collect()
        })
    }
}

const FORGE_JOB_SELECT: &str = "SELECT provider, forge_job_id, run_id, repo, workflow, name, labels, html_url, phase,
    runner_name, runner_id, scope, image, runtime_id, exit_code, conclusion, queued_at, claimed_at, started_at,
    finished_at FROM forge_jobs";

fn row_to_forge_job(r: &rusqlite::Row<'_>) -> rusqlite::Result<ForgeJobRecord> {
    let labels: String = r.get(6)?;
    Ok(ForgeJobRecord {
        provider: r.get(0)?,
        forge_job_id: r.get::<_, i64>(1)? as u64,
        run_id: r.get::<_, i64>(2)? as u64,
        repo: r.get(3)?,
        workflow: r.get(4)?,
        name: r.get(5)?,
        labels: serde_json::from_str(&labels).unwrap_or_default(),
        html_url: r.get(7)?,
        phase: r.get(8)?,
        runner_name: r.get(9)?,
        runner_id: r.get::<_, Option<i64>>(10)?.map(|v| v as u64),
        scope: r.get(11)?,
        image: r.get(12)?,
        runtime_id: r.get(13)?,
        exit_code: r.get(14)?,
        conclusion: r.get(15)?,
        queued_at: r.get(16)?,
        claimed_at: r.get(17)?,
        started_at: r.get(18)?,
        finished_at: r.get(19)?,
    })
}

fn row_to_job(r: &rusqlite::Row<'_>) -> rusqlite::Result<JobRecord> {
    let state: String = r.get(2)?;
    Ok(JobRecord {
        id: r.get(0)?,
        image: r.get(1)?,
        state: JobState::parse(&state),
        created_at: r.get(3)?,
        finished_at: r.get(4)?,
        exit_code: r.get(5)?,
        oom_killed: r.get::<_, i64>(6)? != 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resources_come_back_newest_first_and_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.db");
        {
            let s = Store::open(&path).unwrap();
            s.create_job("j1", "img").unwrap();
            s.add_resource("j1", ResourceKind::Dir, "/x").unwrap();
            s.add_resource("j1", ResourceKind::Netns, "/n").unwrap();
            s.add_resource("j1", ResourceKind::Container, "j1").unwrap();
            s.add_resource("j1", ResourceKind::Netns, "/n").unwrap();
            s.remove_resource("j1", ResourceKind::Dir, "/x").unwrap();
        }
        let s = Store::open(&path).unwrap();
        let r = s.resources("j1").unwrap();
        assert_eq!(
            r,
            vec![
                Resource { kind: ResourceKind::Container, name: "j1".into() },
                Resource { kind: ResourceKind::Netns, name: "/n".into() },
            ]
        );
        assert_eq!(s.unclean_jobs().unwrap().len(), 1);
        s.set_exited("j1", 3, false).unwrap();
        assert_eq!(s.job("j1").unwrap().unwrap().exit_code, Some(3));
        s.set_cleaned("j1").unwrap();
        assert!(s.unclean_jobs().unwrap().is_empty());
        assert_eq!(s.job("j1").unwrap().unwrap().state, JobState::Cleaned);
    }

    #[test]
    fn forge_job_history_keeps_every_field() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("j.db")).unwrap();
        let labels = vec!["self-hosted".to_string(), "linux".to_string()];
        s.forge_job_seen("github:o", 7, 70, "o/r", "CI", "build", &labels, Some("https://x/7")).unwrap();
        s.forge_job_seen("github:o", 7, 70, "o/r", "CI", "renamed", &labels, None).unwrap();
        s.forge_job_phase("github:o", 7, "claimed").unwrap();
        s.forge_job_claimed("github:o", 7, "ephemerd-h-j1", 99, "o/r").unwrap();
        s.forge_job_runtime("github:o", 7, "j1", "img").unwrap();
        s.forge_job_phase("github:o", 7, "running").unwrap();
        s.forge_job_phase("github:o", 7, "finished").unwrap();
        s.forge_job_outcome("github:o", 7, Some(0), Some("success")).unwrap();
        let r = s.forge_job("github:o", 7).unwrap().unwrap();
        assert_eq!(r.name, "build", "a second report changes nothing");
        assert_eq!(r.labels, labels);
        assert_eq!((r.runner_id, r.scope.as_deref(), r.runtime_id.as_deref()), (Some(99), Some("o/r"), Some("j1")));
        assert!(r.claimed_at.is_some() && r.started_at.is_some() && r.finished_at.is_some());
        assert_eq!((r.exit_code, r.conclusion.as_deref(), r.phase.as_str()), (Some(0), Some("success"), "finished"));
        assert_eq!(s.unfinished_forge_jobs().unwrap().len(), 1);
        s.forge_job_phase("github:o", 7, "cleaned").unwrap();
        assert!(s.unfinished_forge_jobs().unwrap().is_empty());
        assert_eq!(s.forge_jobs().unwrap().len(), 1);
        assert_eq!(s.state("mode").unwrap(), None);
        s.set_state("mode", "paused").unwrap();
        s.set_state("mode", "active").unwrap();
        assert_eq!(s.state("mode").unwrap().as_deref(), Some("active"));
    }
}

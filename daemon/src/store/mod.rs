//! The store: one SQLite database (WAL) with two parts. `journal` is what crash recovery needs: job records
//! and the resources each job owns, a resource recorded *before* it is created, so a daemon killed at any
//! point finds at its next start everything it may have left behind and removes it (see
//! `runtime::Runtime::reconcile`). `history` is what the UI shows: each forge job's record, kept after it
//! is cleaned up, with a broadcast of every change. The daemon's own small state (paused or not) is here.

mod history;
mod journal;

pub use history::{ForgeJobRecord, JobFilter};
pub use journal::{JobRecord, JobState, Resource, ResourceKind};

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension, params};

pub use crate::job::Phase;

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

/// A handle to the journal; cheap to clone, safe to share between tasks (calls are short and synchronous).
/// Every change to a forge job's record is also broadcast (see [`Store::subscribe`]).
#[derive(Clone)]
pub struct Store {
    conn: Arc<Mutex<Connection>>,
    changes: tokio::sync::broadcast::Sender<ForgeJobRecord>,
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
                cleaned_at INTEGER,
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
        // Journals from before `cleaned_at`: add it (a cleaned job was then phase 'cleaned').
        let has_cleaned_at = conn
            .prepare("SELECT 1 FROM pragma_table_info('forge_jobs') WHERE name = 'cleaned_at'")
            .and_then(|mut st| st.exists([]))
            .map_err(open_err)?;
        if !has_cleaned_at {
            conn.execute_batch(
                "ALTER TABLE forge_jobs ADD COLUMN cleaned_at INTEGER;
                 UPDATE forge_jobs SET cleaned_at = COALESCE(finished_at, queued_at) WHERE phase = 'cleaned';",
            )
            .map_err(open_err)?;
        }
        Ok(Self { conn: Arc::new(Mutex::new(conn)), changes: tokio::sync::broadcast::channel(1024).0 })
    }

    fn with<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T, StoreError> {
        let conn = self.conn.lock().map_err(|_| StoreError::Poisoned)?;
        Ok(f(&conn)?)
    }
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
}

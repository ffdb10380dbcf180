//! The history: each forge job's record (what it was, where it ran, how it went), kept after the job is
//! cleaned up, listed and pruned for the UI, and broadcast on every change.

use rusqlite::{Connection, OptionalExtension, params};

use super::{Phase, Store, StoreError, now};

/// Which forge jobs to list.
#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    /// Phases to keep; empty keeps all.
    pub phases: Vec<Phase>,
    pub provider: Option<String>,
    pub repo: Option<String>,
    /// Only jobs not yet cleaned up (queued, running, or ending).
    pub uncleaned: bool,
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
    pub phase: Phase,
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
    /// When its container and runner were removed (the record is then history).
    pub cleaned_at: Option<i64>,
}

impl Store {
    /// Records a job first seen queued. A second report of the same job changes nothing, unless its record
    /// was closed without the job ever finishing (abandoned at a restart, or gone from the queue): the
    /// forge queued it again, and the record starts over.
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
                 ON CONFLICT (provider, forge_job_id) DO UPDATE SET
                    phase = 'queued', runner_name = NULL, runner_id = NULL, scope = NULL, image = NULL,
                    runtime_id = NULL, exit_code = NULL, conclusion = NULL, queued_at = ?9, claimed_at = NULL,
                    started_at = NULL, finished_at = NULL, cleaned_at = NULL
                 WHERE cleaned_at IS NOT NULL AND (conclusion LIKE 'abandoned%' OR conclusion LIKE 'gone%')",
                params![provider, id as i64, run_id as i64, repo, workflow, name, labels, html_url, now()],
            )
            .map(drop)
        })?;
        self.notify(provider, id);
        Ok(())
    }

    /// Moves a job to `phase`, stamping the time for the phases that have one. `cleaned` stamps
    /// `cleaned_at` and keeps a finished or failed phase (the outcome stays in the history); a job cleaned
    /// before it ran (it went elsewhere, or was never picked up) ends in phase `cleaned`.
    pub fn forge_job_phase(&self, provider: &str, id: u64, phase: Phase) -> Result<(), StoreError> {
        let stamp = match phase {
            Phase::Claimed => Some("claimed_at"),
            Phase::Running => Some("started_at"),
            Phase::Finished | Phase::Failed => Some("finished_at"),
            _ => None,
        };
        self.with(|c| {
            let sql = match stamp {
                Some(col) => format!(
                    "UPDATE forge_jobs SET phase = ?3, {col} = COALESCE({col}, ?4) WHERE provider = ?1 AND forge_job_id = ?2"
                ),
                None if phase == Phase::Cleaned => "UPDATE forge_jobs SET cleaned_at = COALESCE(cleaned_at, ?4),
                    phase = CASE WHEN phase IN ('finished', 'failed') THEN phase ELSE ?3 END
                    WHERE provider = ?1 AND forge_job_id = ?2"
                    .into(),
                None => "UPDATE forge_jobs SET phase = ?3 WHERE provider = ?1 AND forge_job_id = ?2 AND ?4 = ?4".into(),
            };
            c.execute(&sql, params![provider, id as i64, phase.as_str(), now()]).map(drop)
        })?;
        self.notify(provider, id);
        Ok(())
    }

    /// Journals, before the runner is registered, the name it will have: a crash between registering and
    /// hearing back leaves a runner the restart finds by this name.
    pub fn forge_job_claiming(&self, provider: &str, id: u64, runner_name: &str) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(
                "UPDATE forge_jobs SET phase = 'claiming', runner_name = ?3 WHERE provider = ?1 AND forge_job_id = ?2",
                params![provider, id as i64, runner_name],
            )
            .map(drop)
        })?;
        self.notify(provider, id);
        Ok(())
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
        })?;
        self.notify(provider, id);
        Ok(())
    }

    pub fn forge_job_runtime(&self, provider: &str, id: u64, runtime_id: &str, image: &str) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(
                "UPDATE forge_jobs SET runtime_id = ?3, image = ?4 WHERE provider = ?1 AND forge_job_id = ?2",
                params![provider, id as i64, runtime_id, image],
            )
            .map(drop)
        })?;
        self.notify(provider, id);
        Ok(())
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
        })?;
        self.notify(provider, id);
        Ok(())
    }

    pub fn forge_job(&self, provider: &str, id: u64) -> Result<Option<ForgeJobRecord>, StoreError> {
        self.with(|c| select_forge_job(c, provider, id))
    }

    /// Tells subscribers what a forge job's record now is.
    fn notify(&self, provider: &str, id: u64) {
        if self.changes.receiver_count() == 0 {
            return;
        }
        // Read and send under the connection's lock, so watchers get changes in the order they were made.
        let Ok(conn) = self.conn.lock() else { return };
        if let Ok(Some(rec)) = select_forge_job(&conn, provider, id) {
            let _ = self.changes.send(rec);
        }
    }

    /// Every later change of a forge job's record, as the whole new record.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<ForgeJobRecord> {
        self.changes.subscribe()
    }

    /// Forge jobs matching `filter`, newest first, `limit` of them from `offset`.
    pub fn list_forge_jobs(
        &self,
        filter: &JobFilter,
        offset: u64,
        limit: u64,
    ) -> Result<Vec<ForgeJobRecord>, StoreError> {
        let mut sql = format!("{FORGE_JOB_SELECT} WHERE 1 = 1");
        let mut args: Vec<rusqlite::types::Value> = Vec::new();
        if !filter.phases.is_empty() {
            let marks: Vec<String> = filter
                .phases
                .iter()
                .map(|p| {
                    args.push(p.as_str().to_string().into());
                    format!("?{}", args.len())
                })
                .collect();
            sql.push_str(&format!(" AND phase IN ({})", marks.join(", ")));
        }
        if filter.uncleaned {
            sql.push_str(" AND cleaned_at IS NULL");
        }
        if let Some(p) = &filter.provider {
            args.push(p.clone().into());
            sql.push_str(&format!(" AND provider = ?{}", args.len()));
        }
        if let Some(r) = &filter.repo {
            args.push(r.clone().into());
            sql.push_str(&format!(" AND repo = ?{}", args.len()));
        }
        args.push((limit.min(i64::MAX as u64) as i64).into());
        args.push((offset.min(i64::MAX as u64) as i64).into());
        sql.push_str(&format!(
            " ORDER BY queued_at DESC, forge_job_id DESC LIMIT ?{} OFFSET ?{}",
            args.len() - 1,
            args.len()
        ));
        self.with(|c| {
            let mut st = c.prepare(&sql)?;
            st.query_map(rusqlite::params_from_iter(args.iter()), row_to_forge_job)?.collect()
        })
    }

    /// Forgets finished jobs cleaned before `before` (unix seconds), and all but the newest `keep` of
    /// the rest; returns the runtime ids of the forgotten jobs (whose logs go with them).
    pub fn prune_history(&self, before: i64, keep: u32) -> Result<Vec<String>, StoreError> {
        self.with(|c| {
            let tx = c.unchecked_transaction()?;
            let doomed = "SELECT provider, forge_job_id FROM forge_jobs WHERE cleaned_at IS NOT NULL AND (cleaned_at < ?1
                 OR (provider, forge_job_id) NOT IN (SELECT provider, forge_job_id FROM forge_jobs
                     WHERE cleaned_at IS NOT NULL ORDER BY cleaned_at DESC, forge_job_id DESC LIMIT ?2))";
            let mut ids = Vec::new();
            {
                let mut st = tx.prepare(&format!(
                    "SELECT runtime_id FROM forge_jobs WHERE (provider, forge_job_id) IN ({doomed}) AND runtime_id IS NOT NULL"
                ))?;
                for id in st.query_map(params![before, keep], |r| r.get::<_, String>(0))? {
                    ids.push(id?);
                }
            }
            tx.execute(&format!("DELETE FROM forge_jobs WHERE (provider, forge_job_id) IN ({doomed})"), params![before, keep])?;
            for id in &ids {
                tx.execute("DELETE FROM jobs WHERE id = ?1 AND state = 'cleaned'", params![id])?;
            }
            tx.commit()?;
            Ok(ids)
        })
    }

    /// Forge jobs with this forge job id, at any provider.
    pub fn forge_jobs_numbered(&self, id: u64) -> Result<Vec<ForgeJobRecord>, StoreError> {
        self.with(|c| {
            let mut st = c.prepare(&format!("{FORGE_JOB_SELECT} WHERE forge_job_id = ?1"))?;
            st.query_map(params![id as i64], row_to_forge_job)?.collect()
        })
    }

    /// Forge jobs not yet cleaned up (after a crash: to close and reconcile).
    pub fn unfinished_forge_jobs(&self) -> Result<Vec<ForgeJobRecord>, StoreError> {
        self.with(|c| {
            let mut st = c.prepare(&format!("{FORGE_JOB_SELECT} WHERE cleaned_at IS NULL ORDER BY queued_at"))?;
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
    finished_at, cleaned_at FROM forge_jobs";

fn select_forge_job(c: &Connection, provider: &str, id: u64) -> rusqlite::Result<Option<ForgeJobRecord>> {
    c.query_row(
        &format!("{FORGE_JOB_SELECT} WHERE provider = ?1 AND forge_job_id = ?2"),
        params![provider, id as i64],
        row_to_forge_job,
    )
    .optional()
}

/// A phase is kept as its text; any other text in the column is an error that names it.
impl rusqlite::types::FromSql for Phase {
    fn column_result(v: rusqlite::types::ValueRef<'_>) -> rusqlite::types::FromSqlResult<Self> {
        let text = v.as_str()?;
        Phase::parse(text)
            .ok_or_else(|| rusqlite::types::FromSqlError::Other(format!("unknown job phase `{text}`").into()))
    }
}

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
        cleaned_at: r.get(20)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forge_job_history_keeps_every_field() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("j.db")).unwrap();
        let labels = vec!["self-hosted".to_string(), "linux".to_string()];
        s.forge_job_seen("github:o", 7, 70, "o/r", "CI", "build", &labels, Some("https://x/7")).unwrap();
        s.forge_job_seen("github:o", 7, 70, "o/r", "CI", "renamed", &labels, None).unwrap();
        s.forge_job_phase("github:o", 7, Phase::Claimed).unwrap();
        s.forge_job_claimed("github:o", 7, "ephemerd-h-j1", 99, "o/r").unwrap();
        s.forge_job_runtime("github:o", 7, "j1", "img").unwrap();
        s.forge_job_phase("github:o", 7, Phase::Running).unwrap();
        s.forge_job_phase("github:o", 7, Phase::Finished).unwrap();
        s.forge_job_outcome("github:o", 7, Some(0), Some("success")).unwrap();
        let r = s.forge_job("github:o", 7).unwrap().unwrap();
        assert_eq!(r.name, "build", "a second report changes nothing");
        assert_eq!(r.labels, labels);
        assert_eq!((r.runner_id, r.scope.as_deref(), r.runtime_id.as_deref()), (Some(99), Some("o/r"), Some("j1")));
        assert!(r.claimed_at.is_some() && r.started_at.is_some() && r.finished_at.is_some());
        assert_eq!((r.exit_code, r.conclusion.as_deref(), r.phase), (Some(0), Some("success"), Phase::Finished));
        assert_eq!(s.unfinished_forge_jobs().unwrap().len(), 1);
        s.forge_job_phase("github:o", 7, Phase::Cleaned).unwrap();
        assert!(s.unfinished_forge_jobs().unwrap().is_empty());
        assert_eq!(s.forge_jobs().unwrap().len(), 1);
        assert_eq!(s.state("mode").unwrap(), None);

        // A job abandoned at a restart and queued again by the forge starts a fresh record.
        s.forge_job_seen("github:o", 8, 80, "o/r", "CI", "test", &labels, None).unwrap();
        s.forge_job_claiming("github:o", 8, "ephemerd-h-j2").unwrap();
        assert_eq!(s.forge_job("github:o", 8).unwrap().unwrap().runner_name.as_deref(), Some("ephemerd-h-j2"));
        s.forge_job_outcome("github:o", 8, None, Some("abandoned: ephemerd restarted")).unwrap();
        s.forge_job_phase("github:o", 8, Phase::Failed).unwrap();
        s.forge_job_phase("github:o", 8, Phase::Cleaned).unwrap();
        s.forge_job_seen("github:o", 8, 80, "o/r", "CI", "test", &labels, None).unwrap();
        let r = s.forge_job("github:o", 8).unwrap().unwrap();
        assert_eq!((r.phase, r.conclusion, r.runner_name, r.finished_at), (Phase::Queued, None, None, None));
        // A job that really finished is never reopened.
        s.forge_job_seen("github:o", 7, 70, "o/r", "CI", "build", &labels, None).unwrap();
        let r = s.forge_job("github:o", 7).unwrap().unwrap();
        assert_eq!((r.phase, r.cleaned_at.is_some()), (Phase::Finished, true), "the outcome stays");

        // History is pruned by age and by count; unfinished jobs are never pruned.
        for n in 20..25u64 {
            s.forge_job_seen("github:o", n, n, "o/r", "CI", "old", &labels, None).unwrap();
            s.forge_job_runtime("github:o", n, &format!("rt{n}"), "img").unwrap();
            s.forge_job_phase("github:o", n, Phase::Finished).unwrap();
            s.forge_job_phase("github:o", n, Phase::Cleaned).unwrap();
        }
        s.forge_job_seen("github:o", 30, 30, "o/r", "CI", "live", &labels, None).unwrap();
        let far_future = now() + 1_000_000;
        let mut gone = s.prune_history(0, 3).unwrap();
        gone.sort();
        // 7 and 20..25 are cleaned: 6 jobs; the newest 3 stay (by cleaned_at, then id: 24, 23, 22).
        assert_eq!(gone, vec!["j1", "rt20", "rt21"]);
        assert!(s.forge_job("github:o", 30).unwrap().is_some());
        assert_eq!(s.prune_history(far_future, 1000).unwrap().len(), 3, "all finished jobs are older than that");
        assert!(s.forge_job("github:o", 30).unwrap().is_some(), "a job not yet finished is never pruned");
        s.set_state("mode", "paused").unwrap();
        s.set_state("mode", "active").unwrap();
        assert_eq!(s.state("mode").unwrap().as_deref(), Some("active"));
    }
}

//! The journal: job records and the resources each job owns; what crash recovery reads.

use rusqlite::{OptionalExtension, params};

use super::{Store, StoreError, now};

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

impl Store {
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
}

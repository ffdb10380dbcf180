//! Job history upkeep: finished jobs are forgotten by age and count with their logs (`history.keep_for`,
//! `history.keep_jobs`), and a job's log is cut to `history.log_max` when the job ends.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tracing::{info, warn};

use crate::config::HistoryConfig;
use crate::platform::DataDirs;
use crate::store::Store;

/// Forgets finished jobs past the retention limits, and removes their logs.
pub fn prune(store: &Store, dirs: &DataDirs, cfg: &HistoryConfig) {
    let before = SystemTime::now().checked_sub(cfg.keep_for).unwrap_or(UNIX_EPOCH);
    let before = before.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO).as_secs() as i64;
    match store.prune_history(before, cfg.keep_jobs) {
        Ok(ids) if ids.is_empty() => {}
        Ok(ids) => {
            for id in &ids {
                if let Err(e) = std::fs::remove_file(dirs.job_log(id))
                    && e.kind() != std::io::ErrorKind::NotFound
                {
                    warn!(job = %id, error = %e, "cannot remove a forgotten job's log");
                }
            }
            info!(jobs = ids.len(), "forgot finished jobs past the history limits");
        }
        Err(e) => warn!(error = %e, "cannot prune the job history"),
    }
}

/// Cuts the log at `path` to at most `max` bytes, keeping its first and last halves around a line that
/// says how much was cut. Only for a log nothing writes to any more.
pub fn cap_log(path: &Path, max: u64) -> std::io::Result<()> {
    let len = std::fs::metadata(path)?.len();
    if len <= max {
        return Ok(());
    }
    let half = max / 2;
    let mut f = std::fs::File::open(path)?;
    let mut head = vec![0u8; half as usize];
    f.read_exact(&mut head)?;
    let mut tail = Vec::with_capacity(half as usize);
    f.seek(SeekFrom::Start(len - half))?;
    f.read_to_end(&mut tail)?;
    let tmp = path.with_extension("log.cut");
    let mut out = std::fs::File::create(&tmp)?;
    out.write_all(&head)?;
    write!(out, "\n[ephemerd: {} bytes of this log were cut (history.log_max)]\n", len - 2 * half)?;
    out.write_all(&tail)?;
    out.sync_all()?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_log_keeps_its_head_and_tail() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("j.log");
        let text: String = (0..1000).map(|i| format!("line {i:04}\n")).collect();
        std::fs::write(&p, &text).unwrap();
        cap_log(&p, 100_000).unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), text, "under the cap: untouched");
        cap_log(&p, 1000).unwrap();
        let cut = std::fs::read_to_string(&p).unwrap();
        assert!(cut.starts_with("line 0000\n") && cut.ends_with("line 0999\n"), "{cut}");
        assert!(cut.contains(&format!("[ephemerd: {} bytes of this log were cut", text.len() - 1000)));
        assert!(cut.len() < 1100);
    }
}

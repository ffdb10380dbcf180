//! A forge job's phase: the one enum the scheduler (in memory), the journal (as its text) and the control
//! API (as its `JobState`) share. Queued → claiming (a runner is being registered) → claimed → starting
//! (its container is made) → running → finished or failed → cleaned (container and runner removed; a job
//! cleaned before it ran ends here, one that ran keeps its outcome).

/// Where a forge job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Phase {
    Queued,
    /// The provider is registering a runner.
    Claiming,
    Claimed,
    /// Its container is being created and started.
    Starting,
    Running,
    Finished,
    Failed,
    Cleaned,
}

impl Phase {
    pub const ALL: [Phase; 8] = [
        Phase::Queued,
        Phase::Claiming,
        Phase::Claimed,
        Phase::Starting,
        Phase::Running,
        Phase::Finished,
        Phase::Failed,
        Phase::Cleaned,
    ];

    /// The phase as the journal writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Queued => "queued",
            Phase::Claiming => "claiming",
            Phase::Claimed => "claimed",
            Phase::Starting => "starting",
            Phase::Running => "running",
            Phase::Finished => "finished",
            Phase::Failed => "failed",
            Phase::Cleaned => "cleaned",
        }
    }

    /// The phase the journal's text names.
    pub fn parse(s: &str) -> Option<Phase> {
        Phase::ALL.into_iter().find(|p| p.as_str() == s)
    }

    /// Whether the job holds a slot.
    pub fn holds_slot(self) -> bool {
        !matches!(self, Phase::Queued | Phase::Cleaned)
    }

    /// Whether the job's process is over (nothing more is written to its log).
    pub fn ended(self) -> bool {
        matches!(self, Phase::Finished | Phase::Failed | Phase::Cleaned)
    }

    /// Whether it ran to an outcome (kept in the history when it is cleaned).
    pub fn has_outcome(self) -> bool {
        matches!(self, Phase::Finished | Phase::Failed)
    }
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_phase_reads_back_from_its_text_and_nothing_else_does() {
        for p in Phase::ALL {
            assert_eq!(Phase::parse(p.as_str()), Some(p));
        }
        assert_eq!(Phase::parse("Running"), None);
        assert_eq!(Phase::parse(""), None);
    }
}

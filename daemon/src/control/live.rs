//! The daemon's live status, published by the event loop through a `watch` channel: every reader sees the
//! latest value and is woken on change, so streams push instead of polling.

use std::time::{Instant, SystemTime};

/// What the daemon is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DaemonMode {
    Running,
    Paused,
    Draining,
    Stopping,
}

/// One provider's health as the pollers see it.
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderHealth {
    pub name: String,
    pub kind: String,
    pub url: String,
    /// `poll` or `webhook + poll`.
    pub discovery: String,
    /// The last poll succeeded.
    pub connected: bool,
    pub last_poll: Option<SystemTime>,
    pub last_error: Option<String>,
    pub rate_limit: Option<crate::forge::RateLimit>,
    /// "keyring", "environment", "app_key" or "missing".
    pub credential: &'static str,
}

#[derive(Debug, Clone)]
pub struct Live {
    pub started: Instant,
    pub mode: DaemonMode,
    pub active: u32,
    pub max: u32,
    pub queued: u32,
    pub providers: Vec<ProviderHealth>,
    pub drain_deadline: Option<SystemTime>,
}

impl Live {
    pub fn new(max: u32, providers: Vec<ProviderHealth>) -> Self {
        Self {
            started: Instant::now(),
            mode: DaemonMode::Running,
            active: 0,
            max,
            queued: 0,
            providers,
            drain_deadline: None,
        }
    }
}

/// The sending side, owned by the event loop; readers `subscribe()`.
pub type LiveTx = tokio::sync::watch::Sender<Live>;

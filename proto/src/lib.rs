//! `ephemerd-proto`: the control API's contracts (generated from `ephemerd/v1/control.proto`), the error
//! convention (a stable reason in a `google.rpc.ErrorInfo` detail), and the client connection over the
//! daemon's Unix socket. The daemon, the CLI and the tray app all depend on this crate and nothing else to
//! talk to each other.

use std::path::{Path, PathBuf};

pub mod v1 {
    #![allow(clippy::all, clippy::unwrap_used, clippy::expect_used)]
    tonic::include_proto!("ephemerd.v1");
}

/// The worker's Dispatch API, from `ephemerd/dispatch/v1/dispatch.proto` (feature `dispatch`).
#[cfg(feature = "dispatch")]
pub mod dispatch {
    pub mod v1 {
        #![allow(clippy::all, clippy::unwrap_used, clippy::expect_used)]
        tonic::include_proto!("ephemerd.dispatch.v1");
    }
}

/// containerd 1.6's API (clients), from the contracts in `containerd/` (feature `containerd`). The module
/// tree mirrors the protobuf packages, as the generated code refers to its neighbours by relative path.
#[cfg(feature = "containerd")]
pub mod ctr {
    #![allow(clippy::all, clippy::unwrap_used, clippy::expect_used)]
    pub mod containerd {
        pub mod types {
            tonic::include_proto!("containerd.types");
        }
        pub mod services {
            macro_rules! service {
                ($($name:ident => $package:literal),* $(,)?) => {$(
                    pub mod $name {
                        pub mod v1 {
                            tonic::include_proto!($package);
                        }
                    }
                )*};
            }
            service! {
                containers => "containerd.services.containers.v1",
                content => "containerd.services.content.v1",
                diff => "containerd.services.diff.v1",
                images => "containerd.services.images.v1",
                introspection => "containerd.services.introspection.v1",
                leases => "containerd.services.leases.v1",
                snapshots => "containerd.services.snapshots.v1",
                tasks => "containerd.services.tasks.v1",
                version => "containerd.services.version.v1",
            }
        }
    }
    pub mod google {
        pub mod rpc {
            tonic::include_proto!("google.rpc");
        }
    }
    pub use containerd::services::*;
    pub use containerd::types;
}

pub use v1::ErrorReason;

impl v1::JobState {
    /// The state's word, as the journal and every client spell it ("unknown" when unspecified).
    pub fn word(self) -> &'static str {
        match self {
            v1::JobState::Unspecified => "unknown",
            v1::JobState::Queued => "queued",
            v1::JobState::Claiming => "claiming",
            v1::JobState::Claimed => "claimed",
            v1::JobState::Starting => "starting",
            v1::JobState::JobRunning => "running",
            v1::JobState::Finished => "finished",
            v1::JobState::Failed => "failed",
            v1::JobState::Cleaned => "cleaned",
        }
    }

    /// `word` of a message's raw field.
    pub fn word_of(raw: i32) -> &'static str {
        Self::try_from(raw).unwrap_or(Self::Unspecified).word()
    }
}

impl v1::DaemonState {
    pub fn word(self) -> &'static str {
        match self {
            v1::DaemonState::Unspecified => "unknown",
            v1::DaemonState::Running => "running",
            v1::DaemonState::Paused => "paused",
            v1::DaemonState::Draining => "draining",
            v1::DaemonState::Stopping => "stopping",
        }
    }

    pub fn word_of(raw: i32) -> &'static str {
        Self::try_from(raw).unwrap_or(Self::Unspecified).word()
    }
}

impl v1::WorkerState {
    pub fn word(self) -> &'static str {
        match self {
            v1::WorkerState::Unspecified => "unknown",
            v1::WorkerState::WorkerStopped => "stopped",
            v1::WorkerState::WorkerBooting => "booting",
            v1::WorkerState::WorkerReady => "ready",
            v1::WorkerState::WorkerStopping => "stopping",
        }
    }

    pub fn word_of(raw: i32) -> &'static str {
        Self::try_from(raw).unwrap_or(Self::Unspecified).word()
    }
}

/// The domain of every ErrorInfo the daemon sends.
pub const ERROR_DOMAIN: &str = "ephemerd.dev";

/// The name of the control socket in the daemon's run dir.
pub const SOCKET_NAME: &str = "control.sock";

/// A status with a stable, machine-readable reason in its details.
pub fn error(code: tonic::Code, reason: ErrorReason, message: impl Into<String>) -> tonic::Status {
    use tonic_types::{ErrorDetails, StatusExt};
    let details = ErrorDetails::with_error_info(reason.as_str_name(), ERROR_DOMAIN, std::collections::HashMap::new());
    tonic::Status::with_error_details(code, message, details)
}

/// The reason a daemon error carries, if it carries one.
pub fn reason_of(status: &tonic::Status) -> Option<ErrorReason> {
    use tonic_types::StatusExt;
    let info = status.get_details_error_info()?;
    (info.domain == ERROR_DOMAIN).then(|| ErrorReason::from_str_name(&info.reason)).flatten()
}

pub type Client = v1::control_client::ControlClient<tonic::transport::Channel>;

/// Why a client could not reach the daemon.
#[derive(Debug)]
pub struct Unavailable {
    pub socket: PathBuf,
    pub cause: String,
}

impl std::fmt::Display for Unavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the daemon is not answering on {}: {}", self.socket.display(), self.cause)
    }
}

impl std::error::Error for Unavailable {}

/// Connects to the daemon's control socket (a Unix socket; on Windows, the named pipe of that name).
pub async fn connect(socket: &Path) -> Result<Client, Unavailable> {
    let unavailable = |cause: String| Unavailable { socket: socket.to_path_buf(), cause };
    // Connect once up front, so a missing or dead socket is reported now, with its cause.
    drop(dial(socket).await.map_err(|e| unavailable(e.to_string()))?);
    let channel = unix_channel(socket).await.map_err(|e| unavailable(e.to_string()))?;
    Ok(v1::control_client::ControlClient::new(channel))
}

/// A gRPC channel over the local socket at `socket` (each reconnect dials it again): a Unix socket, or on
/// Windows a named pipe.
pub async fn unix_channel(socket: &Path) -> Result<tonic::transport::Channel, tonic::transport::Error> {
    let path = socket.to_path_buf();
    tonic::transport::Endpoint::from_static("http://localhost")
        .connect_with_connector(tower::service_fn(move |_: tonic::transport::Uri| {
            let path = path.clone();
            async move { Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(dial(&path).await?)) }
        }))
        .await
}

#[cfg(unix)]
async fn dial(path: &Path) -> std::io::Result<tokio::net::UnixStream> {
    tokio::net::UnixStream::connect(path).await
}

/// Opens the named pipe `path` (`\\.\pipe\…`), waiting while every instance of it is busy.
#[cfg(windows)]
async fn dial(path: &Path) -> std::io::Result<tokio::net::windows::named_pipe::NamedPipeClient> {
    /// ERROR_PIPE_BUSY: the server has no free instance right now.
    const PIPE_BUSY: i32 = 231;
    for _ in 0..100 {
        match tokio::net::windows::named_pipe::ClientOptions::new().open(path) {
            Err(e) if e.raw_os_error() == Some(PIPE_BUSY) => {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await
            }
            r => return r,
        }
    }
    Err(std::io::Error::other("every instance of the pipe stayed busy for 5 s"))
}

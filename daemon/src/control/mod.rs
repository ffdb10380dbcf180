//! The control API (`proto/ephemerd/v1/control.proto`) the CLI and the tray app use: the daemon's live
//! status, job history and events, logs, and its controls. `live` is the shared status the event loop
//! publishes; `convert` maps our types to the proto's in one place; `errors` maps failures to statuses
//! with stable reasons; `edit` parses, checks and writes the config file; `forges` turns a forge from the
//! settings window into a config section;
//! `jobsettings` does the same for concurrency, the default image and label profiles; `settings` saves
//! and removes forges and job settings; `testjob` runs the onboarding's test job; `server` answers the RPCs; `socket` binds the Unix socket safely; `pipe` is the Windows named
//! pipe's name and ACL (pure) with a thin `cfg(windows)` shim.

pub mod convert;
pub mod edit;
pub mod errors;
pub mod forges;
pub mod jobsettings;
pub mod live;
pub mod pipe;
pub mod server;
mod settings;
#[cfg(unix)]
pub mod socket;
mod testjob;

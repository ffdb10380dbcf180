//! Dispatch: the daemon drives a Linux worker over gRPC (`proto/ephemerd/dispatch/v1/dispatch.proto`).
//! `server` is the worker's side (`ephemerd worker`): the Dispatch service over a [`Target`] of its own,
//! which runs the jobs in the worker's containerd. `client` is the daemon's side: [`RemoteTarget`], a
//! `Target` whose jobs run in the worker. `auth` is the per-boot token every call carries. The worker never
//! sees a forge credential: what a job runs (its launch spec, with its single-use runner config) is all.
//!
//! [`Target`]: crate::target::Target

pub mod auth;
pub mod client;
/// The worker side runs in a Linux worker only.
#[cfg(target_os = "linux")]
pub mod server;

pub use client::RemoteTarget;

/// The protocol version both sides must speak.
pub const VERSION: u32 = 1;

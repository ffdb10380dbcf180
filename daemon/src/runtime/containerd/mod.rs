//! Everything that speaks to containerd: the supervised process, the client, content and images, the OCI
//! spec, the seccomp profile, and the container/task calls of a job.

pub mod client;
pub mod content;
pub mod image;
pub mod remap;
pub mod seccomp;
pub mod spec;
pub mod supervisor;
pub mod task;

pub use client::{Containerd, CtrError, LABEL_JOB, NAMESPACE, SNAPSHOTTER};
pub use image::{Image, ImageError, Images, Progress};
pub use supervisor::{Binaries, Supervisor, SupervisorError};

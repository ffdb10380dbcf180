//! ephemerd: runs forge CI jobs on your own machine, one fresh, isolated container per job.
//!
//! The library holds everything; `main.rs` only parses the command line and reports errors.
//! See ARCHITECTURE.md at the repository root for the map.

pub mod config;
pub mod forge;
pub mod platform;
pub mod runner;
pub mod runtime;
pub mod scheduler;
pub mod serve;
pub mod store;
pub mod webhook;
pub mod workflow;

//! Which forge jobs run, when and where: label routing (`labels`) and the per-job state machine with
//! dedup, concurrency, pause/drain and timeouts (`machine`). Both are pure; the daemon's event loop
//! carries out their decisions and journals each transition before acting on it.

pub mod labels;
pub mod machine;

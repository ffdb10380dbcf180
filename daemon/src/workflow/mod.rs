//! `ephemerd run`'s understanding of a GitHub Actions workflow: parse it, plan one job, render the scripts
//! that run it in a job container, and render its log for the terminal.

pub mod driver;
pub mod model;
pub mod output;
pub mod plan;
pub mod workspace;

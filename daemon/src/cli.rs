//! The command line, declared with clap.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "ephemerd", version, about = "Run your forges' CI jobs on this machine, one fresh container per job")]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct Global {
    /// Where ephemerd keeps containerd's state, the journal and job logs [default: /var/lib/ephemerd for root]
    #[arg(long, global = true, env = "EPHEMERD_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Config file (TOML); see docs/configuration.md
    #[arg(long, global = true, env = "EPHEMERD_CONFIG")]
    pub config: Option<PathBuf>,
    /// Log level or filter (error, warn, info, debug, trace, or a tracing filter)
    #[arg(long, global = true, env = "EPHEMERD_LOG", default_value = "warn")]
    pub log_level: String,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run one job of a GitHub Actions workflow locally, in a fresh container
    Run(RunArgs),
    /// Manage the images jobs run in
    #[command(subcommand)]
    Image(ImageCommand),
    /// Remove everything an interrupted or killed ephemerd left behind (containers, networks, rules)
    Cleanup,
    /// Run the forges' jobs: poll for queued jobs, one fresh container and just-in-time runner each
    Serve(ServeArgs),
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// GitHub token (classic or fine-grained PAT) for the [[github]] sections without an App
    #[arg(long, env = "GITHUB_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The workflow file [default: the only file in .github/workflows]
    pub workflow: Option<PathBuf>,
    /// The job to run [default: the first one]
    #[arg(long)]
    pub job: Option<String>,
    /// The image to run the job in [default: image.default from the config]
    #[arg(long)]
    pub image: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// Import the images of an OCI image archive (tar of an OCI image layout)
    Import {
        /// The archive file
        file: PathBuf,
    },
    /// Pull an image from its registry (plain HTTP for loopback registries)
    Pull {
        /// The image reference, e.g. docker.io/library/debian:bookworm
        reference: String,
    },
}

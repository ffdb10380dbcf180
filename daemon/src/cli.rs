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
    /// The daemon's control socket [default: DATA_DIR/run/control.sock]
    #[arg(long, global = true, env = "EPHEMERD_SOCKET")]
    pub socket: Option<PathBuf>,
    /// Print JSON instead of text (status, jobs, job, kill, pause, resume, drain, providers)
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// Where the daemon reaches the Dispatch service (`host:port`; port 0 picks one, printed on stdout)
    #[arg(long)]
    pub listen: std::net::SocketAddr,
    /// The worker has a clock of its own (a VM or WSL distro): SetTime may step it
    #[arg(long)]
    pub own_clock: bool,
    /// Image archives (OCI or docker-archive tars) to import before serving
    #[arg(long = "import", value_name = "FILE")]
    pub imports: Vec<PathBuf>,
    /// Boot in this root filesystem, in namespaces of our own (the daemon's namespace worker)
    #[arg(long, hide = true, requires = "netns")]
    pub root: Option<PathBuf>,
    /// The network namespace to boot in (with --root)
    #[arg(long, hide = true, requires = "root")]
    pub netns: Option<PathBuf>,
    /// SOURCE=TARGET: a path of this machine bound into the root (with --root)
    #[arg(long, hide = true, requires = "root")]
    pub bind: Vec<String>,
    /// SOURCE=TARGET, bound read-only (with --root)
    #[arg(long, hide = true, requires = "root")]
    pub bind_ro: Vec<String>,
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
    /// Be a Linux worker: run the jobs a daemon dispatches here (reads its boot token on stdin)
    Worker(WorkerArgs),
    /// Pid 1 of the worker VM (the VM's initramfs runs it; it reads its boot config from its config disk)
    #[command(hide = true)]
    VmInit,
    /// The daemon's state, jobs, forges and health
    Status,
    /// Jobs: queued and running ones, or all of them with --all
    Jobs(JobsArgs),
    /// One job in detail (ID: `<provider>#<number>`, or the number alone)
    Job { id: String },
    /// A job's log
    Logs {
        id: String,
        /// Keep printing until the job ends
        #[arg(short, long)]
        follow: bool,
    },
    /// Stop a running job (its runner ends; the forge marks the job failed)
    Kill { id: String },
    /// Take no new jobs; running ones go on (remembered across restarts)
    Pause,
    /// Take jobs again
    Resume,
    /// Take no new jobs, and exit once running ones are done
    Drain {
        /// Wait until the daemon has exited
        #[arg(long)]
        wait: bool,
        /// Stop jobs still running after this long [default: scheduler.drain_timeout]
        #[arg(long, value_parser = humantime::parse_duration)]
        timeout: Option<std::time::Duration>,
    },
    /// The forges the daemon takes jobs from, and their health
    Providers {
        /// Also check each one's URL and credentials, naming missing permissions
        #[arg(long)]
        test: bool,
    },
    /// Re-read the config file: apply what can change at once, name what needs a restart
    Reload,
    /// Check this machine, the daemon and the forges, with a fix for each problem
    Doctor,
    /// The daemon as a system service (systemd here; launchd and the Windows SCM on those systems)
    #[command(subcommand)]
    Service(ServiceCommand),
    /// Forge credentials, kept by the daemon in the OS keyring
    #[command(subcommand)]
    Credential(CredentialCommand),
}

#[derive(Debug, Subcommand)]
pub enum ServiceCommand {
    /// Install and enable the service (with --data-dir and --config as given here)
    Install(ServiceArgs),
    /// Stop, disable and remove the service
    Uninstall(ServiceArgs),
    Start(ServiceArgs),
    /// Stop the service (it drains first: running jobs finish)
    Stop(ServiceArgs),
    /// Whether it is installed, enabled and running (exit 0 running, 3 stopped, 4 not installed)
    Status(ServiceArgs),
}

#[derive(Debug, Args)]
pub struct ServiceArgs {
    /// Install under this directory instead of / (for packaging and tests)
    #[arg(long, hide = true, default_value = "/")]
    pub root: PathBuf,
    /// The systemctl to use
    #[arg(long, hide = true, default_value = "systemctl")]
    pub systemctl: String,
    /// With install: let this group use the control socket (written to the config as control.group),
    /// e.g. the desktop user's own group, so the tray app can talk to the service
    #[arg(long)]
    pub control_group: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum CredentialCommand {
    /// Store a provider's token (read from stdin; typed without echo on a terminal)
    Set {
        /// The provider, e.g. github:octo-org
        provider: String,
    },
    /// Remove a provider's token
    Delete { provider: String },
}

#[derive(Debug, Args)]
pub struct JobsArgs {
    /// Every job in the history, not only queued and running ones
    #[arg(long)]
    pub all: bool,
    /// Only jobs of this forge (e.g. github:octo-org)
    #[arg(long)]
    pub provider: Option<String>,
    /// Only jobs of this repository (owner/name)
    #[arg(long)]
    pub repo: Option<String>,
    /// At most this many jobs
    #[arg(long, default_value_t = 50)]
    pub limit: u32,
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
        /// Also make each image's snapshot for jobs' user namespaces now, not at its first job (the
        /// worker VM's image store is prepared so)
        #[arg(long, hide = true)]
        remap_ahead: bool,
    },
    /// Pull an image from its registry (plain HTTP for loopback registries)
    Pull {
        /// The image reference, e.g. docker.io/library/debian:bookworm
        reference: String,
    },
}

//! The `ephemerd` binary: parse the command line, set up logging, run the command, map the outcome to an
//! exit code. Everything else lives in the library and in `cmd/`.

mod cli;
mod cmd;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    #[cfg(target_os = "linux")]
    if let cli::Command::Worker(w) = &cli.command
        && let (Some(root), Some(netns)) = (&w.root, &w.netns)
    {
        // Before any thread: it forks and changes namespaces.
        return boot_worker(w, root, netns);
    }
    #[cfg(target_os = "linux")]
    if matches!(cli.command, cli::Command::VmInit) && std::process::id() == 1 {
        // Pid 1 of the worker VM: blocking code, before any thread.
        let e = ephemerd::worker::vm::guest::run();
        eprintln!("ephemerd vm-init: {e}");
        return ExitCode::from(cmd::EXIT_INFRA);
    }
    cmd::init_tracing(&cli.global.log_level);
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ephemerd: cannot start the async runtime: {e}");
            return ExitCode::from(cmd::EXIT_INFRA);
        }
    };
    let result = rt.block_on(cmd::dispatch(cli));
    // A blocking read still waiting (stdin, for a worker's token) must not hold the exit up.
    rt.shutdown_timeout(std::time::Duration::from_secs(1));
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            use std::io::Write as _;
            let _ = writeln!(std::io::stderr(), "ephemerd: error: {}", cmd::one_line(&e));
            ExitCode::from(cmd::exit_code(&e))
        }
    }
}

#[cfg(target_os = "linux")]
/// `ephemerd worker --root`: boots in the worker's namespaces and root, then execs the worker there.
fn boot_worker(w: &cli::WorkerArgs, root: &std::path::Path, netns: &std::path::Path) -> ExitCode {
    use ephemerd::worker::enter::{Bind, Boot, boot, worker_args};
    let mut binds = Vec::new();
    for (list, read_only) in [(&w.bind, false), (&w.bind_ro, true)] {
        for b in list {
            match Bind::parse(b, read_only) {
                Ok(b) => binds.push(b),
                Err(e) => {
                    eprintln!("ephemerd: error: --bind {e}");
                    return ExitCode::from(cmd::EXIT_USAGE);
                }
            }
        }
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let b = Boot { root: root.to_path_buf(), netns: netns.to_path_buf(), binds, args: worker_args(&args) };
    let e = boot(&b);
    eprintln!("ephemerd: error: booting the worker: {e}");
    ExitCode::from(cmd::EXIT_INFRA)
}

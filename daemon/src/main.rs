//! The `ephemerd` binary: parse the command line, set up logging, run the command, map the outcome to an
//! exit code. Everything else lives in the library and in `cmd/`.

mod cli;
mod cmd;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
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

//! `hotpocket`: parse the command line, run the command, map its error to an exit code.

use clap::Parser;
use std::process::ExitCode;
use std::time::Duration;

/// How long blocking helper threads get to finish once the command is done.
const RUNTIME_SHUTDOWN: Duration = Duration::from_millis(500);

fn main() -> ExitCode {
    // Before anything else opens a descriptor or starts a thread.
    hotpocket::fds::mark_inherited_cloexec();
    let cli = hotpocket::cli::Cli::parse();
    // One thread: the supervisor's load is tiny, and the daemons' PR_SET_PDEATHSIG is tied to
    // the thread that forked them, which must therefore live as long as the process.
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("hotpocket: cannot start the async runtime: {error}");
            return ExitCode::from(hp_daemon::exit::FAILURE as u8);
        }
    };
    let result = runtime.block_on(hotpocket::dispatch(cli));
    runtime.shutdown_timeout(RUNTIME_SHUTDOWN);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("hotpocket: {error}");
            ExitCode::from(u8::try_from(error.exit_code()).unwrap_or(1))
        }
    }
}

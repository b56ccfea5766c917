//! `hp-bench`: parse the options, run the benchmark on a tokio runtime until it ends or
//! Ctrl-C/SIGTERM arrives (which drops the run and so stops its cluster), print the result.

use clap::Parser;
use hp_bench::Options;
use std::process::ExitCode;

/// Exit codes as every Hot Pocket binary uses them (hp-daemon's `exit`).
const FAILURE: u8 = 1;
/// Stopped by Ctrl-C or SIGTERM (128 + SIGINT).
const INTERRUPTED: u8 = 130;

fn main() -> ExitCode {
    let options = Options::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => return fail(&format!("cannot start the async runtime: {e}")),
    };
    let progress = |line: &str| eprintln!("hp-bench: {line}");
    let outcome = runtime.block_on(async {
        tokio::select! {
            result = measured(&options, progress) => Some(result),
            () = shutdown_signal() => None,
        }
    });
    match outcome {
        Some(Ok((json, table))) => {
            if options.json {
                println!("{json}");
            } else {
                print!("{table}");
            }
            ExitCode::SUCCESS
        }
        Some(Err(e)) => fail(&e.to_string()),
        None => {
            eprintln!("hp-bench: interrupted; the cluster was stopped");
            ExitCode::from(INTERRUPTED)
        }
    }
}

/// The run `--protocol` asks for, as its JSON object and its table.
async fn measured(
    options: &hp_bench::Options,
    progress: impl Fn(&str),
) -> Result<(String, String), hp_bench::BenchError> {
    if options.protocol == "both" {
        let comparison = hp_bench::compare(options, progress).await?;
        Ok((comparison.to_json(), comparison.to_table()))
    } else {
        let report = hp_bench::run(options, progress).await?;
        Ok((report.to_json(), report.to_table()))
    }
}

async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
}

fn fail(message: &str) -> ExitCode {
    eprintln!("hp-bench: {message}");
    ExitCode::from(FAILURE)
}

//! `hp-client <ws-url> [--key FILE] [--send TEXT]... [--wait N] [--timeout SECS] [--hex] [--protocol P] [--trust KEY]...`:
//! a user of a Hot Pocket node on the command line (docs/command-line.md).

use clap::Parser;
use hp_client::{Dial, Output, Receiver, Sender};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use tokio::io::AsyncBufReadExt;
use tokio::time::Instant;

/// Exit codes, as every Hot Pocket binary uses them (hp-daemon's `exit`).
const FAILURE: u8 = 1;
/// Stopped by Ctrl-C (128 + SIGINT).
const INTERRUPTED: u8 = 130;
/// The largest key file read.
const MAX_KEY_FILE: u64 = 4096;

/// Connects to a node as a user, performs the handshake, sends inputs and prints each output
/// on its own line. With no --send, sends each line of stdin until EOF (or Ctrl-C).
/// Error frames from the node are printed to stderr as `error: <reason>`.
#[derive(Debug, Parser)]
#[command(name = "hp-client", version)]
struct Args {
    /// The node's user port, e.g. ws://localhost:8080/
    url: String,
    /// A file holding the user's key: a 64-hex seed or a 128-hex libsodium secret key.
    /// Without it a fresh random key is used.
    #[arg(long, value_name = "FILE")]
    key: Option<PathBuf>,
    /// An input to send (repeatable, sent in order).
    #[arg(long = "send", value_name = "TEXT")]
    send: Vec<String>,
    /// Exit 0 after N outputs. Default: one output per input sent (an error frame for an
    /// input counts as its answer, and makes the exit status 1).
    #[arg(long, value_name = "N")]
    wait: Option<u64>,
    /// Seconds allowed for connecting, and for the outputs still awaited once all is sent.
    #[arg(long, value_name = "SECS", default_value_t = 10.0)]
    timeout: f64,
    /// Print outputs as hex instead of raw bytes.
    #[arg(long)]
    hex: bool,
    /// The user protocol: `seed` (pubport) or `hotpocket` (HotPocket 0.6 on hpport_plain:
    /// inputs signed in containers, outputs printed only once their proof checks out).
    #[arg(long, default_value = "seed", value_parser = ["seed", "hotpocket"])]
    protocol: String,
    /// With --protocol hotpocket: a node key to trust (repeatable); the node's UNL is then
    /// trusted, and every output must carry valid signatures from 80 % of it.
    #[arg(long, value_name = "KEY")]
    trust: Vec<String>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => return fail(&format!("cannot start the async runtime: {e}")),
    };
    let result = runtime.block_on(run(args));
    // Reading stdin parks a blocking thread that only returns at the next line: do not wait
    // for it when leaving (after Ctrl-C, say).
    runtime.shutdown_timeout(Duration::from_millis(100));
    match result {
        Ok(code) => ExitCode::from(code),
        Err(message) => fail(&message),
    }
}

fn fail(message: &str) -> ExitCode {
    eprintln!("hp-client: {message}");
    ExitCode::from(FAILURE)
}

/// What has come back so far.
#[derive(Debug, Default)]
struct Tally {
    sent: u64,
    outputs: u64,
    errors: u64,
}

impl Tally {
    /// Whether everything awaited has come: `--wait N` outputs, or else an answer (output or
    /// error frame) for every input sent.
    fn done(&self, wait: Option<u64>) -> bool {
        match wait {
            Some(n) => self.outputs >= n,
            None => self.outputs + self.errors >= self.sent,
        }
    }

    fn awaited(&self, wait: Option<u64>) -> String {
        match wait {
            Some(n) => format!("{} of {n} outputs received", self.outputs),
            None => format!("{} of {} inputs answered", self.outputs + self.errors, self.sent),
        }
    }
}

async fn run(args: Args) -> Result<u8, String> {
    let timeout = Duration::try_from_secs_f64(args.timeout)
        .map_err(|_| format!("--timeout {} is not a number of seconds", args.timeout))?;
    let key = match &args.key {
        None => hp_client::generate_key(),
        Some(path) => read_key(path)?,
    };
    let dial = match args.protocol.as_str() {
        "hotpocket" => {
            let trusted = args
                .trust
                .iter()
                .map(|k| {
                    let mut key = [0u8; 32];
                    hex::decode_to_slice(k.strip_prefix("ed").unwrap_or(k), &mut key)
                        .map(|()| key)
                        .map_err(|_| format!("--trust {k} is not an Ed25519 public key (64 hex, ed-prefixed or not)"))
                })
                .collect::<Result<Vec<_>, _>>()?;
            Dial::HotPocket { trusted: (!trusted.is_empty()).then_some(trusted), max_ledger_offset: 10 }
        }
        _ => Dial::Seed,
    };
    let (mut tx, mut rx) = match tokio::time::timeout(timeout, hp_client::connect_split(&args.url, &key, &dial)).await {
        Err(_) => return Err(format!("timed out after {} s connecting to {}", args.timeout, args.url)),
        Ok(Err(e)) => return Err(e.to_string()),
        Ok(Ok(halves)) => halves,
    };
    let mut tally = Tally::default();
    let interrupted = if args.send.is_empty() {
        send_stdin_lines(&mut tx, &mut rx, &mut tally, &args).await?
    } else {
        for input in &args.send {
            tx.send(input.as_bytes()).await.map_err(|e| e.to_string())?;
            tally.sent += 1;
        }
        false
    };
    if interrupted {
        let _ = tx.close().await;
        return Ok(INTERRUPTED);
    }
    let deadline = Instant::now() + timeout;
    while !tally.done(args.wait) {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {
                let _ = tx.close().await;
                return Ok(INTERRUPTED);
            }
            _ = tokio::time::sleep_until(deadline) => {
                return Err(format!("timed out after {} s waiting for outputs ({})", args.timeout, tally.awaited(args.wait)));
            }
            output = rx.next_output() => match output {
                Ok(Some(output)) => print_output(output, &mut tally, args.hex)?,
                Ok(None) => return Err(format!("the node closed the connection ({})", tally.awaited(args.wait))),
                Err(e) => return Err(format!("{e} ({})", tally.awaited(args.wait))),
            },
        }
    }
    let _ = tx.close().await;
    Ok(if tally.errors > 0 && args.wait.is_none() { FAILURE } else { 0 })
}

/// Sends each stdin line (without its newline) as an input, printing outputs as they come.
/// Returns whether Ctrl-C stopped it.
async fn send_stdin_lines(tx: &mut Sender, rx: &mut Receiver, tally: &mut Tally, args: &Args) -> Result<bool, String> {
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let mut stdin_open = true;
    while stdin_open {
        if args.wait.is_some() && tally.done(args.wait) {
            break;
        }
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(true),
            line = lines.next_line() => match line {
                Ok(Some(line)) => {
                    tx.send(line.as_bytes()).await.map_err(|e| e.to_string())?;
                    tally.sent += 1;
                }
                Ok(None) => stdin_open = false,
                Err(e) => return Err(format!("cannot read stdin: {e}")),
            },
            output = rx.next_output() => match output {
                Ok(Some(output)) => print_output(output, tally, args.hex)?,
                Ok(None) => return Err("the node closed the connection".into()),
                Err(e) => return Err(e.to_string()),
            },
        }
    }
    Ok(false)
}

fn print_output(output: Output, tally: &mut Tally, hex: bool) -> Result<(), String> {
    match output {
        Output::Data(data) => {
            tally.outputs += 1;
            let mut out = std::io::stdout().lock();
            let written = if hex {
                writeln!(out, "{}", hex::encode(&data))
            } else {
                out.write_all(&data).and_then(|()| out.write_all(b"\n"))
            };
            written.and_then(|()| out.flush()).map_err(|e| format!("cannot write to stdout: {e}"))
        }
        Output::Error(reason) => {
            tally.errors += 1;
            eprintln!("error: {reason}");
            Ok(())
        }
    }
}

fn read_key(path: &std::path::Path) -> Result<hp_client::UserKey, String> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| format!("cannot read key file {}: {e}", path.display()))?;
    let mut text = String::new();
    file.take(MAX_KEY_FILE)
        .read_to_string(&mut text)
        .map_err(|e| format!("cannot read key file {}: {e}", path.display()))?;
    hp_client::key_from_hex(&text).map_err(|e| format!("key file {}: {e}", path.display()))
}

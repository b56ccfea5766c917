//! `hotpocket ledger <dir> [--from N] [--json]`: the stored chain, one ledger a line, read
//! straight from the ledger store (the node need not be running).

use super::CommandError;
use crate::cli::LedgerArgs;
use hp_cfg::ContractDir;
use hp_ledger::Store;
use hp_ledger::store::LedgerSummary;
use std::io::Write;

fn hex_or_empty(h: Option<[u8; 32]>) -> String {
    h.map(hex::encode).unwrap_or_default()
}

/// One ledger as a JSON object with the field names of docs/command-line.md.
pub fn summary_json(s: &LedgerSummary) -> serde_json::Value {
    serde_json::json!({
        "seq": s.seq,
        "hash": hex::encode(s.hash),
        "prev_hash": hex::encode(s.prev_hash),
        "time": s.time_ms,
        "state_hash": hex_or_empty(s.state_hash),
        "inputs": s.inputs,
        "outputs_hash": hex_or_empty(s.outputs_hash),
        "signers": s.signers,
        "config_hash": hex::encode(s.config_hash),
        "unl_change": s.next_membership.as_ref().map(|m| serde_json::json!({
            "unl": m.unl().iter().map(|k| format!("ed{}", hex::encode(k))).collect::<Vec<_>>(),
            "quorum": m.quorum(),
            "max_input_ledger_offset": m.input_window(),
            "user_input_bytes": m.user_input_bytes(),
            "config_hash": hex::encode(m.hash()),
        })),
    })
}

pub fn run(args: &LedgerArgs) -> Result<(), CommandError> {
    let dir = ContractDir::new(&args.dir);
    let path = dir.ledger_db();
    if !path.exists() {
        return Err(CommandError::Control(format!("no ledger store at {}", path.display())));
    }
    let store = Store::open_read_only(&path).map_err(|e| CommandError::Control(e.to_string()))?;
    let lines = store.summaries(args.from).map_err(|e| CommandError::Control(e.to_string()))?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let io = |source| CommandError::Io { what: "stdout".into(), source };
    if !args.json {
        writeln!(
            out,
            "{:>8}  {:<16}  {:<16}  {:>14}  {:<16}  {:>6}  {:<16}  {:>7}",
            "seq", "hash", "prev_hash", "time_ms", "state_hash", "inputs", "outputs_hash", "signers"
        )
        .map_err(io)?;
    }
    for s in &lines {
        if args.json {
            writeln!(out, "{}", summary_json(s)).map_err(io)?;
        } else {
            let short = |h: &str| h.chars().take(16).collect::<String>();
            writeln!(
                out,
                "{:>8}  {:<16}  {:<16}  {:>14}  {:<16}  {:>6}  {:<16}  {:>7}",
                s.seq,
                short(&hex::encode(s.hash)),
                short(&hex::encode(s.prev_hash)),
                s.time_ms,
                short(&hex_or_empty(s.state_hash)),
                s.inputs,
                short(&hex_or_empty(s.outputs_hash)),
                s.signers
            )
            .map_err(io)?;
            if let Some(m) = &s.next_membership {
                writeln!(
                    out,
                    "{:>8}  UNL changes from ledger {}: {} keys, quorum {}, config {}",
                    "",
                    s.seq + 1,
                    m.unl().len(),
                    m.quorum(),
                    short(&hex::encode(m.hash()))
                )
                .map_err(io)?;
            }
        }
    }
    Ok(())
}

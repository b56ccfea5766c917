//! `hotpocket verify <dir>`: checks the whole stored chain offline — genesis, every hash link,
//! every commit and result certificate against the UNL of `hp.cfg`, no input instance twice.
//! Exit 0 with a summary when sound; exit 1 naming the first fault.

use super::CommandError;
use crate::cli::DirArgs;
use hp_cfg::{Config, ContractDir};
use hp_ledger::Store;
use hp_ledger::chain::verify_chain;

pub fn run(args: &DirArgs) -> Result<(), CommandError> {
    let dir = ContractDir::new(&args.dir);
    let cfg = Config::load(&dir.config_file())?;
    let path = dir.ledger_db();
    if !path.exists() {
        return Err(CommandError::Control(format!("no ledger store at {}", path.display())));
    }
    let store = Store::open_read_only(&path).map_err(|e| CommandError::Control(format!("chain is damaged: {e}")))?;
    let records = store.all().map_err(|e| CommandError::Control(format!("chain is damaged: {e}")))?;
    let count = records.len();
    let (seq, hash) = verify_chain(records, &cfg.unl, cfg.quorum(), &cfg.network_id())
        .map_err(|e| CommandError::Control(format!("chain is invalid: {e}")))?;
    println!("chain ok: {count} ledgers, last {seq} {}", hex::encode(hash));
    Ok(())
}

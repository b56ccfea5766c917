//! `hotpocket verify <dir>`: checks the whole stored chain offline — the genesis ledger of the
//! network `hp.cfg` names (its `contract_id`), every hash link, every commit and result
//! certificate against the members of its ledger (from hp.cfg's UNL, following every hand-over
//! the chain records) and signed in that network, no input instance twice.
//! Exit 0 with a summary when sound; exit 1 naming the first fault.

use super::CommandError;
use crate::cli::DirArgs;
use hp_cfg::{Config, ContractDir};
use hp_ledger::chain::{ChainError, genesis_members, verify_chain};
use hp_ledger::{NetworkId, Store};

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
    let network = NetworkId(cfg.network_id());
    let genesis = genesis_members(&cfg.unl, cfg.quorum(), cfg.max_input_ledger_offset)
        .map_err(|e| CommandError::Control(format!("hp.cfg's UNL cannot start a chain: {e}")))?;
    let (seq, hash) = verify_chain(records, &network, &genesis).map_err(|e| match e {
        ChainError::BadGenesis { .. } => CommandError::Control(format!(
            "chain is invalid: {e}; hp.cfg's contract_id {} names network {network}",
            cfg.contract_id
        )),
        e => CommandError::Control(format!("chain is invalid: {e}")),
    })?;
    println!("chain ok: {count} ledgers, last {seq} {}", hex::encode(hash));
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use hp_ledger::Ledger;

    fn verify(root: &std::path::Path) -> Result<(), CommandError> {
        run(&DirArgs { dir: root.to_path_buf() })
    }

    #[test]
    fn a_chain_of_another_network_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("node");
        let mut cfg = hp_cfg::create::new_contract_dir(&root, None).unwrap();
        let dir = ContractDir::new(&root);
        std::fs::create_dir_all(dir.hist()).unwrap();
        let genesis = Ledger::genesis(&cfg.unl, &NetworkId(cfg.network_id()));
        drop(Store::open(&dir.ledger_db(), &genesis).unwrap());
        verify(&root).expect("the chain of hp.cfg's own network verifies");

        // The same UNL and store, but hp.cfg now names another network.
        cfg.contract_id = hp_cfg::config::new_contract_id();
        cfg.save(&dir.config_file()).unwrap();
        let err = verify(&root).unwrap_err().to_string();
        let other = NetworkId(cfg.network_id());
        assert!(err.contains(&format!("not the genesis ledger of network {other}")), "{err}");
        assert!(err.contains(&cfg.contract_id), "{err}");
    }
}

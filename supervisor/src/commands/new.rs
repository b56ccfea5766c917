//! `hotpocket new <dir> [--contract PATH]`.

use super::CommandError;
use crate::cli::NewArgs;

pub fn run(args: &NewArgs) -> Result<(), CommandError> {
    let cfg = hp_cfg::create::new_contract_dir(&args.dir, args.contract.as_deref())?;
    println!("created contract directory {}", args.dir.display());
    println!("  public key  {}", cfg.key.public_hex());
    println!("  contract    {}", cfg.binary);
    println!("  peer port   {}", cfg.peerport);
    match cfg.pubport {
        Some(port) => println!("  user port   {port}"),
        None => println!("  user port   none (validator only)"),
    }
    if let Some(port) = cfg.hpport {
        println!("  HotPocket   {port} (wss://, HotPocket 0.6 clients; certificate in cfg/tlscert.pem)");
    }
    println!("start it with: hotpocket run {}", args.dir.display());
    Ok(())
}

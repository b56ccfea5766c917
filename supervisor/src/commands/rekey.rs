//! `hotpocket rekey <dir>`.

use super::CommandError;
use crate::cli::DirArgs;

pub fn run(args: &DirArgs) -> Result<(), CommandError> {
    let (old, new) = hp_cfg::create::rekey(&args.dir)?;
    println!("new key pair for {}", args.dir.display());
    println!("  old public key  {old}");
    println!("  new public key  {new}");
    println!("update the UNL of the other nodes to the new key");
    Ok(())
}

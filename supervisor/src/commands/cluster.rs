//! `hotpocket cluster new <dir> --nodes N [--observers M] [--contract PATH] [--base-port P]`.

use super::CommandError;
use crate::cli::ClusterNewArgs;

pub fn run(args: &ClusterNewArgs) -> Result<(), CommandError> {
    let (validators, observers) = (usize::from(args.nodes), usize::from(args.observers));
    let configs =
        hp_cfg::create::new_cluster(&args.dir, validators, observers, args.contract.as_deref(), args.base_port)?;
    println!("created a cluster of {validators} validators and {observers} observers in {}", args.dir.display());
    for (i, cfg) in configs.iter().enumerate() {
        let port = |p: Option<u16>| p.map_or_else(|| "-".to_string(), |p| p.to_string());
        let dir = args.dir.join(format!("node{}", i + 1));
        println!(
            "  {}  {}  peer port {}  user port {}  HotPocket port {}  metrics port {}  key {}",
            dir.display(),
            if cfg.my_index().is_some() { "validator" } else { "observer " },
            cfg.peerport,
            port(cfg.pubport),
            port(cfg.hpport),
            port(cfg.metrics_port),
            cfg.key.public_hex()
        );
    }
    Ok(())
}

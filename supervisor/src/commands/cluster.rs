//! `hotpocket cluster new <dir> --nodes N [--contract PATH] [--base-port P]`.

use super::CommandError;
use crate::cli::ClusterNewArgs;

pub fn run(args: &ClusterNewArgs) -> Result<(), CommandError> {
    let configs =
        hp_cfg::create::new_cluster(&args.dir, usize::from(args.nodes), args.contract.as_deref(), args.base_port)?;
    println!("created a cluster of {} nodes in {}", configs.len(), args.dir.display());
    for (i, cfg) in configs.iter().enumerate() {
        let port = |p: Option<u16>| p.map_or_else(|| "-".to_string(), |p| p.to_string());
        let dir = args.dir.join(format!("node{}", i + 1));
        println!(
            "  {}  peer port {}  user port {}  HotPocket port {}  metrics port {}  key {}",
            dir.display(),
            cfg.peerport,
            port(cfg.pubport),
            port(cfg.hpport),
            port(cfg.metrics_port),
            cfg.key.public_hex()
        );
    }
    Ok(())
}

//! `hotpocket new`, `rekey` and `cluster new`: writing contract directories that work at once.

use crate::config::{Config, ConfigError};
use crate::keys::NodeKey;
use crate::layout::ContractDir;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The contract a new directory starts with: it answers each user's input in upper case. It
/// needs nothing but `/bin/sh` and `tr`, so `hotpocket new` gives a node that works at once.
pub const DEFAULT_CONTRACT: &str = r#"#!/bin/sh
# Hot Pocket's default contract: each user's input comes back in upper case.
# stdin: "HOTPOCKET 0.1", then one line per user: <pubkey hex>=<read fd>:<write fd>
read -r header || exit 0
while IFS='=' read -r user fds; do
  r=${fds%%:*}
  w=${fds##*:}
  tr 'abcdefghijklmnopqrstuvwxyz' 'ABCDEFGHIJKLMNOPQRSTUVWXYZ' < /proc/self/fd/"$r" > /proc/self/fd/"$w"
done
"#;

/// Why a contract directory could not be written.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    #[error("{path} already exists and is not empty")]
    NotEmpty { path: PathBuf },
    #[error("cannot create {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("contract binary {path}: {source}")]
    Contract { path: PathBuf, source: std::io::Error },
    #[error("cannot make the TLS certificate: {0}")]
    Tls(String),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> CreateError + '_ {
    move |source| CreateError::Io { path: path.to_path_buf(), source }
}

/// Writes a self-signed TLS certificate and its key for the HotPocket user port
/// (`cfg/tlscert.pem`, `cfg/tlskey.pem`, the key 0600), unless a certificate is already there
/// (the operator's own). ECDSA P-256: what browsers and Node.js accept; the names are
/// `localhost` and the loopback addresses (clients dialling an address skip the name check).
pub fn ensure_tls_cert(dir: &ContractDir) -> Result<(), CreateError> {
    let (cert_path, key_path) = (dir.tls_cert(), dir.tls_key());
    if cert_path.exists() {
        return Ok(());
    }
    let names = vec!["localhost".to_string(), "127.0.0.1".to_string(), "::1".to_string()];
    let certified = rcgen::generate_simple_self_signed(names).map_err(|e| CreateError::Tls(e.to_string()))?;
    write_private(&key_path, certified.signing_key.serialize_pem().as_bytes())?;
    fs::write(&cert_path, certified.cert.pem()).map_err(io_err(&cert_path))?;
    Ok(())
}

/// Writes a file only its owner can read (created 0600, never wider for a moment).
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), CreateError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file =
        fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path).map_err(io_err(path))?;
    file.write_all(bytes).and_then(|()| file.sync_all()).map_err(io_err(path))
}

/// Creates the folders of a contract directory, with `run/` private to the node (0700) and
/// `bin/` open to the contract's user (0755).
pub fn make_folders(dir: &ContractDir) -> Result<(), CreateError> {
    for folder in [dir.root().join("cfg"), dir.bin(), dir.state(), dir.hist(), dir.log()] {
        fs::create_dir_all(&folder).map_err(io_err(&folder))?;
    }
    // The contract may run as a user of its own, which must reach its binary whatever the umask.
    let bin = dir.bin();
    fs::set_permissions(&bin, fs::Permissions::from_mode(0o755)).map_err(io_err(&bin))?;
    let run = dir.run();
    fs::create_dir_all(&run).map_err(io_err(&run))?;
    fs::set_permissions(&run, fs::Permissions::from_mode(0o700)).map_err(io_err(&run))?;
    Ok(())
}

fn refuse_non_empty(root: &Path) -> Result<(), CreateError> {
    if let Ok(mut entries) = fs::read_dir(root)
        && entries.next().is_some()
    {
        return Err(CreateError::NotEmpty { path: root.to_path_buf() });
    }
    Ok(())
}

/// Installs the contract: a copy of `contract` as `bin/<its name>`, or the default contract.
/// Returns the `binary` value for the config.
fn install_contract(dir: &ContractDir, contract: Option<&Path>) -> Result<String, CreateError> {
    let (name, target) = match contract {
        Some(src) => {
            let name = src.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "contract".into());
            let target = dir.bin().join(&name);
            fs::copy(src, &target).map_err(|source| CreateError::Contract { path: src.to_path_buf(), source })?;
            (name, target)
        }
        None => {
            let target = dir.bin().join("contract.sh");
            fs::write(&target, DEFAULT_CONTRACT).map_err(io_err(&target))?;
            ("contract.sh".to_string(), target)
        }
    };
    fs::set_permissions(&target, fs::Permissions::from_mode(0o755)).map_err(io_err(&target))?;
    Ok(format!("bin/{name}"))
}

/// The first of the ids a new node running as root gives its contract: systemd's range for
/// dynamic users (61184–65519), which no distribution hands to ordinary accounts.
pub const CONTRACT_ID_BASE: u32 = 61184;
/// How many ids that range holds.
pub const CONTRACT_ID_COUNT: u32 = 65519 - 61184 + 1;

/// The sandbox settings a new node gets (docs/config.md): run as root, its contract gets a
/// `uid:gid` of its own, derived from the node's key (so the nodes of a local cluster differ,
/// and each contract's process limit counts only its own processes); run as another user,
/// `sandbox_allow_missing` says that the contract shares that user (landlock then keeps it
/// from the node's files and processes).
pub fn sandbox_defaults(cfg: &mut Config) {
    if nix::unistd::geteuid().is_root() {
        let key = cfg.key.public_bytes();
        let id = CONTRACT_ID_BASE + u32::from(u16::from_le_bytes([key[0], key[1]])) % CONTRACT_ID_COUNT;
        cfg.contract_user = Some(format!("{id}:{id}"));
        cfg.sandbox_allow_missing.clear();
    } else {
        cfg.contract_user = None;
        cfg.sandbox_allow_missing = vec![crate::config::Protection::OwnUser];
    }
}

/// `hotpocket new <dir>`: fresh keys, a UNL of itself, default ports, the default contract.
pub fn new_contract_dir(root: &Path, contract: Option<&Path>) -> Result<Config, CreateError> {
    refuse_non_empty(root)?;
    let dir = ContractDir::new(root);
    make_folders(&dir)?;
    ensure_tls_cert(&dir)?;
    let mut cfg = Config::new_single(NodeKey::generate());
    sandbox_defaults(&mut cfg);
    cfg.binary = install_contract(&dir, contract)?;
    cfg.hpport = Some(8443);
    cfg.save(&dir.config_file())?;
    Ok(cfg)
}

/// `hotpocket rekey <dir>`: a new key pair for the node; its entry in the UNL follows.
/// Returns the old and the new public key, hex.
pub fn rekey(root: &Path) -> Result<(String, String), CreateError> {
    let dir = ContractDir::new(root);
    let mut cfg = Config::load(&dir.config_file())?;
    let old = cfg.key.public_bytes();
    let key = NodeKey::generate();
    for entry in &mut cfg.unl {
        if *entry == old {
            *entry = key.public_bytes();
        }
    }
    cfg.key = key;
    cfg.save(&dir.config_file())?;
    Ok((hex::encode(old), cfg.key.public_hex()))
}

/// `hotpocket cluster new <dir> --nodes N`: N contract directories `<dir>/node1..N` whose peers
/// and UNL are wired together, peer ports `base..`, user ports `base+100..`, HotPocket 0.6
/// user ports (TLS) `base+200..`, metrics ports `base+300..`. The last `observers` of them are
/// observers: not in the UNL, listed in every config's `observers`.
pub fn new_cluster(
    root: &Path,
    validators: usize,
    observers: usize,
    contract: Option<&Path>,
    base_port: u16,
) -> Result<Vec<Config>, CreateError> {
    refuse_non_empty(root)?;
    let nodes = validators + observers;
    let keys: Vec<NodeKey> = (0..nodes).map(|_| NodeKey::generate()).collect();
    let all: Vec<[u8; 32]> = keys.iter().map(NodeKey::public_bytes).collect();
    let (unl, observer_keys) = all.split_at(validators);
    let contract_id = crate::config::new_contract_id();
    let mut configs = Vec::with_capacity(nodes);
    for (i, key) in keys.into_iter().enumerate() {
        let dir = ContractDir::new(root.join(format!("node{}", i + 1)));
        make_folders(&dir)?;
        ensure_tls_cert(&dir)?;
        let mut cfg = Config::new_single(key);
        sandbox_defaults(&mut cfg);
        cfg.binary = install_contract(&dir, contract)?;
        cfg.unl = unl.to_vec();
        cfg.observers = observer_keys.to_vec();
        cfg.contract_id = contract_id.clone();
        cfg.peerport = base_port + i as u16;
        cfg.pubport = Some(base_port + 100 + i as u16);
        cfg.hpport = Some(base_port + 200 + i as u16);
        cfg.metrics_port = Some(base_port + 300 + i as u16);
        cfg.peers = (0..nodes).filter(|j| *j != i).map(|j| format!("127.0.0.1:{}", base_port + j as u16)).collect();
        cfg.save(&dir.config_file())?;
        configs.push(cfg);
    }
    Ok(configs)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn hotpocket_new_writes_a_tls_pair_whose_key_only_its_owner_reads() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("node");
        let cfg = new_contract_dir(&root, None).unwrap();
        assert_eq!(cfg.hpport, Some(8443));
        let dir = ContractDir::new(&root);
        let cert = fs::read_to_string(dir.tls_cert()).unwrap();
        assert!(cert.starts_with("-----BEGIN CERTIFICATE-----"), "{cert}");
        let key = fs::metadata(dir.tls_key()).unwrap();
        assert_eq!(key.permissions().mode() & 0o777, 0o600);
        // An operator's own certificate is kept.
        fs::write(dir.tls_cert(), "mine").unwrap();
        ensure_tls_cert(&dir).unwrap();
        assert_eq!(fs::read_to_string(dir.tls_cert()).unwrap(), "mine");
    }

    #[test]
    fn new_dir_has_layout_private_config_and_runnable_contract() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("c");
        let cfg = new_contract_dir(&root, None).unwrap();
        let dir = ContractDir::new(&root);
        for p in [dir.state(), dir.hist(), dir.bin(), dir.run()] {
            assert!(p.is_dir(), "{}", p.display());
        }
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir.config_file()), 0o600);
        assert_eq!(mode(&dir.run()), 0o700);
        assert_eq!(mode(&root.join(&cfg.binary)), 0o755);
        assert_eq!(cfg.unl, vec![cfg.key.public_bytes()]);
        assert!(new_contract_dir(&root, None).is_err(), "refuses to overwrite");
    }

    #[test]
    fn rekey_replaces_the_key_and_its_unl_entry() {
        let tmp = tempfile::tempdir().unwrap();
        let cfg = new_contract_dir(tmp.path(), None).unwrap();
        let (old, new) = rekey(tmp.path()).unwrap();
        assert_eq!(old, cfg.key.public_hex());
        let back = Config::load(&ContractDir::new(tmp.path()).config_file()).unwrap();
        assert_eq!(back.key.public_hex(), new);
        assert_eq!(back.unl, vec![back.key.public_bytes()]);
    }

    #[test]
    fn cluster_wires_peers_and_unl() {
        let tmp = tempfile::tempdir().unwrap();
        let configs = new_cluster(tmp.path(), 3, 1, None, 30000).unwrap();
        assert_eq!(configs.len(), 4);
        for (i, cfg) in configs.iter().enumerate() {
            assert_eq!(cfg.unl.len(), 3);
            assert_eq!(cfg.observers, vec![configs[3].key.public_bytes()]);
            assert_eq!(cfg.my_index(), if i < 3 { Some(i) } else { None });
            assert_eq!(cfg.peers.len(), 3);
            assert_eq!(cfg.peerport, 30000 + i as u16);
            assert_eq!(cfg.pubport, Some(30100 + i as u16));
            assert_eq!(cfg.metrics_port, Some(30300 + i as u16));
            let loaded = Config::load(&tmp.path().join(format!("node{}/cfg/hp.cfg", i + 1))).unwrap();
            assert_eq!(loaded.quorum(), 3);
            assert_eq!(loaded.network_id(), configs[0].network_id(), "one network, one id");
        }
    }
}

//! Test contracts written in C (`tests/contracts/<name>.c`), compiled with `cc` into a
//! temporary folder on first use.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
static COMPILING: Mutex<()> = Mutex::new(());

/// Compiles `tests/contracts/<name>.c` (once per test process) and returns the binary's path.
pub fn compile(name: &str) -> PathBuf {
    let dir = DIR.get_or_init(|| tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}")));
    let out = dir.path().join(name);
    let _one_at_a_time = COMPILING.lock().unwrap_or_else(|e| e.into_inner());
    if !out.exists() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("contracts").join(format!("{name}.c"));
        let tmp = dir.path().join(format!("{name}.{}.tmp", std::process::id()));
        hp_localnet::contract::compile_c(&src, &tmp).unwrap_or_else(|e| panic!("{e}"));
        std::fs::rename(&tmp, &out).unwrap_or_else(|e| panic!("{e}"));
    }
    out
}

/// The Node.js example contract's folder (`contracts/nodejs`, with its `node_modules`), which
/// its launcher runs from: the sandbox must let the contract read it (`sandbox_read_paths`).
pub fn nodejs_dir() -> PathBuf {
    let contract = Path::new(env!("CARGO_MANIFEST_DIR")).join("../contracts/nodejs");
    contract.canonicalize().unwrap_or_else(|e| panic!("{}: {e}", contract.display()))
}

/// A launcher for the Node.js example contract (`contracts/nodejs`, written with the published
/// `hotpocket-nodejs-contract`): a script that runs `node contracts/nodejs/index.js`. Panics
/// (naming the fix) when the library is not installed.
pub fn nodejs() -> PathBuf {
    let dir = DIR.get_or_init(|| tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}")));
    let contract = Path::new(env!("CARGO_MANIFEST_DIR")).join("../contracts/nodejs");
    let contract = contract.canonicalize().unwrap_or_else(|e| panic!("{}: {e}", contract.display()));
    assert!(
        contract.join("node_modules/hotpocket-nodejs-contract").is_dir(),
        "hotpocket-nodejs-contract is not installed: run `npm ci --prefix contracts/nodejs` (scripts/test does)"
    );
    let node = ["/usr/local/bin/node", "/usr/bin/node", "/bin/node"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("Node.js is needed for the Node.js contract tests (`node` not found)"));
    let out = dir.path().join("nodejs-contract.sh");
    let _one_at_a_time = COMPILING.lock().unwrap_or_else(|e| e.into_inner());
    if !out.exists() {
        let script = format!("#!/bin/sh\nexec {} {}\n", node.display(), contract.join("index.js").display());
        let tmp = dir.path().join(format!("nodejs-contract.{}.tmp", std::process::id()));
        std::fs::write(&tmp, script).unwrap_or_else(|e| panic!("{e}"));
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755)).unwrap_or_else(|e| panic!("{e}"));
        std::fs::rename(&tmp, &out).unwrap_or_else(|e| panic!("{e}"));
    }
    out
}

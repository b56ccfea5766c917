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

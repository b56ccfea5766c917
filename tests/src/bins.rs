//! Finding the workspace's binaries next to the running test executable (`target/<profile>/`).

use std::path::PathBuf;

/// The folder holding `hotpocket`, `hp-userd`, ... : `$HP_BIN_DIR`, or the build folder of this
/// test executable.
pub fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("HP_BIN_DIR") {
        return PathBuf::from(dir);
    }
    let exe = std::env::current_exe().unwrap_or_default();
    // target/<profile>/deps/<test-binary>
    let mut dir = exe.parent().map(PathBuf::from).unwrap_or_default();
    if dir.ends_with("deps") {
        dir.pop();
    }
    dir
}

/// Path to one binary; panics with a clear message when it was not built.
pub fn bin(name: &str) -> PathBuf {
    let path = bin_dir().join(name);
    assert!(
        path.exists(),
        "{} is missing: build the workspace binaries first (cargo build --workspace --bins)",
        path.display()
    );
    path
}

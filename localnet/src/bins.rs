//! Finding the node binaries: an explicit folder, else `$HP_BIN_DIR`, else the folder of the
//! running executable (`target/<profile>/`, also for a test executable in its `deps/`; release
//! builds put hp-bench next to hotpocket).

use crate::LocalnetError;
use std::path::{Path, PathBuf};

/// The binaries a node needs: the supervisor starts the three daemons from the same folder.
pub const NODE_BINARIES: [&str; 4] = ["hotpocket", "hp-userd", "hp-consensusd", "hp-execd"];

/// The environment variable naming the binaries' folder (also read by the supervisor).
pub const BIN_DIR_ENV: &str = "HP_BIN_DIR";

/// `$HP_BIN_DIR`, or the build folder of the running executable.
pub fn bin_dir() -> Result<PathBuf, LocalnetError> {
    if let Some(dir) = std::env::var_os(BIN_DIR_ENV) {
        return Ok(PathBuf::from(dir));
    }
    let exe = std::env::current_exe().map_err(LocalnetError::NoExeDir)?;
    let mut dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    // A test executable lives in target/<profile>/deps.
    if dir.ends_with("deps") {
        dir.pop();
    }
    Ok(dir)
}

/// The folder holding every one of [`NODE_BINARIES`]: `explicit`, else [`bin_dir`].
pub fn find(explicit: Option<&Path>) -> Result<PathBuf, LocalnetError> {
    let dir = match explicit {
        Some(dir) => dir.to_path_buf(),
        None => bin_dir()?,
    };
    for name in NODE_BINARIES {
        let path = dir.join(name);
        if !path.is_file() {
            return Err(LocalnetError::MissingBinary { path });
        }
    }
    Ok(dir)
}

/// The path of one binary of [`bin_dir`], which must exist.
pub fn bin(name: &str) -> Result<PathBuf, LocalnetError> {
    let path = bin_dir()?.join(name);
    if !path.exists() {
        return Err(LocalnetError::MissingBinary { path });
    }
    Ok(path)
}

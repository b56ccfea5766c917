//! Finding the node binaries: `--bin-dir`, else `$HP_BIN_DIR`, else the folder of the running
//! executable (release builds put hp-bench next to hotpocket).

use crate::BenchError;
use std::path::{Path, PathBuf};

/// The binaries a node needs: the supervisor starts the three daemons from the same folder.
pub const NODE_BINARIES: [&str; 4] = ["hotpocket", "hp-userd", "hp-consensusd", "hp-execd"];

/// The environment variable naming the binaries' folder (also read by the supervisor).
pub const BIN_DIR_ENV: &str = "HP_BIN_DIR";

/// The folder holding every one of [`NODE_BINARIES`].
pub fn find(explicit: Option<&Path>) -> Result<PathBuf, BenchError> {
    let dir = match (explicit, std::env::var_os(BIN_DIR_ENV)) {
        (Some(dir), _) => dir.to_path_buf(),
        (None, Some(dir)) => PathBuf::from(dir),
        (None, None) => {
            let exe = std::env::current_exe().map_err(BenchError::NoExeDir)?;
            let mut dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
            // A test executable lives in target/<profile>/deps.
            if dir.ends_with("deps") {
                dir.pop();
            }
            dir
        }
    };
    for name in NODE_BINARIES {
        let path = dir.join(name);
        if !path.is_file() {
            return Err(BenchError::MissingBinary { path });
        }
    }
    Ok(dir)
}

//! The benchmark's echo contract (`contract/echo.c`), compiled with hp-localnet's
//! [`compile_c`] at start.

use crate::BenchError;
use hp_localnet::contract::compile_c;
use std::path::{Path, PathBuf};

/// Every user's inputs come back byte for byte: hp-bench cuts the round's output frame back
/// into the inputs it answers ([`crate::payload`]).
pub const ECHO_SOURCE: &str = include_str!("../contract/echo.c");

/// Writes [`ECHO_SOURCE`] into `dir` and compiles it; returns the executable's path.
pub fn build_echo(dir: &Path) -> Result<PathBuf, BenchError> {
    let source = dir.join("echo.c");
    std::fs::write(&source, ECHO_SOURCE).map_err(BenchError::io("cannot write", &source))?;
    let binary = dir.join("echo");
    compile_c(&source, &binary)?;
    Ok(binary)
}

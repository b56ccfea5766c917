//! The benchmark's echo contract (`contract/echo.c`, compiled with `cc` at start) and
//! compiling C contracts in general (the example contract's test uses it too).

use crate::BenchError;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Every user's inputs come back byte for byte: hp-bench cuts the round's output frame back
/// into the inputs it answers ([`crate::payload`]).
pub const ECHO_SOURCE: &str = include_str!("../contract/echo.c");

/// The C compiler: `$CC`, else `cc`.
pub fn compiler() -> String {
    std::env::var("CC").ok().filter(|c| !c.trim().is_empty()).unwrap_or_else(|| "cc".into())
}

/// Compiles one C file into an executable: `cc -O2 -o output source`.
pub fn compile_c(source: &Path, output: &Path) -> Result<(), BenchError> {
    let cc = compiler();
    let result = Command::new(&cc).arg("-O2").arg("-o").arg(output).arg(source).output();
    match result {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(BenchError::NoCompiler { cc }),
        Err(e) => Err(BenchError::Io { what: "running the C compiler on", path: source.to_path_buf(), source: e }),
        Ok(out) if !out.status.success() => Err(BenchError::Compile {
            source_path: source.to_path_buf(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }),
        Ok(_) => Ok(()),
    }
}

/// Writes [`ECHO_SOURCE`] into `dir` and compiles it; returns the executable's path.
pub fn build_echo(dir: &Path) -> Result<PathBuf, BenchError> {
    let source = dir.join("echo.c");
    std::fs::write(&source, ECHO_SOURCE).map_err(BenchError::io("cannot write", &source))?;
    let binary = dir.join("echo");
    compile_c(&source, &binary)?;
    Ok(binary)
}

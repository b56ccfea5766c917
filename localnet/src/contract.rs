//! Compiling C contracts with the machine's C compiler (`$CC`, else `cc`), for the benchmark's
//! echo contract and the tests' contracts.

use crate::LocalnetError;
use std::path::Path;
use std::process::Command;

/// The C compiler: `$CC`, else `cc`.
pub fn compiler() -> String {
    std::env::var("CC").ok().filter(|c| !c.trim().is_empty()).unwrap_or_else(|| "cc".into())
}

/// Compiles one C file into an executable: `cc -O2 -o output source`.
pub fn compile_c(source: &Path, output: &Path) -> Result<(), LocalnetError> {
    let cc = compiler();
    let result = Command::new(&cc).arg("-O2").arg("-o").arg(output).arg(source).output();
    match result {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(LocalnetError::NoCompiler { cc }),
        Err(e) => Err(LocalnetError::Io { what: "running the C compiler on", path: source.to_path_buf(), source: e }),
        Ok(out) if !out.status.success() => Err(LocalnetError::Compile {
            source_path: source.to_path_buf(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }),
        Ok(_) => Ok(()),
    }
}

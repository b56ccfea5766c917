//! `hp-example-json`: the example contract's program. Reads the JSON header from stdin, opens
//! the user fds through `/proc/self/fd` (no unsafe fd juggling needed), runs one execution in
//! the working directory (the node's `state/`), and exits non-zero with a message on stderr
//! (which goes to the node's log) when something is wrong.

use hp_example_json::{Header, run};
use std::fs::{File, OpenOptions};
use std::io::Read;
use std::path::Path;
use std::process::ExitCode;

fn main() -> ExitCode {
    match execute() {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("hp-example-json: {message}");
            ExitCode::FAILURE
        }
    }
}

fn execute() -> Result<(), String> {
    let mut text = String::new();
    std::io::stdin().read_to_string(&mut text).map_err(|e| format!("cannot read stdin: {e}"))?;
    let header = Header::parse(&text)?;
    let fd_path = |fd: i32| format!("/proc/self/fd/{fd}");
    run(&header, Path::new("."), |fd| File::open(fd_path(fd)), |fd| OpenOptions::new().write(true).open(fd_path(fd)))?;
    Ok(())
}

//! The exit codes every Hot Pocket binary uses.

/// Success.
pub const OK: i32 = 0;
/// A failure while running, a check that found a fault (`hotpocket verify`), or "node not
/// running" (`hotpocket status`, as docs/command-line.md fixes).
pub const FAILURE: i32 = 1;
/// Wrong command-line usage (clap's own code).
pub const USAGE: i32 = 2;
/// The config is missing or invalid: the node cannot start.
pub const CONFIG: i32 = 3;

//! The `hotpocket` binary's library: the supervisor that starts, watches and restarts a node's
//! three daemons, and the operator commands that create, inspect and steer a node.
//!
//! # Layout
//! - [`cli`]: the command line of docs/command-line.md (clap).
//! - [`commands`]: one file per subcommand; each turns its arguments into work and an exit code.
//! - [`supervisor`]: `hotpocket run`: child processes, readiness, restarts with backoff, the
//!   control socket, systemd notifications, orderly shutdown.
//! - [`status`]: the node status as the operator sees it (`status --json` and the text form).
//! - [`fds`]: keeping descriptors inherited from our own parent out of the daemons.

pub mod cli;
pub mod commands;
pub mod fds;
pub mod status;
pub mod supervisor;

pub use commands::{CommandError, dispatch};

//! Integration tests of `hotpocket`: the real binary, supervising the real daemons (found next
//! to it in the target dir, as `hotpocket run` finds them in production).
//!
//! Build the daemons first: `cargo build --workspace --bins`. A test that needs them fails with
//! that instruction when they are missing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod kit;

mod cli;
mod crash_loop;
mod docs;
mod hygiene;
mod restarts;
mod shutdown;
mod status;
mod systemd;

//! hp-client, the library and the command, against an in-process userd and fake consensusd.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cli;
mod library;
mod support;

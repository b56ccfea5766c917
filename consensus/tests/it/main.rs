//! Integration tests of hp-consensus: one binary, one module per topic.
// Tests fail by panicking; unwrap/expect say so most plainly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod certificates;
mod common;
mod results;
mod signing;
mod sim;
mod steps;

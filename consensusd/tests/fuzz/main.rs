//! Property tests of everything consensusd reads from other nodes (issue 10): peer frames, the
//! peer handshake. Each runs `HP_FUZZ_CASES` cases (256 by default: seconds in CI; raise it for
//! a long run, e.g. from `scripts/soak`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod handshake;
mod wire;

use proptest::test_runner::Config;

/// Cases per property: `HP_FUZZ_CASES`, or 256.
pub fn config() -> Config {
    let cases = std::env::var("HP_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256);
    Config { cases, failure_persistence: None, ..Config::default() }
}

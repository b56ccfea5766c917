//! Waiting for a condition by polling it, with a deadline — never a blind sleep — and failing
//! the test when it passes: the tests' face of [`hp_localnet::wait`] and of its errors.

use std::time::Duration;

pub use hp_localnet::wait::poll_until;

/// Polls `check` until it returns `Some`, or panics after `timeout` naming `what`.
pub fn wait_until<T>(what: &str, timeout: Duration, check: impl FnMut() -> Option<T>) -> T {
    poll_until(timeout, check).unwrap_or_else(|| panic!("timed out after {timeout:?} waiting for {what}"))
}

/// A step of a test that must succeed: its value, or a panic with the error's message (which
/// names the node and carries the end of its log).
pub trait OrPanic<T> {
    fn or_panic(self) -> T;
}

impl<T, E: std::fmt::Display> OrPanic<T> for Result<T, E> {
    #[track_caller]
    fn or_panic(self) -> T {
        self.unwrap_or_else(|e| panic!("{e}"))
    }
}

//! Exponential backoff between restarts of one component, so that a crash loop slows down
//! instead of spinning.

use std::time::Duration;

/// The first restart comes quickly: most crashes are one-offs.
pub const INITIAL_DELAY: Duration = Duration::from_millis(100);
/// A crash-looping component is still retried every 10 s, so it comes back on its own once its
/// cause (a full disk, a port in use) is gone.
pub const MAX_DELAY: Duration = Duration::from_secs(10);
/// A process that ran this long was healthy: its next crash starts the backoff afresh.
pub const STABLE_AFTER: Duration = Duration::from_secs(30);
/// From this many quick exits in a row on, the supervisor logs a crash loop.
pub const CRASH_LOOP_AFTER: u32 = 3;

/// The restart delay of one component: doubling from [`INITIAL_DELAY`] to [`MAX_DELAY`], reset
/// after the process ran stably for [`STABLE_AFTER`].
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
    /// Exits in a row that came before the process ran stably.
    quick_exits: u32,
}

impl Default for Backoff {
    fn default() -> Self {
        Self { next: INITIAL_DELAY, quick_exits: 0 }
    }
}

impl Backoff {
    /// Records an exit after the process ran for `ran_for`; returns how long to wait before
    /// starting it again.
    pub fn on_exit(&mut self, ran_for: Duration) -> Duration {
        if ran_for >= STABLE_AFTER {
            *self = Self::default();
        }
        let delay = self.next;
        self.next = (self.next * 2).min(MAX_DELAY);
        self.quick_exits = self.quick_exits.saturating_add(1);
        delay
    }

    /// Exits in a row without a stable run in between.
    pub fn quick_exits(&self) -> u32 {
        self.quick_exits
    }

    /// Whether the component is crash-looping (worth a warning of its own).
    pub fn in_crash_loop(&self) -> bool {
        self.quick_exits >= CRASH_LOOP_AFTER
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const QUICK: Duration = Duration::from_millis(5);

    #[test]
    fn delays_double_up_to_the_cap() {
        let mut b = Backoff::default();
        let delays: Vec<u64> = (0..10).map(|_| b.on_exit(QUICK).as_millis() as u64).collect();
        assert_eq!(delays, [100, 200, 400, 800, 1600, 3200, 6400, 10_000, 10_000, 10_000]);
        assert!(b.in_crash_loop());
        assert_eq!(b.quick_exits(), 10);
    }

    #[test]
    fn a_stable_run_resets_the_backoff() {
        let mut b = Backoff::default();
        for _ in 0..5 {
            b.on_exit(QUICK);
        }
        assert_eq!(b.on_exit(STABLE_AFTER), INITIAL_DELAY);
        assert_eq!(b.quick_exits(), 1);
        assert!(!b.in_crash_loop());
        assert_eq!(b.on_exit(QUICK), INITIAL_DELAY * 2);
    }

    #[test]
    fn a_crash_loop_is_flagged_from_the_third_quick_exit() {
        let mut b = Backoff::default();
        b.on_exit(QUICK);
        b.on_exit(QUICK);
        assert!(!b.in_crash_loop());
        b.on_exit(QUICK);
        assert!(b.in_crash_loop());
    }

    #[test]
    fn a_crash_loop_never_restarts_more_than_a_few_times_a_minute_after_warming_up() {
        let mut b = Backoff::default();
        let total: Duration = (0..20).map(|_| b.on_exit(QUICK)).sum();
        // 20 restarts take over two minutes: the loop cannot spin.
        assert!(total > Duration::from_secs(120), "{total:?}");
    }
}

//! Waiting for a span of time that this process was running for, not of wall-clock time: how the
//! contract's timeout and the output drain grace are measured.
//!
//! Whether a contract timed out is part of its round's result, which every node must compute
//! alike. Wall-clock timers also count the seconds this process was not running (SIGSTOP, a
//! paused or migrated VM, a host swapping hard): on resume every timer is overdue at once, and a
//! contract that got all the time it needed would be reported as timed out on this node alone,
//! which then disagrees with the network. So time is counted in short slices, and a slice that
//! took far longer than asked (the process did not run) counts only as [`MAX_SLICE_COUNT`].
//! A contract that is slow while execd runs still times out as before; a contract stopped on its
//! own (only its processes) keeps losing time, as it should.

use std::time::{Duration, Instant};

/// How long one slice sleeps: the timer's resolution when nothing stalls.
const SLICE: Duration = Duration::from_millis(50);
/// The most one slice counts. Some lateness is normal on a busy machine (the timer wheel, the
/// scheduler); past this the process was not running, and the rest is not counted.
const MAX_SLICE_COUNT: Duration = Duration::from_millis(150);

/// Completes after `span` of time during which this process ran (see the module docs).
pub async fn sleep(span: Duration) {
    let mut counted = Duration::ZERO;
    while counted < span {
        let slice = (span - counted).min(SLICE);
        let started = Instant::now();
        tokio::time::sleep(slice).await;
        counted += started.elapsed().clamp(slice, MAX_SLICE_COUNT.max(slice));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn waits_at_least_the_span() {
        let started = Instant::now();
        sleep(Duration::from_millis(120)).await;
        assert!(started.elapsed() >= Duration::from_millis(120));
    }

    /// A thread that cannot run is what a stopped process looks like to its timers: the span
    /// goes on after the stall instead of being over the moment it ends.
    #[tokio::test(flavor = "current_thread")]
    async fn time_the_process_did_not_run_is_not_counted() {
        let span = Duration::from_millis(400);
        let mut timer = std::pin::pin!(sleep(span));
        // Polled once: its first slice is under way.
        assert!(tokio::time::timeout(Duration::ZERO, &mut timer).await.is_err());
        // Blocks the only runtime thread: nothing of this runtime runs for a second.
        std::thread::sleep(Duration::from_millis(1000));
        let stall_ended = Instant::now();
        timer.await;
        let after = stall_ended.elapsed();
        // At most one slice's count went by during the stall; most of the span is still ahead.
        assert!(after >= span - MAX_SLICE_COUNT - SLICE, "the stall counted as running time: done {after:?} after it");
    }
}

//! The per-user input limits of docs/user-protocol.md step 5: `pubmaxsize` (largest input frame) and
//! `pubmaxcpm` (most input frames per minute per user; 0 = no limit).
//!
//! The rate limit is a token bucket per public key, not per connection, so reconnecting does
//! not refill it. The bucket holds one minute's worth of inputs and refills continuously at
//! `pubmaxcpm / 60` per second: a user who keeps to the rate is never refused, one who sends
//! faster is refused once the burst allowance is used up.

use hp_cfg::PublicKeyHex;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

/// Buckets kept before the first pruning of full (idle) ones.
const PRUNE_FLOOR: usize = 1024;

/// Why an input was refused by a limit. The `Display` text is the reason sent to the user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    #[error("{}", crate::frame::over_pubmaxsize(*len, *max))]
    TooLarge { len: usize, max: u64 },
    #[error("{}", crate::frame::over_pubmaxcpm(*cpm))]
    TooFast { cpm: u64 },
}

/// The limits every input passes before it goes to consensusd. Shared by all connections.
#[derive(Debug)]
pub struct InputLimits {
    pubmaxsize: u64,
    /// Inputs per minute per user; 0 = unlimited.
    pubmaxcpm: u64,
    buckets: Mutex<Buckets>,
}

#[derive(Debug)]
struct Buckets {
    by_user: HashMap<PublicKeyHex, Bucket>,
    /// Prune full buckets when the map grows past this.
    prune_at: usize,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl InputLimits {
    pub fn new(pubmaxsize: u64, pubmaxcpm: u64) -> Self {
        Self { pubmaxsize, pubmaxcpm, buckets: Mutex::new(Buckets { by_user: HashMap::new(), prune_at: PRUNE_FLOOR }) }
    }

    pub fn pubmaxsize(&self) -> u64 {
        self.pubmaxsize
    }

    /// Checks one input of `len` bytes from `user` at `now`, and takes a token when it passes.
    /// An input refused for its size takes no token.
    pub fn check(&self, user: PublicKeyHex, len: usize, now: Instant) -> Result<(), LimitError> {
        if len as u64 > self.pubmaxsize {
            return Err(LimitError::TooLarge { len, max: self.pubmaxsize });
        }
        if self.pubmaxcpm == 0 {
            return Ok(());
        }
        let capacity = self.pubmaxcpm as f64;
        let per_sec = capacity / 60.0;
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.by_user.len() >= buckets.prune_at {
            buckets.by_user.retain(|_, b| b.refilled(now, per_sec, capacity) < capacity);
            buckets.prune_at = (buckets.by_user.len() * 2).max(PRUNE_FLOOR);
        }
        let bucket = buckets.by_user.entry(user).or_insert(Bucket { tokens: capacity, at: now });
        bucket.tokens = bucket.refilled(now, per_sec, capacity);
        bucket.at = now.max(bucket.at);
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(LimitError::TooFast { cpm: self.pubmaxcpm })
        }
    }

    /// Users with a bucket (tests).
    pub fn tracked_users(&self) -> usize {
        self.buckets.lock().unwrap_or_else(|p| p.into_inner()).by_user.len()
    }
}

impl Bucket {
    fn refilled(&self, now: Instant, per_sec: f64, capacity: f64) -> f64 {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        (self.tokens + elapsed * per_sec).min(capacity)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use std::time::Duration;

    const ALICE: PublicKeyHex = PublicKeyHex([1; 32]);
    const BOB: PublicKeyHex = PublicKeyHex([2; 32]);

    #[test]
    fn size_limit_refuses_only_larger_inputs() {
        let limits = InputLimits::new(10, 0);
        let now = Instant::now();
        assert_eq!(limits.check(ALICE, 10, now), Ok(()));
        assert_eq!(limits.check(ALICE, 11, now), Err(LimitError::TooLarge { len: 11, max: 10 }));
        assert!(LimitError::TooLarge { len: 11, max: 10 }.to_string().contains("pubmaxsize"));
    }

    #[test]
    fn zero_cpm_is_unlimited() {
        let limits = InputLimits::new(10, 0);
        let now = Instant::now();
        for _ in 0..10_000 {
            assert_eq!(limits.check(ALICE, 1, now), Ok(()));
        }
        assert_eq!(limits.tracked_users(), 0);
    }

    #[test]
    fn fast_sender_is_refused_after_the_burst_and_recovers_at_the_rate() {
        let limits = InputLimits::new(10, 6); // one input per 10 s on average
        let t0 = Instant::now();
        for _ in 0..6 {
            assert_eq!(limits.check(ALICE, 1, t0), Ok(()));
        }
        assert_eq!(limits.check(ALICE, 1, t0), Err(LimitError::TooFast { cpm: 6 }));
        assert!(LimitError::TooFast { cpm: 6 }.to_string().contains("pubmaxcpm"));
        // Another user has a bucket of their own.
        assert_eq!(limits.check(BOB, 1, t0), Ok(()));
        // After 5 s half a token is back: still refused; after 10 s one input passes.
        assert!(limits.check(ALICE, 1, t0 + Duration::from_secs(5)).is_err());
        assert_eq!(limits.check(ALICE, 1, t0 + Duration::from_secs(10)), Ok(()));
        assert!(limits.check(ALICE, 1, t0 + Duration::from_secs(10)).is_err());
    }

    #[test]
    fn oversize_input_takes_no_token() {
        let limits = InputLimits::new(10, 1);
        let now = Instant::now();
        assert!(limits.check(ALICE, 11, now).is_err());
        assert_eq!(limits.check(ALICE, 1, now), Ok(()));
    }

    #[test]
    fn steady_sender_at_the_rate_is_never_refused() {
        let limits = InputLimits::new(10, 60);
        let t0 = Instant::now();
        for i in 0..600 {
            assert_eq!(limits.check(ALICE, 1, t0 + Duration::from_secs(i)), Ok(()));
        }
    }

    #[test]
    fn full_buckets_are_pruned() {
        let limits = InputLimits::new(10, 60);
        let t0 = Instant::now();
        for i in 0..PRUNE_FLOOR as u32 {
            let mut key = [0u8; 32];
            key[..4].copy_from_slice(&i.to_le_bytes());
            limits.check(PublicKeyHex(key), 1, t0).unwrap();
        }
        limits.check(ALICE, 1, t0 + Duration::from_secs(120)).unwrap();
        assert_eq!(limits.tracked_users(), 1);
    }
}

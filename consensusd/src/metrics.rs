//! consensusd's metrics (README, "Metrics"): the chain's progress, the inputs accepted and
//! refused, peers, certificates, catch-up and the pending queue. The node loop and the peer code
//! count here; the consensus core stays free of them. The `Metrics` rpc ([`crate::service`])
//! encodes the registry.

use hp_daemon::metrics::prometheus_client::metrics::counter::Counter;
use hp_daemon::metrics::prometheus_client::metrics::family::Family;
use hp_daemon::metrics::prometheus_client::metrics::gauge::Gauge;
use hp_daemon::metrics::prometheus_client::metrics::histogram::Histogram;
use hp_daemon::metrics::prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A label set of one `reason` (or `validator`, `certificate`) label.
pub type Label = [(&'static str, String); 1];
type Labels2 = [(&'static str, String); 2];

/// Why an input was refused, as the `reason` label says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusedReason {
    /// The inputs waiting for a ledger reached `max_pending_input_bytes`.
    PendingFull,
    /// Past `pubmaxsize`.
    TooLarge,
    /// A user key that is not 32 bytes.
    MalformedKey,
    /// The store could not make it durable.
    Store,
}

impl RefusedReason {
    pub const ALL: [RefusedReason; 4] =
        [RefusedReason::PendingFull, RefusedReason::TooLarge, RefusedReason::MalformedKey, RefusedReason::Store];

    /// The reason of an input the local service refused at the edge (`service::from_proto`).
    pub fn of_edge(reason: &str) -> Self {
        if reason.contains("key") { RefusedReason::MalformedKey } else { RefusedReason::TooLarge }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RefusedReason::PendingFull => "pending_full",
            RefusedReason::TooLarge => "too_large",
            RefusedReason::MalformedKey => "malformed_key",
            RefusedReason::Store => "store_error",
        }
    }
}

/// When this node last stored a closed ledger.
#[derive(Debug, Default)]
struct CloseClock {
    /// Set at every stored ledger.
    at: Option<Instant>,
    /// Before the first: the last closed ledger's own time (unix ms), from the store.
    ledger_time_ms: u64,
}

/// consensusd's metric handles; cheap to clone, each clone counts into the same registry.
#[derive(Debug, Clone)]
pub struct NodeMetrics {
    pub ledger_height: Gauge,
    since_close: Gauge<f64, AtomicU64>,
    pub ledger_interval: Histogram,
    pub ledger_rounds: Histogram,
    pub inputs_accepted: Counter,
    pub input_bytes_accepted: Counter,
    pub inputs_refused: Family<Label, Counter>,
    pub input_bytes_refused: Family<Label, Counter>,
    pub peers_connected: Gauge,
    pub missing_validators: Family<Label, Gauge>,
    pub validator_signed: Family<Labels2, Gauge>,
    pub catchup_in_progress: Gauge,
    pub catchup_ledgers: Counter,
    pub pending_inputs: Gauge,
    pub pending_input_bytes: Gauge,
    clock: Arc<Mutex<CloseClock>>,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// Unregistered handles (the node loop's tests).
impl Default for NodeMetrics {
    fn default() -> Self {
        Self {
            ledger_height: Gauge::default(),
            since_close: Gauge::default(),
            ledger_interval: Histogram::new(hp_daemon::metrics::duration_buckets()),
            ledger_rounds: Histogram::new([1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0]),
            inputs_accepted: Counter::default(),
            input_bytes_accepted: Counter::default(),
            inputs_refused: Family::default(),
            input_bytes_refused: Family::default(),
            peers_connected: Gauge::default(),
            missing_validators: Family::default(),
            validator_signed: Family::default(),
            catchup_in_progress: Gauge::default(),
            catchup_ledgers: Counter::default(),
            pending_inputs: Gauge::default(),
            pending_input_bytes: Gauge::default(),
            clock: Arc::default(),
        }
    }
}

impl NodeMetrics {
    /// The handles, registered in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        // Every reason is shown from the start, at 0, so that a rate over it is defined.
        for reason in RefusedReason::ALL {
            let label = [("reason", reason.as_str().to_string())];
            let _ = m.inputs_refused.get_or_create(&label);
            let _ = m.input_bytes_refused.get_or_create(&label);
        }
        let r = registry;
        r.register("ledger_height", "Sequence number of the last closed ledger", m.ledger_height.clone());
        r.register(
            "ledger_seconds_since_close",
            "Seconds since this node last stored a closed ledger",
            m.since_close.clone(),
        );
        r.register(
            "ledger_interval_seconds",
            "Ledger time between consecutive closed ledgers",
            m.ledger_interval.clone(),
        );
        r.register("ledger_rounds", "Consensus rounds a height took until it was decided", m.ledger_rounds.clone());
        r.register("inputs_accepted", "User inputs this node made durable (accepted)", m.inputs_accepted.clone());
        r.register(
            "input_bytes_accepted",
            "Bytes of the user inputs this node accepted",
            m.input_bytes_accepted.clone(),
        );
        r.register("inputs_refused", "User inputs consensusd refused, by reason", m.inputs_refused.clone());
        r.register(
            "input_bytes_refused",
            "Bytes of the user inputs consensusd refused, by reason",
            m.input_bytes_refused.clone(),
        );
        r.register("peers_connected", "UNL peers with an authenticated connection", m.peers_connected.clone());
        r.register(
            "certificate_missing_validators",
            "UNL validators whose signature the last stored certificate lacks, by certificate (commit, result)",
            m.missing_validators.clone(),
        );
        r.register(
            "validator_signed_last_certificate",
            "1 when the validator signed the last stored certificate of that kind, 0 when not",
            m.validator_signed.clone(),
        );
        r.register(
            "catchup_in_progress",
            "1 while this node is behind its peers and fetching ledgers",
            m.catchup_in_progress.clone(),
        );
        r.register(
            "catchup_ledgers_fetched",
            "Ledgers fetched from peers and stored by catch-up",
            m.catchup_ledgers.clone(),
        );
        r.register("pending_inputs", "Inputs waiting for a ledger (the mempool)", m.pending_inputs.clone());
        r.register("pending_input_bytes", "Bytes of the inputs waiting for a ledger", m.pending_input_bytes.clone());
        m
    }

    /// The chain stood at a ledger of time `ledger_time_ms` when the node started.
    pub fn started_at(&self, seq: u64, ledger_time_ms: u64) {
        self.ledger_height.set(i64::try_from(seq).unwrap_or(i64::MAX));
        if let Ok(mut clock) = self.clock.lock() {
            clock.ledger_time_ms = ledger_time_ms;
        }
    }

    /// A closed ledger was stored.
    pub fn closed(&self, seq: u64) {
        self.ledger_height.set(i64::try_from(seq).unwrap_or(i64::MAX));
        if let Ok(mut clock) = self.clock.lock() {
            clock.at = Some(Instant::now());
        }
    }

    /// How long ago this node last stored a closed ledger.
    pub fn since_close(&self) -> Duration {
        let Ok(clock) = self.clock.lock() else { return Duration::MAX };
        match clock.at {
            Some(at) => at.elapsed(),
            None => Duration::from_millis(now_ms().saturating_sub(clock.ledger_time_ms)),
        }
    }

    /// Brings the figures that are computed rather than counted up to date; called before the
    /// registry is encoded.
    pub fn before_scrape(&self) {
        self.since_close.set(self.since_close().as_secs_f64());
    }

    /// An input refused for `reason`, of `bytes` bytes when known.
    pub fn refused(&self, reason: RefusedReason, bytes: Option<usize>) {
        let label = [("reason", reason.as_str().to_string())];
        self.inputs_refused.get_or_create(&label).inc();
        if let Some(bytes) = bytes {
            self.input_bytes_refused.get_or_create(&label).inc_by(bytes as u64);
        }
    }

    /// Who signed the last stored certificate of `kind` (`commit` or `result`).
    pub fn certificate(&self, kind: &'static str, unl: &[[u8; 32]], signers: impl Iterator<Item = usize>) {
        let mut signed = vec![false; unl.len()];
        for i in signers {
            if let Some(s) = signed.get_mut(i) {
                *s = true;
            }
        }
        let missing = signed.iter().filter(|s| !**s).count();
        self.missing_validators.get_or_create(&[("certificate", kind.to_string())]).set(missing as i64);
        for (key, signed) in unl.iter().zip(signed) {
            let labels = [("certificate", kind.to_string()), ("validator", hex::encode(key))];
            self.validator_signed.get_or_create(&labels).set(i64::from(signed));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_certificate_names_who_is_missing() {
        let mut registry = hp_daemon::metrics::registry();
        let m = NodeMetrics::register(&mut registry);
        m.certificate("commit", &[[1; 32], [2; 32], [3; 32]], [0, 2].into_iter());
        m.refused(RefusedReason::PendingFull, Some(10));
        m.before_scrape();
        let text = hp_daemon::metrics::encode(&registry).unwrap_or_default();
        assert!(text.contains("hotpocket_certificate_missing_validators{certificate=\"commit\"} 1"), "{text}");
        let two = hex::encode([2u8; 32]);
        assert!(text.contains(&format!("validator=\"{two}\"}} 0")), "{text}");
        assert!(text.contains("hotpocket_inputs_refused_total{reason=\"pending_full\"} 1"), "{text}");
        assert!(text.contains("hotpocket_input_bytes_refused_total{reason=\"pending_full\"} 10"), "{text}");
    }
}

//! userd's metrics (README, "Metrics"): the users connected and the inputs refused at the user
//! port before they reach consensusd (consensusd counts the ones it accepts and refuses). The
//! `Userd.Metrics` rpc ([`crate::status`]) encodes the registry.

use hp_daemon::metrics::prometheus_client::metrics::counter::Counter;
use hp_daemon::metrics::prometheus_client::metrics::family::Family;
use hp_daemon::metrics::prometheus_client::metrics::gauge::Gauge;
use hp_daemon::metrics::prometheus_client::registry::Registry;
use std::sync::Arc;

type Reason = [(&'static str, &'static str); 1];

/// Why userd refused an input, as the `reason` label says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Past `pubmaxsize`.
    TooLarge,
    /// Past `pubmaxcpm`.
    RateLimit,
    /// The session with consensusd did not take it in time.
    Busy,
}

impl Refused {
    pub const ALL: [Refused; 3] = [Refused::TooLarge, Refused::RateLimit, Refused::Busy];

    pub fn as_str(self) -> &'static str {
        match self {
            Refused::TooLarge => "too_large",
            Refused::RateLimit => "rate_limit",
            Refused::Busy => "busy",
        }
    }
}

/// The registry and its handles; cheap to clone.
#[derive(Debug, Clone)]
pub struct UserdMetrics {
    pub registry: Arc<Registry>,
    /// Set from the user registry before each scrape.
    pub users_connected: Gauge,
    inputs_refused: Family<Reason, Counter>,
    input_bytes_refused: Family<Reason, Counter>,
}

impl Default for UserdMetrics {
    fn default() -> Self {
        let mut registry = hp_daemon::metrics::registry();
        let (users_connected, inputs_refused, input_bytes_refused) =
            (Gauge::default(), Family::default(), Family::default());
        registry.register("users_connected", "Signed-in user connections", users_connected.clone());
        registry.register(
            "user_inputs_refused",
            "User inputs userd refused at the user port, by reason",
            inputs_refused.clone(),
        );
        registry.register(
            "user_input_bytes_refused",
            "Bytes of the user inputs userd refused at the user port, by reason",
            input_bytes_refused.clone(),
        );
        // Every reason is shown from the start, at 0, so that a rate over it is defined.
        for reason in Refused::ALL {
            let _ = inputs_refused.get_or_create(&[("reason", reason.as_str())]);
            let _ = input_bytes_refused.get_or_create(&[("reason", reason.as_str())]);
        }
        Self { registry: Arc::new(registry), users_connected, inputs_refused, input_bytes_refused }
    }
}

impl UserdMetrics {
    pub fn refused(&self, reason: Refused, bytes: usize) {
        let label = [("reason", reason.as_str())];
        self.inputs_refused.get_or_create(&label).inc();
        self.input_bytes_refused.get_or_create(&label).inc_by(bytes as u64);
    }
}

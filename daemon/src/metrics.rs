//! Metrics every daemon shares the shape of (README, "Metrics"): each daemon keeps its own
//! [`Registry`] with the `hotpocket_` prefix, registers its metrics there once at start, and
//! answers the `Metrics` rpc on its existing gRPC service with [`reply`]. The supervisor serves
//! the daemons' texts, one after the other, on its HTTP `/metrics` and closes them with [`EOF`].
//!
//! The text is OpenMetrics. No two daemons register a metric of the same name, so the
//! concatenation is a valid exposition.

pub use prometheus_client;
use prometheus_client::registry::Registry;

/// The prefix of every Hot Pocket metric name.
pub const PREFIX: &str = "hotpocket";
/// The line that ends an OpenMetrics exposition; the daemons' texts leave it out.
pub const EOF: &str = "# EOF\n";
/// The content type of the exposition the supervisor serves.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Why a registry could not be written out.
#[derive(Debug, thiserror::Error)]
#[error("cannot encode the metrics: {0}")]
pub struct EncodeError(#[from] std::fmt::Error);

/// A registry whose names all start with `hotpocket_`.
pub fn registry() -> Registry {
    Registry::with_prefix(PREFIX)
}

/// The registry's metrics in the OpenMetrics text format, without the closing [`EOF`].
pub fn encode(registry: &Registry) -> Result<String, EncodeError> {
    let mut text = String::new();
    prometheus_client::encoding::text::encode_registry(&mut text, registry)?;
    Ok(text)
}

/// The `Metrics` rpc's answer for `registry`.
pub fn reply(registry: &Registry) -> Result<tonic::Response<hp_proto::v1::MetricsReply>, tonic::Status> {
    let text = encode(registry).map_err(|e| tonic::Status::internal(e.to_string()))?;
    Ok(tonic::Response::new(hp_proto::v1::MetricsReply { text }))
}

/// Histogram buckets for durations from 5 ms to about 80 s, in seconds (doubling).
pub fn duration_buckets() -> impl Iterator<Item = f64> {
    prometheus_client::metrics::histogram::exponential_buckets(0.005, 2.0, 15)
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::metrics::counter::Counter;

    #[test]
    fn names_carry_the_prefix_and_the_text_has_no_eof() {
        let mut r = registry();
        let c: Counter = Counter::default();
        r.register("things", "Things seen", c.clone());
        c.inc_by(3);
        let text = encode(&r).unwrap_or_default();
        assert!(text.contains("hotpocket_things_total 3"), "{text}");
        assert!(text.contains("# HELP hotpocket_things Things seen."), "{text}");
        assert!(!text.contains("# EOF"), "{text}");
    }
}

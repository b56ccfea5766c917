//! The result of a run: percentiles, the readable table and the one JSON object of
//! docs/command-line.md (`{"nodes":..,"clients":..,"seconds":..,"size":..,"inputs":..,
//! "inputs_per_sec":..,"latency_ms":{"p50":..,"p90":..,"p99":..},"ledgers":..,"errors":..}`,
//! followed by extra fields).

use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write;

/// Latency percentiles, milliseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Latency {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
    pub mean: f64,
}

impl Latency {
    /// Nearest-rank percentiles of the given latencies (microseconds).
    pub fn from_micros(latencies: &mut [u64]) -> Self {
        if latencies.is_empty() {
            return Self::default();
        }
        latencies.sort_unstable();
        let ms = |us: u64| round2(us as f64 / 1000.0);
        let rank = |p: f64| {
            let n = latencies.len();
            let i = ((p / 100.0) * n as f64).ceil() as usize;
            latencies[i.clamp(1, n) - 1]
        };
        let sum: u128 = latencies.iter().map(|l| *l as u128).sum();
        Self {
            p50: ms(rank(50.0)),
            p90: ms(rank(90.0)),
            p99: ms(rank(99.0)),
            max: ms(latencies[latencies.len() - 1]),
            mean: round2(sum as f64 / latencies.len() as f64 / 1000.0),
        }
    }
}

/// One run's figures. The first fields are the ones docs/command-line.md fixes, in its order.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub nodes: u64,
    pub clients: u64,
    pub seconds: f64,
    pub size: u64,
    /// Inputs answered correctly.
    pub inputs: u64,
    pub inputs_per_sec: f64,
    pub latency_ms: Latency,
    /// Ledgers closed during the run (node 1).
    pub ledgers: u64,
    pub errors: u64,
    pub window: u64,
    pub roundtime_ms: u64,
    /// Nodes of the UNL not started (`--down`).
    pub down: u64,
    pub ledgers_per_sec: f64,
    /// Inputs per ledger, on average.
    pub inputs_per_ledger: f64,
    /// The highest memory of one node: its four processes together (RSS, MiB).
    pub peak_rss_mib: f64,
    /// Each node's peak, MiB.
    pub peak_rss_mib_per_node: Vec<f64>,
    /// The highest RSS of one process of each kind, MiB.
    pub peak_rss_mib_by_process: BTreeMap<String, f64>,
    /// CPU seconds during the run per process kind, all nodes together; `hp-bench` is the
    /// users' own share.
    pub cpu_seconds: BTreeMap<String, f64>,
    pub error_frames: u64,
    pub error_samples: Vec<String>,
}

pub fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

impl Report {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    /// The readable table.
    pub fn to_table(&self) -> String {
        let mut t = String::new();
        let _ = writeln!(
            t,
            "hp-bench: {} nodes{}, {} users x window {}, {}-byte inputs, {} s, roundtime {} ms",
            self.nodes,
            if self.down > 0 { format!(" ({} down)", self.down) } else { String::new() },
            self.clients,
            self.window,
            self.size,
            self.seconds,
            self.roundtime_ms
        );
        let _ = writeln!(t, "  inputs answered   {:>10}   {:>10.1} /s", self.inputs, self.inputs_per_sec);
        let l = &self.latency_ms;
        let _ = writeln!(
            t,
            "  latency (ms)      p50 {:.2}   p90 {:.2}   p99 {:.2}   max {:.2}   mean {:.2}",
            l.p50, l.p90, l.p99, l.max, l.mean
        );
        let _ = writeln!(
            t,
            "  ledgers           {:>10}   {:>10.1} /s   {:.1} inputs/ledger",
            self.ledgers, self.ledgers_per_sec, self.inputs_per_ledger
        );
        let _ = writeln!(t, "  errors            {:>10}   ({} error frames)", self.errors, self.error_frames);
        for sample in &self.error_samples {
            let _ = writeln!(t, "                    {sample}");
        }
        let per_node: Vec<String> = self.peak_rss_mib_per_node.iter().map(|m| format!("{m:.1}")).collect();
        let _ = writeln!(t, "  peak RSS / node   {:>10.1} MiB   (nodes: {})", self.peak_rss_mib, per_node.join(", "));
        let by_process: Vec<String> =
            self.peak_rss_mib_by_process.iter().map(|(name, mib)| format!("{name} {mib:.1}")).collect();
        let _ = writeln!(t, "  peak RSS (MiB)    {}", by_process.join(", "));
        let mut cpu: Vec<(&String, &f64)> = self.cpu_seconds.iter().collect();
        cpu.sort_by(|a, b| b.1.total_cmp(a.1));
        let cpu: Vec<String> = cpu.iter().map(|(name, s)| format!("{name} {s:.1}")).collect();
        let _ = writeln!(t, "  CPU seconds       {}", cpu.join(", "));
        t
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let mut us: Vec<u64> = (1..=100).rev().map(|ms| ms * 1000).collect();
        let l = Latency::from_micros(&mut us);
        assert_eq!((l.p50, l.p90, l.p99, l.max, l.mean), (50.0, 90.0, 99.0, 100.0, 50.5));
        assert_eq!(Latency::from_micros(&mut []), Latency::default());
        assert_eq!(Latency::from_micros(&mut [1500]).p99, 1.5);
    }

    #[test]
    fn the_json_object_starts_with_the_design_fields() {
        let json = Report { nodes: 3, clients: 1, ..Default::default() }.to_json();
        assert!(json.starts_with(r#"{"nodes":3,"clients":1,"seconds":0.0,"size":0,"inputs":0,"inputs_per_sec":0.0,"latency_ms":{"p50":0.0,"p90":0.0,"p99":0.0,"#), "{json}");
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        for field in ["ledgers", "errors", "peak_rss_mib"] {
            assert!(value.get(field).is_some(), "{field}");
        }
    }
}

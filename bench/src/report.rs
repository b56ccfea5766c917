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
    /// The users' protocol: `seed` or `hotpocket`.
    pub protocol: String,
}

pub fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

impl Report {
    /// CPU of the nodes' processes and the users together per answered input, µs (0 for none).
    pub fn cpu_us_per_input(&self) -> f64 {
        if self.inputs == 0 { 0.0 } else { self.cpu_seconds.values().sum::<f64>() / self.inputs as f64 * 1e6 }
    }

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

/// One round of `--protocol both`: a seed load and a HotPocket load, one after the other on
/// the same cluster.
#[derive(Debug, Clone, Serialize)]
pub struct Round {
    pub seed: Report,
    pub hotpocket: Report,
    /// The HotPocket load's inputs/s over the seed load's.
    pub ratio: f64,
}

impl Round {
    pub fn new(seed: Report, hotpocket: Report) -> Self {
        let ratio = if seed.inputs_per_sec > 0.0 { hotpocket.inputs_per_sec / seed.inputs_per_sec } else { 0.0 };
        Self { seed, hotpocket, ratio: round3(ratio) }
    }
}

/// One protocol's figures over the rounds: medians, which one slow or fast round cannot move.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Summary {
    pub inputs_per_sec: f64,
    pub p50_ms: f64,
    /// CPU of the nodes' processes and the users together, per answered input (µs).
    pub cpu_us_per_input: f64,
}

impl Summary {
    fn of<'a>(reports: impl Iterator<Item = &'a Report> + Clone) -> Self {
        Self {
            inputs_per_sec: round2(median(reports.clone().map(|r| r.inputs_per_sec))),
            p50_ms: round2(median(reports.clone().map(|r| r.latency_ms.p50))),
            cpu_us_per_input: round2(median(reports.map(Report::cpu_us_per_input))),
        }
    }
}

/// What `--protocol both` found: each protocol's medians, the ratio of HotPocket's throughput
/// to the seed path's (the median of the rounds' ratios, and their range), and every round.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub seed: Summary,
    pub hotpocket: Summary,
    pub ratio_median: f64,
    pub ratio_min: f64,
    pub ratio_max: f64,
    pub rounds: Vec<Round>,
}

impl Comparison {
    pub fn new(rounds: Vec<Round>) -> Self {
        let ratios = || rounds.iter().map(|r| r.ratio);
        Self {
            seed: Summary::of(rounds.iter().map(|r| &r.seed)),
            hotpocket: Summary::of(rounds.iter().map(|r| &r.hotpocket)),
            ratio_median: round3(median(ratios())),
            ratio_min: ratios().reduce(f64::min).unwrap_or(0.0),
            ratio_max: ratios().reduce(f64::max).unwrap_or(0.0),
            rounds,
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    /// The readable table: one line per round and load, then the medians.
    pub fn to_table(&self) -> String {
        let mut t = String::new();
        if let Some(first) = self.rounds.first() {
            let r = &first.seed;
            let _ = writeln!(
                t,
                "hp-bench: seed and HotPocket side by side, {} nodes, {} users x window {}, {}-byte inputs, {} s per load",
                r.nodes, r.clients, r.window, r.size, r.seconds
            );
        }
        let _ = writeln!(t, "  round  protocol     inputs/s   p50 ms   CPU µs/input   errors   ratio");
        for (i, round) in self.rounds.iter().enumerate() {
            for (r, ratio) in [(&round.seed, String::new()), (&round.hotpocket, format!("{:.3}", round.ratio))] {
                let _ = writeln!(
                    t,
                    "  {:>5}  {:<10} {:>10.1} {:>8.2} {:>14.0} {:>8}   {ratio}",
                    i + 1,
                    r.protocol,
                    r.inputs_per_sec,
                    r.latency_ms.p50,
                    r.cpu_us_per_input(),
                    r.errors
                );
            }
        }
        for (name, s) in [("seed", &self.seed), ("hotpocket", &self.hotpocket)] {
            let _ = writeln!(
                t,
                "  median {:<10} {:>10.1} {:>8.2} {:>14.0}",
                name, s.inputs_per_sec, s.p50_ms, s.cpu_us_per_input
            );
        }
        let _ = writeln!(
            t,
            "  HotPocket / seed: {:.3} (median of the rounds; {:.3}–{:.3})",
            self.ratio_median, self.ratio_min, self.ratio_max
        );
        t
    }
}

/// The median (the mean of the middle two for an even count); 0 for none.
fn median(values: impl Iterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = values.collect();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
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
    fn a_comparison_takes_the_median_of_the_rounds_ratios() {
        let load = |protocol: &str, rate: f64, p50: f64| Report {
            inputs: 1000,
            inputs_per_sec: rate,
            latency_ms: Latency { p50, ..Default::default() },
            cpu_seconds: [("hp-consensusd".to_string(), 0.2), ("hp-bench".to_string(), 0.05)].into(),
            protocol: protocol.into(),
            ..Default::default()
        };
        let c = Comparison::new(vec![
            Round::new(load("seed", 1000.0, 10.0), load("hotpocket", 700.0, 14.0)),
            Round::new(load("seed", 1000.0, 11.0), load("hotpocket", 900.0, 12.0)),
            Round::new(load("seed", 500.0, 30.0), load("hotpocket", 400.0, 40.0)),
        ]);
        assert_eq!((c.ratio_median, c.ratio_min, c.ratio_max), (0.8, 0.7, 0.9));
        assert_eq!(c.seed, Summary { inputs_per_sec: 1000.0, p50_ms: 11.0, cpu_us_per_input: 250.0 });
        assert_eq!((c.hotpocket.inputs_per_sec, c.hotpocket.p50_ms), (700.0, 14.0));
        let table = c.to_table();
        assert!(table.contains("HotPocket / seed: 0.800 (median of the rounds; 0.700–0.900)"), "{table}");
        let json: serde_json::Value = serde_json::from_str(&c.to_json()).unwrap();
        assert_eq!(json["rounds"].as_array().map(Vec::len), Some(3));
        assert_eq!(json["rounds"][0]["hotpocket"]["protocol"], "hotpocket");
        assert_eq!(median([4.0, 1.0, 3.0, 2.0].into_iter()), 2.5);
        assert_eq!(median(std::iter::empty()), 0.0);
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

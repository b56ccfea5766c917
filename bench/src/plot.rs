//! `hp-bench --plot FILE.svg`: a picture of one run, drawn with plotters' SVG backend (no
//! browser, no system fonts): the distribution of send-to-output latency as a CDF, and the
//! inputs answered per second over the run, under a title naming the nodes, users, window and
//! input size.

use plotters::prelude::*;
use std::path::{Path, PathBuf};

/// What one picture shows.
#[derive(Debug, Clone)]
pub struct PlotData {
    /// Names the run: nodes, users, window, size, and the headline figures.
    pub title: String,
    /// Every answered input's latency, microseconds, in any order.
    pub latencies_us: Vec<u64>,
    /// When each input was answered, seconds from the start of sending.
    pub answered_at_s: Vec<f64>,
}

/// Why the picture could not be written.
#[derive(Debug, thiserror::Error)]
#[error("cannot draw {path}: {reason}")]
pub struct PlotError {
    pub path: PathBuf,
    pub reason: String,
}

const WIDTH: u32 = 1200;
const HEIGHT: u32 = 520;
/// At most this many points on the CDF: a long run's million samples would make a heavy SVG.
const CDF_POINTS: usize = 2000;

/// The CDF's points: (latency ms, fraction of inputs at or below it), thinned to
/// [`CDF_POINTS`].
pub fn cdf(latencies_us: &[u64]) -> Vec<(f64, f64)> {
    let mut sorted = latencies_us.to_vec();
    sorted.sort_unstable();
    let n = sorted.len();
    let step = n.div_ceil(CDF_POINTS).max(1);
    let mut points: Vec<(f64, f64)> = (0..n)
        .step_by(step)
        .chain(n.checked_sub(1))
        .map(|i| (sorted[i] as f64 / 1000.0, (i + 1) as f64 / n as f64))
        .collect();
    points.dedup_by(|a, b| a == b);
    points
}

/// Inputs answered per second in consecutive buckets: (bucket middle, rate). Buckets are a
/// second long for runs of 5 s or more, a quarter second for shorter ones. The last, partial
/// bucket (the inputs in flight when sending stopped) counts over the time it covers, and only
/// when that is at least half a bucket: a sliver would show a rate out of a handful of inputs.
pub fn throughput(answered_at_s: &[f64]) -> Vec<(f64, f64)> {
    let end = answered_at_s.iter().copied().fold(0.0_f64, f64::max);
    let width = if end >= 5.0 { 1.0 } else { 0.25 };
    let buckets = ((end / width).floor() as usize) + 1;
    let mut counts = vec![0u64; buckets];
    for t in answered_at_s {
        let i = ((t.max(0.0) / width) as usize).min(buckets - 1);
        counts[i] += 1;
    }
    let last_width = end - (buckets - 1) as f64 * width;
    counts
        .iter()
        .enumerate()
        .filter_map(|(i, c)| {
            let covered = if i + 1 == buckets { last_width } else { width };
            (covered >= width / 2.0).then(|| ((i as f64 + 0.5) * width, *c as f64 / covered))
        })
        .collect()
}

/// Draws the picture to `path` (SVG).
pub fn write_svg(path: &Path, data: &PlotData) -> Result<(), PlotError> {
    let err = |reason: String| PlotError { path: path.to_path_buf(), reason };
    draw(path, data).map_err(|e| err(e.to_string()))
}

fn draw(path: &Path, data: &PlotData) -> Result<(), Box<dyn std::error::Error>> {
    let root = SVGBackend::new(path, (WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(&data.title, ("sans-serif", 20))?;
    let (left, right) = root.split_horizontally(WIDTH / 2);

    let cdf = cdf(&data.latencies_us);
    let max_ms = cdf.last().map_or(1.0, |p| p.0).max(0.001) * 1.05;
    let mut chart = ChartBuilder::on(&left)
        .caption("latency from send to output (CDF)", ("sans-serif", 16))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(0.0..max_ms, 0.0..1.0)?;
    chart
        .configure_mesh()
        .x_desc("latency (ms)")
        .y_desc("fraction of inputs")
        .y_label_formatter(&|y| format!("{:.0}%", y * 100.0))
        .draw()?;
    chart.draw_series(LineSeries::new(cdf, BLUE.stroke_width(2)))?;

    let rate = throughput(&data.answered_at_s);
    let max_t = rate.last().map_or(1.0, |p| p.0 + 0.5).max(0.5);
    let max_rate = rate.iter().map(|p| p.1).fold(1.0_f64, f64::max) * 1.1;
    let mut chart = ChartBuilder::on(&right)
        .caption("inputs answered per second", ("sans-serif", 16))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..max_t, 0.0..max_rate)?;
    chart
        .configure_mesh()
        .x_desc("time since the start (s)")
        .y_desc("inputs/s")
        .y_label_formatter(&|y| format!("{y:.0}"))
        .draw()?;
    chart.draw_series(LineSeries::new(rate, RED.stroke_width(2)))?;
    root.present()?;
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_cdf_rises_to_one_and_is_thinned() {
        let latencies: Vec<u64> = (1..=10_000).rev().collect();
        let points = cdf(&latencies);
        assert!(points.len() <= CDF_POINTS + 1, "{}", points.len());
        assert_eq!(points.last().copied(), Some((10.0, 1.0)));
        assert!(points.windows(2).all(|w| w[0].0 <= w[1].0 && w[0].1 <= w[1].1));
    }

    #[test]
    fn throughput_counts_per_bucket() {
        let at: Vec<f64> = (0..100).map(|i| f64::from(i) * 0.1).collect(); // 10 per second for 10 s
        let rate = throughput(&at);
        assert_eq!(rate.len(), 10, "{rate:?}");
        assert!(rate[..9].iter().all(|(_, r)| (*r - 10.0).abs() < 1e-9), "{rate:?}");
        // The last bucket ends with the last answer (9.9 s): 10 inputs over 0.9 s.
        assert!((rate[9].1 - 10.0 / 0.9).abs() < 1e-6, "{rate:?}");
        let mut at = at;
        at.push(10.05); // a sliver of a last bucket is left out
        assert_eq!(throughput(&at).len(), 10);
    }

    #[test]
    fn the_svg_has_the_title_and_both_panels() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.svg");
        let data = PlotData {
            title: "hp-bench: 3 nodes, 2 users × window 4, 100-byte inputs".into(),
            latencies_us: vec![1_000, 2_000, 3_000],
            answered_at_s: vec![0.1, 0.2, 1.3],
        };
        write_svg(&path, &data).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        for text in ["3 nodes, 2 users", "latency from send to output", "inputs answered per second", "<polyline"] {
            assert!(svg.contains(text), "no {text} in {svg}");
        }
    }
}

//! The benchmark's users, on hp-localnet's load generator ([`hp_localnet::load`]): each connects
//! to a node (round robin), proves the path with one input, then keeps `window` inputs in
//! flight for the run — sending whenever fewer await their output — and each input is timed
//! from just before it is sent to the arrival of the output frame that answers it. When the run
//! ends the inputs still in flight are awaited up to a deadline; whatever does not come back
//! correctly counts as an error. What is here is what only the benchmark needs: its inputs
//! ([`crate::payload`]) and the tally of what the users measured.

use crate::BenchError;
use crate::payload;
use hp_localnet::load::{self, Inputs, Load, LoadOptions, LoadRecord, User};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// How long the inputs still in flight are awaited after the sending stops.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// How many error descriptions a run keeps for its report.
const MAX_ERROR_SAMPLES: usize = 5;

/// What the users do.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    /// One websocket URL per node; user `i` connects to `urls[i % urls.len()]`.
    pub urls: Vec<String>,
    pub clients: usize,
    pub window: usize,
    pub size: usize,
    pub duration: Duration,
    /// The protocol the users speak.
    pub dial: hp_client::Dial,
}

/// Fixed-size records that carry their user and number, echoed back by the contract.
struct Payload {
    size: usize,
}

impl Inputs for Payload {
    fn make(&self, client: usize, seq: u64) -> Vec<u8> {
        payload::make(client as u32, seq, self.size)
    }

    fn answers(&self, client: usize, output: &[u8]) -> Result<Vec<u64>, String> {
        payload::split(output, client as u32, self.size)
    }
}

/// What the users measured.
#[derive(Debug, Clone, Default)]
pub struct LoadResult {
    /// Send-to-output time of every answered input, microseconds.
    pub latencies_us: Vec<u64>,
    /// When each input was answered, seconds from the start of sending (for `--plot`).
    pub answered_at_s: Vec<f64>,
    pub sent: u64,
    /// Inputs that did not come back correctly (unanswered by the deadline, refused, wrong
    /// bytes), plus broken connections.
    pub errors: u64,
    /// Error frames the nodes sent (each also leaves its input unanswered).
    pub error_frames: u64,
    /// A few error descriptions.
    pub error_samples: Vec<String>,
    /// From the start of sending to the last output.
    pub elapsed: Duration,
}

impl LoadResult {
    fn error(&mut self, count: u64, what: impl FnOnce() -> String) {
        self.errors += count;
        if count > 0 {
            self.sample(what);
        }
    }

    fn sample(&mut self, what: impl FnOnce() -> String) {
        if self.error_samples.len() < MAX_ERROR_SAMPLES {
            self.error_samples.push(what());
        }
    }

    /// The tally of a run that started sending at `start`.
    fn of(record: &LoadRecord, start: Instant) -> Self {
        let mut result = Self::default();
        for client in &record.clients {
            let user = client.index;
            for conn in &client.conns {
                result.latencies_us.extend(&conn.latencies_us);
                result
                    .answered_at_s
                    .extend(conn.answered_at.iter().map(|t| t.saturating_duration_since(start).as_secs_f64()));
                result.sent += conn.sent.len() as u64;
                result.error_frames += conn.errors.len() as u64;
                for reason in &conn.errors {
                    result.error(1, || format!("user {user}: error frame: {reason}"));
                }
                result.errors += conn.unexpected;
                for sample in &conn.unexpected_samples {
                    result.sample(|| sample.clone());
                }
                // Each error frame left one input unanswered: those are counted already.
                let lost = conn.unanswered_at_end.saturating_sub(conn.errors.len()) as u64;
                match &conn.broke {
                    Some(why) => result.error(lost + 1, || format!("user {user}: {why}")),
                    None => result.error(lost, || {
                        format!("user {user}: {lost} inputs unanswered {} s after the run", DRAIN_TIMEOUT.as_secs())
                    }),
                }
                if let Some(last) = conn.last_output {
                    result.elapsed = result.elapsed.max(last.duration_since(start));
                }
            }
        }
        result
    }
}

/// The same records as text, for HotPocket's JSON containers (they carry strings): each record
/// of `size / 2` bytes in hex, and an `x` when `size` is odd.
struct TextPayload {
    size: usize,
}

impl Inputs for TextPayload {
    fn make(&self, client: usize, seq: u64) -> Vec<u8> {
        let mut text = hex::encode(payload::make(client as u32, seq, self.size / 2)).into_bytes();
        if self.size % 2 == 1 {
            text.push(b'x');
        }
        text
    }

    fn answers(&self, client: usize, output: &[u8]) -> Result<Vec<u64>, String> {
        if output.is_empty() || !output.len().is_multiple_of(self.size) {
            return Err(format!(
                "an output of {} bytes is not a whole number of {}-byte inputs",
                output.len(),
                self.size
            ));
        }
        let mut seqs = Vec::new();
        for record in output.chunks_exact(self.size) {
            let hex_part = &record[..self.size / 2 * 2];
            let bytes =
                hex::decode(hex_part).map_err(|_| "an output record is not the hex that was sent".to_string())?;
            seqs.extend(payload::split(&bytes, client as u32, self.size / 2)?);
        }
        Ok(seqs)
    }
}

fn inputs(spec: &LoadSpec) -> Arc<dyn Inputs> {
    match spec.dial {
        hp_client::Dial::Seed => Arc::new(Payload { size: spec.size }),
        hp_client::Dial::HotPocket { .. } => Arc::new(TextPayload { size: spec.size }),
    }
}

/// Connects every user and has each send one input and get it back, all at once.
pub async fn connect_all(spec: &LoadSpec) -> Result<Vec<User>, BenchError> {
    Ok(load::connect_primed(&spec.urls, spec.clients, inputs(spec), &spec.dial).await?)
}

/// Runs the users for `spec.duration` from now, then awaits what is in flight.
pub async fn drive(users: Vec<User>, spec: &LoadSpec) -> LoadResult {
    let options = LoadOptions {
        clients: spec.clients,
        interval: Duration::ZERO,
        window: spec.window,
        max_per_client: u64::MAX,
        drain: DRAIN_TIMEOUT,
        reconnect: false,
        keep_outputs: false,
        dial: spec.dial.clone(),
    };
    let start = Instant::now();
    let running = Load::spawn(users, options, inputs(spec));
    tokio::time::sleep_until(start + spec.duration).await;
    let record = running.finish().await;
    let mut result = LoadResult::of(&record, start);
    if result.elapsed.is_zero() {
        result.elapsed = spec.duration;
    }
    result
}

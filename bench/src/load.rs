//! The users: each connects to a node (round robin), proves the path with one input, then
//! keeps `window` inputs in flight for the run — sending whenever fewer await their output —
//! and times each input from just before it is sent to the arrival of the output frame that
//! answers it. When the run ends the inputs still in flight are awaited up to a deadline;
//! whatever does not come back correctly counts as an error.

use crate::BenchError;
use crate::payload;
use bytes::Bytes;
use hp_client::{Client, Output, Receiver, Sender};
use std::collections::HashMap;
use std::time::Duration;
use tokio::time::{Instant, sleep_until, timeout, timeout_at};

/// How long connecting and the first (priming) input may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the inputs still in flight are awaited after the sending stops.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// The words of a refusal that asks for the input again (userd's "send it again later").
const RETRY_HINT: &str = "again later";
/// How soon a refused first input is sent again.
pub const RETRY_EVERY: Duration = Duration::from_millis(100);
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
}

/// A connected user whose first input came back.
pub struct User {
    id: u32,
    tx: Sender,
    rx: Receiver,
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
    fn merge(&mut self, other: UserResult, start: Instant) {
        self.latencies_us.extend(other.latencies_us);
        self.answered_at_s.extend(other.answered_at.iter().map(|t| t.saturating_duration_since(start).as_secs_f64()));
        self.sent += other.sent;
        self.errors += other.errors;
        self.error_frames += other.error_frames;
        for sample in other.error_samples {
            if self.error_samples.len() < MAX_ERROR_SAMPLES {
                self.error_samples.push(sample);
            }
        }
        if let Some(last) = other.last_output {
            self.elapsed = self.elapsed.max(last.duration_since(start));
        }
    }
}

/// Connects every user and has each send one input and get it back, all at once.
pub async fn connect_all(spec: &LoadSpec) -> Result<Vec<User>, BenchError> {
    let tasks: Vec<_> = (0..spec.clients)
        .map(|i| {
            let url = spec.urls[i % spec.urls.len()].clone();
            let size = spec.size;
            tokio::spawn(async move { connect_one(i, url, size).await })
        })
        .collect();
    let mut users = Vec::with_capacity(tasks.len());
    for (i, task) in tasks.into_iter().enumerate() {
        let user = task.await.map_err(|e| BenchError::Prime { client: i, reason: e.to_string() })??;
        users.push(user);
    }
    Ok(users)
}

async fn connect_one(i: usize, url: String, size: usize) -> Result<User, BenchError> {
    let id = i as u32;
    let key = hp_client::generate_key();
    let connect_error = |reason: String| BenchError::Connect { client: i, url: url.clone(), reason };
    let client = match timeout(CONNECT_TIMEOUT, Client::connect(&url, &key)).await {
        Err(_) => return Err(connect_error(format!("no handshake within {} s", CONNECT_TIMEOUT.as_secs()))),
        Ok(Err(e)) => return Err(connect_error(e.to_string())),
        Ok(Ok(client)) => client,
    };
    let (mut tx, mut rx) = client.split();
    let prime_error = |reason: String| BenchError::Prime { client: i, reason };
    let output = round_trip(&mut tx, &mut rx, &payload::make(id, 0, size), Instant::now() + CONNECT_TIMEOUT)
        .await
        .map_err(prime_error)?;
    match payload::split(&output, id, size) {
        Ok(seqs) if seqs == [0] => Ok(User { id, tx, rx }),
        Ok(seqs) => Err(prime_error(format!("answered inputs {seqs:?} instead of [0]"))),
        Err(e) => Err(prime_error(e)),
    }
}

/// Sends `input` and returns the output frame that answers it. A refusal that asks for the
/// input again later (a node still opening its session with consensusd, or too busy) is
/// answered by sending it again, every [`RETRY_EVERY`], until `deadline`.
pub async fn round_trip(tx: &mut Sender, rx: &mut Receiver, input: &[u8], deadline: Instant) -> Result<Bytes, String> {
    loop {
        tx.send(input).await.map_err(|e| e.to_string())?;
        match timeout_at(deadline, rx.next_output()).await {
            Err(_) => return Err("no output before the deadline".into()),
            Ok(Ok(Some(Output::Data(data)))) => return Ok(data),
            Ok(Ok(Some(Output::Error(reason)))) if reason.contains(RETRY_HINT) && Instant::now() < deadline => {
                tokio::time::sleep(RETRY_EVERY).await;
            }
            Ok(Ok(Some(Output::Error(reason)))) => return Err(format!("refused: {reason}")),
            Ok(Ok(None)) => return Err("the node closed the connection".into()),
            Ok(Err(e)) => return Err(e.to_string()),
        }
    }
}

/// Runs the users for `spec.duration` from now, then awaits what is in flight.
pub async fn drive(users: Vec<User>, spec: &LoadSpec) -> LoadResult {
    let start = Instant::now();
    let end = start + spec.duration;
    let tasks: Vec<_> = users
        .into_iter()
        .map(|user| {
            let (window, size) = (spec.window, spec.size);
            tokio::spawn(async move { drive_one(user, window, size, end).await })
        })
        .collect();
    let mut result = LoadResult::default();
    for task in tasks {
        match task.await {
            Ok(one) => result.merge(one, start),
            Err(e) => {
                result.errors += 1;
                result.error_samples.push(format!("a user task failed: {e}"));
            }
        }
    }
    if result.elapsed.is_zero() {
        result.elapsed = spec.duration;
    }
    result
}

/// One user's tally.
#[derive(Debug, Default)]
struct UserResult {
    latencies_us: Vec<u64>,
    answered_at: Vec<Instant>,
    sent: u64,
    errors: u64,
    error_frames: u64,
    error_samples: Vec<String>,
    last_output: Option<Instant>,
}

impl UserResult {
    fn error(&mut self, count: u64, what: String) {
        self.errors += count;
        if self.error_samples.len() < MAX_ERROR_SAMPLES {
            self.error_samples.push(what);
        }
    }
}

async fn drive_one(mut user: User, window: usize, size: usize, end: Instant) -> UserResult {
    let mut out = UserResult::default();
    // Send time of each input awaiting its output, by sequence number.
    let mut in_flight: HashMap<u64, Instant> = HashMap::with_capacity(window * 2);
    let mut next_seq = 1u64;
    let mut sending = true;
    let stop_sending = sleep_until(end);
    let give_up = sleep_until(end + DRAIN_TIMEOUT);
    tokio::pin!(stop_sending, give_up);
    loop {
        if !sending && in_flight.is_empty() {
            break;
        }
        let can_send = sending && in_flight.len() < window;
        tokio::select! {
            biased;
            output = user.rx.next_output() => {
                let now = Instant::now();
                match output {
                    Ok(Some(Output::Data(data))) => match payload::split(&data, user.id, size) {
                        Ok(seqs) => {
                            for seq in seqs {
                                match in_flight.remove(&seq) {
                                    Some(sent) => {
                                        out.latencies_us.push(now.duration_since(sent).as_micros() as u64);
                                        out.answered_at.push(now);
                                    }
                                    None => out.error(1, format!("user {}: input {seq} answered twice or never sent", user.id)),
                                }
                            }
                            out.last_output = Some(now);
                        }
                        Err(e) => out.error(1, format!("user {}: {e}", user.id)),
                    },
                    Ok(Some(Output::Error(reason))) => {
                        // The refused input is not named: take the oldest one out of the window.
                        out.error_frames += 1;
                        if let Some(oldest) = in_flight.iter().min_by_key(|(_, t)| **t).map(|(s, _)| *s) {
                            in_flight.remove(&oldest);
                        }
                        out.error(1, format!("user {}: error frame: {reason}", user.id));
                    }
                    Ok(None) => {
                        out.error(in_flight.len() as u64 + 1, format!("user {}: the node closed the connection", user.id));
                        return out;
                    }
                    Err(e) => {
                        out.error(in_flight.len() as u64 + 1, format!("user {}: {e}", user.id));
                        return out;
                    }
                }
            }
            _ = &mut stop_sending, if sending => sending = false,
            _ = &mut give_up, if !sending => {
                let lost = in_flight.len() as u64;
                out.error(lost, format!("user {}: {lost} inputs unanswered {} s after the run", user.id, DRAIN_TIMEOUT.as_secs()));
                break;
            }
            _ = std::future::ready(()), if can_send => {
                let input = payload::make(user.id, next_seq, size);
                in_flight.insert(next_seq, Instant::now());
                next_seq += 1;
                out.sent += 1;
                if let Err(e) = user.tx.send(&input).await {
                    out.error(in_flight.len() as u64 + 1, format!("user {}: send failed: {e}", user.id));
                    return out;
                }
            }
        }
    }
    let _ = user.tx.close().await;
    out
}

//! The user load generator: websocket users, each one key connected to one node (user `i` to
//! `urls[i % urls.len()]`), each keeping at most `window` inputs awaiting their output —
//! sending whenever there is room, or at most one input per `interval` — and recording per
//! connection what it sent, when each input was answered, the output and error frames it got,
//! and whether the connection stayed open to the end.
//!
//! What an input is, and which inputs an output frame answers, is the caller's [`Inputs`]: the
//! benchmark sends fixed-size records, the fault tests tokens their checker can attribute.
//! A broken connection is reopened with the same key when [`LoadOptions::reconnect`] is set (the
//! load goes on through faults); otherwise that user stops. When the load is stopped every
//! connection waits up to [`LoadOptions::drain`] for the outputs of what it sent.

use crate::LocalnetError;
use bytes::Bytes;
use ed25519_dalek::SigningKey;
use hp_client::{Dial, Output, Receiver, Sender};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::{Instant, timeout, timeout_at};

/// How long connecting and a first (priming) input may take in [`connect_primed`].
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a reconnection's handshake may take.
const RECONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How soon a failed reconnection is tried again.
const RECONNECT_EVERY: Duration = Duration::from_millis(200);
/// The words of a refusal that asks for the input again (userd's "send it again later").
pub const RETRY_HINT: &str = "again later";
/// How soon a refused input is sent again by [`round_trip`].
pub const RETRY_EVERY: Duration = Duration::from_millis(100);
/// How long a draining connection waits for more outputs once error frames could explain the
/// inputs still unanswered.
const QUIET: Duration = Duration::from_secs(3);
/// How many descriptions of unexpected outputs one connection keeps.
const MAX_SAMPLES: usize = 5;

/// What the users send, and how an output frame is read back.
pub trait Inputs: Send + Sync + 'static {
    /// Input number `seq` of user `client`.
    fn make(&self, client: usize, seq: u64) -> Vec<u8>;
    /// The numbers of `client`'s inputs that one output frame answers, or why it is not made
    /// of such answers.
    fn answers(&self, client: usize, output: &[u8]) -> Result<Vec<u64>, String>;
}

/// How much load, and how it behaves.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    pub clients: usize,
    /// Pause between two inputs of one user; zero sends whenever the window has room.
    pub interval: Duration,
    /// Most inputs of one user awaiting their output (or an error frame) at once.
    pub window: usize,
    /// Inputs per user at most (the load is bounded in count as well as in time).
    pub max_per_client: u64,
    /// After the stop, how long a connection waits for the outputs of what it sent.
    pub drain: Duration,
    /// Reopen a broken connection with the same key; otherwise the user stops.
    pub reconnect: bool,
    /// Keep every output frame in the record (for a checker); only answers and times otherwise.
    pub keep_outputs: bool,
    /// The protocol the users speak.
    pub dial: Dial,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            clients: 5,
            interval: Duration::from_millis(40),
            window: 32,
            max_per_client: 100_000,
            drain: Duration::from_secs(20),
            reconnect: true,
            keep_outputs: true,
            dial: Dial::Seed,
        }
    }
}

/// One websocket connection of a user, as it went.
#[derive(Debug, Clone, Default)]
pub struct ConnRecord {
    /// The node it was opened to.
    pub node: usize,
    /// Numbers of the inputs sent on it, in order (recorded just before each send).
    pub sent: Vec<u64>,
    /// Send-to-output time of every input answered on it, microseconds.
    pub latencies_us: Vec<u64>,
    /// When each of those inputs was answered (for a plot of the rate over time).
    pub answered_at: Vec<Instant>,
    /// Output frames received on it, raw (with [`LoadOptions::keep_outputs`]).
    pub outputs: Vec<Vec<u8>>,
    /// Error frames' reasons received on it.
    pub errors: Vec<String>,
    /// Answers to inputs not awaited on this connection (an earlier connection's, or twice),
    /// and frames [`Inputs::answers`] could not read.
    pub unexpected: u64,
    /// A few descriptions of [`Self::unexpected`].
    pub unexpected_samples: Vec<String>,
    /// Why it ended before the load did (`None`: open until the user closed it).
    pub broke: Option<String>,
    /// Inputs sent on it not yet answered by an output or error when the drain ended.
    pub unanswered_at_end: usize,
    /// When its last output frame came.
    pub last_output: Option<Instant>,
}

impl ConnRecord {
    pub fn stayed_open(&self) -> bool {
        self.broke.is_none()
    }

    fn unexpected(&mut self, what: String) {
        self.unexpected += 1;
        if self.unexpected_samples.len() < MAX_SAMPLES {
            self.unexpected_samples.push(what);
        }
    }
}

/// Everything one user did.
#[derive(Debug, Clone)]
pub struct ClientRecord {
    pub index: usize,
    pub user: [u8; 32],
    pub conns: Vec<ConnRecord>,
    /// Connection attempts that failed (node down, handshake refused...).
    pub failed_connects: u64,
}

/// Everything the load did.
#[derive(Debug, Clone, Default)]
pub struct LoadRecord {
    pub clients: Vec<ClientRecord>,
}

impl LoadRecord {
    pub fn conns(&self) -> impl Iterator<Item = &ConnRecord> {
        self.clients.iter().flat_map(|c| &c.conns)
    }
    pub fn sent(&self) -> usize {
        self.conns().map(|c| c.sent.len()).sum()
    }
    pub fn errors(&self) -> usize {
        self.conns().map(|c| c.errors.len()).sum()
    }
    pub fn broken_conns(&self) -> usize {
        self.conns().filter(|c| !c.stayed_open()).count()
    }
}

/// Counters to watch the load while it runs.
#[derive(Debug, Default)]
pub struct Progress {
    pub sent: AtomicU64,
    /// Inputs answered by outputs.
    pub answered: AtomicU64,
    pub errors: AtomicU64,
}

/// A user before the load runs: its key, its node, and its connection when already open.
pub struct User {
    index: usize,
    key: SigningKey,
    node: usize,
    url: String,
    connection: Option<(Sender, Receiver)>,
    next_seq: u64,
}

/// `clients` users with fresh keys, spread over `urls`, not connected yet.
pub fn users(urls: &[String], clients: usize) -> Vec<User> {
    (0..clients)
        .map(|i| User {
            index: i,
            key: hp_client::generate_key(),
            node: i % urls.len().max(1),
            url: urls.get(i % urls.len().max(1)).cloned().unwrap_or_default(),
            connection: None,
            next_seq: 0,
        })
        .collect()
}

/// Connects every user and has each send its input 0 and get exactly it back, all at once
/// (the whole path works before the load is measured); the load then goes on from input 1.
pub async fn connect_primed(
    urls: &[String],
    clients: usize,
    inputs: Arc<dyn Inputs>,
    dial: &Dial,
) -> Result<Vec<User>, LocalnetError> {
    let tasks: Vec<_> = users(urls, clients)
        .into_iter()
        .map(|user| {
            let (inputs, dial) = (inputs.clone(), dial.clone());
            tokio::spawn(async move { prime(user, inputs.as_ref(), &dial).await })
        })
        .collect();
    let mut primed = Vec::with_capacity(tasks.len());
    for (i, task) in tasks.into_iter().enumerate() {
        let user = task.await.map_err(|e| LocalnetError::Prime { client: i, reason: e.to_string() })??;
        primed.push(user);
    }
    Ok(primed)
}

async fn prime(mut user: User, inputs: &dyn Inputs, dial: &Dial) -> Result<User, LocalnetError> {
    let i = user.index;
    let connect_error = |reason: String| LocalnetError::Connect { client: i, url: user.url.clone(), reason };
    let (mut tx, mut rx) = match timeout(CONNECT_TIMEOUT, hp_client::connect_split(&user.url, &user.key, dial)).await {
        Err(_) => return Err(connect_error(format!("no handshake within {} s", CONNECT_TIMEOUT.as_secs()))),
        Ok(Err(e)) => return Err(connect_error(e.to_string())),
        Ok(Ok(halves)) => halves,
    };
    let prime_error = |reason: String| LocalnetError::Prime { client: i, reason };
    let output = round_trip(&mut tx, &mut rx, &inputs.make(i, 0), Instant::now() + CONNECT_TIMEOUT)
        .await
        .map_err(prime_error)?;
    match inputs.answers(i, &output) {
        Ok(seqs) if seqs == [0] => {
            user.connection = Some((tx, rx));
            user.next_seq = 1;
            Ok(user)
        }
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

/// What can be done to a running load from outside: stop it, watch it, move its users.
pub struct Control {
    stop: watch::Sender<bool>,
    progress: Progress,
    targets: Mutex<Vec<(usize, String)>>,
}

impl Control {
    /// Stops sending; the connections drain.
    pub fn stop(&self) {
        let _ = self.stop.send(true);
    }

    pub fn progress(&self) -> &Progress {
        &self.progress
    }

    /// Inputs answered so far.
    pub fn answered(&self) -> u64 {
        self.progress.answered.load(Ordering::Relaxed)
    }

    /// Points a user at another node (index and URL) for its next connection.
    pub fn retarget(&self, client: usize, node: usize, url: String) {
        if let Some(target) = self.targets.lock().unwrap_or_else(|e| e.into_inner()).get_mut(client) {
            *target = (node, url);
        }
    }
}

/// A running load on the current tokio runtime; stopped (and left to drain) when dropped.
pub struct Load {
    control: Arc<Control>,
    task: Option<tokio::task::JoinHandle<LoadRecord>>,
}

impl Load {
    /// Runs `users` (from [`users`] or [`connect_primed`]) until [`Self::finish`].
    pub fn spawn(users: Vec<User>, options: LoadOptions, inputs: Arc<dyn Inputs>) -> Self {
        let (stop, stop_rx) = watch::channel(false);
        let targets = users.iter().map(|u| (u.node, u.url.clone())).collect();
        let control = Arc::new(Control { stop, progress: Progress::default(), targets: Mutex::new(targets) });
        let tasks: Vec<_> = users
            .into_iter()
            .map(|user| {
                let ctx = UserCtx {
                    index: user.index,
                    options: options.clone(),
                    stop: stop_rx.clone(),
                    control: control.clone(),
                    inputs: inputs.clone(),
                };
                tokio::spawn(run_user(ctx, user))
            })
            .collect();
        let task = tokio::spawn(async move {
            let mut clients = Vec::with_capacity(tasks.len());
            for (i, task) in tasks.into_iter().enumerate() {
                clients.push(task.await.unwrap_or_else(|e| ClientRecord {
                    index: i,
                    user: [0; 32],
                    conns: vec![ConnRecord {
                        broke: Some(format!("the user's task failed: {e}")),
                        ..Default::default()
                    }],
                    failed_connects: 0,
                }));
            }
            LoadRecord { clients }
        });
        Self { control, task: Some(task) }
    }

    pub fn control(&self) -> Arc<Control> {
        self.control.clone()
    }

    /// Waits until the load has ended (stopped through [`Control::stop`], or every user
    /// reached [`LoadOptions::max_per_client`]) and drained; returns the record.
    pub async fn join(mut self) -> LoadRecord {
        match self.task.take() {
            Some(task) => task.await.unwrap_or_default(),
            None => LoadRecord::default(),
        }
    }

    /// Stops sending, lets every connection wait for its outstanding outputs, and returns the
    /// record.
    pub async fn finish(self) -> LoadRecord {
        self.control.stop();
        self.join().await
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.control.stop();
    }
}

struct UserCtx {
    index: usize,
    options: LoadOptions,
    stop: watch::Receiver<bool>,
    control: Arc<Control>,
    inputs: Arc<dyn Inputs>,
}

async fn run_user(mut ctx: UserCtx, mut user: User) -> ClientRecord {
    let mut record = ClientRecord {
        index: ctx.index,
        user: user.key.verifying_key().to_bytes(),
        conns: Vec::new(),
        failed_connects: 0,
    };
    let mut next = user.next_seq;
    loop {
        if *ctx.stop.borrow() || next >= ctx.options.max_per_client {
            break;
        }
        let (node, connection) = match user.connection.take() {
            Some(connection) => (user.node, connection),
            None => {
                let (node, url) = ctx.control.targets.lock().unwrap_or_else(|e| e.into_inner())[ctx.index].clone();
                match timeout(RECONNECT_TIMEOUT, hp_client::connect_split(&url, &user.key, &ctx.options.dial)).await {
                    Ok(Ok(halves)) => (node, halves),
                    _ => {
                        record.failed_connects += 1;
                        if !ctx.options.reconnect && !record.conns.is_empty() {
                            break;
                        }
                        tokio::select! {
                            _ = tokio::time::sleep(RECONNECT_EVERY) => {}
                            _ = ctx.stop.changed() => {}
                        }
                        continue;
                    }
                }
            }
        };
        let conn = run_conn(&mut ctx, connection, node, &mut next).await;
        let done = conn.stayed_open() || !ctx.options.reconnect;
        record.conns.push(conn);
        if done {
            break;
        }
    }
    record
}

/// One connection: send inputs while the load runs, then drain. Returns when it broke or was
/// closed after the drain.
async fn run_conn(ctx: &mut UserCtx, connection: (Sender, Receiver), node: usize, next: &mut u64) -> ConnRecord {
    let mut conn = ConnRecord { node, ..Default::default() };
    let (mut tx, mut rx) = connection;
    // Send time of each input sent on this connection and not yet answered. Outputs of an
    // earlier connection's inputs may arrive here too: only this connection's own count.
    let mut outstanding: HashMap<u64, Instant> = HashMap::with_capacity(ctx.options.window * 2);
    let mut errors_here: usize = 0;
    let mut last_output = Instant::now();
    // A zero interval sends whenever the window has room.
    let mut ticker = (!ctx.options.interval.is_zero()).then(|| {
        let mut ticker = tokio::time::interval(ctx.options.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker
    });
    let mut stopping = *ctx.stop.borrow();
    let mut drain_until: Option<Instant> = None;
    loop {
        if stopping || *next >= ctx.options.max_per_client {
            let until = *drain_until.get_or_insert_with(|| Instant::now() + ctx.options.drain);
            stopping = true;
            // Error frames cannot be matched to inputs: once they could account for what is
            // missing, wait until outputs stop coming before giving up on the rest.
            let quiet = last_output.elapsed() >= QUIET;
            if outstanding.is_empty() || (outstanding.len() <= errors_here && quiet) {
                break;
            }
            if Instant::now() >= until {
                break;
            }
        }
        let in_flight = outstanding.len().saturating_sub(errors_here);
        let can_send = !stopping && in_flight < ctx.options.window;
        let send_now = async {
            if let Some(ticker) = ticker.as_mut() {
                ticker.tick().await;
            }
        };
        tokio::select! {
            // Outputs first, so that their times are taken as they come.
            biased;
            out = rx.recv() => match out {
                Some(Output::Data(data)) => {
                    let now = Instant::now();
                    match ctx.inputs.answers(ctx.index, &data) {
                        Ok(seqs) => {
                            ctx.control.progress.answered.fetch_add(seqs.len() as u64, Ordering::Relaxed);
                            for seq in seqs {
                                match outstanding.remove(&seq) {
                                    Some(sent) => {
                                        conn.latencies_us.push(now.duration_since(sent).as_micros() as u64);
                                        conn.answered_at.push(now);
                                    }
                                    None => conn.unexpected(format!(
                                        "user {}: input {seq} answered twice or not sent on this connection",
                                        ctx.index
                                    )),
                                }
                            }
                        }
                        Err(e) => conn.unexpected(format!("user {}: {e}", ctx.index)),
                    }
                    if ctx.options.keep_outputs {
                        conn.outputs.push(data.to_vec());
                    }
                    last_output = now;
                    conn.last_output = Some(now);
                }
                Some(Output::Error(reason)) => {
                    errors_here += 1;
                    ctx.control.progress.errors.fetch_add(1, Ordering::Relaxed);
                    conn.errors.push(reason);
                }
                None => {
                    conn.broke = Some("the node closed the connection".into());
                    break;
                }
            },
            _ = ctx.stop.changed(), if !stopping => { stopping = true; }
            _ = tokio::time::sleep(Duration::from_millis(100)), if stopping => {}
            _ = send_now, if can_send => {
                let seq = *next;
                *next += 1;
                let input = ctx.inputs.make(ctx.index, seq);
                conn.sent.push(seq);
                outstanding.insert(seq, Instant::now());
                ctx.control.progress.sent.fetch_add(1, Ordering::Relaxed);
                if let Err(e) = tx.send(&input).await {
                    conn.broke = Some(format!("send failed: {e}"));
                    break;
                }
            }
        }
    }
    conn.unanswered_at_end = outstanding.len();
    if conn.broke.is_none() {
        let _ = timeout(Duration::from_secs(1), tx.close()).await;
    }
    conn
}

//! Client load that can be checked afterwards: each client is one user key pinned to one node,
//! sending unique tokens `c<client>-<n>;` (one input frame each) continuously, and recording
//! per connection what it sent, every output and error frame it got, and whether the
//! connection stayed open to the end. A broken connection is reopened with the same key, so
//! the load goes on through faults.

use hp_client::{Client, Output};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;
use tokio::sync::watch;

/// How much load, and how it behaves.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    pub clients: usize,
    /// Pause between two inputs of one client.
    pub interval: Duration,
    /// Most inputs of one client awaiting their output (or an error frame) at once.
    pub window: usize,
    /// Inputs per client at most (the load is bounded in count as well as in time).
    pub max_per_client: u64,
    /// After the stop, how long a client waits for the outputs of what it sent.
    pub drain: Duration,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            clients: 5,
            interval: Duration::from_millis(40),
            window: 32,
            max_per_client: 100_000,
            drain: Duration::from_secs(20),
        }
    }
}

/// One websocket connection of a client, as it went.
#[derive(Debug, Clone, Default)]
pub struct ConnRecord {
    /// The node it was opened to.
    pub node: usize,
    /// Tokens sent on it, in order (recorded just before each send).
    pub sent: Vec<String>,
    /// Output frames received on it, raw.
    pub outputs: Vec<Vec<u8>>,
    /// Error frames' reasons received on it.
    pub errors: Vec<String>,
    /// Why it ended before the load did (`None`: open until the client closed it).
    pub broke: Option<String>,
    /// Inputs sent on it not yet answered by an output or error when the drain ended.
    pub unanswered_at_end: usize,
}

impl ConnRecord {
    pub fn stayed_open(&self) -> bool {
        self.broke.is_none()
    }
}

/// Everything one client did.
#[derive(Debug, Clone)]
pub struct ClientRecord {
    pub index: usize,
    pub user: [u8; 32],
    pub conns: Vec<ConnRecord>,
    /// Connection attempts that failed (node down, handshake refused...).
    pub failed_connects: u64,
}

/// Everything the load did.
#[derive(Debug, Clone)]
pub struct LoadRecord {
    pub clients: Vec<ClientRecord>,
}

impl LoadRecord {
    pub fn sent(&self) -> usize {
        self.clients.iter().flat_map(|c| &c.conns).map(|c| c.sent.len()).sum()
    }
    pub fn errors(&self) -> usize {
        self.clients.iter().flat_map(|c| &c.conns).map(|c| c.errors.len()).sum()
    }
    pub fn broken_conns(&self) -> usize {
        self.clients.iter().flat_map(|c| &c.conns).filter(|c| !c.stayed_open()).count()
    }
}

/// Counters to watch the load while it runs.
#[derive(Debug, Default)]
pub struct Progress {
    pub sent: AtomicU64,
    /// Tokens that came back in outputs.
    pub answered: AtomicU64,
    pub errors: AtomicU64,
}

/// Running load; [`Load::finish`] stops it and returns the record.
pub struct Load {
    stop: watch::Sender<bool>,
    progress: Arc<Progress>,
    targets: Arc<Mutex<Vec<(usize, String)>>>,
    thread: Option<JoinHandle<LoadRecord>>,
}

impl Load {
    /// Starts `options.clients` clients; client `i` talks to `urls[i % urls.len()]`.
    pub fn start(urls: Vec<String>, options: LoadOptions) -> Self {
        assert!(!urls.is_empty());
        let (stop, stop_rx) = watch::channel(false);
        let progress = Arc::new(Progress::default());
        let targets: Vec<(usize, String)> =
            (0..options.clients).map(|i| (i % urls.len(), urls[i % urls.len()].clone())).collect();
        let targets = Arc::new(Mutex::new(targets));
        let thread = {
            let progress = progress.clone();
            let targets = targets.clone();
            std::thread::Builder::new()
                .name("hp-load".into())
                .spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .unwrap_or_else(|e| panic!("runtime: {e}"));
                    rt.block_on(async move {
                        let tasks: Vec<_> = (0..options.clients)
                            .map(|i| {
                                let ctx = ClientCtx {
                                    index: i,
                                    options: options.clone(),
                                    stop: stop_rx.clone(),
                                    progress: progress.clone(),
                                    targets: targets.clone(),
                                };
                                tokio::spawn(run_client(ctx))
                            })
                            .collect();
                        let mut clients = Vec::new();
                        for t in tasks {
                            clients.push(t.await.unwrap_or_else(|e| panic!("load client panicked: {e}")));
                        }
                        LoadRecord { clients }
                    })
                })
                .unwrap_or_else(|e| panic!("spawn load thread: {e}"))
        };
        Self { stop, progress, targets, thread: Some(thread) }
    }

    pub fn progress(&self) -> &Progress {
        &self.progress
    }

    /// Tokens answered so far.
    pub fn answered(&self) -> u64 {
        self.progress.answered.load(Ordering::Relaxed)
    }

    /// Waits until `more` further tokens have been answered (the cluster serves the load).
    pub fn wait_answered(&self, more: u64, timeout: Duration) {
        let target = self.answered() + more;
        crate::wait_until(&format!("{more} more outputs under load"), timeout, || {
            (self.answered() >= target).then_some(())
        });
    }

    /// Points a client at another node (index and URL) for its next connection.
    pub fn retarget(&self, client: usize, node: usize, url: String) {
        self.targets.lock().unwrap_or_else(|e| e.into_inner())[client] = (node, url);
    }

    /// Stops sending, lets every client wait for its outstanding outputs, and returns the record.
    pub fn finish(mut self) -> LoadRecord {
        let _ = self.stop.send(true);
        let thread = self.thread.take().unwrap_or_else(|| panic!("load already finished"));
        thread.join().unwrap_or_else(|_| panic!("load thread panicked"))
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

struct ClientCtx {
    index: usize,
    options: LoadOptions,
    stop: watch::Receiver<bool>,
    progress: Arc<Progress>,
    targets: Arc<Mutex<Vec<(usize, String)>>>,
}

async fn run_client(mut ctx: ClientCtx) -> ClientRecord {
    let key = hp_client::generate_key();
    let mut record =
        ClientRecord { index: ctx.index, user: key.verifying_key().to_bytes(), conns: Vec::new(), failed_connects: 0 };
    let mut next: u64 = 0;
    loop {
        if *ctx.stop.borrow() || next >= ctx.options.max_per_client {
            break;
        }
        let (node, url) = ctx.targets.lock().unwrap_or_else(|e| e.into_inner())[ctx.index].clone();
        let connected = tokio::time::timeout(Duration::from_secs(5), Client::connect(&url, &key)).await;
        let client = match connected {
            Ok(Ok(c)) => c,
            _ => {
                record.failed_connects += 1;
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                    _ = ctx.stop.changed() => {}
                }
                continue;
            }
        };
        let conn = run_conn(&mut ctx, client, node, &mut next).await;
        let done = conn.stayed_open();
        record.conns.push(conn);
        if done {
            break;
        }
    }
    record
}

/// How long a draining connection waits for more outputs once error frames could explain the
/// inputs still unanswered.
const QUIET: Duration = Duration::from_secs(3);

/// One connection: send tokens while the load runs, then drain. Returns when it broke or was
/// closed after the drain.
async fn run_conn(ctx: &mut ClientCtx, client: Client, node: usize, next: &mut u64) -> ConnRecord {
    let mut conn = ConnRecord { node, ..Default::default() };
    let (mut tx, mut rx) = client.split();
    // Tokens sent on this connection and not yet answered. Outputs of an earlier connection's
    // inputs may arrive here too: only this connection's own count as answers.
    let mut outstanding: std::collections::HashSet<String> = std::collections::HashSet::new();
    let mut errors_here: usize = 0;
    let mut last_output = tokio::time::Instant::now();
    let mut ticker = tokio::time::interval(ctx.options.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut stopping = *ctx.stop.borrow();
    let mut drain_until: Option<tokio::time::Instant> = None;
    loop {
        if stopping || *next >= ctx.options.max_per_client {
            let until = *drain_until.get_or_insert_with(|| tokio::time::Instant::now() + ctx.options.drain);
            stopping = true;
            // Error frames cannot be matched to inputs: once they could account for what is
            // missing, wait until outputs stop coming before giving up on the rest.
            let quiet = last_output.elapsed() >= QUIET;
            if outstanding.is_empty() || (outstanding.len() <= errors_here && quiet) {
                break;
            }
            if tokio::time::Instant::now() >= until {
                break;
            }
        }
        let in_flight = outstanding.len().saturating_sub(errors_here);
        let can_send = !stopping && in_flight < ctx.options.window;
        tokio::select! {
            out = rx.recv() => match out {
                Some(Output::Data(data)) => {
                    let tokens = parse_output(&data).map(|(t, _)| t).unwrap_or_default();
                    ctx.progress.answered.fetch_add(tokens.len() as u64, Ordering::Relaxed);
                    for t in &tokens {
                        outstanding.remove(t);
                    }
                    conn.outputs.push(data.to_vec());
                    last_output = tokio::time::Instant::now();
                }
                Some(Output::Error(reason)) => {
                    errors_here += 1;
                    ctx.progress.errors.fetch_add(1, Ordering::Relaxed);
                    conn.errors.push(reason);
                }
                None => {
                    conn.broke = Some("the node closed the connection".into());
                    break;
                }
            },
            _ = ticker.tick(), if can_send => {
                let token = format!("c{}-{};", ctx.index, *next);
                *next += 1;
                conn.sent.push(token.clone());
                outstanding.insert(token.clone());
                ctx.progress.sent.fetch_add(1, Ordering::Relaxed);
                if let Err(e) = tx.send(token.as_bytes()).await {
                    conn.broke = Some(format!("send failed: {e}"));
                    break;
                }
            }
            _ = ctx.stop.changed(), if !stopping => { stopping = true; }
            _ = tokio::time::sleep(Duration::from_millis(100)), if stopping => {}
        }
    }
    conn.unanswered_at_end = outstanding.len();
    if conn.broke.is_none() {
        let _ = tokio::time::timeout(Duration::from_secs(1), tx.close()).await;
    }
    conn
}

/// A token's client index and number, if it is one.
pub fn parse_token(token: &str) -> Option<(usize, u64)> {
    let body = token.strip_prefix('c')?.strip_suffix(';')?;
    let (client, n) = body.split_once('-')?;
    Some((client.parse().ok()?, n.parse().ok()?))
}

/// Splits an output frame into its tokens and the count after `#`.
pub fn parse_output(out: &[u8]) -> Option<(Vec<String>, u64)> {
    let text = std::str::from_utf8(out).ok()?;
    let (body, count) = text.rsplit_once('#')?;
    let tokens = body.split_inclusive(';').map(str::to_string).collect();
    Some((tokens, count.parse().ok()?))
}

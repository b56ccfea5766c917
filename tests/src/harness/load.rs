//! Client load that can be checked afterwards: hp-localnet's load generator
//! ([`hp_localnet::load`]) with inputs that are unique tokens `c<client>-<n>;` (one input frame
//! each), every frame kept for the checker, and broken connections reopened with the same key so
//! that the load goes on through faults. It runs on a thread of its own, so that the (sync)
//! tests can do their faults meanwhile.

use hp_localnet::load::{self, Control, Inputs};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

pub use hp_localnet::load::{ClientRecord, ConnRecord, LoadOptions, LoadRecord, Progress};

/// Client `client`'s token number `n`.
pub fn token(client: usize, n: u64) -> String {
    format!("c{client}-{n};")
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

/// The fault contract's inputs and outputs ([`super::contract`]): tokens in, the same tokens
/// and a count out.
struct Tokens;

impl Inputs for Tokens {
    fn make(&self, client: usize, seq: u64) -> Vec<u8> {
        token(client, seq).into_bytes()
    }

    fn answers(&self, _client: usize, output: &[u8]) -> Result<Vec<u64>, String> {
        let (tokens, _) = parse_output(output).ok_or("not in the contract's format")?;
        Ok(tokens.iter().filter_map(|t| parse_token(t)).map(|(_, n)| n).collect())
    }
}

/// Running load; [`Load::finish`] stops it and returns the record.
pub struct Load {
    control: Arc<Control>,
    thread: Option<JoinHandle<LoadRecord>>,
}

impl Load {
    /// Starts `options.clients` clients; client `i` talks to `urls[i % urls.len()]`.
    pub fn start(urls: Vec<String>, options: LoadOptions) -> Self {
        assert!(!urls.is_empty());
        let (control_tx, control_rx) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("hp-load".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap_or_else(|e| panic!("runtime: {e}"));
                rt.block_on(async move {
                    let users = load::users(&urls, options.clients);
                    let load = load::Load::spawn(users, options, Arc::new(Tokens));
                    let _ = control_tx.send(load.control());
                    load.join().await
                })
            })
            .unwrap_or_else(|e| panic!("spawn load thread: {e}"));
        let control = control_rx.recv().unwrap_or_else(|_| panic!("the load thread did not start"));
        Self { control, thread: Some(thread) }
    }

    pub fn progress(&self) -> &Progress {
        self.control.progress()
    }

    /// Tokens answered so far.
    pub fn answered(&self) -> u64 {
        self.control.answered()
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
        self.control.retarget(client, node, url);
    }

    /// Stops sending, lets every client wait for its outstanding outputs, and returns the record.
    pub fn finish(mut self) -> LoadRecord {
        self.control.stop();
        let thread = self.thread.take().unwrap_or_else(|| panic!("load already finished"));
        thread.join().unwrap_or_else(|_| panic!("load thread panicked"))
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.control.stop();
    }
}

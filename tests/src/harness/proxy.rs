//! A fault-injecting TCP proxy between peers, run inside the test process: each directed link
//! `from → to` is a listener on 127.0.0.1 that node `from` dials instead of node `to`'s peer
//! port ([`Proxy::rewire`] rewrites the `peers` of a config). Since every node reaches every
//! other only through its own links, setting the links between two groups of nodes partitions
//! the network, with no privileges and no traffic outside the test's own sockets.
//!
//! A link is in one of three modes: [`Mode::Pass`] forwards bytes; [`Mode::Drop`] closes its
//! connections and refuses new ones (a clean cut: both sides notice at once); [`Mode::Stall`]
//! keeps connections open but forwards nothing (a black hole: only timeouts notice);
//! [`Mode::Throttle`] forwards at most so many bytes per second each way (a slow link).
//!
//! The proxy is also the eavesdropper of the relay scenarios: it counts the bytes and
//! connections it carries and looks for given byte strings in them ([`Proxy::sniff`]).

use hp_cfg::Config;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// What a link does with traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Pass,
    Drop,
    Stall,
    /// At most this many bytes per second in each direction.
    Throttle(u32),
}

/// The proxy: its links and the runtime that pumps them.
pub struct Proxy {
    rt: tokio::runtime::Runtime,
    links: Mutex<HashMap<(usize, usize), watch::Sender<Mode>>>,
    /// Connections each link accepted, and how many of them are open.
    counters: Mutex<HashMap<(usize, usize), Arc<Counters>>>,
    tap: Arc<Tap>,
}

#[derive(Default)]
struct Counters {
    accepted: AtomicU64,
    open: AtomicU64,
}

/// Tells whether a chunk of relayed bytes holds what the eavesdropper looks for.
pub type Sniffer = Box<dyn Fn(&[u8]) -> bool + Send + Sync>;

/// What the proxy saw in the bytes it carried.
#[derive(Default)]
struct Tap {
    bytes: AtomicU64,
    sniffer: Mutex<Option<Sniffer>>,
    hits: AtomicU64,
}

impl Tap {
    fn inspect(&self, chunk: &[u8]) {
        self.bytes.fetch_add(chunk.len() as u64, Ordering::Relaxed);
        let sniffer = self.sniffer.lock().unwrap_or_else(|e| e.into_inner());
        if sniffer.as_ref().is_some_and(|found| found(chunk)) {
            self.hits.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Proxy {
    pub fn new() -> Arc<Self> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("hp-proxy")
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("proxy runtime: {e}"));
        Arc::new(Self {
            rt,
            links: Mutex::new(HashMap::new()),
            counters: Mutex::new(HashMap::new()),
            tap: Arc::default(),
        })
    }

    /// From now on, counts the chunks of relayed bytes in which `found` finds something.
    pub fn sniff(&self, found: Sniffer) {
        *self.tap.sniffer.lock().unwrap_or_else(|e| e.into_inner()) = Some(found);
    }

    /// Chunks of relayed bytes in which the sniffer found something.
    pub fn sniffed(&self) -> u64 {
        self.tap.hits.load(Ordering::Relaxed)
    }

    /// Bytes relayed so far, both directions, all links.
    pub fn bytes_relayed(&self) -> u64 {
        self.tap.bytes.load(Ordering::Relaxed)
    }

    /// Connections the link `from → to` has accepted so far.
    pub fn connections(&self, from: usize, to: usize) -> u64 {
        self.count(from, to, |c| &c.accepted)
    }

    /// Connections of the link `from → to` open now.
    pub fn open_connections(&self, from: usize, to: usize) -> u64 {
        self.count(from, to, |c| &c.open)
    }

    fn count(&self, from: usize, to: usize, counter: impl Fn(&Counters) -> &AtomicU64) -> u64 {
        let counters = self.counters.lock().unwrap_or_else(|e| e.into_inner());
        counters.get(&(from, to)).map_or(0, |c| counter(c).load(Ordering::Relaxed))
    }

    /// Opens the link `from → to` towards `target`; returns the port `from` should dial.
    pub fn link(&self, from: usize, to: usize, target: SocketAddr) -> u16 {
        // A claimed port, not one the kernel picks: those are the ones a node's port, chosen
        // earlier, may turn out to be (see `crate::ports`).
        let port = crate::OrPanic::or_panic(crate::ports::free_port());
        let listener =
            std::net::TcpListener::bind(("127.0.0.1", port)).unwrap_or_else(|e| panic!("proxy bind {port}: {e}"));
        listener.set_nonblocking(true).unwrap_or_else(|e| panic!("{e}"));
        let (mode_tx, mode_rx) = watch::channel(Mode::Pass);
        self.links.lock().unwrap_or_else(|e| e.into_inner()).insert((from, to), mode_tx);
        let counters = Arc::new(Counters::default());
        self.counters.lock().unwrap_or_else(|e| e.into_inner()).insert((from, to), counters.clone());
        let tap = self.tap.clone();
        self.rt.spawn(async move {
            let listener = TcpListener::from_std(listener).unwrap_or_else(|e| panic!("{e}"));
            loop {
                let Ok((inbound, _)) = listener.accept().await else { continue };
                if *mode_rx.borrow() == Mode::Drop {
                    drop(inbound);
                    continue;
                }
                counters.accepted.fetch_add(1, Ordering::Relaxed);
                counters.open.fetch_add(1, Ordering::Relaxed);
                let (counters, mode, tap) = (counters.clone(), mode_rx.clone(), tap.clone());
                tokio::spawn(async move {
                    forward(inbound, target, mode, tap).await;
                    counters.open.fetch_sub(1, Ordering::Relaxed);
                });
            }
        });
        port
    }

    /// For use in [`crate::ClusterOptions::edit`]: routes every peer of node `i` through a link
    /// of this proxy. The `peers` list is in node order without `i` itself.
    pub fn rewire(&self, i: usize, cfg: &mut Config) {
        let peers = std::mem::take(&mut cfg.peers);
        for (k, peer) in peers.into_iter().enumerate() {
            let j = if k < i { k } else { k + 1 };
            let target: SocketAddr = peer.parse().unwrap_or_else(|e| panic!("peer {peer}: {e}"));
            let port = self.link(i, j, target);
            cfg.peers.push(format!("127.0.0.1:{port}"));
        }
    }

    /// Sets the mode of the link `from → to`.
    pub fn set(&self, from: usize, to: usize, mode: Mode) {
        if let Some(link) = self.links.lock().unwrap_or_else(|e| e.into_inner()).get(&(from, to)) {
            link.send_replace(mode);
        }
    }

    /// Cuts (with `mode`) every link between nodes of different groups, both ways; links inside
    /// a group pass.
    pub fn partition(&self, groups: &[&[usize]], mode: Mode) {
        let group_of = |n: usize| groups.iter().position(|g| g.contains(&n));
        let links = self.links.lock().unwrap_or_else(|e| e.into_inner());
        for ((from, to), link) in links.iter() {
            let cut = group_of(*from) != group_of(*to);
            link.send_replace(if cut { mode } else { Mode::Pass });
        }
    }

    /// Every link passes again.
    pub fn heal(&self) {
        for link in self.links.lock().unwrap_or_else(|e| e.into_inner()).values() {
            link.send_replace(Mode::Pass);
        }
    }
}

async fn forward(inbound: TcpStream, target: SocketAddr, mode: watch::Receiver<Mode>, tap: Arc<Tap>) {
    let Ok(outbound) = TcpStream::connect(target).await else { return };
    let _ = inbound.set_nodelay(true);
    let _ = outbound.set_nodelay(true);
    let (ir, iw) = inbound.into_split();
    let (or, ow) = outbound.into_split();
    // Either direction ending (EOF, error, or a cut) ends the whole connection.
    tokio::select! {
        _ = pump(ir, ow, mode.clone(), &tap) => {}
        _ = pump(or, iw, mode, &tap) => {}
    }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut mode: watch::Receiver<Mode>,
    tap: &Tap,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let mut rate = None;
        loop {
            let current = *mode.borrow_and_update();
            match current {
                Mode::Pass => break,
                Mode::Throttle(bytes_per_sec) => {
                    rate = Some(bytes_per_sec.max(1));
                    break;
                }
                Mode::Drop => return,
                Mode::Stall => {
                    if mode.changed().await.is_err() {
                        return;
                    }
                }
            }
        }
        // A throttled link reads in pieces of a tenth of a second's worth.
        let room = rate.map_or(buf.len(), |r| (r as usize / 10).clamp(1, buf.len()));
        let n = tokio::select! {
            r = from.read(&mut buf[..room]) => match r {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            },
            changed = mode.changed() => {
                if changed.is_err() {
                    return;
                }
                continue;
            }
        };
        tap.inspect(&buf[..n]);
        let pace = async {
            if let Some(r) = rate {
                tokio::time::sleep(std::time::Duration::from_secs_f64(n as f64 / f64::from(r))).await;
            }
        };
        tokio::select! {
            w = async { pace.await; to.write_all(&buf[..n]).await } => if w.is_err() { return },
            _ = wait_for(&mut mode, Mode::Drop) => return,
        }
    }
}

async fn wait_for(mode: &mut watch::Receiver<Mode>, want: Mode) {
    loop {
        if *mode.borrow_and_update() == want {
            return;
        }
        if mode.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

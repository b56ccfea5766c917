//! The invariants every fault scenario ends with (issue 10), checked from the nodes' ledger
//! stores (read after the nodes stopped), their logs, `hotpocket verify`, and what the clients
//! recorded:
//!
//! - **no fork**: every node holds the same ledger at every sequence, and the same result
//!   certificate (state hash, outputs hash) wherever two nodes have one;
//! - **exactly once**: each input id and each token is in at most one ledger; every token in
//!   the chain was sent by the client whose key carries it (nothing let in or made up);
//! - **accepted ⇒ included**: no node still holds an accepted input that no ledger carries;
//! - **nothing lost on an open connection**: every token sent on a connection that stayed open
//!   was executed and its output reached that connection, unless the node answered an error
//!   frame for it (errors cannot be matched to inputs, so they are counted);
//! - **outputs are the agreed ones**: each ledger's certified outputs hash equals the outputs
//!   recomputed from the chain with the contract's model, and every frame a client received is
//!   byte for byte the recomputed output of the ledger that carried its tokens;
//! - **state**: each node's reported state hash, and the hash of what it left in `state/`, is
//!   a certified one; no node logged a divergence or a panic; every chain passes
//!   `hotpocket verify`.

use super::contract::Model;
use super::load::{LoadRecord, parse_output, parse_token, token};
use crate::Node;
use hp_ledger::{Hash, Input, InputId, LedgerRecord, Store};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write;

/// What the checker reads from one node.
pub struct NodeView {
    pub index: usize,
    pub records: Vec<LedgerRecord>,
    /// Inputs this node accepted that its own chain does not carry.
    pub pending: Vec<Input>,
    pub verify: (i32, String),
    pub log: String,
    /// `hotpocket status --json` taken before the node stopped, if it answered.
    pub status: Option<Value>,
    /// The state hash of the node's `state/` folder on disk, after it stopped.
    pub disk_state: Option<Hash>,
}

impl NodeView {
    /// Reads a stopped node's store, runs `hotpocket verify`, takes its log.
    pub fn read(node: &Node, status: Option<Value>) -> Self {
        let db = node.dir.join("hist").join("ledger.sqlite");
        let store = Store::open_read_only(&db).unwrap_or_else(|e| panic!("node {}: {e}", node.index + 1));
        let records = store.all().unwrap_or_else(|e| panic!("node {}: {e}", node.index + 1));
        let origin: [u8; 32] = hex::decode(&node.pubkey)
            .ok()
            .and_then(|v| v.try_into().ok())
            .unwrap_or_else(|| panic!("node {} key", node.index + 1));
        let pending = store.pending_inputs(origin).unwrap_or_else(|e| panic!("node {}: {e}", node.index + 1));
        let log = std::fs::read_to_string(node.dir.join("log").join("node.log")).unwrap_or_default();
        let disk_state = hp_execd::state_hash::StateHasher::new(node.dir.join("state")).scan().ok().map(|s| s.root);
        Self {
            index: node.index,
            records,
            pending,
            verify: crate::OrPanic::or_panic(node.verify()),
            log,
            status,
            disk_state,
        }
    }

    fn tip(&self) -> u64 {
        self.records.last().map(|r| r.ledger.seq).unwrap_or(0)
    }
}

/// What a scenario tolerates.
#[derive(Debug, Clone, Default)]
pub struct CheckOptions {
    /// Every node's chain must reach at least this sequence.
    pub min_tip: u64,
    /// Nodes whose accepted-but-unincluded inputs are not a fault (their store was wiped on
    /// purpose, say).
    pub skip_pending: Vec<usize>,
    /// Log lines the scenario causes on purpose (e.g. a node's own result differing when the
    /// test killed its contract): not reported.
    pub expected_log: Vec<String>,
    /// Nodes whose users may miss outputs (a node that withholds its own divergent result).
    pub may_withhold: Vec<usize>,
    /// Inputs the scenario's own users sent beside the load (each still executed at most once).
    pub outside_inputs: Vec<Vec<u8>>,
}

/// Counts that describe a run.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    pub ledgers: u64,
    pub sent: usize,
    pub executed: usize,
    pub received: usize,
    pub errors: usize,
    pub conns: usize,
    pub broken_conns: usize,
    /// Tokens sent on connections that broke and never executed (allowed: "may be lost").
    pub lost_on_broken: usize,
}

impl std::fmt::Display for Stats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ledgers, {} inputs sent, {} executed, {} outputs received, {} error frames, {} connections ({} broke, {} inputs lost with them)",
            self.ledgers,
            self.sent,
            self.executed,
            self.received,
            self.errors,
            self.conns,
            self.broken_conns,
            self.lost_on_broken
        )
    }
}

/// The outcome of a check.
#[derive(Debug, Default)]
pub struct Report {
    pub problems: Vec<String>,
    pub stats: Stats,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }

    /// The problems, at most `max`, one a line.
    pub fn describe(&self, max: usize) -> String {
        let mut out = String::new();
        for p in self.problems.iter().take(max) {
            let _ = writeln!(out, "  - {p}");
        }
        if self.problems.len() > max {
            let _ = writeln!(out, "  ... and {} more", self.problems.len() - max);
        }
        out
    }
}

/// Log lines that mean a fault the scenario did not ask for.
const BAD_LOG_LINES: &[&str] = &[
    "panicked at",
    "differs from the network",
    "own result differs",
    "cannot store the decided ledger",
    "no result can reach a quorum",
    "no peer sent the agreed outputs",
];

fn hex8(h: &[u8]) -> String {
    hex::encode(&h[..h.len().min(8)])
}

/// Runs every check.
pub fn check(nodes: &[NodeView], load: &LoadRecord, options: &CheckOptions) -> Report {
    let mut report = Report::default();
    let problems = &mut report.problems;

    // --- no fork, same results --------------------------------------------------------------
    let mut at: BTreeMap<u64, (usize, Hash)> = BTreeMap::new();
    let mut results: BTreeMap<u64, (usize, Hash, Hash)> = BTreeMap::new();
    for view in nodes {
        for r in &view.records {
            let seq = r.ledger.seq;
            match at.get(&seq) {
                Some((other, hash)) if *hash != r.ledger.hash() => problems.push(format!(
                    "fork at ledger {seq}: node {} has {}, node {} has {}",
                    other + 1,
                    hex8(hash),
                    view.index + 1,
                    hex8(&r.ledger.hash())
                )),
                Some(_) => {}
                None => {
                    at.insert(seq, (view.index, r.ledger.hash()));
                }
            }
            if let Some(cert) = &r.result {
                match results.get(&seq) {
                    Some((other, s, o)) if (*s, *o) != (cert.state_hash, cert.outputs_hash) => problems.push(format!(
                        "ledger {seq}: node {} certified state {} outputs {}, node {} state {} outputs {}",
                        other + 1,
                        hex8(s),
                        hex8(o),
                        view.index + 1,
                        hex8(&cert.state_hash),
                        hex8(&cert.outputs_hash)
                    )),
                    Some(_) => {}
                    None => {
                        results.insert(seq, (view.index, cert.state_hash, cert.outputs_hash));
                    }
                }
            }
        }
        if view.tip() < options.min_tip {
            problems.push(format!(
                "node {} stopped at ledger {}, below {}",
                view.index + 1,
                view.tip(),
                options.min_tip
            ));
        }
        let (code, text) = &view.verify;
        if *code != 0 {
            problems.push(format!("node {}: hotpocket verify failed: {}", view.index + 1, text.trim()));
        }
        for line in view.log.lines() {
            if BAD_LOG_LINES.iter().any(|bad| line.contains(bad))
                && !options.expected_log.iter().any(|ok| line.contains(ok.as_str()))
            {
                problems.push(format!("node {} logged: {}", view.index + 1, line.trim()));
            }
        }
    }
    let Some(reference) = nodes.iter().max_by_key(|v| v.tip()) else {
        return report;
    };
    report.stats.ledgers = reference.tip();

    // --- the chain's inputs: each once, each a token its sender sent --------------------------
    let by_user: HashMap<[u8; 32], usize> = load.clients.iter().map(|c| (c.user, c.index)).collect();
    let mut sent_by: HashMap<String, (usize, usize)> = HashMap::new();
    for c in &load.clients {
        for (k, conn) in c.conns.iter().enumerate() {
            for n in &conn.sent {
                sent_by.insert(token(c.index, *n), (c.index, k));
            }
        }
    }
    let mut ids: HashMap<InputId, u64> = HashMap::new();
    let mut token_seq: HashMap<String, u64> = HashMap::new();
    let mut outside_seq: HashMap<String, u64> = HashMap::new();
    for r in &reference.records {
        let seq = r.ledger.seq;
        for input in &r.ledger.inputs {
            if let Some(first) = ids.insert(input.id, seq) {
                problems.push(format!(
                    "input {}/{} is in ledger {first} and again in ledger {seq}",
                    hex8(&input.id.origin),
                    input.id.nonce
                ));
            }
            let token = String::from_utf8_lossy(&input.data).into_owned();
            if load.clients.is_empty() {
                // No load: the scenario's own users sent these.
                continue;
            }
            if options.outside_inputs.iter().any(|sent| *sent == input.data) {
                if let Some(first) = outside_seq.insert(token.clone(), seq) {
                    problems.push(format!("input {token:?} executed twice: ledgers {first} and {seq}"));
                }
                continue;
            }
            let Some((client, _)) = parse_token(&token) else {
                problems.push(format!("ledger {seq} carries an input that no client sent: {:?}", input.data));
                continue;
            };
            if by_user.get(&input.user) != Some(&client) {
                problems.push(format!("ledger {seq}: token {token} carries the key of another user"));
            }
            if !sent_by.contains_key(token.as_str()) {
                problems.push(format!("ledger {seq}: token {token} was never sent"));
            }
            if let Some(first) = token_seq.insert(token.clone(), seq) {
                problems.push(format!("token {token} executed twice: ledgers {first} and {seq}"));
            }
        }
    }
    report.stats.executed = token_seq.len();

    // --- accepted ⇒ included -------------------------------------------------------------
    for view in nodes.iter().filter(|v| !options.skip_pending.contains(&v.index)) {
        let missing: Vec<&Input> = view.pending.iter().filter(|i| !ids.contains_key(&i.id)).collect();
        if let Some(first) = missing.first() {
            problems.push(format!(
                "node {} accepted {} inputs that no ledger carries (first: {:?}, nonce {})",
                view.index + 1,
                missing.len(),
                String::from_utf8_lossy(&first.data),
                first.id.nonce
            ));
        }
    }

    // --- outputs: recomputed, certified, delivered ------------------------------------------
    let mut model = Model::default();
    let mut expected: HashMap<(u64, [u8; 32]), Vec<u8>> = HashMap::new();
    let mut certified_states: HashSet<Hash> = HashSet::new();
    for r in reference.records.iter().filter(|r| r.ledger.seq > 0) {
        let outcome = model.run(&r.ledger);
        if let Some((_, state, outputs)) = results.get(&r.ledger.seq) {
            certified_states.insert(*state);
            if *outputs != outcome.hash() {
                problems.push(format!(
                    "ledger {}: the certified outputs hash {} is not the hash of the contract's outputs {}",
                    r.ledger.seq,
                    hex8(outputs),
                    hex8(&outcome.hash())
                ));
            }
        }
        for (user, data) in outcome.outputs {
            expected.insert((r.ledger.seq, user), data.to_vec());
        }
    }
    for view in nodes {
        // What execd left in state/ is the certified state of one of the node's last ledgers.
        let recent: Vec<Hash> =
            view.records.iter().rev().take(10).filter_map(|r| r.result.as_ref().map(|c| c.state_hash)).collect();
        if let Some(disk) = view.disk_state
            && view.tip() > 1
            && !recent.contains(&disk)
        {
            problems.push(format!(
                "node {}: its state/ on disk hashes to {}, the state of none of its last ledgers",
                view.index + 1,
                hex8(&disk)
            ));
        }
        let Some(status) = &view.status else { continue };
        let state = status["state_hash"].as_str().and_then(|h| hex::decode(h).ok());
        if let Some(state) = state.and_then(|s| <Hash>::try_from(s).ok())
            && !certified_states.contains(&state)
            && status["lcl_seq"].as_u64().unwrap_or(0) > 1
        {
            problems.push(format!(
                "node {} reports state hash {} that no ledger certifies",
                view.index + 1,
                hex8(&state)
            ));
        }
    }

    for c in &load.clients {
        let mut received: HashMap<String, usize> = HashMap::new();
        for (k, conn) in c.conns.iter().enumerate() {
            report.stats.conns += 1;
            report.stats.sent += conn.sent.len();
            report.stats.errors += conn.errors.len();
            for out in &conn.outputs {
                let Some((tokens, _)) = parse_output(out) else {
                    problems.push(format!("client {}: output not in the contract's format: {:?}", c.index, out));
                    continue;
                };
                let seqs: HashSet<Option<u64>> = tokens.iter().map(|t| token_seq.get(t).copied()).collect();
                if seqs.len() != 1 || seqs.contains(&None) {
                    problems.push(format!(
                        "client {} connection {k}: output {:?} does not match one ledger's inputs",
                        c.index,
                        String::from_utf8_lossy(out)
                    ));
                    continue;
                }
                let seq = seqs.into_iter().next().flatten().unwrap_or(0);
                match expected.get(&(seq, c.user)) {
                    Some(want) if want == out => {}
                    want => problems.push(format!(
                        "client {} got {:?} for ledger {seq}, the agreed output is {:?}",
                        c.index,
                        String::from_utf8_lossy(out),
                        want.map(|w| String::from_utf8_lossy(w).into_owned())
                    )),
                }
                for t in tokens {
                    if parse_token(&t).map(|(client, _)| client) != Some(c.index) {
                        problems.push(format!("client {} received another user's token {t}", c.index));
                    }
                    if let Some(first) = received.insert(t.clone(), k) {
                        problems.push(format!(
                            "client {} received the output of {t} twice (ledger {seq}; on connections {first} and {k})",
                            c.index
                        ));
                    }
                }
            }
        }
        report.stats.received += received.len();
        for (k, conn) in c.conns.iter().enumerate() {
            let sent: Vec<String> = conn.sent.iter().map(|n| token(c.index, *n)).collect();
            let executed: Vec<&String> = sent.iter().filter(|t| token_seq.contains_key(*t)).collect();
            let not_executed = conn.sent.len() - executed.len();
            if !conn.stayed_open() {
                report.stats.broken_conns += 1;
                report.stats.lost_on_broken += not_executed;
                continue;
            }
            let refused = conn
                .errors
                .iter()
                .filter(|e| e.starts_with("input not accepted") || e.starts_with("input refused"))
                .count();
            if not_executed > conn.errors.len() {
                let example = sent.iter().find(|t| !token_seq.contains_key(*t));
                problems.push(format!(
                    "client {} connection {k} (node {}, open to the end): {not_executed} of {} inputs never executed and only {} error frames (e.g. {:?}; {} unanswered at the end)",
                    c.index,
                    conn.node + 1,
                    conn.sent.len(),
                    conn.errors.len(),
                    example,
                    conn.unanswered_at_end
                ));
            }
            if executed.len() + refused > conn.sent.len() {
                problems.push(format!(
                    "client {} connection {k}: {refused} inputs refused, yet {} of {} executed",
                    c.index,
                    executed.len(),
                    conn.sent.len()
                ));
            }
            let undelivered: Vec<&&String> = executed.iter().filter(|t| !received.contains_key(**t)).collect();
            if let Some(first) = undelivered.first()
                && !options.may_withhold.contains(&conn.node)
            {
                problems.push(format!(
                    "client {} connection {k} (node {}, open to the end): {} executed inputs got no output (e.g. {first} in ledger {})",
                    c.index,
                    conn.node + 1,
                    undelivered.len(),
                    token_seq.get(**first).copied().unwrap_or(0)
                ));
            }
        }
    }
    report
}

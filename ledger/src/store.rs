//! The ledger store in `hist/ledger.sqlite`: SQLite in WAL mode with `synchronous=FULL`, so
//! every committed transaction is on disk before it returns and a node killed at any moment
//! restarts with an intact chain.
//!
//! It also holds what makes "accepted" mean durable (docs/consensus.md): the inputs this node
//! accepted from its users and that no ledger carries yet, and the counter that gives each
//! accepted input an identity this node never reuses.

use crate::input::{Input, InputId};
use crate::ledger::Ledger;
use crate::outputs::Outcome;
use crate::record::{self, LedgerRecord};
use crate::user_signed::{ContainerFormat, UserSigned, parse_container};
use bytes::Bytes;
use hp_consensus::ResultCertificate;
use rusqlite::{Connection, OptionalExtension, params};
use std::path::{Path, PathBuf};

/// A store operation that failed, with what it was doing.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("ledger store {path}: {source}")]
    Open { path: PathBuf, source: rusqlite::Error },
    #[error("ledger store: {op}: {source}")]
    Sql { op: &'static str, source: rusqlite::Error },
    #[error("ledger store: ledger {seq} is corrupt: {problem}")]
    Corrupt { seq: u64, problem: String },
    #[error("ledger store: cannot append ledger {seq}: the last stored ledger is {last}")]
    NotNext { seq: u64, last: u64 },
    #[error("ledger store: ledger {seq} does not link to the stored ledger {}", seq - 1)]
    BadLink { seq: u64 },
    #[error("ledger store: ledger 0 in the store belongs to another network (different UNL)")]
    ForeignGenesis,
    #[error(
        "ledger store {path} is in format {found}, this Hot Pocket reads only format {FORMAT} (inputs carry their \
         origin's signature, and the user's when they signed it); its chain cannot be carried over: start the \
         network anew"
    )]
    OldFormat { path: PathBuf, found: i64 },
}

/// The store's format: 2 since inputs carry their origin's signature, 3 since they may carry
/// the user's (HotPocket 0.6). A store of another format is refused at open rather than misread.
pub const FORMAT: i64 = 3;

fn sql(op: &'static str) -> impl FnOnce(rusqlite::Error) -> StoreError {
    move |source| StoreError::Sql { op, source }
}

/// A stored ledger's summary line (`hotpocket ledger`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LedgerSummary {
    pub seq: u64,
    pub hash: [u8; 32],
    pub prev_hash: [u8; 32],
    pub time_ms: u64,
    pub inputs: u64,
    pub state_hash: Option<[u8; 32]>,
    pub outputs_hash: Option<[u8; 32]>,
    pub signers: u64,
    /// The members that closed it ([`crate::Membership::hash`]).
    pub config_hash: [u8; 32],
    /// The members it hands over to from the next ledger on, if it does.
    pub next_membership: Option<crate::Membership>,
}

/// A validator's key and its signature over a ledger's output root (HotPocket 0.6 proofs),
/// kept with the outputs so that outputs handed over again after a restart keep their proof.
pub type RootSignature = ([u8; 32], [u8; 64]);

/// How many recent ledgers' outcomes and delivered outputs the store keeps, for handing over
/// again and for peers that could not compute them.
pub const KEPT_OUTPUTS: u64 = 256;

/// An input a user sent, to be accepted ([`Store::accept_inputs`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewInput {
    pub user: [u8; 32],
    pub data: Bytes,
    /// What the user signed, for a HotPocket 0.6 input.
    pub user_signed: Option<UserSigned>,
}

impl From<([u8; 32], Bytes)> for NewInput {
    /// An input of the seed protocol: the user's key and the bytes.
    fn from((user, data): ([u8; 32], Bytes)) -> Self {
        Self { user, data, user_signed: None }
    }
}

/// `format | signature | container`, as a pending input keeps what its user signed.
fn user_signed_bytes(signed: &UserSigned) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + 64 + signed.container.len());
    out.push(signed.format.code());
    out.extend_from_slice(&signed.signature);
    out.extend_from_slice(&signed.container);
    out
}

fn user_signed_from(bytes: &[u8]) -> Option<UserSigned> {
    let format = ContainerFormat::from_code(*bytes.first()?)?;
    let signature: [u8; 64] = bytes.get(1..65)?.try_into().ok()?;
    Some(UserSigned { format, signature, container: Bytes::copy_from_slice(bytes.get(65..)?) })
}

/// The ledger store. One writer (consensusd); readers (operator commands) open it read-only.
pub struct Store {
    conn: Connection,
    nonces: NonceCache,
}

/// Users' highest nonces as the writer read or wrote them: the replay rules ask for those of
/// every user in a ledger, when the node proposes it, judges it and stores it, and would
/// otherwise query the database each time. Only the writer keeps one (it alone changes the
/// table); a read-only store, whose file another process writes, always reads.
struct NonceCache {
    enabled: bool,
    /// `None` for a user with no signed input in the chain.
    known: std::cell::RefCell<std::collections::HashMap<[u8; 32], Option<u64>>>,
}

impl NonceCache {
    /// The most users it holds; it is emptied when full, which costs only re-reads.
    const MAX_USERS: usize = 65_536;

    fn new(enabled: bool) -> Self {
        Self { enabled, known: Default::default() }
    }

    fn get(&self, user: &[u8; 32]) -> Option<Option<u64>> {
        if !self.enabled {
            return None;
        }
        self.known.borrow().get(user).copied()
    }

    fn note_read(&self, user: &[u8; 32], nonce: Option<u64>) {
        if self.enabled {
            let mut known = self.known.borrow_mut();
            if known.len() >= Self::MAX_USERS {
                known.clear();
            }
            known.insert(*user, nonce);
        }
    }

    /// After a stored ledger raised `user`'s nonce to at least `nonce` (the table keeps the
    /// highest): a user not held stays unknown, to be read.
    fn note_stored(&self, user: &[u8; 32], nonce: u64) {
        if let Some(held) = self.known.borrow_mut().get_mut(user) {
            *held = Some(held.map_or(nonce, |h| h.max(nonce)));
        }
    }
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS ledgers (
    seq          INTEGER PRIMARY KEY,
    hash         BLOB NOT NULL,
    prev_hash    BLOB NOT NULL,
    time_ms      INTEGER NOT NULL,
    n_inputs     INTEGER NOT NULL,
    ledger       BLOB NOT NULL,
    commit_cert  BLOB,
    result_cert  BLOB
);
CREATE TABLE IF NOT EXISTS committed_inputs (
    origin BLOB NOT NULL,
    nonce  INTEGER NOT NULL,
    seq    INTEGER NOT NULL,
    PRIMARY KEY (origin, nonce)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS pending_inputs (
    nonce       INTEGER PRIMARY KEY,
    user        BLOB NOT NULL,
    data        BLOB NOT NULL,
    signature   BLOB NOT NULL,
    user_signed BLOB
);
CREATE TABLE IF NOT EXISTS user_nonces (
    user  BLOB PRIMARY KEY,
    nonce INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS delivered_outputs (
    seq     INTEGER PRIMARY KEY,
    outputs BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS output_root_sigs (
    seq  INTEGER PRIMARY KEY,
    sigs BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS agreed_outcomes (
    seq     INTEGER PRIMARY KEY,
    outcome BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS wanted_outcomes (
    seq INTEGER PRIMARY KEY
);
CREATE TABLE IF NOT EXISTS hand_overs (
    seq INTEGER PRIMARY KEY
);
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
";

/// Stores a result certificate; the first one stored for a ledger stays.
const SET_RESULT: &str = "UPDATE ledgers SET result_cert = ?1 WHERE seq = ?2 AND result_cert IS NULL";
/// Notes that a ledger's agreed outcome is wanted from peers.
const NOTE_WANTED: &str = "INSERT OR IGNORE INTO wanted_outcomes (seq) VALUES (?1)";

/// Writes what is kept of ledger `seq`'s outcome and drops what is older than [`KEPT_OUTPUTS`].
fn keep_outcome(
    tx: &rusqlite::Transaction<'_>,
    seq: u64,
    agreed: Option<&Outcome>,
    released: Option<&[([u8; 32], Bytes)]>,
    root_sigs: &[RootSignature],
) -> Result<(), StoreError> {
    let seq = seq as i64;
    if !root_sigs.is_empty() {
        let mut bytes = Vec::with_capacity(root_sigs.len() * 96);
        for (key, sig) in root_sigs {
            bytes.extend_from_slice(key);
            bytes.extend_from_slice(sig);
        }
        tx.execute("INSERT OR REPLACE INTO output_root_sigs (seq, sigs) VALUES (?1, ?2)", params![seq, bytes])
            .map_err(sql("store root signatures"))?;
    }
    if let Some(outcome) = agreed {
        tx.execute(
            "INSERT OR REPLACE INTO agreed_outcomes (seq, outcome) VALUES (?1, ?2)",
            params![seq, outcome.encode()],
        )
        .map_err(sql("store outcome"))?;
        tx.execute("DELETE FROM wanted_outcomes WHERE seq = ?1", params![seq]).map_err(sql("forget wanted"))?;
    }
    if let Some(outputs) = released {
        tx.execute(
            "INSERT OR REPLACE INTO delivered_outputs (seq, outputs) VALUES (?1, ?2)",
            params![seq, crate::encode_outputs(outputs)],
        )
        .map_err(sql("store outputs"))?;
    }
    let oldest_dropped = seq - KEPT_OUTPUTS as i64;
    tx.execute("DELETE FROM delivered_outputs WHERE seq <= ?1", params![oldest_dropped])
        .map_err(sql("drop old outputs"))?;
    tx.execute("DELETE FROM output_root_sigs WHERE seq <= ?1", params![oldest_dropped])
        .map_err(sql("drop old root signatures"))?;
    tx.execute("DELETE FROM agreed_outcomes WHERE seq <= ?1", params![oldest_dropped])
        .map_err(sql("drop old outcomes"))?;
    tx.execute("DELETE FROM wanted_outcomes WHERE seq <= ?1", params![oldest_dropped])
        .map_err(sql("drop old wanted outcomes"))?;
    Ok(())
}

fn arr32(v: Vec<u8>, seq: u64, what: &str) -> Result<[u8; 32], StoreError> {
    v.try_into().map_err(|_| StoreError::Corrupt { seq, problem: format!("{what} is not 32 bytes") })
}

impl Store {
    /// Opens (creating if needed) the store for the network whose genesis is `genesis`.
    pub fn open(path: &Path, genesis: &Ledger) -> Result<Self, StoreError> {
        let open_err = |source| StoreError::Open { path: path.to_path_buf(), source };
        let conn = Connection::open(path).map_err(open_err)?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(open_err)?;
        conn.pragma_update(None, "synchronous", "FULL").map_err(open_err)?;
        conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(open_err)?;
        conn.execute_batch(SCHEMA).map_err(open_err)?;
        let store = Self { conn, nonces: NonceCache::new(true) };
        match store.meta("format")? {
            Some(FORMAT) => {}
            // A new store, or one written before formats were numbered (format 1).
            None if store.hash_at(0)?.is_none() => store.set_meta("format", FORMAT)?,
            None => return Err(StoreError::OldFormat { path: path.to_path_buf(), found: 1 }),
            Some(found) => return Err(StoreError::OldFormat { path: path.to_path_buf(), found }),
        }
        match store.hash_at(0)? {
            None => {
                store
                    .conn
                    .execute(
                        "INSERT INTO ledgers (seq, hash, prev_hash, time_ms, n_inputs, ledger) VALUES (0, ?1, ?2, 0, 0, ?3)",
                        params![genesis.hash().as_slice(), genesis.prev_hash.as_slice(), genesis.encode()],
                    )
                    .map_err(sql("store genesis"))?;
            }
            Some(hash) if hash != genesis.hash() => return Err(StoreError::ForeignGenesis),
            Some(_) => {}
        }
        // The nonce counter starts at the clock, so a node whose hist/ was wiped does not reuse
        // the identities of inputs it accepted before.
        if store.meta("next_nonce")?.is_none() {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_micros() as i64)
                .unwrap_or(1);
            store.set_meta("next_nonce", now)?;
        }
        Ok(store)
    }

    /// Opens an existing store read-only (operator commands).
    pub fn open_read_only(path: &Path) -> Result<Self, StoreError> {
        let open_err = |source| StoreError::Open { path: path.to_path_buf(), source };
        let conn = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(open_err)?;
        conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(open_err)?;
        Ok(Self { conn, nonces: NonceCache::new(false) })
    }

    fn meta(&self, key: &str) -> Result<Option<i64>, StoreError> {
        self.conn
            .query_row("SELECT value FROM meta WHERE key = ?1", params![key], |r| r.get(0))
            .optional()
            .map_err(sql("read meta"))
    }

    fn set_meta(&self, key: &str, value: i64) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = ?2",
                params![key, value],
            )
            .map_err(sql("write meta"))?;
        Ok(())
    }

    /// The hash of stored ledger `seq`.
    pub fn hash_at(&self, seq: u64) -> Result<Option<[u8; 32]>, StoreError> {
        let v: Option<Vec<u8>> = self
            .conn
            .query_row("SELECT hash FROM ledgers WHERE seq = ?1", params![seq as i64], |r| r.get(0))
            .optional()
            .map_err(sql("read ledger hash"))?;
        v.map(|v| arr32(v, seq, "hash")).transpose()
    }

    /// The last stored ledger.
    pub fn last(&self) -> Result<LedgerRecord, StoreError> {
        let seq: i64 =
            self.conn.query_row("SELECT MAX(seq) FROM ledgers", [], |r| r.get(0)).map_err(sql("read last seq"))?;
        self.get(seq as u64)?.ok_or(StoreError::Corrupt { seq: seq as u64, problem: "vanished".into() })
    }

    /// The ledger at `seq` with its certificates.
    pub fn get(&self, seq: u64) -> Result<Option<LedgerRecord>, StoreError> {
        type Row = (Vec<u8>, Vec<u8>, Option<Vec<u8>>, Option<Vec<u8>>);
        let row: Option<Row> = self
            .conn
            .prepare_cached("SELECT hash, ledger, commit_cert, result_cert FROM ledgers WHERE seq = ?1")
            .map_err(sql("read ledger"))?
            .query_row(params![seq as i64], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .optional()
            .map_err(sql("read ledger"))?;
        let Some((hash, ledger, commit, result)) = row else { return Ok(None) };
        let corrupt = |e: crate::codec::DecodeError| StoreError::Corrupt { seq, problem: e.to_string() };
        let ledger = Ledger::decode(&ledger).map_err(corrupt)?;
        if ledger.hash().as_slice() != hash.as_slice() {
            return Err(StoreError::Corrupt {
                seq,
                problem: "stored hash does not match the ledger's contents".into(),
            });
        }
        if ledger.seq != seq {
            return Err(StoreError::Corrupt { seq, problem: format!("holds ledger {}", ledger.seq) });
        }
        let commit = commit.map(|c| record::commit_from_bytes(&c)).transpose().map_err(corrupt)?;
        let result = result.map(|c| record::result_from_bytes(&c)).transpose().map_err(corrupt)?;
        Ok(Some(LedgerRecord { ledger, commit, result }))
    }

    /// Up to `max` records from `from` on.
    pub fn range(&self, from: u64, max: usize) -> Result<Vec<LedgerRecord>, StoreError> {
        let mut out = Vec::new();
        for seq in from..from.saturating_add(max as u64) {
            match self.get(seq)? {
                Some(r) => out.push(r),
                None => break,
            }
        }
        Ok(out)
    }

    /// Summary lines from `from` on (`hotpocket ledger`), checking each stored hash.
    pub fn summaries(&self, from: u64) -> Result<Vec<LedgerSummary>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT seq, hash, prev_hash, time_ms, n_inputs, commit_cert, result_cert, ledger FROM ledgers WHERE seq >= ?1 ORDER BY seq")
            .map_err(sql("list ledgers"))?;
        let rows = stmt
            .query_map(params![from as i64], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, Vec<u8>>(1)?,
                    r.get::<_, Vec<u8>>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, i64>(4)?,
                    r.get::<_, Option<Vec<u8>>>(5)?,
                    r.get::<_, Option<Vec<u8>>>(6)?,
                    r.get::<_, Vec<u8>>(7)?,
                ))
            })
            .map_err(sql("list ledgers"))?;
        let mut out = Vec::new();
        for row in rows {
            let (seq, hash, prev_hash, time_ms, n_inputs, commit, result, ledger) = row.map_err(sql("list ledgers"))?;
            let seq = seq as u64;
            let corrupt = |e: crate::codec::DecodeError| StoreError::Corrupt { seq, problem: e.to_string() };
            let signers =
                commit.map(|c| record::commit_from_bytes(&c)).transpose().map_err(corrupt)?.map(|c| c.signatures.len());
            let result = result.map(|c| record::result_from_bytes(&c)).transpose().map_err(corrupt)?;
            let ledger = Ledger::decode(&ledger).map_err(corrupt)?;
            out.push(LedgerSummary {
                seq,
                hash: arr32(hash, seq, "hash")?,
                prev_hash: arr32(prev_hash, seq, "prev_hash")?,
                time_ms: time_ms as u64,
                inputs: n_inputs as u64,
                state_hash: result.as_ref().map(|r| r.state_hash),
                outputs_hash: result.as_ref().map(|r| r.outputs_hash),
                signers: signers.unwrap_or(0) as u64,
                config_hash: ledger.config_hash,
                next_membership: ledger.next_membership.clone(),
            });
        }
        Ok(out)
    }

    /// Every stored record in order (`hotpocket verify`).
    pub fn all(&self) -> Result<Vec<LedgerRecord>, StoreError> {
        let last = self.last()?.ledger.seq;
        self.range(0, last as usize + 1)
    }

    /// Appends a decided ledger with its commit certificate, records its inputs as committed
    /// and drops them from this node's pending inputs — one durable transaction.
    pub fn append(&mut self, rec: &LedgerRecord) -> Result<(), StoreError> {
        let seq = rec.ledger.seq;
        let last = self.last()?;
        if seq != last.ledger.seq + 1 {
            return Err(StoreError::NotNext { seq, last: last.ledger.seq });
        }
        if rec.ledger.prev_hash != last.ledger.hash() {
            return Err(StoreError::BadLink { seq });
        }
        let mut noted: Vec<([u8; 32], u64)> = Vec::new();
        let tx = self.conn.transaction().map_err(sql("begin append"))?;
        tx.execute(
            "INSERT INTO ledgers (seq, hash, prev_hash, time_ms, n_inputs, ledger, commit_cert, result_cert) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                seq as i64,
                rec.ledger.hash().as_slice(),
                rec.ledger.prev_hash.as_slice(),
                rec.ledger.time_ms as i64,
                rec.ledger.inputs.len() as i64,
                rec.ledger.encode(),
                rec.commit.as_ref().map(record::commit_bytes),
                rec.result.as_ref().map(record::result_bytes),
            ],
        )
        .map_err(sql("insert ledger"))?;
        if rec.ledger.next_membership.is_some() {
            tx.execute("INSERT OR IGNORE INTO hand_overs (seq) VALUES (?1)", params![seq as i64])
                .map_err(sql("note hand-over"))?;
        }
        {
            let mut mark = tx
                .prepare_cached("INSERT OR IGNORE INTO committed_inputs (origin, nonce, seq) VALUES (?1, ?2, ?3)")
                .map_err(sql("mark inputs"))?;
            for input in &rec.ledger.inputs {
                mark.execute(params![input.id.origin.as_slice(), input.id.nonce as i64, seq as i64])
                    .map_err(sql("mark input"))?;
            }
            // The users' nonces only grow (crate::user_signed): note the highest of each user.
            let mut nonce = tx
                .prepare_cached(
                    "INSERT INTO user_nonces (user, nonce) VALUES (?1, ?2)
                     ON CONFLICT(user) DO UPDATE SET nonce = MAX(nonce, excluded.nonce)",
                )
                .map_err(sql("note user nonce"))?;
            let mut highest: std::collections::BTreeMap<&[u8; 32], u64> = Default::default();
            for input in &rec.ledger.inputs {
                let Some(signed) = &input.user_signed else { continue };
                // A ledger that reached the store was judged valid: its containers parse.
                let Ok(container) = parse_container(signed.format, &signed.container) else { continue };
                let entry = highest.entry(&input.user).or_default();
                *entry = (*entry).max(container.nonce);
            }
            for (user, highest) in highest {
                let value = i64::try_from(highest).unwrap_or(i64::MAX);
                nonce.execute(params![user.as_slice(), value]).map_err(sql("note user nonce"))?;
                noted.push((*user, highest));
            }
        }
        tx.commit().map_err(sql("commit append"))?;
        for (user, highest) in &noted {
            self.nonces.note_stored(user, *highest);
        }
        Ok(())
    }

    /// The chain's epochs, from `genesis` (hp.cfg's UNL) through every hand-over stored: which
    /// members close which ledgers. One indexed read per hand-over, not a walk of the chain.
    pub fn epochs(&self, genesis: crate::Membership) -> Result<crate::Epochs, StoreError> {
        let seqs: Vec<i64> = {
            let mut stmt =
                self.conn.prepare("SELECT seq FROM hand_overs ORDER BY seq").map_err(sql("read hand-overs"))?;
            stmt.query_map([], |row| row.get(0))
                .map_err(sql("read hand-overs"))?
                .collect::<Result<_, _>>()
                .map_err(sql("read hand-overs"))?
        };
        let mut epochs = crate::Epochs::new(genesis);
        for seq in seqs {
            let seq = seq as u64;
            let record = self.get(seq)?.ok_or_else(|| StoreError::Corrupt {
                seq,
                problem: "a hand-over is noted at a ledger that is not stored".into(),
            })?;
            let members = record.ledger.next_membership.clone().ok_or_else(|| StoreError::Corrupt {
                seq,
                problem: "a hand-over is noted at a ledger that carries none".into(),
            })?;
            epochs.hand_over(seq, members);
        }
        Ok(epochs)
    }

    /// Stores the result certificate of ledger `cert.height`.
    pub fn set_result(&self, cert: &ResultCertificate) -> Result<(), StoreError> {
        self.conn
            .execute(SET_RESULT, params![record::result_bytes(cert), cert.height as i64])
            .map_err(sql("store result"))?;
        Ok(())
    }

    /// Stores the result certificate of ledger `cert.height` together with what this node keeps
    /// of its outcome, in one transaction: the agreed outcome (this node's own when it matched
    /// the certificate), which peers that could not compute it may ask for
    /// ([`Self::agreed_outcome`]), and the users' outputs this node is about to deliver, so that
    /// a node killed right after can hand them over again ([`Self::outputs_after`]). What is
    /// kept of ledgers more than [`KEPT_OUTPUTS`] behind is dropped in the same transaction.
    pub fn set_result_with_outcome(
        &mut self,
        cert: &ResultCertificate,
        agreed: Option<&Outcome>,
        released: Option<&[([u8; 32], Bytes)]>,
        root_sigs: &[RootSignature],
    ) -> Result<(), StoreError> {
        let tx = self.conn.transaction().map_err(sql("begin result"))?;
        tx.execute(SET_RESULT, params![record::result_bytes(cert), cert.height as i64]).map_err(sql("store result"))?;
        keep_outcome(&tx, cert.height, agreed, released, root_sigs)?;
        tx.commit().map_err(sql("commit result"))?;
        Ok(())
    }

    /// Keeps the outcome of ledger `seq` (certified already) that this node got from a peer,
    /// and the outputs it releases of it; see [`Self::set_result_with_outcome`].
    pub fn keep_outcome(
        &mut self,
        seq: u64,
        agreed: &Outcome,
        released: &[([u8; 32], Bytes)],
        root_sigs: &[RootSignature],
    ) -> Result<(), StoreError> {
        let tx = self.conn.transaction().map_err(sql("begin outcome"))?;
        keep_outcome(&tx, seq, Some(agreed), Some(released), root_sigs)?;
        tx.commit().map_err(sql("commit outcome"))?;
        Ok(())
    }

    /// Stores the result certificate of ledger `cert.height`, whose outcome this node could not
    /// compute itself, and notes in the same transaction that the outcome is wanted from peers:
    /// a node restarted before it arrives asks again ([`Self::wanted_outcomes`]).
    pub fn set_result_wanting_outcome(&mut self, cert: &ResultCertificate) -> Result<(), StoreError> {
        let tx = self.conn.transaction().map_err(sql("begin result"))?;
        tx.execute(SET_RESULT, params![record::result_bytes(cert), cert.height as i64]).map_err(sql("store result"))?;
        tx.execute(NOTE_WANTED, params![cert.height as i64]).map_err(sql("store wanted"))?;
        tx.commit().map_err(sql("commit result"))?;
        Ok(())
    }

    /// Notes that the outcomes of the certified ledgers `seqs` are wanted from peers.
    pub fn want_outcomes(&mut self, seqs: &[u64]) -> Result<(), StoreError> {
        let tx = self.conn.transaction().map_err(sql("begin wanted"))?;
        for seq in seqs {
            tx.execute(NOTE_WANTED, params![*seq as i64]).map_err(sql("store wanted"))?;
        }
        tx.commit().map_err(sql("commit wanted"))?;
        Ok(())
    }

    /// Forgets that ledger `seq`'s outcome is wanted (given up). Keeping the outcome
    /// ([`Self::keep_outcome`]) forgets it too.
    pub fn forget_wanted_outcome(&self, seq: u64) -> Result<(), StoreError> {
        self.conn
            .execute("DELETE FROM wanted_outcomes WHERE seq = ?1", params![seq as i64])
            .map_err(sql("forget wanted"))?;
        Ok(())
    }

    /// The ledgers whose outcomes are wanted from peers, oldest first.
    pub fn wanted_outcomes(&self) -> Result<Vec<u64>, StoreError> {
        let mut stmt =
            self.conn.prepare_cached("SELECT seq FROM wanted_outcomes ORDER BY seq").map_err(sql("read wanted"))?;
        let rows = stmt.query_map([], |r| r.get::<_, i64>(0)).map_err(sql("read wanted"))?;
        rows.map(|row| row.map(|seq| seq as u64).map_err(sql("read wanted"))).collect()
    }

    /// The canonical bytes of ledger `seq`'s agreed outcome ([`Outcome::encode`]), if kept.
    pub fn agreed_outcome(&self, seq: u64) -> Result<Option<Vec<u8>>, StoreError> {
        self.conn
            .prepare_cached("SELECT outcome FROM agreed_outcomes WHERE seq = ?1")
            .map_err(sql("read outcome"))?
            .query_row(params![seq as i64], |r| r.get(0))
            .optional()
            .map_err(sql("read outcome"))
    }

    /// The root signatures stored with ledger `seq`'s outputs (unchecked: whoever uses them
    /// verifies them against the root and the UNL); empty when none were kept.
    pub fn output_root_sigs(&self, seq: u64) -> Result<Vec<RootSignature>, StoreError> {
        let bytes: Option<Vec<u8>> = self
            .conn
            .prepare_cached("SELECT sigs FROM output_root_sigs WHERE seq = ?1")
            .map_err(sql("read root signatures"))?
            .query_row(params![seq as i64], |r| r.get(0))
            .optional()
            .map_err(sql("read root signatures"))?;
        let bytes = bytes.unwrap_or_default();
        if !bytes.len().is_multiple_of(96) {
            return Err(StoreError::Corrupt { seq, problem: "stored root signatures are cut".into() });
        }
        Ok(bytes
            .chunks_exact(96)
            .filter_map(|c| Some((<[u8; 32]>::try_from(&c[..32]).ok()?, <[u8; 64]>::try_from(&c[32..]).ok()?)))
            .collect())
    }

    /// The outputs stored by [`Self::set_result_with_outcome`] and [`Self::keep_outcome`] for ledgers after `after` up to
    /// `up_to`, oldest first; ledgers whose outputs were not kept are absent.
    pub fn outputs_after(&self, after: u64, up_to: u64) -> Result<Vec<(u64, crate::UserOutputs)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT seq, outputs FROM delivered_outputs WHERE seq > ?1 AND seq <= ?2 ORDER BY seq")
            .map_err(sql("read outputs"))?;
        let rows = stmt
            .query_map(params![after as i64, up_to as i64], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?)))
            .map_err(sql("read outputs"))?;
        let mut out = Vec::new();
        for row in rows {
            let (seq, bytes) = row.map_err(sql("read outputs"))?;
            let seq = seq as u64;
            let outputs = crate::decode_outputs(&bytes)
                .map_err(|e| StoreError::Corrupt { seq, problem: format!("stored outputs: {e}") })?;
            out.push((seq, outputs));
        }
        Ok(out)
    }

    /// Whether an input instance is already in a stored ledger.
    pub fn is_committed(&self, id: &InputId) -> Result<bool, StoreError> {
        let found: Option<i64> = self
            .conn
            .prepare_cached("SELECT seq FROM committed_inputs WHERE origin = ?1 AND nonce = ?2")
            .map_err(sql("check input"))?
            .query_row(params![id.origin.as_slice(), id.nonce as i64], |r| r.get(0))
            .optional()
            .map_err(sql("check input"))?;
        Ok(found.is_some())
    }

    /// The highest nonce of `user`'s signed inputs in the stored ledgers.
    pub fn user_nonce(&self, user: &[u8; 32]) -> Result<Option<u64>, StoreError> {
        if let Some(nonce) = self.nonces.get(user) {
            return Ok(nonce);
        }
        let nonce = self
            .conn
            .query_row("SELECT nonce FROM user_nonces WHERE user = ?1", params![user.as_slice()], |r| {
                r.get::<_, i64>(0)
            })
            .optional()
            .map(|n| n.map(|n| u64::try_from(n).unwrap_or(0)))
            .map_err(sql("read user nonce"))?;
        self.nonces.note_read(user, nonce);
        Ok(nonce)
    }

    /// Durably accepts inputs from users, in one transaction: each gets a fresh identity
    /// `(origin, nonce)`, `origin` being the holder of `key`, who signs it for network
    /// `network`. Returns them in the order given.
    pub fn accept_inputs<I: Into<NewInput>>(
        &mut self,
        key: &ed25519_dalek::SigningKey,
        network: &hp_consensus::NetworkId,
        inputs: Vec<I>,
    ) -> Result<Vec<Input>, StoreError> {
        let origin = key.verifying_key().to_bytes();
        let own_max: Option<i64> = self
            .conn
            .query_row("SELECT MAX(nonce) FROM committed_inputs WHERE origin = ?1", params![origin.as_slice()], |r| {
                r.get(0)
            })
            .map_err(sql("read nonce"))?;
        let mut next = self.meta("next_nonce")?.unwrap_or(1).max(own_max.map(|m| m + 1).unwrap_or(0));
        let tx = self.conn.transaction().map_err(sql("begin accept"))?;
        let mut accepted = Vec::with_capacity(inputs.len());
        {
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO pending_inputs (nonce, user, data, signature, user_signed) VALUES (?1, ?2, ?3, ?4, ?5)",
                )
                .map_err(sql("accept input"))?;
            for NewInput { user, data, user_signed } in inputs.into_iter().map(Into::into) {
                let stored_signed = user_signed.as_ref().map(user_signed_bytes);
                let input = Input::sign_with(network, next as u64, user, data, user_signed, key);
                insert
                    .execute(params![
                        next,
                        user.as_slice(),
                        input.data.as_ref(),
                        input.signature.to_bytes().as_slice(),
                        stored_signed
                    ])
                    .map_err(sql("accept input"))?;
                accepted.push(input);
                next += 1;
            }
        }
        tx.execute(
            "INSERT INTO meta (key, value) VALUES ('next_nonce', ?1) ON CONFLICT(key) DO UPDATE SET value = ?1",
            params![next],
        )
        .map_err(sql("advance nonce"))?;
        tx.commit().map_err(sql("commit accept"))?;
        Ok(accepted)
    }

    /// This node's accepted inputs that no stored ledger carries yet, oldest first.
    pub fn pending_inputs(&self, origin: [u8; 32]) -> Result<Vec<Input>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT p.nonce, p.user, p.data, p.signature, p.user_signed FROM pending_inputs p
                 WHERE NOT EXISTS (SELECT 1 FROM committed_inputs c WHERE c.origin = ?1 AND c.nonce = p.nonce)
                 ORDER BY p.nonce",
            )
            .map_err(sql("read pending"))?;
        let rows = stmt
            .query_map(params![origin.as_slice()], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, Vec<u8>>(1)?,
                    r.get::<_, Vec<u8>>(2)?,
                    r.get::<_, Vec<u8>>(3)?,
                    r.get::<_, Option<Vec<u8>>>(4)?,
                ))
            })
            .map_err(sql("read pending"))?;
        let mut out = Vec::new();
        for row in rows {
            let (nonce, user, data, signature, stored_signed) = row.map_err(sql("read pending"))?;
            let user_signed = match stored_signed {
                None => None,
                Some(bytes) => Some(user_signed_from(&bytes).ok_or_else(|| StoreError::Corrupt {
                    seq: 0,
                    problem: "a pending input's user signature is malformed".into(),
                })?),
            };
            let signature: [u8; 64] = signature.try_into().map_err(|_| StoreError::Corrupt {
                seq: 0,
                problem: "a pending input's signature is not 64 bytes".into(),
            })?;
            out.push(Input {
                id: InputId { origin, nonce: nonce as u64 },
                user: arr32(user, 0, "pending user")?,
                data: Bytes::from(data),
                signature: ed25519_dalek::Signature::from_bytes(&signature),
                user_signed,
            });
        }
        Ok(out)
    }

    /// Forgets pending inputs that are now in ledgers (housekeeping after appends).
    pub fn prune_pending(&self, origin: [u8; 32]) -> Result<usize, StoreError> {
        self.conn
            .execute(
                "DELETE FROM pending_inputs WHERE nonce IN (SELECT nonce FROM committed_inputs WHERE origin = ?1)",
                params![origin.as_slice()],
            )
            .map_err(sql("prune pending"))
    }
}

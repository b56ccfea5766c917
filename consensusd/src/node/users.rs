//! The userd session: connected users, and inputs made durable before they are acknowledged.
//!
//! Inputs are collected while the loop drains its queue and stored in one transaction (one
//! fsync for all of them), then signed as one batch, gossiped, and acknowledged: an
//! acknowledged input is *accepted* (docs/consensus.md). Under overload (the inputs waiting for a
//! ledger past `max_pending_input_bytes`) new inputs are refused with a reason instead, so that
//! memory stays bounded and users know to try again.

use super::{Node, mempool};
use crate::api::{FromUserd, ToUserd};
use crate::metrics::RefusedReason;
use crate::wire;
use bytes::Bytes;
use hp_ledger::InputBatch;
use std::collections::{BTreeSet, HashMap};
use tokio::sync::mpsc;
use tracing::{info, warn};

/// What a user whose input is refused for overload is told (userd sends it as an error frame).
const BUSY: &str = "the node is busy: the inputs waiting for a ledger reached max_pending_input_bytes; try again later";
/// What a user who sends an input to an observer is told: only validators vouch for inputs.
const OBSERVER: &str = "this node is an observer: it takes no inputs; send them to a validator";

/// The userd session and who is connected, here and at the peers.
#[derive(Default)]
pub(super) struct Users {
    pub session: Option<Session>,
    /// Users connected to this node's userd.
    pub local: BTreeSet<[u8; 32]>,
    /// Users each peer says are connected there (unsigned: they only fill the room left in a
    /// ledger's user list).
    pub of_peers: HashMap<usize, Vec<[u8; 32]>>,
    /// Inputs collected while the loop drains its queue, stored together.
    pub pending_submits: Vec<Submit>,
    /// A userd session opened and its user snapshot has not arrived yet.
    pub awaiting_snapshot: bool,
    /// Users' inputs are being refused: the pending inputs reached their limit.
    pub refusing_inputs: bool,
}

pub(super) struct Session {
    pub id: u64,
    pub tx: mpsc::Sender<ToUserd>,
}

pub(super) struct Submit {
    pub request_id: u64,
    pub user: [u8; 32],
    pub data: Bytes,
    pub signed: Option<hp_ledger::user_signed::UserSigned>,
    pub opened: Option<hp_ledger::user_signed::Opened>,
}

impl Node {
    pub(super) fn on_session_opened(&mut self, id: u64, tx: mpsc::Sender<ToUserd>) {
        info!(session = id, "userd session opened");
        // A new session replaces the old one; its snapshot will say who is connected.
        self.users.session = Some(Session { id, tx });
        self.users.local.clear();
        self.users.awaiting_snapshot = true;
    }

    pub(super) fn on_session_closed(&mut self, id: u64) {
        if self.users.session.as_ref().is_some_and(|s| s.id == id) {
            info!(session = id, "userd session closed");
            self.users.session = None;
            self.users.local.clear();
            self.broadcast_status();
        }
    }

    pub(super) fn on_session_message(&mut self, id: u64, message: FromUserd) {
        if self.users.session.as_ref().is_none_or(|s| s.id != id) {
            return;
        }
        match message {
            FromUserd::Snapshot { users, delivered_through } => {
                self.users.local = users.into_iter().collect();
                self.users.awaiting_snapshot = false;
                self.hand_over_released(delivered_through);
                self.broadcast_status();
            }
            FromUserd::Connected(user) => {
                self.users.local.insert(user);
                self.broadcast_status();
            }
            FromUserd::Disconnected(user) => {
                self.users.local.remove(&user);
                self.broadcast_status();
            }
            FromUserd::Input { request_id, user, data, signed, opened } => {
                self.users.pending_submits.push(Submit { request_id, user, data, signed, opened })
            }
            FromUserd::Refused { request_id, reason } => {
                self.metrics.refused(RefusedReason::of_edge(reason), None);
                self.ack(request_id, false, reason)
            }
        }
    }

    /// Makes the collected inputs durable in one transaction, gossips them, acknowledges them.
    pub(super) fn flush_submits(&mut self) {
        if self.users.pending_submits.is_empty() {
            return;
        }
        let mut submits = std::mem::take(&mut self.users.pending_submits);
        if self.me().is_none() {
            for s in &submits {
                self.ack(s.request_id, false, OBSERVER);
            }
            return;
        }
        let refused = self.admit(&mut submits);
        for s in &refused {
            self.metrics.refused(RefusedReason::PendingFull, Some(s.data.len()));
            self.ack(s.request_id, false, BUSY);
        }
        if submits.is_empty() {
            return;
        }
        let items: Vec<hp_ledger::NewInput> = submits
            .iter()
            .map(|s| hp_ledger::NewInput { user: s.user, data: s.data.clone(), user_signed: s.signed.clone() })
            .collect();
        let (key, network) = (&self.cfg.key, &self.cfg.network);
        let accepted = match tokio::task::block_in_place(|| self.store.accept_inputs(key, network, items)) {
            Ok(a) => a,
            Err(e) => {
                warn!(error = %e, "cannot store inputs; refusing them");
                for s in &submits {
                    self.metrics.refused(RefusedReason::Store, Some(s.data.len()));
                    self.ack(s.request_id, false, "the node could not store the input");
                }
                return;
            }
        };
        let batch = InputBatch::sign(&self.cfg.network, accepted, &self.cfg.key);
        if self.delivery.fresh_start {
            self.delivery.accepted_while_fresh.extend(batch.inputs.iter().map(|i| i.id));
        }
        self.peers.broadcast(&wire::inputs(&batch));
        // Accepted in the order given: the service opened each user-signed one already.
        for (input, submit) in batch.inputs.into_iter().zip(&submits) {
            match submit.opened {
                Some(opened) if input.user_signed.is_some() => self.mempool.insert_opened(input, Ok(opened)),
                _ => self.mempool.insert(input),
            };
        }
        for s in &submits {
            self.metrics.inputs_accepted.inc();
            self.metrics.input_bytes_accepted.inc_by(s.data.len() as u64);
            self.ack(s.request_id, true, "");
        }
        self.try_propose(false);
    }

    /// Admission control: keeps the submits that fit under `max_pending_input_bytes`, in
    /// arrival order, and returns the rest (from the first that does not fit: a user's later
    /// input is not taken while an earlier one was turned away).
    fn admit(&mut self, submits: &mut Vec<Submit>) -> Vec<Submit> {
        let limit = self.cfg.max_pending_input_bytes;
        let mut footprint = self.mempool.footprint();
        let fits = submits
            .iter()
            .take_while(|s| {
                footprint += s.data.len() + mempool::PER_INPUT_COST;
                footprint <= limit
            })
            .count();
        let refused = submits.split_off(fits);
        match (refused.is_empty(), self.users.refusing_inputs) {
            (false, false) => {
                warn!(
                    pending = self.mempool.len(),
                    pending_bytes = self.mempool.bytes(),
                    limit,
                    "inputs waiting for a ledger reached max_pending_input_bytes; refusing users' new inputs"
                );
                self.users.refusing_inputs = true;
            }
            (true, true) => {
                info!(pending = self.mempool.len(), "accepting users' inputs again");
                self.users.refusing_inputs = false;
            }
            _ => {}
        }
        refused
    }

    fn ack(&mut self, request_id: u64, accepted: bool, reason: &str) {
        let verdict = if accepted { Ok(()) } else { Err(reason.to_string()) };
        self.send_to_session(ToUserd::Ack { request_id, verdict });
    }

    pub(super) fn send_to_session(&mut self, message: ToUserd) {
        if let Some(session) = &self.users.session
            && session.tx.try_send(message).is_err()
        {
            warn!(session = session.id, "userd session is not keeping up; closing it");
            self.users.session = None;
        }
    }

    /// Sends one peer this node's own accepted inputs that no ledger carries yet.
    pub(super) fn send_own_inputs_to(&mut self, validator: usize) {
        let me = self.me_bytes();
        let own = self.mempool.from_origin(&me);
        for chunk in own.chunks(4096) {
            let batch = InputBatch::sign(&self.cfg.network, chunk.to_vec(), &self.cfg.key);
            self.peers.send(validator, &wire::inputs(&batch));
        }
    }
}

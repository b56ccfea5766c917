//! What the node loop and its local gRPC service (`service`) say to each other, as plain
//! types: the service checks and converts what crosses the process boundary, so the node never
//! sees protobuf, a malformed key or an input past `pubmaxsize`, and answers on plain channels
//! that the service maps back to protobuf.

use bytes::Bytes;
use hp_ledger::user_signed::{Opened, UserSigned};
use tokio::sync::{mpsc, oneshot};

/// A user's public key.
pub type UserKey = [u8; 32];

/// What the service hands the node loop.
#[derive(Debug)]
pub enum ApiEvent {
    /// userd opened a session; what the node says to it goes to `to_userd`. A new session
    /// replaces the old one.
    SessionOpened {
        session: u64,
        to_userd: mpsc::Sender<ToUserd>,
    },
    /// Messages of an open session, in the order userd sent them.
    FromUserd {
        session: u64,
        messages: Vec<FromUserd>,
    },
    SessionClosed {
        session: u64,
    },
    /// Someone (userd, `hotpocket status`) asks where the node stands.
    Status(oneshot::Sender<NodeStatus>),
}

/// What userd tells the node, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FromUserd {
    /// Who is connected as the session starts, and the last ledger whose outputs this userd
    /// process received (0 for none). Malformed keys are left out.
    Snapshot {
        users: Vec<UserKey>,
        delivered_through: u64,
    },
    Connected(UserKey),
    Disconnected(UserKey),
    /// A user's input, within `pubmaxsize`; with what the user signed for a HotPocket 0.6
    /// input (its signature and container checked, `data` the container's input).
    Input {
        request_id: u64,
        user: UserKey,
        data: Bytes,
        signed: Option<UserSigned>,
        /// What the service read from `signed` (checked there, so the node need not again).
        opened: Option<Opened>,
    },
    /// An input the service refused at the edge: the node only answers it, in order with the
    /// other acks.
    Refused {
        request_id: u64,
        reason: &'static str,
    },
}

/// What the node tells userd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToUserd {
    /// The input `request_id` is accepted (durable and gossiped), or refused with a reason for
    /// the user.
    Ack { request_id: u64, verdict: Result<(), String> },
    /// The certified outputs of ledger `seq` for the users connected to this userd: one batch
    /// per released ledger, in order, empty when none is for them.
    Outputs { seq: u64, outputs: Vec<(UserKey, Bytes)>, proof: Option<OutputsProof>, framing: hp_ledger::Framing },
    /// What became of user-signed inputs this node accepted (by their hashes), the same for
    /// each: in ledger `(seq, hash)`, or given up with hpcore's reason.
    InputStatus { input_hashes: Vec<[u8; 32]>, fate: Result<(u64, [u8; 32]), String> },
}

/// What a HotPocket 0.6 client checks its outputs of one ledger against
/// (`hp_ledger::output_proof`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputsProof {
    pub ledger_hash: [u8; 32],
    /// Every user of the ledger's outcome with their output hash, users sorted.
    pub leaves: Vec<(UserKey, [u8; 32])>,
    /// UNL members' signatures over the root, each checked.
    pub signatures: Vec<(UserKey, [u8; 64])>,
}

/// Where the node stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeStatus {
    pub lcl_seq: u64,
    pub lcl_hash: [u8; 32],
    pub state_hash: [u8; 32],
    /// Authenticated peer connections.
    pub peers: usize,
    /// Users connected to this node.
    pub users: usize,
    pub in_sync: bool,
    /// Since this node last stored a closed ledger.
    pub since_close: std::time::Duration,
    /// The members in force: those of the height the node runs.
    pub members: hp_ledger::Membership,
    /// Whether this node is one of them.
    pub validator: bool,
    /// How the proposals of the last ledger that had any reached this node.
    pub proposal_health: Option<crate::node::health::ProposalHealth>,
    /// The roundtime rounds run by.
    pub roundtime: std::time::Duration,
    /// The agreed config's contract version, once this node's run has named it.
    pub contract_version: Option<String>,
}

//! Peer frames ↔ domain messages. Decoding checks everything a frame claims before the node
//! loop sees it: field sizes, canonical ledger bytes, and the signature of whoever signed the
//! payload (which need not be the peer that relayed it). The conversions are explicit and name
//! the message and field that was wrong.

use bytes::Bytes;
use ed25519_dalek::{Signature, VerifyingKey};
use hp_consensus::{NetworkId, Proposal, ResultVote, Vote, VoteKind};
use hp_ledger::user_signed::{Opened, Rejection, open_inputs};
use hp_ledger::{Epochs, InputBatch, Ledger, LedgerRecord, Outcome};
use hp_proto::v1::peer::{self as pb, frame::Kind};

/// A verified message from a peer.
#[derive(Debug, Clone)]
pub enum PeerMessage {
    /// A batch, and for each of its inputs what opening it gave if its user signed it (done
    /// here, on the link's task, so the node loop does not check user signatures itself).
    Inputs(InputBatch, Vec<Option<Result<Opened, Rejection>>>),
    Proposal(Proposal<Ledger>),
    Vote(Vote),
    /// A result vote, with the voter's signature over that ledger's output root if it sent one
    /// (checked by the node against the root of the agreed outcome).
    Result(ResultVote, Option<Box<[u8; 64]>>),
    Status(PeerStatus),
    LedgerRequest {
        request_id: u64,
        from_seq: u64,
        max_count: u32,
    },
    LedgerReply {
        request_id: u64,
        records: Vec<LedgerRecord>,
    },
    StateManifestRequest(pb::StateManifestRequest),
    StateManifestReply(pb::StateManifestReply),
    StateChunkRequest(pb::StateChunkRequest),
    StateChunkReply(pb::StateChunkReply),
    OutcomeRequest {
        seq: u64,
    },
    /// `None`: the peer does not keep that ledger's outcome.
    OutcomeReply {
        seq: u64,
        outcome: Option<Outcome>,
    },
    /// A node party line message, its signature checked (never reaches the consensus loop).
    Npl(NplMessage),
}

/// What a UNL member's contract wrote to its node party line during round `seq`, signed by
/// that member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NplMessage {
    pub seq: u64,
    pub lcl_hash: [u8; 32],
    pub sender: [u8; 32],
    pub data: Bytes,
}

const NPL_TAG: &[u8] = b"hotpocket/npl/v1";

impl NplMessage {
    /// What the sender signs: network, round, previous ledger and the data, under their own
    /// tag (no other signed message can be taken for one).
    fn signing_hash(&self, network: &NetworkId) -> [u8; 32] {
        hp_ledger::tagged_hash(NPL_TAG, &[&network.0, &self.seq.to_be_bytes(), &self.lcl_hash, &self.data])
    }
}

/// Where a peer stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerStatus {
    pub lcl_seq: u64,
    pub lcl_hash: [u8; 32],
    pub height: u64,
    pub round: u32,
    /// Users connected to the peer.
    pub users: Vec<[u8; 32]>,
}

/// Why a frame was refused.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("empty frame")]
    Empty,
    #[error("{message}.{field}: {problem}")]
    Field { message: &'static str, field: &'static str, problem: String },
    #[error("{message}: signature does not verify (by the claimed UNL member, in this network)")]
    Signature { message: &'static str },
    #[error("{message}: {problem}")]
    Decode { message: &'static str, problem: String },
    #[error("{message} for height {height}: not signed by the members this node knows for it (not stored yet?)")]
    Unverifiable { message: &'static str, height: u64 },
    #[error("{message}: the sender is not a UNL member")]
    NotMember { message: &'static str },
}

fn field(message: &'static str, field: &'static str, problem: impl Into<String>) -> WireError {
    WireError::Field { message, field, problem: problem.into() }
}

fn hash32(message: &'static str, name: &'static str, b: &[u8]) -> Result<[u8; 32], WireError> {
    b.try_into().map_err(|_| field(message, name, format!("must be 32 bytes, found {}", b.len())))
}

fn sig64(message: &'static str, b: &[u8]) -> Result<Signature, WireError> {
    Signature::from_slice(b).map_err(|_| field(message, "signature", "must be 64 bytes"))
}

/// The most connected users one node may announce.
pub const MAX_USERS_PER_STATUS: usize = 1_000_000;

/// The most ledgers one catch-up reply may carry.
pub const MAX_LEDGERS_PER_REPLY: usize = 256;

/// Whose signatures count: the chain's epochs as this node knows them, and the last ledger
/// whose members it knows for sure (the one after its last stored ledger). A message for a
/// later height is checked against the latest members; if they did not sign it, it is
/// [`WireError::Unverifiable`], not forged: the network may have handed over at a ledger this
/// node has not stored yet.
pub struct Signers<'a> {
    pub epochs: &'a Epochs,
    pub known_through: u64,
}

impl Signers<'_> {
    /// The members' keys at `height`.
    fn keys(&self, height: u64) -> &[VerifyingKey] {
        self.epochs.members_at(height).keys()
    }

    /// The UNL keys messages that carry no height (inputs, NPL) are signed with: the latest.
    fn current(&self) -> &[VerifyingKey] {
        self.epochs.latest().members.keys()
    }

    /// A signer's index at `height`, checked to be in that height's UNL.
    fn index(&self, message: &'static str, height: u64, v: u32) -> Result<usize, WireError> {
        let n = self.keys(height).len();
        if (v as usize) < n {
            Ok(v as usize)
        } else if height > self.known_through {
            Err(WireError::Unverifiable { message, height })
        } else {
            Err(field(message, "validator", format!("{v} is outside the UNL of {n}")))
        }
    }

    /// What a signature check at `height` means.
    fn checked<E>(&self, message: &'static str, height: u64, verified: Result<(), E>) -> Result<(), WireError> {
        match verified {
            Ok(()) => Ok(()),
            Err(_) if height > self.known_through => Err(WireError::Unverifiable { message, height }),
            Err(_) => Err(WireError::Signature { message }),
        }
    }
}

impl WireError {
    /// Whether the frame says nothing of the peer's honesty: signed by members this node does
    /// not know yet, or sent by a peer that is no member (any more, or yet). Such a frame is
    /// dropped and the link kept; any other bad frame closes the link.
    pub fn is_about_membership(&self) -> bool {
        matches!(self, WireError::Unverifiable { .. } | WireError::NotMember { .. })
    }
}

/// The epoch (its first ledger) a consensus message was checked against; `None` for messages
/// that carry no height. The node drops one checked against other members than those it
/// holds for that height by the time it reads it.
pub fn epoch_of(message: &PeerMessage, epochs: &Epochs) -> Option<u64> {
    consensus_height(message).map(|height| epochs.at(height).first_seq)
}

/// The height a signed consensus message is about: its members' signatures count for it.
pub fn consensus_height(message: &PeerMessage) -> Option<u64> {
    match message {
        PeerMessage::Proposal(p) => Some(p.height),
        PeerMessage::Vote(v) => Some(v.height),
        PeerMessage::Result(v, _) => Some(v.height),
        _ => None,
    }
}

/// Decodes and verifies a frame: every signature must be by a UNL key and made in `network`.
pub fn decode(frame: pb::Frame, network: &NetworkId, signers: &Signers<'_>) -> Result<PeerMessage, WireError> {
    match frame.kind.ok_or(WireError::Empty)? {
        Kind::Inputs(b) => {
            let origin = hash32("InputBatch", "origin", &b.origin)?;
            if !signers.current().iter().any(|k| k.to_bytes() == origin) {
                return Err(WireError::NotMember { message: "InputBatch" });
            }
            let batch = InputBatch::decode_verified(network, &origin, &b.inputs, &b.signature)
                .map_err(|e| WireError::Decode { message: "InputBatch", problem: e.to_string() })?;
            let opened = open_inputs(&batch.inputs);
            Ok(PeerMessage::Inputs(batch, opened))
        }
        Kind::Proposal(p) => {
            let ledger = Ledger::decode(&p.ledger)
                .map_err(|e| WireError::Decode { message: "Proposal", problem: e.to_string() })?;
            let valid_round = match p.valid_round {
                -1 => None,
                r if (0..=u32::MAX as i64).contains(&r) => Some(r as u32),
                r => return Err(field("Proposal", "valid_round", format!("{r} is not a round"))),
            };
            if ledger.seq != p.height {
                return Err(field("Proposal", "ledger", "sequence differs from the height"));
            }
            let proposal = Proposal {
                height: p.height,
                round: p.round,
                value: ledger,
                valid_round,
                proposer: signers.index("Proposal", p.height, p.proposer)?,
                signature: sig64("Proposal", &p.signature)?,
            };
            signers.checked("Proposal", p.height, proposal.verify(network, signers.keys(p.height)))?;
            Ok(PeerMessage::Proposal(proposal))
        }
        Kind::Vote(v) => {
            let kind = match v.kind {
                1 => VoteKind::Prevote,
                2 => VoteKind::Precommit,
                k => return Err(field("Vote", "kind", format!("{k} is not 1 (prevote) or 2 (precommit)"))),
            };
            let value = if v.value.is_empty() { None } else { Some(hash32("Vote", "value", &v.value)?) };
            let vote = Vote {
                kind,
                height: v.height,
                round: v.round,
                value,
                validator: signers.index("Vote", v.height, v.validator)?,
                signature: sig64("Vote", &v.signature)?,
            };
            signers.checked("Vote", v.height, vote.verify(network, signers.keys(v.height)))?;
            Ok(PeerMessage::Vote(vote))
        }
        Kind::Result(r) => {
            let vote = ResultVote {
                height: r.height,
                state_hash: hash32("ResultVote", "state_hash", &r.state_hash)?,
                outputs_hash: hash32("ResultVote", "outputs_hash", &r.outputs_hash)?,
                validator: signers.index("ResultVote", r.height, r.validator)?,
                signature: sig64("ResultVote", &r.signature)?,
            };
            signers.checked("ResultVote", r.height, vote.verify(network, signers.keys(r.height)))?;
            let root_sig = match r.output_root_sig.len() {
                0 => None,
                _ => Some(Box::new(sig64("ResultVote", &r.output_root_sig)?.to_bytes())),
            };
            Ok(PeerMessage::Result(vote, root_sig))
        }
        Kind::Status(s) => Ok(PeerMessage::Status(PeerStatus {
            lcl_seq: s.lcl_seq,
            lcl_hash: hash32("Status", "lcl_hash", &s.lcl_hash)?,
            height: s.height,
            round: s.round,
            users: {
                if s.users.len() > MAX_USERS_PER_STATUS {
                    return Err(field("Status", "users", "too many"));
                }
                s.users.iter().map(|u| hash32("Status", "users", u)).collect::<Result<Vec<_>, _>>()?
            },
        })),
        Kind::LedgerRequest(r) => {
            Ok(PeerMessage::LedgerRequest { request_id: r.request_id, from_seq: r.from_seq, max_count: r.max_count })
        }
        Kind::LedgerReply(r) => {
            if r.records.len() > MAX_LEDGERS_PER_REPLY {
                return Err(field("LedgerReply", "records", "too many"));
            }
            let records = r
                .records
                .iter()
                .map(|b| LedgerRecord::decode(b))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| WireError::Decode { message: "LedgerReply", problem: e.to_string() })?;
            // Certificates are checked against the chain by the catch-up code, in order.
            Ok(PeerMessage::LedgerReply { request_id: r.request_id, records })
        }
        Kind::StateManifestRequest(r) => Ok(PeerMessage::StateManifestRequest(r)),
        Kind::StateManifestReply(r) => Ok(PeerMessage::StateManifestReply(r)),
        Kind::StateChunkRequest(r) => Ok(PeerMessage::StateChunkRequest(r)),
        Kind::StateChunkReply(r) => Ok(PeerMessage::StateChunkReply(r)),
        Kind::OutcomeRequest(r) => Ok(PeerMessage::OutcomeRequest { seq: r.seq }),
        Kind::OutcomeReply(r) => {
            let outcome = if r.outcome.is_empty() {
                None
            } else {
                // Checked against the result certificate by the node.
                Some(
                    Outcome::decode(&r.outcome)
                        .map_err(|e| WireError::Decode { message: "OutcomeReply", problem: e.to_string() })?,
                )
            };
            Ok(PeerMessage::OutcomeReply { seq: r.seq, outcome })
        }
        Kind::Npl(m) => {
            if m.data.len() > hp_cfg::config::MAX_NPL_MESSAGE {
                return Err(field("Npl", "data", format!("{} bytes, more than the limit", m.data.len())));
            }
            let sender = hash32("Npl", "sender", &m.sender)?;
            let key = signers
                .current()
                .iter()
                .find(|k| k.to_bytes() == sender)
                .ok_or(WireError::NotMember { message: "Npl" })?;
            let message =
                NplMessage { seq: m.seq, lcl_hash: hash32("Npl", "lcl_hash", &m.lcl_hash)?, sender, data: m.data };
            key.verify_strict(&message.signing_hash(network), &sig64("Npl", &m.signature)?)
                .map_err(|_| WireError::Signature { message: "Npl" })?;
            Ok(PeerMessage::Npl(message))
        }
        // The link layer consumes heartbeats ([`is_heartbeat`]); one this far is out of place.
        Kind::Heartbeat(_) => Err(WireError::Empty),
    }
}

/// A link-level heartbeat ([`crate::peer::HEARTBEAT`]).
pub fn heartbeat() -> pb::Frame {
    frame(Kind::Heartbeat(pb::Heartbeat {}))
}

pub fn is_heartbeat(frame: &pb::Frame) -> bool {
    matches!(frame.kind, Some(Kind::Heartbeat(_)))
}

fn frame(kind: Kind) -> pb::Frame {
    pb::Frame { kind: Some(kind) }
}

pub fn inputs(batch: &InputBatch) -> pb::Frame {
    frame(Kind::Inputs(pb::InputBatch {
        origin: Bytes::copy_from_slice(&batch.origin),
        inputs: InputBatch::encode_inputs(&batch.inputs).into(),
        signature: Bytes::copy_from_slice(&batch.signature.to_bytes()),
    }))
}

pub fn proposal(p: &Proposal<Ledger>) -> pb::Frame {
    frame(Kind::Proposal(pb::Proposal {
        height: p.height,
        round: p.round,
        valid_round: p.valid_round.map(i64::from).unwrap_or(-1),
        proposer: p.proposer as u32,
        ledger: p.value.encode().into(),
        signature: Bytes::copy_from_slice(&p.signature.to_bytes()),
    }))
}

pub fn vote(v: &Vote) -> pb::Frame {
    frame(Kind::Vote(pb::Vote {
        kind: match v.kind {
            VoteKind::Prevote => 1,
            VoteKind::Precommit => 2,
        },
        height: v.height,
        round: v.round,
        value: v.value.map(|h| Bytes::copy_from_slice(&h)).unwrap_or_default(),
        validator: v.validator as u32,
        signature: Bytes::copy_from_slice(&v.signature.to_bytes()),
    }))
}

pub fn result(r: &ResultVote) -> pb::Frame {
    result_with_root(r, None)
}

/// A result vote with the voter's signature over the ledger's output root.
pub fn result_with_root(r: &ResultVote, root_sig: Option<&[u8; 64]>) -> pb::Frame {
    frame(Kind::Result(pb::ResultVote {
        height: r.height,
        state_hash: Bytes::copy_from_slice(&r.state_hash),
        outputs_hash: Bytes::copy_from_slice(&r.outputs_hash),
        validator: r.validator as u32,
        signature: Bytes::copy_from_slice(&r.signature.to_bytes()),
        output_root_sig: root_sig.map(|s| Bytes::copy_from_slice(s)).unwrap_or_default(),
    }))
}

pub fn status(s: &PeerStatus) -> pb::Frame {
    frame(Kind::Status(pb::Status {
        lcl_seq: s.lcl_seq,
        lcl_hash: Bytes::copy_from_slice(&s.lcl_hash),
        height: s.height,
        round: s.round,
        users: s.users.iter().map(|u| Bytes::copy_from_slice(u)).collect(),
    }))
}

pub fn ledger_request(request_id: u64, from_seq: u64, max_count: u32) -> pb::Frame {
    frame(Kind::LedgerRequest(pb::LedgerRequest { request_id, from_seq, max_count }))
}

pub fn ledger_reply(request_id: u64, records: &[LedgerRecord]) -> pb::Frame {
    frame(Kind::LedgerReply(pb::LedgerReply {
        request_id,
        records: records.iter().map(|r| Bytes::from(r.encode())).collect(),
    }))
}

pub fn outcome_request(seq: u64) -> pb::Frame {
    frame(Kind::OutcomeRequest(pb::OutcomeRequest { seq }))
}

/// This node's NPL message, signed with its key.
///
/// ```text
/// signed := SHA-256( u32 len(tag) | "hotpocket/npl/v1" | network id | u64 seq | [32] lcl_hash | data )
/// ```
pub fn npl(message: &NplMessage, key: &ed25519_dalek::SigningKey, network: &NetworkId) -> pb::Frame {
    use ed25519_dalek::Signer;
    let signature = key.sign(&message.signing_hash(network));
    frame(Kind::Npl(pb::Npl {
        seq: message.seq,
        lcl_hash: Bytes::copy_from_slice(&message.lcl_hash),
        data: message.data.clone(),
        sender: Bytes::copy_from_slice(&message.sender),
        signature: Bytes::copy_from_slice(&signature.to_bytes()),
    }))
}

/// `outcome`: canonical bytes as stored, empty when not kept.
pub fn outcome_reply(seq: u64, outcome: Vec<u8>) -> pb::Frame {
    frame(Kind::OutcomeReply(pb::OutcomeReply { seq, outcome: outcome.into() }))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use ed25519_dalek::SigningKey;

    fn keys() -> (Vec<SigningKey>, Epochs) {
        let signing: Vec<SigningKey> = (1..=3u8).map(|b| SigningKey::from_bytes(&[b; 32])).collect();
        (signing.clone(), Epochs::new(members(&signing)))
    }

    fn members(keys: &[SigningKey]) -> hp_ledger::Membership {
        let unl = keys.iter().map(|k| k.verifying_key().to_bytes()).collect();
        hp_ledger::Membership::new(unl, keys.len()).unwrap()
    }

    fn vote_by(key: &SigningKey, index: usize, height: u64, network: &NetworkId) -> pb::Frame {
        vote(&Vote::sign(network, VoteKind::Prevote, height, 0, None, index, key))
    }

    fn message(sender: &SigningKey) -> NplMessage {
        NplMessage {
            seq: 7,
            lcl_hash: [5; 32],
            sender: sender.verifying_key().to_bytes(),
            data: Bytes::from_static(b"hello"),
        }
    }

    #[test]
    fn an_npl_message_decodes_only_with_its_senders_signature_in_this_network_and_within_the_size() {
        let (signing, epochs) = keys();
        let unl = Signers { epochs: &epochs, known_through: u64::MAX };
        let network = NetworkId([9; 32]);
        let good = npl(&message(&signing[0]), &signing[0], &network);
        assert!(matches!(decode(good.clone(), &network, &unl), Ok(PeerMessage::Npl(m)) if m == message(&signing[0])));
        // Another network's, another member's signature under this one's name, a stranger's.
        assert!(decode(good, &NetworkId([8; 32]), &unl).is_err());
        let forged = npl(&message(&signing[0]), &signing[1], &network);
        assert!(matches!(decode(forged, &network, &unl), Err(WireError::Signature { .. })));
        let stranger = SigningKey::from_bytes(&[42; 32]);
        assert!(matches!(
            decode(npl(&message(&stranger), &stranger, &network), &network, &unl),
            Err(WireError::NotMember { .. })
        ));
        // A signed message for one round is not one for another.
        let mut moved = npl(&message(&signing[0]), &signing[0], &network);
        if let Some(Kind::Npl(m)) = moved.kind.as_mut() {
            m.seq += 1;
        }
        assert!(decode(moved, &network, &unl).is_err());
        let mut big = message(&signing[0]);
        big.data = Bytes::from(vec![0; hp_cfg::config::MAX_NPL_MESSAGE + 1]);
        assert!(decode(npl(&big, &signing[0], &network), &network, &unl).is_err());
    }

    #[test]
    fn a_vote_is_checked_against_the_members_of_its_height() {
        let (old, mut epochs) = keys();
        let network = NetworkId([9; 32]);
        let stranger = SigningKey::from_bytes(&[42; 32]);
        // Ledger 10 hands over: the stranger replaces member 0 from ledger 11 on.
        let new = vec![stranger.clone(), old[1].clone(), old[2].clone()];
        epochs.hand_over(10, members(&new));
        let knows = Signers { epochs: &epochs, known_through: 11 };
        assert!(decode(vote_by(&old[0], 0, 10, &network), &network, &knows).is_ok(), "the old members close 10");
        assert!(decode(vote_by(&stranger, 0, 11, &network), &network, &knows).is_ok(), "the new ones 11");
        assert!(matches!(
            decode(vote_by(&old[0], 0, 11, &network), &network, &knows),
            Err(WireError::Signature { .. })
        ));
        // A node that has not stored ledger 10 yet cannot tell a forgery from a hand-over.
        let (_, genesis_only) = keys();
        let lagging = Signers { epochs: &genesis_only, known_through: 10 };
        let error = decode(vote_by(&stranger, 0, 11, &network), &network, &lagging).unwrap_err();
        assert!(error.is_about_membership(), "{error}");
        let error = decode(vote_by(&stranger, 0, 10, &network), &network, &lagging).unwrap_err();
        assert!(!error.is_about_membership(), "{error}");
        assert_eq!(
            epoch_of(&decode(vote_by(&stranger, 0, 11, &network), &network, &knows).unwrap(), &epochs),
            Some(11)
        );
    }
}

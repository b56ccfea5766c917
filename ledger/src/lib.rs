//! Ledgers and the chain they form: what a ledger contains, its canonical bytes and hash, the
//! signed input batches nodes gossip, offline verification of a whole chain, and the durable
//! ledger store in `hist/`.
//!
//! One canonical encoding serves hashing, storage and the peer wire, so a ledger means the same
//! bytes everywhere. Every decoder bounds lengths by the bytes actually present before it
//! allocates: all of this data may come from a peer.
//!
//! # Layout
//! - [`codec`]: the bounded big-endian reader and writer under every encoding here.
//! - [`input`]: user inputs, their node-assigned identity, and signed input batches.
//! - [`ledger`]: the ledger, its hash, the genesis ledger.
//! - [`membership`]: the UNL and quorum a ledger was closed under, and hand-overs.
//! - [`output_proof`]: the Merkle tree and root HotPocket 0.6 clients check outputs against.
//! - [`outputs`]: a round's outcome (outputs + exit status) and its hash.
//! - [`record`]: a stored ledger with its commit and result certificates.
//! - [`chain`]: offline verification of a chain against the UNL (`hotpocket verify`).
//! - [`store`]: the SQLite ledger store.
//! - [`user_signed`]: inputs the user signed (HotPocket 0.6) and their replay rules.

pub mod chain;
pub mod codec;
pub mod input;
pub mod ledger;
pub mod membership;
pub mod output_proof;
pub mod outputs;
pub mod record;
pub mod store;
pub mod user_signed;

pub use hp_consensus::{Hash, NetworkId};
pub use input::{Input, InputBatch, InputId};
pub use ledger::{Ledger, LedgerBody, ResultSummary};
pub use membership::{Epoch, Epochs, Membership, MembershipError};
pub use outputs::{ExitKind, Framing, Outcome, UserOutputs, decode_outputs, encode_outputs};
pub use record::LedgerRecord;
pub use store::{NewInput, Store, StoreError};

/// SHA-256 of a domain tag followed by `parts`.
pub fn tagged_hash(tag: &[u8], parts: &[&[u8]]) -> Hash {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    hasher.update((tag.len() as u32).to_be_bytes());
    hasher.update(tag);
    for part in parts {
        hasher.update(part);
    }
    hasher.finalize().into()
}

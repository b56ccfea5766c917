//! User inputs as consensus sees them.
//!
//! Each input a node accepts from a user gets an identity of its own, [`InputId`]: the
//! accepting node's key and a number that node never reuses. The identity — not the bytes —
//! is what "exactly once" counts: the same instance is never executed twice, while a user who
//! sends the same bytes twice gets two instances.
//!
//! Nodes gossip their accepted inputs as an [`InputBatch`] signed by the accepting node, so any
//! node may relay a batch and every receiver can still check where it came from. The signature
//! covers the network id too, so a batch of one network is refused by every other:
//!
//! ```text
//! digest := SHA-256( u32 len(tag) | tag "hotpocket/input-batch/v2" | [32] network_id | [32] origin
//!                  | u32 n_inputs | input* )
//! ```

use crate::codec::{DecodeError, Reader, Writer};
use crate::tagged_hash;
use bytes::Bytes;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use hp_consensus::NetworkId;

/// The most bytes one input may have on the wire, whatever a node's `pubmaxsize`.
pub const MAX_INPUT_BYTES: usize = 256 * 1024 * 1024;
/// The most inputs one batch may carry.
pub const MAX_BATCH_INPUTS: usize = 1 << 20;
/// Encoded size of an input with no data: origin, nonce, user, length.
pub(crate) const MIN_INPUT_SIZE: usize = 32 + 8 + 32 + 4;

const BATCH_TAG: &[u8] = b"hotpocket/input-batch/v2";

/// The identity of one accepted input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InputId {
    /// Public key of the node that accepted the input from its user.
    pub origin: [u8; 32],
    /// A number the origin node never reuses (see the store's nonce counter).
    pub nonce: u64,
}

/// One user input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Input {
    pub id: InputId,
    /// The user's public key.
    pub user: [u8; 32],
    pub data: Bytes,
}

impl Input {
    pub(crate) fn encode_into(&self, w: &mut Writer) {
        w.fixed(&self.id.origin).u64(self.id.nonce).fixed(&self.user).bytes(&self.data);
    }

    pub(crate) fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let origin = r.array::<32>("input origin")?;
        let nonce = r.u64("input nonce")?;
        let user = r.array::<32>("input user")?;
        let data = Bytes::copy_from_slice(r.bytes("input data", MAX_INPUT_BYTES)?);
        Ok(Self { id: InputId { origin, nonce }, user, data })
    }

    /// Bytes this input takes in a ledger.
    pub fn encoded_len(&self) -> usize {
        MIN_INPUT_SIZE + self.data.len()
    }
}

/// Inputs accepted by one node, signed by it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InputBatch {
    pub origin: [u8; 32],
    pub inputs: Vec<Input>,
    pub signature: Signature,
}

impl InputBatch {
    /// Encodes the inputs (the bytes that are signed, without the tag).
    pub fn encode_inputs(inputs: &[Input]) -> Vec<u8> {
        let mut w = Writer::with_capacity(inputs.iter().map(Input::encoded_len).sum::<usize>() + 4);
        w.u32(inputs.len() as u32);
        for input in inputs {
            input.encode_into(&mut w);
        }
        w.finish()
    }

    fn signed_digest(network: &NetworkId, origin: &[u8; 32], encoded_inputs: &[u8]) -> [u8; 32] {
        tagged_hash(BATCH_TAG, &[network.as_bytes(), origin, encoded_inputs])
    }

    /// Signs `inputs` in `network` as accepted by the holder of `key`. Every input's origin must
    /// be that key.
    pub fn sign(network: &NetworkId, inputs: Vec<Input>, key: &SigningKey) -> Self {
        let origin = key.verifying_key().to_bytes();
        let digest = Self::signed_digest(network, &origin, &Self::encode_inputs(&inputs));
        Self { origin, inputs, signature: key.sign(&digest) }
    }

    /// Decodes a batch from the wire and checks it: the signature by `origin` in `network`, and
    /// that every input claims that same origin (a node may only vouch for inputs it accepted
    /// itself).
    pub fn decode_verified(
        network: &NetworkId,
        origin: &[u8; 32],
        encoded_inputs: &[u8],
        signature: &[u8],
    ) -> Result<Self, DecodeError> {
        let invalid = |problem: &str| DecodeError::Invalid { what: "input batch", problem: problem.to_string() };
        let key = VerifyingKey::from_bytes(origin).map_err(|_| invalid("origin is not a public key"))?;
        let signature = Signature::from_slice(signature).map_err(|_| invalid("signature is malformed"))?;
        let digest = Self::signed_digest(network, origin, encoded_inputs);
        key.verify(&digest, &signature).map_err(|_| {
            invalid(&format!("signature does not verify for origin {} in network {network}", hex::encode(origin)))
        })?;
        let mut r = Reader::new(encoded_inputs);
        let n = r.count("input batch count", MIN_INPUT_SIZE, MAX_BATCH_INPUTS)?;
        let mut inputs = Vec::with_capacity(n);
        for _ in 0..n {
            let input = Input::decode_from(&mut r)?;
            if input.id.origin != *origin {
                return Err(invalid("an input claims another origin"));
            }
            inputs.push(input);
        }
        r.finish()?;
        Ok(Self { origin: *origin, inputs, signature })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const NET: NetworkId = NetworkId([0x4e; 32]);
    const OTHER_NET: NetworkId = NetworkId([0x0f; 32]);

    fn key() -> SigningKey {
        SigningKey::generate(&mut rand::rngs::OsRng)
    }

    fn input(origin: [u8; 32], nonce: u64, data: &[u8]) -> Input {
        Input { id: InputId { origin, nonce }, user: [7; 32], data: Bytes::copy_from_slice(data) }
    }

    #[test]
    fn signed_batch_verifies_after_the_wire() {
        let k = key();
        let origin = k.verifying_key().to_bytes();
        let batch = InputBatch::sign(&NET, vec![input(origin, 1, b"a"), input(origin, 2, b"")], &k);
        let bytes = InputBatch::encode_inputs(&batch.inputs);
        let back = InputBatch::decode_verified(&NET, &origin, &bytes, &batch.signature.to_bytes()).unwrap();
        assert_eq!(back, batch);
    }

    #[test]
    fn a_batch_signed_for_one_network_is_refused_in_another() {
        let k = key();
        let origin = k.verifying_key().to_bytes();
        let batch = InputBatch::sign(&NET, vec![input(origin, 1, b"a")], &k);
        let bytes = InputBatch::encode_inputs(&batch.inputs);
        let err = InputBatch::decode_verified(&OTHER_NET, &origin, &bytes, &batch.signature.to_bytes()).unwrap_err();
        assert!(err.to_string().contains(&format!("in network {OTHER_NET}")), "{err}");
        assert!(InputBatch::decode_verified(&NET, &origin, &bytes, &batch.signature.to_bytes()).is_ok());
    }

    #[test]
    fn tampered_or_foreign_batches_are_refused() {
        let k = key();
        let origin = k.verifying_key().to_bytes();
        let batch = InputBatch::sign(&NET, vec![input(origin, 1, b"abc")], &k);
        let mut bytes = InputBatch::encode_inputs(&batch.inputs);
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        assert!(InputBatch::decode_verified(&NET, &origin, &bytes, &batch.signature.to_bytes()).is_err());
        // A node cannot vouch for inputs of another origin.
        let other = [9u8; 32];
        let forged = InputBatch::sign(&NET, vec![input(other, 1, b"x")], &k);
        let bytes = InputBatch::encode_inputs(&forged.inputs);
        assert!(InputBatch::decode_verified(&NET, &origin, &bytes, &forged.signature.to_bytes()).is_err());
    }

    #[test]
    fn forged_counts_do_not_allocate() {
        let k = key();
        let origin = k.verifying_key().to_bytes();
        let mut bytes = vec![0xff, 0xff, 0xff, 0xff];
        bytes.extend_from_slice(&[0u8; 10]);
        let sig = k.sign(&InputBatch::signed_digest(&NET, &origin, &bytes));
        let err = InputBatch::decode_verified(&NET, &origin, &bytes, &sig.to_bytes()).unwrap_err();
        assert!(matches!(err, DecodeError::TooLong { .. }), "{err}");
    }
}

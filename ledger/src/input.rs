//! User inputs as consensus sees them.
//!
//! Each input a node accepts from a user gets an identity of its own, [`InputId`]: the
//! accepting node's key and a number that node never reuses. The identity — not the bytes —
//! is what "exactly once" counts: the same instance is never executed twice, while a user who
//! sends the same bytes twice gets two instances.
//!
//! The accepting node signs each input ([`Input::signature`], over [`Input::signed_digest`]),
//! and the signature travels with the input into the ledger: every node checks it before it
//! votes for a ledger (under ZIP 215's rules, as a batch: [`verify_origins`]), and anyone can
//! check it offline, so a faulty proposer can neither make up inputs under another node's
//! name nor put other bytes under a real input's identity.
//! Nodes gossip their accepted inputs as an [`InputBatch`], itself signed by the accepting
//! node, so any node may relay a batch and every receiver can still check where it came from.
//! Both signatures cover the network id, so nothing of one network is accepted by another:
//!
//! ```text
//! input := SHA-256( u32 len(tag) | tag "hotpocket/input/v1" | [32] network_id | [32] origin
//!                 | u64 nonce | [32] user | data [ | u8 format | [64] user_sig | container ] )
//! batch := SHA-256( u32 len(tag) | tag "hotpocket/input-batch/v2" | [32] network_id | [32] origin
//!                 | u32 n_inputs | input* )
//! ```

use crate::codec::{DecodeError, Reader, Writer};
use crate::tagged_hash;
use crate::user_signed::{ContainerFormat, MAX_CONTAINER_BYTES, UserSigned};
use bytes::Bytes;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use hp_consensus::NetworkId;

/// The most bytes one input may have on the wire, whatever a node's `pubmaxsize`.
pub const MAX_INPUT_BYTES: usize = 256 * 1024 * 1024;
/// The most inputs one batch may carry.
pub const MAX_BATCH_INPUTS: usize = 1 << 20;
/// Encoded size of an input with no data: origin, nonce, user, signature, length, kind.
pub(crate) const MIN_INPUT_SIZE: usize = 32 + 8 + 32 + 64 + 4 + 1;

const BATCH_TAG: &[u8] = b"hotpocket/input-batch/v2";
/// Domain tag of the origin's signature over one input.
pub const INPUT_TAG: &[u8] = b"hotpocket/input/v1";
/// Domain tag of the origin's signature over one input the user signed too.
pub const USER_SIGNED_INPUT_TAG: &[u8] = b"hotpocket/user-signed-input/v1";

/// Why an input's origin signature does not hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InputSignatureError {
    #[error("input {origin}/{nonce}: the origin is not a public key")]
    BadOrigin { origin: String, nonce: u64 },
    #[error("input {origin}/{nonce}: the origin's signature does not verify")]
    BadSignature { origin: String, nonce: u64 },
}

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
    /// The origin node's signature over [`Input::signed_digest`].
    pub signature: Signature,
    /// What the user signed, for an input of the HotPocket 0.6 protocol: `data` is then the
    /// container's input, and the replay rules of [`crate::user_signed`] apply.
    pub user_signed: Option<UserSigned>,
}

impl Input {
    /// What the origin signs: the network, the identity, the user and the bytes, and for a
    /// user-signed input what the user signed (the data's length is in the encoding, not here:
    /// a user-signed input's container has a fixed-length prefix that sets it apart, and the
    /// digest of every other input ends with the data).
    pub fn signed_digest(
        network: &NetworkId,
        id: &InputId,
        user: &[u8; 32],
        data: &[u8],
        user_signed: Option<&UserSigned>,
    ) -> [u8; 32] {
        let data_len = (data.len() as u64).to_be_bytes();
        match user_signed {
            None => tagged_hash(INPUT_TAG, &[network.as_bytes(), &id.origin, &id.nonce.to_be_bytes(), user, data]),
            Some(signed) => tagged_hash(
                USER_SIGNED_INPUT_TAG,
                &[
                    network.as_bytes(),
                    &id.origin,
                    &id.nonce.to_be_bytes(),
                    user,
                    &data_len,
                    data,
                    &[signed.format.code()],
                    &signed.signature,
                    &signed.container,
                ],
            ),
        }
    }

    /// An input accepted by the holder of `key` (its origin) in network `network`.
    pub fn sign(network: &NetworkId, nonce: u64, user: [u8; 32], data: Bytes, key: &SigningKey) -> Self {
        Self::sign_with(network, nonce, user, data, None, key)
    }

    /// An input accepted by the holder of `key`, with what the user signed if they did.
    pub fn sign_with(
        network: &NetworkId,
        nonce: u64,
        user: [u8; 32],
        data: Bytes,
        user_signed: Option<UserSigned>,
        key: &SigningKey,
    ) -> Self {
        let id = InputId { origin: key.verifying_key().to_bytes(), nonce };
        let signature = key.sign(&Self::signed_digest(network, &id, &user, &data, user_signed.as_ref()));
        Self { id, user, data, signature, user_signed }
    }

    /// Checks the origin's signature.
    pub fn verify(&self, network: &NetworkId) -> Result<(), InputSignatureError> {
        verify_one(network, self)
    }

    /// A user-signed input's bytes are its container's input (the replay rules refuse any
    /// other): they are not written a second time, and an encoding that carries them is not
    /// canonical.
    pub(crate) fn encode_into(&self, w: &mut Writer) {
        w.fixed(&self.id.origin).u64(self.id.nonce).fixed(&self.user).fixed(&self.signature.to_bytes());
        match &self.user_signed {
            None => {
                w.bytes(&self.data).u8(0);
            }
            Some(signed) => {
                w.bytes(&[]).u8(signed.format.code()).fixed(&signed.signature).bytes(&signed.container);
            }
        }
    }

    pub(crate) fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let origin = r.array::<32>("input origin")?;
        let nonce = r.u64("input nonce")?;
        let user = r.array::<32>("input user")?;
        let signature = Signature::from_bytes(&r.array::<64>("input signature")?);
        let data = r.bytes("input data", MAX_INPUT_BYTES)?;
        let user_signed = match r.u8("input kind")? {
            0 => None,
            code => {
                let format = ContainerFormat::from_code(code).ok_or_else(|| DecodeError::Invalid {
                    what: "input",
                    problem: format!("unknown input kind {code}"),
                })?;
                let signature = r.array::<64>("user signature")?;
                let container = Bytes::copy_from_slice(r.bytes("input container", MAX_CONTAINER_BYTES)?);
                Some(UserSigned { format, container, signature })
            }
        };
        let data = match &user_signed {
            None => Bytes::copy_from_slice(data),
            Some(_) if !data.is_empty() => {
                return Err(DecodeError::Invalid {
                    what: "input",
                    problem: "a user-signed input's data is written".into(),
                });
            }
            // The input is a slice of the container's bytes, shared, when it can be.
            Some(signed) => match crate::user_signed::parse_container(signed.format, &signed.container) {
                Ok(container) => crate::user_signed::input_bytes(&signed.container, container.input),
                Err(why) => return Err(DecodeError::Invalid { what: "input container", problem: why.to_string() }),
            },
        };
        Ok(Self { id: InputId { origin, nonce }, user, data, signature, user_signed })
    }

    /// Bytes this input takes in a ledger.
    pub fn encoded_len(&self) -> usize {
        match &self.user_signed {
            None => MIN_INPUT_SIZE + self.data.len(),
            Some(signed) => MIN_INPUT_SIZE + 64 + 4 + signed.container.len(),
        }
    }
}

/// Checks the origin signatures of `inputs`; names the first input that does not verify.
///
/// Origin signatures are checked under ZIP 215's rules (`ed25519-zebra`, as users' signatures
/// are, `crate::user_signed`), under which checking many signatures as one batch gives exactly
/// the verdict of checking each alone: every node, whether it checks a batch or one input, and
/// `hotpocket verify` reach the same verdict on every input, also on one a faulty node crafted.
/// The inputs are checked as one batch, which costs about a quarter of checking them one by
/// one: a batch has one origin, a ledger's inputs come from a few, and the batch coalesces the
/// terms of one key. Only when the batch fails are they checked one by one, to name the first
/// bad one. The batch's random coefficients only keep a forged signature from hiding in it;
/// they change no verdict.
pub fn verify_origins(network: &NetworkId, inputs: &[&Input]) -> Result<(), InputSignatureError> {
    if inputs.is_empty() {
        return Ok(());
    }
    let mut batch = ed25519_zebra::batch::Verifier::new();
    for input in inputs {
        let digest = Input::signed_digest(network, &input.id, &input.user, &input.data, input.user_signed.as_ref());
        batch.queue((
            ed25519_zebra::VerificationKeyBytes::from(input.id.origin),
            ed25519_zebra::Signature::from_bytes(&input.signature.to_bytes()),
            &digest[..],
        ));
    }
    if batch.verify(rand::rngs::OsRng).is_ok() {
        return Ok(());
    }
    inputs.iter().try_for_each(|input| verify_one(network, input))
}

/// Checks one input's origin signature (ZIP 215, the rules of [`verify_origins`]' batch).
fn verify_one(network: &NetworkId, input: &Input) -> Result<(), InputSignatureError> {
    let name = || (hex::encode(input.id.origin), input.id.nonce);
    let key = ed25519_zebra::VerificationKey::try_from(input.id.origin).map_err(|_| {
        let (origin, nonce) = name();
        InputSignatureError::BadOrigin { origin, nonce }
    })?;
    let digest = Input::signed_digest(network, &input.id, &input.user, &input.data, input.user_signed.as_ref());
    key.verify(&ed25519_zebra::Signature::from_bytes(&input.signature.to_bytes()), &digest).map_err(|_| {
        let (origin, nonce) = name();
        InputSignatureError::BadSignature { origin, nonce }
    })
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

    /// Decodes a batch from the wire and checks it: the signature by `origin` in `network`, that
    /// every input claims that same origin (a node may only vouch for inputs it accepted itself),
    /// and every input's own origin signature (what the input carries into a ledger).
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
        verify_origins(network, &inputs.iter().collect::<Vec<_>>()).map_err(|e| invalid(&e.to_string()))?;
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
        let signature = Signature::from_bytes(&[0; 64]);
        Input {
            id: InputId { origin, nonce },
            user: [7; 32],
            data: Bytes::copy_from_slice(data),
            signature,
            user_signed: None,
        }
    }

    #[test]
    fn an_input_verifies_only_as_its_origin_signed_it_in_its_network() {
        let k = key();
        let input = Input::sign(&NET, 5, [7; 32], Bytes::from_static(b"pay 10"), &k);
        assert_eq!(input.id.origin, k.verifying_key().to_bytes());
        assert!(input.verify(&NET).is_ok());
        assert!(input.verify(&OTHER_NET).is_err(), "accepted in another network");
        let other_bytes = Input { data: Bytes::from_static(b"pay 99"), ..input.clone() };
        assert!(matches!(other_bytes.verify(&NET), Err(InputSignatureError::BadSignature { .. })));
        let other_user = Input { user: [8; 32], ..input.clone() };
        assert!(other_user.verify(&NET).is_err());
        // Another node cannot make up an input under k's name.
        let forged = Input { id: input.id, ..Input::sign(&NET, 5, [7; 32], Bytes::from_static(b"pay 10"), &key()) };
        assert!(forged.verify(&NET).is_err());
        // What a ledger carries round-trips with the signature.
        let mut w = Writer::with_capacity(64);
        input.encode_into(&mut w);
        let bytes = w.finish();
        assert_eq!(Input::decode_from(&mut Reader::new(&bytes)).unwrap(), input);
    }

    #[test]
    fn a_user_signed_input_carries_its_bytes_once_in_its_container() {
        let (origin, user) = (key(), key());
        let container = br#"{"input":"pay 10","nonce":3,"max_ledger_seq_no":9}"#.to_vec();
        let signed = UserSigned {
            format: ContainerFormat::Json,
            signature: ed25519_dalek::Signer::sign(&user, &container).to_bytes(),
            container: container.clone().into(),
        };
        let input = Input::sign_with(
            &NET,
            5,
            user.verifying_key().to_bytes(),
            Bytes::from_static(b"pay 10"),
            Some(signed),
            &origin,
        );
        let mut w = Writer::with_capacity(64);
        input.encode_into(&mut w);
        let bytes = w.finish();
        assert_eq!(bytes.len(), input.encoded_len());
        assert_eq!(bytes.windows(6).filter(|w| *w == b"pay 10").count(), 1, "the input's bytes are written once");
        let decoded = Input::decode_from(&mut Reader::new(&bytes)).unwrap();
        assert_eq!(decoded, input);
        assert!(decoded.verify(&NET).is_ok());
        // The decoded bytes are the container's own, not a copy of them.
        let held = decoded.user_signed.as_ref().unwrap().container.as_ref().as_ptr_range();
        assert!(held.contains(&decoded.data.as_ptr()), "the input's bytes are a slice of its container");
        // An input with escapes in its JSON string still reads as the text it stands for.
        let escaped = br#"{"input":"say \"hi\"","nonce":4,"max_ledger_seq_no":9}"#.to_vec();
        let signed = UserSigned {
            format: ContainerFormat::Json,
            signature: ed25519_dalek::Signer::sign(&user, &escaped).to_bytes(),
            container: escaped.into(),
        };
        let quoted = Bytes::from_static(br#"say "hi""#);
        let input = Input::sign_with(&NET, 6, user.verifying_key().to_bytes(), quoted.clone(), Some(signed), &origin);
        let mut w = Writer::with_capacity(64);
        input.encode_into(&mut w);
        assert_eq!(Input::decode_from(&mut Reader::new(&w.finish())).unwrap().data, quoted);
        // The data written beside the container too is not the canonical form.
        let mut twice = Writer::with_capacity(64);
        twice.fixed(&input.id.origin).u64(5).fixed(&input.user).fixed(&input.signature.to_bytes()).bytes(b"pay 10");
        twice.u8(ContainerFormat::Json.code()).fixed(&input.user_signed.as_ref().unwrap().signature).bytes(&container);
        assert!(Input::decode_from(&mut Reader::new(&twice.finish())).is_err());
    }

    #[test]
    fn one_bad_origin_signature_among_many_is_refused_and_named() {
        let (a, b) = (key(), key());
        let good: Vec<Input> = (1..=40)
            .map(|n| Input::sign(&NET, n, [7; 32], Bytes::from(format!("input {n}")), if n % 3 == 0 { &b } else { &a }))
            .collect();
        assert_eq!(verify_origins(&NET, &good.iter().collect::<Vec<_>>()), Ok(()));
        assert!(verify_origins(&OTHER_NET, &good.iter().collect::<Vec<_>>()).is_err(), "accepted in another network");
        let name = |i: &Input| (hex::encode(i.id.origin), i.id.nonce);
        // Other bytes under a real signature, a signature by another key, no signature at all:
        // each alone makes the whole set fail, and the one at fault is named.
        let target = &good[23];
        let bads = [
            Input { data: Bytes::from_static(b"pay 99"), ..target.clone() },
            Input { id: target.id, ..Input::sign(&NET, target.id.nonce, target.user, target.data.clone(), &key()) },
            Input { signature: Signature::from_bytes(&[0; 64]), ..target.clone() },
        ];
        for bad in bads {
            let mut inputs = good.clone();
            inputs[23] = bad;
            let (origin, nonce) = name(&inputs[23]);
            assert_eq!(
                verify_origins(&NET, &inputs.iter().collect::<Vec<_>>()),
                Err(InputSignatureError::BadSignature { origin, nonce })
            );
            assert!(inputs[23].verify(&NET).is_err());
        }
        // An origin that is no public key.
        let mut inputs = good.clone();
        let not_a_key = (0u8..=255).map(|b| [b; 32]).find(|k| ed25519_zebra::VerificationKey::try_from(*k).is_err());
        inputs[5].id.origin = not_a_key.unwrap();
        assert!(matches!(
            verify_origins(&NET, &inputs.iter().collect::<Vec<_>>()),
            Err(InputSignatureError::BadOrigin { nonce: 6, .. })
        ));
        assert_eq!(verify_origins(&NET, &[]), Ok(()));
    }

    #[test]
    fn signed_batch_verifies_after_the_wire() {
        let k = key();
        let origin = k.verifying_key().to_bytes();
        let inputs = vec![
            Input::sign(&NET, 1, [7; 32], Bytes::from_static(b"a"), &k),
            Input::sign(&NET, 2, [7; 32], Bytes::new(), &k),
        ];
        let batch = InputBatch::sign(&NET, inputs, &k);
        let bytes = InputBatch::encode_inputs(&batch.inputs);
        let back = InputBatch::decode_verified(&NET, &origin, &bytes, &batch.signature.to_bytes()).unwrap();
        assert_eq!(back, batch);
    }

    #[test]
    fn a_batch_signed_for_one_network_is_refused_in_another() {
        let k = key();
        let origin = k.verifying_key().to_bytes();
        let batch = InputBatch::sign(&NET, vec![Input::sign(&NET, 1, [7; 32], Bytes::from_static(b"a"), &k)], &k);
        let bytes = InputBatch::encode_inputs(&batch.inputs);
        let err = InputBatch::decode_verified(&OTHER_NET, &origin, &bytes, &batch.signature.to_bytes()).unwrap_err();
        assert!(err.to_string().contains(&format!("in network {OTHER_NET}")), "{err}");
        assert!(InputBatch::decode_verified(&NET, &origin, &bytes, &batch.signature.to_bytes()).is_ok());
    }

    #[test]
    fn tampered_or_foreign_batches_are_refused() {
        let k = key();
        let origin = k.verifying_key().to_bytes();
        let batch = InputBatch::sign(&NET, vec![Input::sign(&NET, 1, [7; 32], Bytes::from_static(b"abc"), &k)], &k);
        let mut bytes = InputBatch::encode_inputs(&batch.inputs);
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        assert!(InputBatch::decode_verified(&NET, &origin, &bytes, &batch.signature.to_bytes()).is_err());
        // A node cannot vouch for inputs of another origin.
        let other = [9u8; 32];
        let forged = InputBatch::sign(&NET, vec![input(other, 1, b"x")], &k);
        let bytes = InputBatch::encode_inputs(&forged.inputs);
        assert!(InputBatch::decode_verified(&NET, &origin, &bytes, &forged.signature.to_bytes()).is_err());
        // A batch properly signed as a whole whose input lacks its own signature is refused.
        let unsigned = InputBatch::sign(&NET, vec![input(origin, 1, b"x")], &k);
        let bytes = InputBatch::encode_inputs(&unsigned.inputs);
        let err = InputBatch::decode_verified(&NET, &origin, &bytes, &unsigned.signature.to_bytes()).unwrap_err();
        assert!(err.to_string().contains("signature does not verify"), "{err}");
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

//! Inputs the user signed themselves (HotPocket 0.6, docs/hotpocket-protocol.md): the client
//! serializes an *input container* — the input, a nonce and the last ledger it may go into —
//! and signs those exact bytes. The container and the signature travel with the input into the
//! ledger, so every node, and anyone offline, checks that the user really sent it, and the
//! replay rules below are decided from the chain alone:
//!
//! - the user's nonces only grow: an input's nonce must exceed the highest nonce of that user in
//!   any earlier ledger, and a user's inputs within one ledger come in increasing nonce order
//!   (so a replayed container, on this node or another, never runs twice);
//! - `max_ledger_seq_no` bounds when it may run: a ledger at sequence `s` carries it only if
//!   `s <= max_ledger_seq_no`, and only if `max_ledger_seq_no <= (s - 1) + max_input_ledger_offset`
//!   (no input can stay valid for longer than the offset allows).
//!
//! Containers are JSON (`{"input":"…","nonce":N,"max_ledger_seq_no":M}`, the input a string) or
//! BSON (the input binary, the numbers int64), as the client's session protocol is.
//!
//! User signatures are checked under ZIP 215's rules (`ed25519-zebra`), under which checking a
//! batch of signatures at once gives exactly the verdict of checking each alone: a node that
//! receives a peer's batch of inputs checks their signatures together ([`open_inputs`]), at
//! about half the cost, and still agrees with every node (and `hotpocket verify`) that checks
//! them one by one. Inputs' origin signatures follow the same rules
//! ([`crate::input::verify_origins`]).

use bson::Bson;
use bytes::Bytes;
use ed25519_zebra::{Signature, VerificationKey, VerificationKeyBytes};

/// The largest container accepted: an input of the ledger's own limit plus the envelope.
pub const MAX_CONTAINER_BYTES: usize = crate::input::MAX_INPUT_BYTES + 1024;

/// How the container is serialized.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ContainerFormat {
    Json,
    Bson,
}

impl ContainerFormat {
    /// Its byte in the ledger encoding (0 means "not user-signed").
    pub fn code(self) -> u8 {
        match self {
            ContainerFormat::Json => 1,
            ContainerFormat::Bson => 2,
        }
    }

    pub fn from_code(code: u8) -> Option<Self> {
        match code {
            1 => Some(ContainerFormat::Json),
            2 => Some(ContainerFormat::Bson),
            _ => None,
        }
    }
}

/// What the user signed, as it travels with the input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserSigned {
    pub format: ContainerFormat,
    /// The exact bytes the user signed.
    pub container: Bytes,
    /// The user's Ed25519 signature over `container`.
    pub signature: [u8; 64],
}

/// A container's content. The input borrows the container's bytes where it can (a JSON string
/// without escapes, as clients write inputs): reading a container copies nothing then.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Container<'a> {
    pub input: std::borrow::Cow<'a, [u8]>,
    pub nonce: u64,
    pub max_ledger_seq: u64,
}

/// Why a user-signed input is not valid. The names are hpcore's reasons, which the client
/// shows (`contract_input_status`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("bad_sig")]
    BadSignature,
    #[error("bad_msg_format")]
    BadFormat,
    #[error("max_ledger_expired")]
    MaxLedgerExpired,
    #[error("max_ledger_offset_exceeded")]
    MaxLedgerOffsetExceeded,
    #[error("nonce_expired")]
    NonceExpired,
    #[error("already_submitted")]
    AlreadySubmitted,
}

impl UserSigned {
    /// The input's identity for the client: BLAKE3 of the signature.
    pub fn input_hash(&self) -> [u8; 32] {
        *blake3::hash(&self.signature).as_bytes()
    }

    /// Checks the user's signature (ZIP 215) and reads the container.
    pub fn open(&self, user: &[u8; 32]) -> Result<Container<'_>, Rejection> {
        let key = VerificationKey::try_from(*user).map_err(|_| Rejection::BadSignature)?;
        key.verify(&Signature::from_bytes(&self.signature), &self.container).map_err(|_| Rejection::BadSignature)?;
        parse_container(self.format, &self.container)
    }
}

/// Whether every one of `signed` is its user's signature (ZIP 215), checked as one batch. `false`
/// says only that at least one is not (or a key is no key): check them one by one to see which.
pub fn all_signed(signed: &[(&[u8; 32], &UserSigned)]) -> bool {
    let mut batch = ed25519_zebra::batch::Verifier::new();
    for (user, s) in signed {
        batch.queue((VerificationKeyBytes::from(**user), Signature::from_bytes(&s.signature), s.container.as_ref()));
    }
    !signed.is_empty() && batch.verify(rand::rngs::OsRng).is_ok()
}

/// Opens many inputs as [`open_input`] does each, with the users' signatures checked as one
/// batch; only when the batch fails are they checked one by one, to find which. The verdicts
/// are exactly [`open_input`]'s (ZIP 215). The batch's random coefficients only make a forged
/// signature fail to hide in it; they change no verdict.
pub fn open_inputs(inputs: &[crate::Input]) -> Vec<Option<Result<Opened, Rejection>>> {
    let signed: Vec<(&[u8; 32], &UserSigned)> =
        inputs.iter().filter_map(|i| i.user_signed.as_ref().map(|s| (&i.user, s))).collect();
    let all_valid = all_signed(&signed);
    inputs
        .iter()
        .map(|input| {
            let signed = input.user_signed.as_ref()?;
            let container =
                if all_valid { parse_container(signed.format, &signed.container) } else { signed.open(&input.user) };
            Some(container.and_then(|c| opened(input, c)))
        })
        .collect()
}

fn opened(input: &crate::Input, c: Container<'_>) -> Result<Opened, Rejection> {
    if c.input.as_ref() != input.data.as_ref() {
        return Err(Rejection::BadFormat);
    }
    Ok(Opened { nonce: c.nonce, max_ledger_seq: c.max_ledger_seq })
}

/// Reads a container; anything but the three fields with their types is a bad format.
pub fn parse_container(format: ContainerFormat, bytes: &[u8]) -> Result<Container<'_>, Rejection> {
    if bytes.len() > MAX_CONTAINER_BYTES {
        return Err(Rejection::BadFormat);
    }
    let (input, nonce, max_ledger_seq) = match format {
        ContainerFormat::Json => {
            // Read straight into the three fields (others are ignored); a field given twice
            // is a bad format, not a choice between two values.
            let c: JsonContainer = serde_json::from_slice(bytes).map_err(|_| Rejection::BadFormat)?;
            let input = match c.input {
                std::borrow::Cow::Borrowed(text) => std::borrow::Cow::Borrowed(text.as_bytes()),
                std::borrow::Cow::Owned(text) => std::borrow::Cow::Owned(text.into_bytes()),
            };
            (input, c.nonce, c.max_ledger_seq_no)
        }
        ContainerFormat::Bson => {
            let doc = bson::Document::from_reader(bytes).map_err(|_| Rejection::BadFormat)?;
            let input = match doc.get("input") {
                Some(Bson::Binary(b)) => std::borrow::Cow::Owned(b.bytes.clone()),
                Some(Bson::String(s)) => std::borrow::Cow::Owned(s.as_bytes().to_vec()),
                _ => return Err(Rejection::BadFormat),
            };
            let number = |field: &str| match doc.get(field) {
                Some(Bson::Int64(n)) => u64::try_from(*n).map_err(|_| Rejection::BadFormat),
                Some(Bson::Int32(n)) => u64::try_from(*n).map_err(|_| Rejection::BadFormat),
                _ => Err(Rejection::BadFormat),
            };
            (input, number("nonce")?, number("max_ledger_seq_no")?)
        }
    };
    if nonce == 0 {
        return Err(Rejection::BadFormat);
    }
    Ok(Container { input, nonce, max_ledger_seq })
}

/// A container's input as [`Bytes`]: when it borrows from `container`, a shared slice of it (no
/// copy); otherwise its own bytes.
pub fn input_bytes(container: &Bytes, input: std::borrow::Cow<'_, [u8]>) -> Bytes {
    match input {
        std::borrow::Cow::Borrowed(slice) if container.as_ref().as_ptr_range().contains(&slice.as_ptr()) => {
            container.slice_ref(slice)
        }
        input => Bytes::copy_from_slice(&input),
    }
}

/// A JSON container's fields, as hotpocket-js-client writes them.
#[derive(serde::Deserialize)]
struct JsonContainer<'a> {
    #[serde(borrow)]
    input: std::borrow::Cow<'a, str>,
    nonce: u64,
    max_ledger_seq_no: u64,
}

/// Whether an input with `max_ledger_seq` may go into the ledger at `seq`, with `offset` the
/// network's `max_input_ledger_offset`.
pub fn check_window(max_ledger_seq: u64, seq: u64, offset: u64) -> Result<(), Rejection> {
    if max_ledger_seq < seq {
        return Err(Rejection::MaxLedgerExpired);
    }
    if max_ledger_seq > seq.saturating_sub(1).saturating_add(offset) {
        return Err(Rejection::MaxLedgerOffsetExceeded);
    }
    Ok(())
}

/// What the replay rules need of an opened user-signed input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Opened {
    pub nonce: u64,
    pub max_ledger_seq: u64,
}

/// Opens a user-signed input: the user's signature, the container, and that the input's bytes
/// are the container's. `None` for an input the user did not sign (the seed protocol's).
pub fn open_input(input: &crate::Input) -> Option<Result<Opened, Rejection>> {
    let signed = input.user_signed.as_ref()?;
    Some(signed.open(&input.user).and_then(|c| opened(input, c)))
}

/// Whether a rejection can go away later (the input may be proposed again) or never can.
pub fn is_final(rejection: &Rejection) -> bool {
    !matches!(rejection, Rejection::MaxLedgerOffsetExceeded)
}

/// The replay rules over one ledger's user-signed inputs, in ledger order: each is admitted
/// only inside its window and with a nonce above every earlier one of its user, in the chain
/// (`stored`, the highest nonce of a user in the stored ledgers) and in this ledger.
pub struct Judge<F> {
    seq: u64,
    offset: u64,
    stored: F,
    highest: std::collections::HashMap<[u8; 32], u64>,
}

impl<F: FnMut(&[u8; 32]) -> Option<u64>> Judge<F> {
    /// For the ledger at `seq`, with the network's `max_input_ledger_offset`.
    pub fn new(seq: u64, offset: u64, stored: F) -> Self {
        Self { seq, offset, stored, highest: std::collections::HashMap::new() }
    }

    /// Judges the next user-signed input of `user`; an admitted one counts for the later ones.
    pub fn admit(&mut self, user: &[u8; 32], opened: Result<Opened, Rejection>) -> Result<(), Rejection> {
        let opened = opened?;
        check_window(opened.max_ledger_seq, self.seq, self.offset)?;
        let highest = match self.highest.get(user) {
            Some(n) => Some(*n),
            None => (self.stored)(user),
        };
        match highest {
            Some(h) if opened.nonce == h => return Err(Rejection::AlreadySubmitted),
            Some(h) if opened.nonce < h => return Err(Rejection::NonceExpired),
            _ => {}
        }
        self.highest.insert(*user, opened.nonce);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use ed25519_dalek::{Signer, SigningKey};

    fn signed(key: &SigningKey, format: ContainerFormat, container: Vec<u8>) -> UserSigned {
        let signature = key.sign(&container).to_bytes();
        UserSigned { format, container: container.into(), signature }
    }

    fn bson_container(input: &[u8], nonce: i64, max: i64) -> Vec<u8> {
        let doc = bson::doc! {
            "input": bson::Binary { subtype: bson::spec::BinarySubtype::Generic, bytes: input.to_vec() },
            "nonce": nonce,
            "max_ledger_seq_no": max,
        };
        let mut out = Vec::new();
        doc.to_writer(&mut out).unwrap();
        out
    }

    #[test]
    fn a_container_the_user_signed_opens_to_its_input_nonce_and_window() {
        let key = SigningKey::from_bytes(&[3; 32]);
        let user = key.verifying_key().to_bytes();
        let json =
            signed(&key, ContainerFormat::Json, br#"{"input":"hello","nonce":7,"max_ledger_seq_no":12}"#.to_vec());
        assert_eq!(json.open(&user), Ok(Container { input: b"hello"[..].into(), nonce: 7, max_ledger_seq: 12 }));
        let bson = signed(&key, ContainerFormat::Bson, bson_container(&[0, 255], 8, 13));
        assert_eq!(bson.open(&user), Ok(Container { input: vec![0, 255].into(), nonce: 8, max_ledger_seq: 13 }));
    }

    #[test]
    fn another_users_key_or_changed_bytes_do_not_open_it() {
        let key = SigningKey::from_bytes(&[3; 32]);
        let mut s = signed(&key, ContainerFormat::Json, br#"{"input":"hi","nonce":1,"max_ledger_seq_no":2}"#.to_vec());
        assert_eq!(s.open(&[9; 32]), Err(Rejection::BadSignature));
        s.container = Bytes::from_static(br#"{"input":"ho","nonce":1,"max_ledger_seq_no":2}"#);
        assert_eq!(s.open(&key.verifying_key().to_bytes()), Err(Rejection::BadSignature));
    }

    #[test]
    fn a_container_without_its_fields_is_a_bad_format() {
        for text in [
            &br#"{"input":"x","nonce":1}"#[..],
            br#"{"input":1,"nonce":1,"max_ledger_seq_no":2}"#,
            br#"{"input":"x","nonce":1.5,"max_ledger_seq_no":2}"#,
            br#"{"input":"x","nonce":-1,"max_ledger_seq_no":2}"#,
            br#"{"input":"x","nonce":1,"nonce":2,"max_ledger_seq_no":2}"#,
            b"[]",
            b"{",
        ] {
            assert_eq!(parse_container(ContainerFormat::Json, text), Err(Rejection::BadFormat), "{text:?}");
        }
        // Other fields are ignored; escapes in the input are read.
        let extra = br#"{"max_ledger_seq_no":2,"extra":[1],"input":"a\"b","nonce":1}"#;
        assert_eq!(parse_container(ContainerFormat::Json, extra).map(|c| c.input.into_owned()), Ok(br#"a"b"#.to_vec()));
        assert_eq!(parse_container(ContainerFormat::Bson, b"\x05\x00"), Err(Rejection::BadFormat));
        assert_eq!(parse_container(ContainerFormat::Bson, &bson_container(b"x", -1, 2)), Err(Rejection::BadFormat));
    }

    #[test]
    fn nonces_must_grow_over_the_chain_and_within_a_ledger() {
        let user = [1; 32];
        let at = |nonce| Ok(Opened { nonce, max_ledger_seq: 12 });
        let mut judge = Judge::new(11, 10, |u: &[u8; 32]| (*u == [1; 32]).then_some(5));
        assert_eq!(judge.admit(&user, at(5)), Err(Rejection::AlreadySubmitted));
        assert_eq!(judge.admit(&user, at(4)), Err(Rejection::NonceExpired));
        assert_eq!(judge.admit(&user, at(6)), Ok(()));
        assert_eq!(judge.admit(&user, at(6)), Err(Rejection::AlreadySubmitted), "twice in one ledger");
        assert_eq!(judge.admit(&[2; 32], at(1)), Ok(()), "another user's nonces are their own");
        assert_eq!(judge.admit(&user, Ok(Opened { nonce: 9, max_ledger_seq: 10 })), Err(Rejection::MaxLedgerExpired));
    }

    #[test]
    fn the_window_runs_from_the_next_ledger_to_the_offset() {
        // Ledger 11 follows ledger 10; offset 10 allows max 11..=20.
        assert_eq!(check_window(10, 11, 10), Err(Rejection::MaxLedgerExpired));
        assert_eq!(check_window(11, 11, 10), Ok(()));
        assert_eq!(check_window(20, 11, 10), Ok(()));
        assert_eq!(check_window(21, 11, 10), Err(Rejection::MaxLedgerOffsetExceeded));
    }

    fn input(key: &SigningKey, data: &str, nonce: u64) -> crate::Input {
        let container = format!(r#"{{"input":"{data}","nonce":{nonce},"max_ledger_seq_no":9}}"#).into_bytes();
        crate::Input {
            id: crate::InputId { origin: [1; 32], nonce },
            user: key.verifying_key().to_bytes(),
            data: Bytes::from(data.as_bytes().to_vec()),
            signature: ed25519_dalek::Signature::from_bytes(&[0; 64]),
            user_signed: Some(signed(key, ContainerFormat::Json, container)),
        }
    }

    #[test]
    fn a_batch_opens_inputs_exactly_as_one_by_one_whatever_it_holds() {
        let (a, b) = (SigningKey::from_bytes(&[3; 32]), SigningKey::from_bytes(&[4; 32]));
        let good = vec![input(&a, "one", 1), input(&a, "two", 2), input(&b, "three", 1)];
        let mut forged = input(&a, "four", 3);
        forged.user = b.verifying_key().to_bytes();
        let mut other_data = input(&b, "five", 2);
        other_data.data = Bytes::from_static(b"not five");
        let mut not_a_key = input(&a, "six", 4);
        not_a_key.user = [0xff; 32];
        let mut unsigned = input(&a, "seven", 5);
        unsigned.user_signed = None;
        let one_by_one = |inputs: &[crate::Input]| inputs.iter().map(open_input).collect::<Vec<_>>();
        assert_eq!(open_inputs(&good), one_by_one(&good));
        assert!(open_inputs(&good).iter().all(|o| matches!(o, Some(Ok(_)))));
        let mixed = vec![good[0].clone(), forged, good[1].clone(), other_data, not_a_key, unsigned, good[2].clone()];
        let got = open_inputs(&mixed);
        assert_eq!(got, one_by_one(&mixed));
        assert_eq!(got[1], Some(Err(Rejection::BadSignature)));
        assert_eq!(got[3], Some(Err(Rejection::BadFormat)), "a container for other bytes");
        assert_eq!(got[4], Some(Err(Rejection::BadSignature)));
        assert_eq!(got[5], None);
        assert!(open_inputs(&[]).is_empty());
    }
}

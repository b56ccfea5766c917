//! A HotPocket 0.6 user (docs/hotpocket-protocol.md) over `ws://` (`hpport_plain`), JSON
//! messages: the handshake with the node's proof of its key, signed inputs with a growing
//! nonce, and outputs accepted only with a proof from the trusted UNL — what
//! hotpocket-js-client does, so that hp-client and hp-bench can drive that protocol.
//!
//! Outputs come out of [`HpReceiver::recv`] as [`Output::Data`] only once their proof checks
//! out: the output hash, the tree to the root, and valid signatures over the root from at least
//! 80 % of the trusted keys. A refused input comes out as [`Output::Error`] with the node's
//! reason, as does an output whose proof does not hold.

use crate::{ClientError, Output, describe, ws_config};
use bytes::Bytes;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
use hp_ledger::output_proof::{node, output_hash};
use rand::RngCore;
use serde_json::{Value, json};
use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The share of the trusted keys whose signatures an output needs (the JS client's).
pub const PASS_THRESHOLD: f64 = 0.8;

/// The keys an output's proof is checked against (the UNL of a trusted node), decoded once.
#[derive(Default)]
struct Trusted {
    keys: std::collections::HashMap<[u8; 32], VerifyingKey>,
    /// Every key the node listed, decodable or not: what the threshold counts.
    count: usize,
    /// Names this exact set (its keys and count) in [`PROVEN_ROOTS`].
    id: [u8; 32],
}

impl Trusted {
    fn new(unl: &[[u8; 32]]) -> Self {
        let keys = unl.iter().filter_map(|k| Some((*k, VerifyingKey::from_bytes(k).ok()?))).collect();
        let mut named: Vec<[u8; 32]> = unl.to_vec();
        named.sort_unstable();
        let mut count = [0u8; 32];
        count[..8].copy_from_slice(&(unl.len() as u64).to_le_bytes());
        named.push(count);
        Self { keys, count: unl.len(), id: node(&named) }
    }
}

/// Output roots already proven in this process, by trusted set: enough of its keys' signatures
/// over the root verified. Every user of a ledger gets the same root (from every node it is
/// connected to), so a process with many users, such as hp-bench, checks each root's
/// signatures once instead of once per user and connection. Each output's own hash and its
/// path to the root are still checked every time.
static PROVEN_ROOTS: std::sync::LazyLock<std::sync::Mutex<ProvenRoots>> = std::sync::LazyLock::new(Default::default);

/// The last [`ProvenRoots::KEPT`] proven (trusted set, root) pairs.
#[derive(Default)]
struct ProvenRoots {
    order: std::collections::VecDeque<([u8; 32], [u8; 32])>,
    known: std::collections::HashSet<([u8; 32], [u8; 32])>,
}

impl ProvenRoots {
    const KEPT: usize = 4096;

    fn contains(&self, set: &[u8; 32], root: &[u8; 32]) -> bool {
        self.known.contains(&(*set, *root))
    }

    fn insert(&mut self, set: [u8; 32], root: [u8; 32]) {
        if !self.known.insert((set, root)) {
            return;
        }
        self.order.push_back((set, root));
        while self.order.len() > Self::KEPT {
            if let Some(oldest) = self.order.pop_front() {
                self.known.remove(&oldest);
            }
        }
    }
}

/// Whether `root` was proven against `trusted` before (a poisoned lock only loses the cache).
fn proven_before(trusted: &Trusted, root: &[u8; 32]) -> bool {
    PROVEN_ROOTS.lock().is_ok_and(|proven| proven.contains(&trusted.id, root))
}

fn note_proven(trusted: &Trusted, root: [u8; 32]) {
    if let Ok(mut proven) = PROVEN_ROOTS.lock() {
        proven.insert(trusted.id, root);
    }
}

/// A signed-in HotPocket user.
pub struct HpClient {
    ws: Ws,
    key: SigningKey,
    trusted: Arc<Trusted>,
    lcl: Arc<AtomicU64>,
    offset: u64,
}

fn ed_hex(key: &[u8; 32]) -> String {
    format!("ed{}", hex::encode(key))
}

fn parse_ed(text: &str) -> Option<[u8; 32]> {
    let mut key = [0u8; 32];
    hex::decode_to_slice(text.strip_prefix("ed")?, &mut key).ok()?;
    Some(key)
}

fn not_json() -> ClientError {
    ClientError::Protocol("a message that is not JSON".into())
}

async fn next_json(ws: &mut Ws) -> Result<Value, ClientError> {
    loop {
        let Some(message) = ws.next().await else { return Err(ClientError::Closed(None)) };
        match message? {
            Message::Text(text) => return serde_json::from_str(text.as_str()).map_err(|_| not_json()),
            Message::Binary(data) => return serde_json::from_slice(&data).map_err(|_| not_json()),
            Message::Close(frame) => return Err(ClientError::Closed(frame.map(|f| f.reason.to_string()))),
            _ => continue,
        }
    }
}

impl HpClient {
    /// Connects to `url` (`ws://host:hpport_plain`) as `key`. With `trusted` set, a node whose
    /// key is not among them is refused, and the UNL a trusted node reports becomes the trusted
    /// set, as the JS client does; without it outputs are taken unchecked.
    /// `max_ledger_offset`: how far past the last closed ledger an input may run (at most the
    /// network's `max_input_ledger_offset`).
    pub async fn connect(
        url: &str,
        key: &SigningKey,
        trusted: Option<&[[u8; 32]]>,
        max_ledger_offset: u64,
    ) -> Result<Self, ClientError> {
        let (mut ws, _) = tokio_tungstenite::connect_async_with_config(url, Some(ws_config()), true)
            .await
            .map_err(|e| ClientError::Connect { url: url.to_string(), reason: describe(&e) })?;
        let hello = next_json(&mut ws).await?;
        if hello["type"] != "user_challenge" || !hello["hp_version"].as_str().is_some_and(|v| v.starts_with("0.6.")) {
            return Err(ClientError::Protocol("the node did not send a HotPocket 0.6 user_challenge".into()));
        }
        let challenge = hello["challenge"].as_str().unwrap_or_default();
        let contract_id = hello["contract_id"].as_str().unwrap_or_default();
        let contract_version = hello["contract_version"].as_str().unwrap_or_default();
        let mut ours = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut ours);
        let server_challenge = hex::encode(ours);
        let response = json!({
            "type": "user_challenge_response",
            "sig": hex::encode(key.sign(challenge.as_bytes()).to_bytes()),
            "pubkey": ed_hex(&key.verifying_key().to_bytes()),
            "server_challenge": server_challenge,
            "protocol": "json",
        });
        ws.send(Message::text(response.to_string())).await?;
        let proof = next_json(&mut ws).await?;
        if proof["type"] != "server_challenge_response" {
            return Err(ClientError::Refused("the node did not prove its key".into()));
        }
        let node_key =
            proof["pubkey"].as_str().and_then(parse_ed).ok_or_else(|| ClientError::Protocol("bad node key".into()))?;
        let mut sig = [0u8; 64];
        hex::decode_to_slice(proof["sig"].as_str().unwrap_or_default(), &mut sig)
            .map_err(|_| ClientError::Protocol("bad node signature".into()))?;
        let signed = format!("{server_challenge}{contract_id}{contract_version}");
        let verifies = VerifyingKey::from_bytes(&node_key)
            .is_ok_and(|k| k.verify(signed.as_bytes(), &Signature::from_bytes(&sig)).is_ok());
        if !verifies {
            return Err(ClientError::Refused("the node's proof of its key does not verify".into()));
        }
        if trusted.is_some_and(|t| !t.contains(&node_key)) {
            return Err(ClientError::Refused(format!("node {} is not among the trusted keys", ed_hex(&node_key))));
        }
        let unl: Vec<[u8; 32]> =
            proof["unl"].as_array().into_iter().flatten().filter_map(|k| k.as_str().and_then(parse_ed)).collect();
        let trusted = Arc::new(if trusted.is_some() { Trusted::new(&unl) } else { Trusted::default() });
        let lcl = Arc::new(AtomicU64::new(0));
        ws.send(Message::text(json!({"type": "lcl"}).to_string())).await?;
        loop {
            let m = next_json(&mut ws).await?;
            if m["type"] == "lcl_response" {
                lcl.store(m["ledger_seq_no"].as_u64().unwrap_or(0), Ordering::Relaxed);
                break;
            }
        }
        Ok(Self { ws, key: key.clone(), trusted, lcl, offset: max_ledger_offset })
    }

    pub fn public_key(&self) -> [u8; 32] {
        self.key.verifying_key().to_bytes()
    }

    /// A sending and a receiving half, for concurrent use.
    pub fn split(self) -> (HpSender, HpReceiver) {
        let (sink, stream) = self.ws.split();
        // Nonces only grow per user: start at the clock, as the JS client does.
        let nonce = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_micros() as u64)
            .unwrap_or(1);
        let user = self.key.verifying_key().to_bytes();
        (
            HpSender { sink, key: self.key, nonce, lcl: self.lcl.clone(), offset: self.offset },
            HpReceiver { stream, user, trusted: self.trusted, lcl: self.lcl },
        )
    }
}

/// The sending half: each input signed in a container with the next nonce.
pub struct HpSender {
    sink: SplitSink<Ws, Message>,
    key: SigningKey,
    nonce: u64,
    /// The last closed ledger this user knows of (from statuses and outputs).
    lcl: Arc<AtomicU64>,
    offset: u64,
}

impl HpSender {
    /// Signs and sends one input; JSON containers carry text, so its bytes must be UTF-8.
    pub async fn send(&mut self, input: &[u8]) -> Result<(), ClientError> {
        let key = self.key.clone();
        self.send_signed_by(input, &key).await
    }

    /// Sends one input as [`Self::send`] does but signed with `signer`: with another key than
    /// the user's, a forgery, for testing that nodes refuse it.
    pub async fn send_signed_by(&mut self, input: &[u8], signer: &SigningKey) -> Result<(), ClientError> {
        let text = std::str::from_utf8(input).map_err(|_| ClientError::Protocol("JSON inputs must be text".into()))?;
        self.nonce += 1;
        let max_ledger = self.lcl.load(Ordering::Relaxed) + self.offset;
        let container = json!({"input": text, "nonce": self.nonce, "max_ledger_seq_no": max_ledger}).to_string();
        let sig = signer.sign(container.as_bytes()).to_bytes();
        let message = json!({"type": "contract_input", "input_container": container, "sig": hex::encode(sig)});
        self.sink.send(Message::text(message.to_string())).await?;
        Ok(())
    }

    pub async fn close(&mut self) -> Result<(), ClientError> {
        self.sink.send(Message::Close(None)).await?;
        Ok(())
    }
}

/// The receiving half: verified outputs, and refusals.
pub struct HpReceiver {
    stream: SplitStream<Ws>,
    user: [u8; 32],
    trusted: Arc<Trusted>,
    lcl: Arc<AtomicU64>,
}

impl HpReceiver {
    /// The next verified output or refusal; `None` once the connection has ended.
    pub async fn recv(&mut self) -> Option<Output> {
        loop {
            let frame = match self.stream.next().await? {
                Ok(frame @ (Message::Text(_) | Message::Binary(_))) => frame,
                Ok(Message::Close(_)) | Err(_) => return None,
                Ok(_) => continue,
            };
            let bytes: &[u8] = match &frame {
                Message::Text(text) => text.as_str().as_bytes(),
                Message::Binary(data) => data,
                _ => continue,
            };
            let mut tree = None;
            let message = ServerMessage::read(bytes, &mut tree)?;
            if let Some(seq) = message.ledger_seq_no {
                self.lcl.fetch_max(seq, Ordering::Relaxed);
            }
            match message.kind.as_deref() {
                Some("contract_input_status") if message.status.as_deref() == Some("rejected") => {
                    return Some(Output::Error(message.reason.as_deref().unwrap_or("rejected").to_string()));
                }
                Some("contract_output") => return Some(checked(&self.user, &self.trusted, &message)),
                _ => continue,
            }
        }
    }
}

/// What a node's message says that a user acts on. Read straight from the frame, borrowing its
/// strings; a message with a field of another type than expected is read leniently instead,
/// through a JSON tree (a field of the wrong type reads as absent, list items of the wrong
/// type are left out), as a tolerant client must.
#[derive(Debug, Default, serde::Deserialize)]
struct ServerMessage<'a> {
    #[serde(rename = "type", borrow, default)]
    kind: Option<Cow<'a, str>>,
    #[serde(default)]
    ledger_seq_no: Option<u64>,
    #[serde(borrow, default)]
    status: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    reason: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    outputs: Vec<Cow<'a, str>>,
    #[serde(borrow, default)]
    output_hash: Option<Cow<'a, str>>,
    /// `None` for a tree that is absent or not a list.
    #[serde(borrow, default)]
    hash_tree: Option<Vec<Tree<'a>>>,
    #[serde(borrow, default)]
    unl_sig: Vec<(Cow<'a, str>, Cow<'a, str>)>,
}

/// One element of a `hash_tree`: the user's own leaf (`null`), a hash, or a branch. Read
/// straight, any other element fails the message, which is then read leniently, where it is
/// [`Tree::Other`].
#[derive(Debug, Clone, PartialEq)]
enum Tree<'a> {
    Own,
    Hash(Cow<'a, str>),
    Branch(Vec<Tree<'a>>),
    /// Anything else, which makes the tree malformed.
    Other,
}

impl<'de: 'a, 'a> serde::Deserialize<'de> for Tree<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visit<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for Visit<'a> {
            type Value = Tree<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a hash tree element")
            }
            fn visit_unit<E>(self) -> Result<Tree<'a>, E> {
                Ok(Tree::Own)
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Tree<'a>, E> {
                Ok(Tree::Hash(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Tree<'a>, E> {
                Ok(Tree::Hash(Cow::Owned(v.to_string())))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Tree<'a>, A::Error> {
                let mut children = Vec::new();
                while let Some(child) = seq.next_element()? {
                    children.push(child);
                }
                Ok(Tree::Branch(children))
            }
        }
        deserializer.deserialize_any(Visit(std::marker::PhantomData))
    }
}

impl<'a> Tree<'a> {
    fn from_value(value: &'a Value) -> Self {
        match value {
            Value::Null => Tree::Own,
            Value::String(h) => Tree::Hash(Cow::Borrowed(h)),
            Value::Array(children) => Tree::Branch(children.iter().map(Tree::from_value).collect()),
            _ => Tree::Other,
        }
    }
}

impl<'a> ServerMessage<'a> {
    /// Reads a frame; `None` for one that is not JSON at all (the connection is then given up).
    /// The lenient reading keeps its JSON tree in `tree`, which the message borrows.
    fn read(frame: &'a [u8], tree: &'a mut Option<Value>) -> Option<ServerMessage<'a>> {
        if let Ok(message) = serde_json::from_slice::<ServerMessage>(frame) {
            return Some(message);
        }
        Some(ServerMessage::from_value(tree.insert(serde_json::from_slice(frame).ok()?)))
    }

    /// The lenient reading of a JSON tree.
    fn from_value(v: &'a Value) -> Self {
        let text = |field: &str| v[field].as_str().map(Cow::Borrowed);
        let strings = |field: &str| v[field].as_array().into_iter().flatten().filter_map(Value::as_str);
        let pairs = v["unl_sig"].as_array().into_iter().flatten();
        Self {
            kind: text("type"),
            ledger_seq_no: v["ledger_seq_no"].as_u64(),
            status: text("status"),
            reason: text("reason"),
            outputs: strings("outputs").map(Cow::Borrowed).collect(),
            output_hash: text("output_hash"),
            hash_tree: v["hash_tree"].as_array().map(|a| a.iter().map(Tree::from_value).collect()),
            unl_sig: pairs
                .filter_map(|p| Some((Cow::Borrowed(p[0].as_str()?), Cow::Borrowed(p[1].as_str()?))))
                .collect(),
        }
    }
}

/// The output of `user` if its proof holds against the trusted keys (any output when none are
/// set).
fn checked(user: &[u8; 32], trusted: &Trusted, message: &ServerMessage<'_>) -> Output {
    let outputs: Vec<&str> = message.outputs.iter().map(|o| o.as_ref()).collect();
    let data = Bytes::from(outputs.concat());
    if trusted.count == 0 {
        return Output::Data(data);
    }
    let own = output_hash(user, &outputs.iter().map(|o| o.as_bytes()).collect::<Vec<_>>());
    let mut claimed = [0u8; 32];
    let hash_read = message.output_hash.as_deref().is_some_and(|h| hex::decode_to_slice(h, &mut claimed).is_ok());
    if !hash_read || claimed != own {
        return Output::Error("an output whose hash does not match it".into());
    }
    let Some(root) = message.hash_tree.as_deref().and_then(|tree| tree_root(tree, &own)) else {
        return Output::Error("an output whose hash tree is malformed".into());
    };
    if proven_before(trusted, &root) {
        return Output::Data(data);
    }
    // One signature per trusted key, checked together; one by one only if that fails.
    let mut claimed: std::collections::HashMap<[u8; 32], (VerifyingKey, Signature)> = Default::default();
    for (key, sig) in &message.unl_sig {
        let Some(key) = parse_ed(key) else { continue };
        let mut signature = [0u8; 64];
        let Some(verifying) = trusted.keys.get(&key) else { continue };
        if hex::decode_to_slice(sig.as_bytes(), &mut signature).is_ok() {
            claimed.entry(key).or_insert((*verifying, Signature::from_bytes(&signature)));
        }
    }
    let (keys, signatures): (Vec<VerifyingKey>, Vec<Signature>) = claimed.values().copied().unzip();
    let messages = vec![root.as_slice(); keys.len()];
    let passed = if ed25519_dalek::verify_batch(&messages, &signatures, &keys).is_ok() {
        keys.len()
    } else {
        claimed.values().filter(|(k, s)| k.verify(&root, s).is_ok()).count()
    };
    if (passed as f64) / (trusted.count as f64) < PASS_THRESHOLD {
        return Output::Error(format!("an output signed by {passed} of {} trusted keys", trusted.count));
    }
    note_proven(trusted, root);
    Output::Data(data)
}

/// The root of a received tree, its one `null` standing for the user's own hash.
fn tree_root(tree: &[Tree<'_>], own: &[u8; 32]) -> Option<[u8; 32]> {
    fn walk(tree: &[Tree<'_>], own: &[u8; 32], found: &mut bool) -> Option<[u8; 32]> {
        let mut children = Vec::with_capacity(tree.len());
        for element in tree {
            let hash = match element {
                Tree::Own if !*found => {
                    *found = true;
                    *own
                }
                Tree::Branch(branch) => walk(branch, own, found)?,
                Tree::Hash(h) => {
                    let mut hash = [0u8; 32];
                    hex::decode_to_slice(h.as_ref(), &mut hash).ok()?;
                    hash
                }
                Tree::Own | Tree::Other => return None,
            };
            children.push(hash);
        }
        Some(node(&children))
    }
    let mut found = false;
    let root = walk(tree, own, &mut found)?;
    found.then_some(root)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use ed25519_dalek::Signer;

    /// [`checked`] on `message` as a node would send it: the frame read as [`HpReceiver`] reads it.
    fn check(user: &[u8; 32], trusted: &Trusted, message: &Value) -> Output {
        let frame = message.to_string();
        checked(user, trusted, &ServerMessage::read(frame.as_bytes(), &mut None).unwrap())
    }

    #[test]
    fn a_message_reads_the_same_straight_or_leniently_and_odd_fields_read_as_absent() {
        let keys: Vec<SigningKey> = (31..=33u8).map(|b| SigningKey::from_bytes(&[b; 32])).collect();
        let mut m = message(&[5; 32], "text", &keys.iter().collect::<Vec<_>>());
        m["type"] = json!("contract_output");
        m["ledger_seq_no"] = json!(12);
        m["hash_tree"] = json!([null, ["ab", "cd"]]);
        let frame = m.to_string();
        let (mut tree, mut odd_tree, mut bad_tree_slot) = (None, None, None);
        let straight = ServerMessage::read(frame.as_bytes(), &mut tree).unwrap();
        let lenient = ServerMessage::from_value(&m);
        assert_eq!(format!("{straight:?}"), format!("{lenient:?}"));
        assert_eq!(
            (straight.kind.as_deref(), straight.ledger_seq_no, straight.unl_sig.len()),
            (Some("contract_output"), Some(12), 3)
        );
        // A field of another type reads as absent, an odd list item is left out, and the rest stays.
        m["ledger_seq_no"] = json!("twelve");
        m["outputs"] = json!(["text", 7]);
        m["unl_sig"][0] = json!("not a pair");
        let frame = m.to_string();
        let odd = ServerMessage::read(frame.as_bytes(), &mut odd_tree).unwrap();
        assert_eq!((odd.ledger_seq_no, odd.outputs.len(), odd.unl_sig.len()), (None, 1, 2));
        assert_eq!(
            odd.hash_tree,
            Some(vec![Tree::Own, Tree::Branch(vec![Tree::Hash("ab".into()), Tree::Hash("cd".into())])])
        );
        // A tree element that is no null, hash or list makes the tree malformed; a frame that is
        // not JSON ends the connection.
        let bad_tree = r#"{"type":"contract_output","hash_tree":[null,{"x":1}],"outputs":[]}"#;
        let bad = ServerMessage::read(bad_tree.as_bytes(), &mut bad_tree_slot).unwrap();
        assert_eq!(bad.hash_tree, Some(vec![Tree::Own, Tree::Other]));
        assert!(ServerMessage::read(b"not json", &mut None).is_none());
    }

    /// A `contract_output` for `user` alone in its ledger, signed over its root by `signers`.
    fn message(user: &[u8; 32], text: &str, signers: &[&SigningKey]) -> Value {
        let own = output_hash(user, &[text.as_bytes()]);
        let root = node(&[own]);
        let sigs: Vec<Value> = signers
            .iter()
            .map(|k| json!([ed_hex(&k.verifying_key().to_bytes()), hex::encode(k.sign(&root).to_bytes())]))
            .collect();
        json!({"outputs": [text], "output_hash": hex::encode(own), "hash_tree": [null], "unl_sig": sigs})
    }

    #[test]
    fn an_output_passes_with_signatures_from_80_percent_of_the_trusted_keys_and_not_otherwise() {
        let keys: Vec<SigningKey> = (1..=5u8).map(|b| SigningKey::from_bytes(&[b; 32])).collect();
        let unl: Vec<[u8; 32]> = keys.iter().map(|k| k.verifying_key().to_bytes()).collect();
        let trusted = Trusted::new(&unl);
        let user = [9; 32];
        let all: Vec<&SigningKey> = keys.iter().collect();
        // Each case its own output, so its own root: a proven root stays proven.
        assert!(matches!(check(&user, &trusted, &message(&user, "all", &all)), Output::Data(d) if d == "all"));
        assert!(matches!(check(&user, &trusted, &message(&user, "four", &all[..4])), Output::Data(_)), "4 of 5");
        assert!(matches!(check(&user, &trusted, &message(&user, "three", &all[..3])), Output::Error(_)), "3 of 5");
        // One signature over something else among five: 4 of 5 still verify, one by one.
        let mut one_bad = message(&user, "one bad", &all);
        one_bad["unl_sig"][0][1] = json!(hex::encode(keys[0].sign(b"another root").to_bytes()));
        assert!(matches!(check(&user, &trusted, &one_bad), Output::Data(_)));
        let mut two_bad = message(&user, "two bad", &all);
        for i in 0..2 {
            two_bad["unl_sig"][i][1] = json!(hex::encode(keys[i].sign(b"another root").to_bytes()));
        }
        assert!(matches!(check(&user, &trusted, &two_bad), Output::Error(_)), "3 of 5 verify");
        // Signers outside the trusted keys count for nothing; a changed output fails its hash.
        let strangers: Vec<SigningKey> = (10..=14u8).map(|b| SigningKey::from_bytes(&[b; 32])).collect();
        let strangers: Vec<&SigningKey> = strangers.iter().collect();
        assert!(matches!(check(&user, &trusted, &message(&user, "strangers", &strangers)), Output::Error(_)));
        let mut changed = message(&user, "changed", &all);
        changed["outputs"] = json!(["ho"]);
        assert!(matches!(check(&user, &trusted, &changed), Output::Error(_)));
    }

    #[test]
    fn a_root_proven_once_needs_no_signatures_again_but_only_for_the_same_trusted_keys() {
        let keys: Vec<SigningKey> = (21..=23u8).map(|b| SigningKey::from_bytes(&[b; 32])).collect();
        let unl: Vec<[u8; 32]> = keys.iter().map(|k| k.verifying_key().to_bytes()).collect();
        let (trusted, again) = (Trusted::new(&unl), Trusted::new(&[unl[2], unl[0], unl[1]]));
        let user = [7; 32];
        let signed = message(&user, "proven", &keys.iter().collect::<Vec<_>>());
        let mut unsigned = signed.clone();
        unsigned["unl_sig"] = json!([]);
        assert!(matches!(check(&user, &trusted, &unsigned), Output::Error(_)), "not proven yet");
        assert!(matches!(check(&user, &trusted, &signed), Output::Data(_)));
        // The same keys in another order are the same set; one key fewer is another.
        assert!(matches!(check(&user, &again, &unsigned), Output::Data(_)), "proven before");
        let fewer = Trusted::new(&unl[..2]);
        assert!(matches!(check(&user, &fewer, &unsigned), Output::Error(_)), "another trusted set");
        // The path to the root is still checked: another user's output with the same tree fails.
        let mut other = unsigned.clone();
        other["outputs"] = json!(["forged"]);
        assert!(matches!(check(&user, &trusted, &other), Output::Error(_)));
    }
}

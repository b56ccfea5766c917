//! HotPocket 0.6 messages in either of their two encodings, with no I/O. After the handshake a
//! client speaks JSON or BSON for good: in JSON, hashes, keys and signatures are hex strings and
//! payloads (inputs, outputs, read requests) are strings; in BSON all of them are binary. A
//! message is read through [`Incoming`]'s accessors and written with [`Outgoing`], so the rest
//! of the module never looks at the encoding.

use super::Protocol;
use bson::spec::BinarySubtype;
use bson::{Binary, Bson, Document};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

/// A binary subtype that marks a payload: a string in JSON, bytes in BSON.
const PAYLOAD: BinarySubtype = BinarySubtype::UserDefined(0x80);

/// Why a client message could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("not a JSON object")]
    NotJson,
    #[error("not a BSON document")]
    NotBson,
    #[error("no message type")]
    NoType,
}

/// One client message, decoded.
#[derive(Debug, Clone)]
pub enum Incoming {
    Json(serde_json::Map<String, Value>),
    Bson(Document),
}

impl Incoming {
    /// Decodes a frame in the session's protocol; its size is bounded by the websocket limit.
    pub fn decode(protocol: Protocol, frame: &[u8]) -> Result<Self, DecodeError> {
        let message = match protocol {
            Protocol::Json => match serde_json::from_slice::<Value>(frame) {
                Ok(Value::Object(m)) => Incoming::Json(m),
                _ => return Err(DecodeError::NotJson),
            },
            Protocol::Bson => Incoming::Bson(Document::from_reader(frame).map_err(|_| DecodeError::NotBson)?),
        };
        if message.str("type").is_none() {
            return Err(DecodeError::NoType);
        }
        Ok(message)
    }

    /// The message type.
    pub fn kind(&self) -> &str {
        self.str("type").unwrap_or_default()
    }

    pub fn str(&self, field: &str) -> Option<&str> {
        match self {
            Incoming::Json(m) => m.get(field)?.as_str(),
            Incoming::Bson(d) => d.get_str(field).ok(),
        }
    }

    /// A whole number, as JSON numbers and BSON's int32, int64 (JavaScript's `Long`) or an
    /// integral double carry it.
    pub fn u64(&self, field: &str) -> Option<u64> {
        match self {
            Incoming::Json(m) => m.get(field)?.as_u64(),
            Incoming::Bson(d) => bson_u64(d.get(field)?),
        }
    }

    pub fn bool(&self, field: &str) -> Option<bool> {
        match self {
            Incoming::Json(m) => m.get(field)?.as_bool(),
            Incoming::Bson(d) => d.get_bool(field).ok(),
        }
    }

    /// Binary data: hex in JSON, binary in BSON.
    pub fn bytes(&self, field: &str) -> Option<Vec<u8>> {
        match self {
            Incoming::Json(m) => hex::decode(m.get(field)?.as_str()?).ok(),
            Incoming::Bson(d) => d.get_binary_generic(field).ok().cloned(),
        }
    }

    /// A payload: a string in JSON (its UTF-8 bytes), binary in BSON.
    pub fn payload(&self, field: &str) -> Option<Vec<u8>> {
        match self {
            Incoming::Json(m) => Some(m.get(field)?.as_str()?.as_bytes().to_vec()),
            Incoming::Bson(d) => match d.get(field)? {
                Bson::Binary(b) => Some(b.bytes.clone()),
                _ => None,
            },
        }
    }

    /// A nested document's whole numbers (`params` of a ledger query).
    pub fn nested_u64(&self, field: &str, inner: &str) -> Option<u64> {
        match self {
            Incoming::Json(m) => m.get(field)?.get(inner)?.as_u64(),
            Incoming::Bson(d) => bson_u64(d.get_document(field).ok()?.get(inner)?),
        }
    }

    /// A list of strings (`include` of a ledger query); other items are skipped.
    pub fn strings(&self, field: &str) -> Vec<String> {
        match self {
            Incoming::Json(m) => m
                .get(field)
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
                .unwrap_or_default(),
            Incoming::Bson(d) => d
                .get_array(field)
                .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
                .unwrap_or_default(),
        }
    }
}

fn bson_u64(value: &Bson) -> Option<u64> {
    match value {
        Bson::Int32(n) => u64::try_from(*n).ok(),
        Bson::Int64(n) => u64::try_from(*n).ok(),
        Bson::Double(f) if f.fract() == 0.0 && *f >= 0.0 && *f < 9_007_199_254_740_992.0 => Some(*f as u64),
        _ => None,
    }
}

/// A message to the client, built once and encoded in its protocol.
#[derive(Debug, Clone, PartialEq)]
pub struct Outgoing(Document);

impl Outgoing {
    pub fn new(kind: &str) -> Self {
        let mut doc = Document::new();
        doc.insert("type", kind);
        Self(doc)
    }

    pub fn str(mut self, field: &str, value: &str) -> Self {
        self.0.insert(field, value);
        self
    }

    pub fn u64(mut self, field: &str, value: u64) -> Self {
        self.0.insert(field, i64::try_from(value).unwrap_or(i64::MAX));
        self
    }

    pub fn bool(mut self, field: &str, value: bool) -> Self {
        self.0.insert(field, value);
        self
    }

    /// Binary data: hex in JSON, binary in BSON.
    pub fn bytes(mut self, field: &str, value: &[u8]) -> Self {
        self.0.insert(field, bytes(value));
        self
    }

    /// Public keys, `ed`-prefixed: hex in JSON, 33 bytes in BSON.
    pub fn keys(mut self, field: &str, keys: &[[u8; 32]]) -> Self {
        self.0.insert(field, keys.iter().map(key).collect::<Vec<_>>());
        self
    }

    pub fn strings(mut self, field: &str, values: &[String]) -> Self {
        self.0.insert(field, values.iter().map(|v| Bson::String(v.clone())).collect::<Vec<_>>());
        self
    }

    pub fn value(mut self, field: &str, value: Bson) -> Self {
        self.0.insert(field, value);
        self
    }

    /// The frame: a text frame of JSON, or a binary frame of BSON.
    pub fn encode(&self, protocol: Protocol) -> Message {
        match protocol {
            // Written straight from the document: no copy of it, no JSON tree in between.
            // Serializing strings, numbers and maps to a `Vec` cannot fail.
            Protocol::Json => Message::text(serde_json::to_string(&Json(&self.0)).unwrap_or_default()),
            Protocol::Bson => {
                let mut out = Vec::new();
                match self.0.to_writer(&mut out) {
                    Ok(()) => Message::binary(out),
                    // Only documents with keys bson refuses (none are built here) fail.
                    Err(_) => Message::binary(Vec::new()),
                }
            }
        }
    }
}

/// Binary data for an [`Outgoing`] field or a nested value.
pub fn bytes(value: &[u8]) -> Bson {
    Bson::Binary(Binary { subtype: BinarySubtype::Generic, bytes: value.to_vec() })
}

/// A payload for an [`Outgoing`] field or a nested value: a string in JSON, bytes in BSON.
pub fn payload(value: &[u8]) -> Bson {
    Bson::Binary(Binary { subtype: PAYLOAD, bytes: value.to_vec() })
}

/// A public key, `ed`-prefixed.
pub fn key(value: &[u8; 32]) -> Bson {
    let mut prefixed = Vec::with_capacity(33);
    prefixed.push(0xED);
    prefixed.extend_from_slice(value);
    bytes(&prefixed)
}

/// The JSON form of a document: binary as hex, payloads as strings (invalid UTF-8 replaced:
/// the JSON protocol carries text; binary payloads need BSON), anything else BSON has as `null`.
struct Json<'a>(&'a Document);

/// The JSON form of one value, as [`Json`] writes it.
struct JsonValue<'a>(&'a Bson);

impl serde::Serialize for Json<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (key, value) in self.0 {
            map.serialize_entry(key, &JsonValue(value))?;
        }
        map.end()
    }
}

impl serde::Serialize for JsonValue<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Bson::Document(d) => Json(d).serialize(serializer),
            Bson::Array(a) => serializer.collect_seq(a.iter().map(JsonValue)),
            Bson::String(s) => serializer.serialize_str(s),
            Bson::Int32(n) => serializer.serialize_i32(*n),
            Bson::Int64(n) => serializer.serialize_i64(*n),
            // serde_json writes a non-finite number as `null`.
            Bson::Double(f) => serializer.serialize_f64(*f),
            Bson::Boolean(b) => serializer.serialize_bool(*b),
            Bson::Binary(b) if b.subtype == PAYLOAD => serializer.serialize_str(&String::from_utf8_lossy(&b.bytes)),
            Bson::Binary(b) => serializer.collect_str(&Hex(&b.bytes)),
            _ => serializer.serialize_unit(),
        }
    }
}

/// Lower-case hex, written in pieces through a small buffer rather than into a new string.
struct Hex<'a>(&'a [u8]);

impl std::fmt::Display for Hex<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut buffer = [0u8; 128];
        for chunk in self.0.chunks(buffer.len() / 2) {
            let text = &mut buffer[..chunk.len() * 2];
            hex::encode_to_slice(chunk, text).map_err(|_| std::fmt::Error)?;
            f.write_str(std::str::from_utf8(text).map_err(|_| std::fmt::Error)?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn one_message_reads_back_the_same_in_json_and_bson() {
        let out = Outgoing::new("lcl_response").u64("ledger_seq_no", 42).bytes("ledger_hash", &[0xab; 32]);
        for protocol in [Protocol::Json, Protocol::Bson] {
            let frame = out.encode(protocol).into_data();
            let back = Incoming::decode(protocol, &frame).unwrap();
            assert_eq!(back.kind(), "lcl_response");
            assert_eq!(back.u64("ledger_seq_no"), Some(42));
            assert_eq!(back.bytes("ledger_hash"), Some(vec![0xab; 32]));
        }
    }

    #[test]
    fn json_shows_keys_ed_prefixed_and_payloads_as_text() {
        let out = Outgoing::new("x").keys("unl", &[[1; 32]]).value("outputs", Bson::Array(vec![payload(b"hi")]));
        let text = out.encode(Protocol::Json).into_text().unwrap();
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["unl"][0], Value::String(format!("ed{}", "01".repeat(32))));
        assert_eq!(v["outputs"][0], "hi");
    }

    #[test]
    fn json_writes_every_kind_of_field_as_the_client_reads_it() {
        let long: Vec<u8> = (0..=255).collect();
        let nested = Bson::Document(bson::doc! { "seq": 7_i64, "ok": true });
        let out = Outgoing::new("all")
            .str("text", "quote \" and \u{e9}")
            .u64("big", u64::MAX)
            .bool("flag", false)
            .bytes("long", &long)
            .bytes("empty", &[])
            .value("nested", nested)
            .value("bad_text", Bson::Array(vec![payload(&[0x68, 0xff]), Bson::Double(1.5), Bson::Null]));
        let text = out.encode(Protocol::Json).into_text().unwrap();
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["type"], "all");
        assert_eq!(v["text"], "quote \" and \u{e9}");
        assert_eq!(v["big"], i64::MAX);
        assert_eq!(v["flag"], false);
        assert_eq!(v["long"], hex::encode(&long));
        assert_eq!(v["empty"], "");
        assert_eq!(v["nested"], serde_json::json!({"seq": 7, "ok": true}));
        assert_eq!(v["bad_text"], serde_json::json!(["h\u{fffd}", 1.5, null]));
    }

    #[test]
    fn frames_that_are_not_messages_are_refused() {
        assert_eq!(Incoming::decode(Protocol::Json, b"[]").unwrap_err(), DecodeError::NotJson);
        assert_eq!(Incoming::decode(Protocol::Bson, b"\x05\x00\x00").unwrap_err(), DecodeError::NotBson);
        assert_eq!(Incoming::decode(Protocol::Json, br#"{"a":1}"#).unwrap_err(), DecodeError::NoType);
    }
}

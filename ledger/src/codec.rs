//! The canonical encoding: big-endian fixed-width integers and `u32`-length-prefixed byte
//! strings. The [`Reader`] never trusts a length: it checks it against the bytes that remain
//! (and a caller's limit) before allocating anything.

/// Why bytes could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("{what}: data ends early")]
    Truncated { what: &'static str },
    #[error("{what}: length {len} exceeds the limit of {limit}")]
    TooLong { what: &'static str, len: u64, limit: u64 },
    #[error("{what}: {problem}")]
    Invalid { what: &'static str, problem: String },
    #[error("{trailing} unexpected trailing bytes")]
    Trailing { trailing: usize },
}

/// Appends canonical fields to a buffer.
#[derive(Default)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn with_capacity(capacity: usize) -> Self {
        Self { buf: Vec::with_capacity(capacity) }
    }
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.buf.push(v);
        self
    }
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub fn fixed(&mut self, v: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(v);
        self
    }
    /// A `u32` length, then the bytes.
    pub fn bytes(&mut self, v: &[u8]) -> &mut Self {
        self.u32(v.len() as u32);
        self.buf.extend_from_slice(v);
        self
    }
    pub fn finish(self) -> Vec<u8> {
        self.buf
    }
}

/// Reads canonical fields from untrusted bytes.
pub struct Reader<'a> {
    data: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Self { data }
    }
    pub fn remaining(&self) -> usize {
        self.data.len()
    }
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        if self.data.len() < n {
            return Err(DecodeError::Truncated { what });
        }
        let (head, tail) = self.data.split_at(n);
        self.data = tail;
        Ok(head)
    }
    pub fn u8(&mut self, what: &'static str) -> Result<u8, DecodeError> {
        Ok(self.take(1, what)?[0])
    }
    pub fn u32(&mut self, what: &'static str) -> Result<u32, DecodeError> {
        let mut b = [0u8; 4];
        b.copy_from_slice(self.take(4, what)?);
        Ok(u32::from_be_bytes(b))
    }
    pub fn u64(&mut self, what: &'static str) -> Result<u64, DecodeError> {
        let mut b = [0u8; 8];
        b.copy_from_slice(self.take(8, what)?);
        Ok(u64::from_be_bytes(b))
    }
    pub fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], DecodeError> {
        let mut b = [0u8; N];
        b.copy_from_slice(self.take(N, what)?);
        Ok(b)
    }
    /// A length-prefixed byte string of at most `limit` bytes.
    pub fn bytes(&mut self, what: &'static str, limit: usize) -> Result<&'a [u8], DecodeError> {
        let len = self.u32(what)? as usize;
        if len > limit {
            return Err(DecodeError::TooLong { what, len: len as u64, limit: limit as u64 });
        }
        self.take(len, what)
    }
    /// A `u32` item count, checked against the bytes left when each item needs at least
    /// `min_item_size` bytes, so a forged count cannot make the caller allocate.
    pub fn count(&mut self, what: &'static str, min_item_size: usize, limit: usize) -> Result<usize, DecodeError> {
        let n = self.u32(what)? as usize;
        let affordable = self.data.len() / min_item_size.max(1);
        if n > limit || n > affordable {
            return Err(DecodeError::TooLong { what, len: n as u64, limit: limit.min(affordable) as u64 });
        }
        Ok(n)
    }
    /// Fails unless every byte was read.
    pub fn finish(self) -> Result<(), DecodeError> {
        if self.data.is_empty() { Ok(()) } else { Err(DecodeError::Trailing { trailing: self.data.len() }) }
    }
}

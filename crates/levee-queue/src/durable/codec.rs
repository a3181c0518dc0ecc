//! How payloads become bytes in the log, and the little-endian reader and writer the
//! records are built with.

use std::fmt;

/// A payload the durable broker can store: encoded when published, decoded when the log is
/// recovered.
///
/// Implemented for `Vec<u8>`, `String`, `u64` and `()`; implement it for an event type with
/// whatever format it already has (JSON, protobuf, ...). Decoding must not panic on bytes it
/// did not write; it returns [`DecodeError`] and the broker refuses to open with the
/// record's position.
///
/// ```
/// use levee_queue::durable::{Codec, DecodeError};
///
/// #[derive(Debug, PartialEq)]
/// struct OrderPlaced { order: u64 }
///
/// impl Codec for OrderPlaced {
///     fn encode(&self, out: &mut Vec<u8>) {
///         out.extend_from_slice(&self.order.to_le_bytes());
///     }
///     fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
///         let order = bytes.try_into().map_err(|_| DecodeError::new("not 8 bytes"))?;
///         Ok(Self { order: u64::from_le_bytes(order) })
///     }
/// }
///
/// let mut buf = Vec::new();
/// OrderPlaced { order: 7 }.encode(&mut buf);
/// assert_eq!(OrderPlaced::decode(&buf), Ok(OrderPlaced { order: 7 }));
/// ```
pub trait Codec: Sized + Send + Sync + 'static {
    /// Appends the payload's bytes to `out`.
    fn encode(&self, out: &mut Vec<u8>);
    /// Reads a payload back.
    ///
    /// # Errors
    /// [`DecodeError`] when the bytes are not a payload of this type.
    fn decode(bytes: &[u8]) -> Result<Self, DecodeError>;
}

/// Bytes that do not decode.
///
/// ```
/// use levee_queue::durable::{Codec, DecodeError};
///
/// assert!(u64::decode(&[1, 2, 3]).is_err()); // 3 bytes are not a u64
/// let e = DecodeError::new("not 8 bytes");
/// assert_eq!(e.to_string(), "cannot decode: not 8 bytes");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot decode: {reason}")]
pub struct DecodeError {
    /// What is wrong.
    pub reason: String,
}

impl DecodeError {
    /// An error saying `reason`.
    pub fn new(reason: impl fmt::Display) -> Self {
        Self { reason: reason.to_string() }
    }
}

impl Codec for Vec<u8> {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self);
    }
    fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        Ok(bytes.to_vec())
    }
}

impl Codec for String {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.as_bytes());
    }
    fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        String::from_utf8(bytes.to_vec()).map_err(DecodeError::new)
    }
}

impl Codec for u64 {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
    fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let b: [u8; 8] = bytes.try_into().map_err(|_| DecodeError::new("a u64 is 8 bytes"))?;
        Ok(u64::from_le_bytes(b))
    }
}

impl Codec for () {
    fn encode(&self, _out: &mut Vec<u8>) {}
    fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        if bytes.is_empty() { Ok(()) } else { Err(DecodeError::new("() is empty")) }
    }
}

/// Appends little-endian fields.
pub(crate) struct Writer<'a>(pub(crate) &'a mut Vec<u8>);

impl Writer<'_> {
    pub(crate) fn u8(&mut self, v: u8) -> &mut Self {
        self.0.push(v);
        self
    }
    pub(crate) fn u32(&mut self, v: u32) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub(crate) fn u64(&mut self, v: u64) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub(crate) fn bytes(&mut self, v: &[u8]) -> &mut Self {
        self.u32(u32::try_from(v.len()).unwrap_or(u32::MAX));
        self.0.extend_from_slice(v);
        self
    }
    pub(crate) fn str(&mut self, v: &str) -> &mut Self {
        self.bytes(v.as_bytes())
    }
    pub(crate) fn opt_str(&mut self, v: Option<&str>) -> &mut Self {
        match v {
            Some(s) => self.u8(1).str(s),
            None => self.u8(0),
        }
    }
    /// Writes a length-prefixed field whose content `f` appends.
    pub(crate) fn nested(&mut self, f: impl FnOnce(&mut Vec<u8>)) -> &mut Self {
        let at = self.0.len();
        self.u32(0);
        f(self.0);
        let len = u32::try_from(self.0.len() - at - 4).unwrap_or(u32::MAX);
        self.0[at..at + 4].copy_from_slice(&len.to_le_bytes());
        self
    }
}

/// Reads little-endian fields; every read is checked.
#[derive(Debug)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

pub(crate) fn short() -> DecodeError {
    DecodeError::new("record ends early")
}

impl<'a> Reader<'a> {
    #[inline]
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }
    #[inline]
    pub(crate) fn pos(&self) -> usize {
        self.pos
    }
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.pos == self.buf.len()
    }
    /// The whole buffer being read.
    #[inline]
    pub(crate) fn buf(&self) -> &'a [u8] {
        self.buf
    }
    /// Moves to the end.
    #[inline]
    pub(crate) fn skip_rest(&mut self) {
        self.pos = self.buf.len();
    }
    #[inline]
    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self.pos.checked_add(n).ok_or_else(short)?;
        let s = self.buf.get(self.pos..end).ok_or_else(short)?;
        self.pos = end;
        Ok(s)
    }
    #[inline]
    pub(crate) fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }
    #[inline]
    pub(crate) fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().map_err(|_| short())?))
    }
    #[inline]
    pub(crate) fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().map_err(|_| short())?))
    }
    #[inline]
    pub(crate) fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let n = self.u32()? as usize;
        self.take(n)
    }
    #[inline]
    pub(crate) fn str(&mut self) -> Result<&'a str, DecodeError> {
        std::str::from_utf8(self.bytes()?).map_err(DecodeError::new)
    }
    #[inline]
    pub(crate) fn opt_str(&mut self) -> Result<Option<&'a str>, DecodeError> {
        match self.u8()? {
            0 => Ok(None),
            1 => self.str().map(Some),
            t => Err(DecodeError::new(format_args!("bad option tag {t}"))),
        }
    }
}

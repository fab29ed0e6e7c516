//! Sans-IO codec for the version 2 peer protocol frames (see `PROTOCOL.md`).
//!
//! Decoders take whatever bytes have arrived so far and say either "here is a frame
//! and how many bytes it used", "need more bytes", or why the input can never become
//! a valid frame. They never panic and never allocate more than the frame's limit,
//! whatever the input, because the input comes from peers.

use bao_tree::{ChunkNum, ChunkRanges};
use bytes::Bytes;
use fleetcache_store::Hash;

/// The protocol version this codec speaks.
pub const VERSION: u8 = 2;
/// The largest encoded chunk-range set, in bytes.
pub const MAX_RANGES_LEN: usize = 1024;
/// The largest message a FETCH_URL or PURGE request, a PURGE answer or a URL
/// response head carries, in bytes.
pub const MAX_MESSAGE_LEN: usize = 64 * 1024;
/// The largest PURGE_LOG answer, in bytes.
pub const MAX_LOG_LEN: usize = 1 << 20;
/// The largest data frame of a URL response body, in bytes.
pub const MAX_BODY_FRAME: usize = 1 << 20;
/// The largest request frame, in bytes: version, kind, length, message (the
/// hash requests are smaller: 2 + 32 + 2 + [`MAX_RANGES_LEN`]).
pub const MAX_REQUEST_LEN: usize = 2 + 4 + MAX_MESSAGE_LEN;

/// A LEB128 encoding of a u64 never needs more than ten bytes.
const MAX_VARINT_LEN: usize = 10;

/// What a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestKind {
    /// Liveness and round-trip time.
    Ping,
    /// Which of these chunks of this hash does the peer hold?
    Have,
    /// Send these chunks of this hash, bao-encoded.
    Get,
    /// Answer this URL request, as the URL's owner (version 2).
    FetchUrl,
    /// Apply this purge (version 2).
    Purge,
    /// Send the purges you keep (version 2).
    PurgeLog,
}

impl RequestKind {
    fn byte(self) -> u8 {
        match self {
            RequestKind::Ping => 0x01,
            RequestKind::Have => 0x02,
            RequestKind::Get => 0x03,
            RequestKind::FetchUrl => 0x04,
            RequestKind::Purge => 0x05,
            RequestKind::PurgeLog => 0x06,
        }
    }

    /// The most an OK answer's message may hold (FETCH_URL: the response head).
    fn max_answer(self) -> usize {
        match self {
            RequestKind::PurgeLog => MAX_LOG_LEN,
            _ => MAX_MESSAGE_LEN,
        }
    }
}

/// A decoded request frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Are you there?
    Ping,
    /// Which of `ranges` of `hash` do you hold?
    Have {
        /// The blob asked about.
        hash: Hash,
        /// The chunks asked about.
        ranges: RangeSpec,
    },
    /// Send `ranges` of `hash`.
    Get {
        /// The blob requested.
        hash: Hash,
        /// The chunks requested.
        ranges: RangeSpec,
    },
    /// A URL request for its owner; the message is the gateway's (see `PROTOCOL.md`).
    FetchUrl(Bytes),
    /// A purge to apply; the message is the gateway's.
    Purge(Bytes),
    /// Which purges do you keep? The message is the gateway's.
    PurgeLog(Bytes),
}

/// A decoded response header. What follows a [`Response::Get`] header is the bao stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// OK to a PING.
    Pong,
    /// OK to a HAVE: the requested chunks the responder holds.
    Have(RangeSpec),
    /// OK to a GET: the claimed size (unproven until the last chunk verifies).
    Get {
        /// Blob size in bytes, as claimed by the responder.
        size: u64,
    },
    /// OK to a FETCH_URL (the response head; body frames follow), a PURGE or a
    /// PURGE_LOG: the gateway's message.
    Message(Bytes),
    /// The responder does not hold the blob (or, for HAVE, none of the chunks).
    NotFound,
    /// The responder is too busy; ask another source.
    Overloaded,
}

const STATUS_OK: u8 = 0x00;
const STATUS_NOT_FOUND: u8 = 0x01;
const STATUS_OVERLOADED: u8 = 0x02;

/// The outcome of decoding from a buffer that may hold only part of a frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded<T> {
    /// A whole frame, and how many bytes of the buffer it used.
    Frame(T, usize),
    /// The buffer is a valid prefix; read more bytes and try again.
    Incomplete,
}

/// Why bytes can never become a valid frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The version byte is not one this codec speaks.
    #[error("unsupported protocol version {0}")]
    UnsupportedVersion(u8),
    /// The kind byte names no request kind.
    #[error("unknown request kind {0:#04x}")]
    UnknownKind(u8),
    /// The status byte names no response status.
    #[error("unknown response status {0:#04x}")]
    UnknownStatus(u8),
    /// A length field exceeds its limit.
    #[error("a length of {len} bytes exceeds the limit of {limit}")]
    TooLarge {
        /// The length received or asked for.
        len: usize,
        /// Its limit.
        limit: usize,
    },
    /// A chunk-range set has no boundaries.
    #[error("empty chunk ranges")]
    EmptyRanges,
    /// A varint is truncated, overlong, non-minimal or overflows a u64.
    #[error("malformed varint in chunk ranges")]
    BadVarint,
    /// Boundaries are not strictly increasing (a zero difference, or past u64::MAX).
    #[error("chunk range boundaries are not strictly increasing")]
    NotIncreasing,
}

impl WireError {
    /// The stream error code to reset the stream with.
    pub fn code(&self) -> ErrorCode {
        match self {
            WireError::UnsupportedVersion(_) => ErrorCode::UnsupportedVersion,
            WireError::TooLarge { .. } => ErrorCode::TooLarge,
            WireError::UnknownKind(_)
            | WireError::UnknownStatus(_)
            | WireError::EmptyRanges
            | WireError::BadVarint
            | WireError::NotIncreasing => ErrorCode::Malformed,
        }
    }
}

/// QUIC application error codes for RESET_STREAM and STOP_SENDING.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// A frame broke the protocol's rules.
    Malformed,
    /// A length exceeded its limit.
    TooLarge,
    /// The version byte is not supported.
    UnsupportedVersion,
    /// The object vanished after its header was sent.
    NotFound,
    /// The responder failed.
    Internal,
    /// The requester no longer wants the data.
    Cancelled,
}

impl ErrorCode {
    const ALL: [ErrorCode; 6] = [
        ErrorCode::Malformed,
        ErrorCode::TooLarge,
        ErrorCode::UnsupportedVersion,
        ErrorCode::NotFound,
        ErrorCode::Internal,
        ErrorCode::Cancelled,
    ];

    /// The numeric code on the wire.
    pub fn to_u32(self) -> u32 {
        match self {
            ErrorCode::Malformed => 1,
            ErrorCode::TooLarge => 2,
            ErrorCode::UnsupportedVersion => 3,
            ErrorCode::NotFound => 4,
            ErrorCode::Internal => 5,
            ErrorCode::Cancelled => 6,
        }
    }

    /// The code for a number received from a peer, if it is one of ours.
    pub fn from_u64(code: u64) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|c| u64::from(c.to_u32()) == code)
    }
}

/// A non-empty set of chunk ranges as its sorted boundaries (see `PROTOCOL.md`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeSpec {
    boundaries: Vec<u64>,
}

impl RangeSpec {
    /// From boundaries `b0 < b1 < …`: ranges `[b0, b1)`, `[b2, b3)`, …, open if odd.
    /// `None` if empty or not strictly increasing.
    pub fn from_boundaries(boundaries: Vec<u64>) -> Option<Self> {
        let increasing = boundaries.windows(2).all(|w| w[0] < w[1]);
        (increasing && !boundaries.is_empty()).then_some(Self { boundaries })
    }

    /// The whole blob, `[0, ∞)`.
    pub fn all() -> Self {
        Self {
            boundaries: vec![0],
        }
    }

    /// Only the last chunk, whatever the size: asking past the end selects it, which
    /// proves the size (see `PROTOCOL.md`).
    pub fn last_chunk() -> Self {
        Self {
            boundaries: vec![u64::MAX],
        }
    }

    /// From bao-tree's ranges; `None` if they are empty.
    pub fn from_chunk_ranges(ranges: &ChunkRanges) -> Option<Self> {
        Self::from_boundaries(ranges.boundaries().iter().map(|c| c.0).collect())
    }

    /// As bao-tree's ranges, for the encoder and decoder.
    pub fn to_chunk_ranges(&self) -> ChunkRanges {
        let mut ranges = ChunkRanges::empty();
        for pair in self.boundaries.chunks(2) {
            match *pair {
                [start, end] => ranges |= ChunkRanges::from(ChunkNum(start)..ChunkNum(end)),
                [start] => ranges |= ChunkRanges::from(ChunkNum(start)..),
                _ => {}
            }
        }
        ranges
    }

    /// The sorted boundaries.
    pub fn boundaries(&self) -> &[u64] {
        &self.boundaries
    }

    /// Appends the length field and the varints. Fails only if the encoding
    /// would exceed [`MAX_RANGES_LEN`].
    fn encode_into(&self, out: &mut Vec<u8>) -> Result<(), WireError> {
        let mut body = Vec::new();
        let mut previous = 0;
        for (i, &b) in self.boundaries.iter().enumerate() {
            // Increasing is an invariant of the type, so the difference cannot underflow.
            let value = if i == 0 { b } else { b - previous };
            write_varint(&mut body, value);
            previous = b;
        }
        let len = u16::try_from(body.len())
            .ok()
            .filter(|&l| usize::from(l) <= MAX_RANGES_LEN)
            .ok_or(WireError::TooLarge {
                len: body.len(),
                limit: MAX_RANGES_LEN,
            })?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&body);
        Ok(())
    }

    /// Decodes a length-prefixed range set at the start of `buf`.
    fn decode(buf: &[u8]) -> Result<Decoded<Self>, WireError> {
        let Some(len_bytes) = buf.first_chunk::<2>() else {
            return Ok(Decoded::Incomplete);
        };
        let len = usize::from(u16::from_be_bytes(*len_bytes));
        if len > MAX_RANGES_LEN {
            return Err(WireError::TooLarge {
                len,
                limit: MAX_RANGES_LEN,
            });
        }
        let Some(body) = buf.get(2..2 + len) else {
            return Ok(Decoded::Incomplete);
        };
        if body.is_empty() {
            return Err(WireError::EmptyRanges);
        }
        let mut boundaries = Vec::new();
        let mut rest = body;
        let mut previous: Option<u64> = None;
        while !rest.is_empty() {
            let (value, used) = read_varint(rest)?;
            rest = rest.get(used..).unwrap_or_default();
            let boundary = match previous {
                None => value,
                Some(_) if value == 0 => return Err(WireError::NotIncreasing),
                Some(p) => p.checked_add(value).ok_or(WireError::NotIncreasing)?,
            };
            boundaries.push(boundary);
            previous = Some(boundary);
        }
        Ok(Decoded::Frame(Self { boundaries }, 2 + len))
    }
}

impl Request {
    /// The kind of this request, needed to decode its response.
    pub fn kind(&self) -> RequestKind {
        match self {
            Request::Ping => RequestKind::Ping,
            Request::Have { .. } => RequestKind::Have,
            Request::Get { .. } => RequestKind::Get,
            Request::FetchUrl(_) => RequestKind::FetchUrl,
            Request::Purge(_) => RequestKind::Purge,
            Request::PurgeLog(_) => RequestKind::PurgeLog,
        }
    }

    /// The encoded frame; fails only if the ranges exceed [`MAX_RANGES_LEN`] or
    /// a message [`MAX_MESSAGE_LEN`].
    pub fn encode(&self) -> Result<Vec<u8>, WireError> {
        let mut out = vec![VERSION, self.kind().byte()];
        match self {
            Request::Ping => {}
            Request::Have { hash, ranges } | Request::Get { hash, ranges } => {
                out.extend_from_slice(hash.as_bytes());
                ranges.encode_into(&mut out)?;
            }
            Request::FetchUrl(message) | Request::Purge(message) | Request::PurgeLog(message) => {
                encode_message(&mut out, message, MAX_MESSAGE_LEN)?;
            }
        }
        Ok(out)
    }

    /// Decodes a request frame from the start of `buf`.
    pub fn decode(buf: &[u8]) -> Result<Decoded<Self>, WireError> {
        let Some(&version) = buf.first() else {
            return Ok(Decoded::Incomplete);
        };
        if version != VERSION {
            return Err(WireError::UnsupportedVersion(version));
        }
        let Some(&kind) = buf.get(1) else {
            return Ok(Decoded::Incomplete);
        };
        let kind = match kind {
            0x01 => return Ok(Decoded::Frame(Request::Ping, 2)),
            0x02 => RequestKind::Have,
            0x03 => RequestKind::Get,
            0x04..=0x06 => {
                let rest = buf.get(2..).unwrap_or_default();
                return Ok(match decode_message(rest, MAX_MESSAGE_LEN)? {
                    Decoded::Incomplete => Decoded::Incomplete,
                    Decoded::Frame(message, used) => {
                        let request = match kind {
                            0x04 => Request::FetchUrl(message),
                            0x05 => Request::Purge(message),
                            _ => Request::PurgeLog(message),
                        };
                        Decoded::Frame(request, 2 + used)
                    }
                });
            }
            other => return Err(WireError::UnknownKind(other)),
        };
        let Some(hash) = buf.get(2..).and_then(|b| b.first_chunk::<32>()) else {
            return Ok(Decoded::Incomplete);
        };
        let hash = Hash::from_bytes(*hash);
        let ranges = RangeSpec::decode(buf.get(34..).unwrap_or_default())?;
        Ok(match ranges {
            Decoded::Incomplete => Decoded::Incomplete,
            Decoded::Frame(ranges, used) => {
                let request = match kind {
                    RequestKind::Have => Request::Have { hash, ranges },
                    _ => Request::Get { hash, ranges },
                };
                Decoded::Frame(request, 34 + used)
            }
        })
    }
}

impl Response {
    /// The encoded header; fails only if HAVE ranges exceed [`MAX_RANGES_LEN`].
    pub fn encode(&self) -> Result<Vec<u8>, WireError> {
        let mut out = Vec::new();
        match self {
            Response::Pong => out.push(STATUS_OK),
            Response::Have(ranges) => {
                out.push(STATUS_OK);
                ranges.encode_into(&mut out)?;
            }
            Response::Get { size } => {
                out.push(STATUS_OK);
                // Little-endian, as bao-tree encodes the size.
                out.extend_from_slice(&size.to_le_bytes());
            }
            Response::Message(message) => {
                out.push(STATUS_OK);
                encode_message(&mut out, message, MAX_LOG_LEN)?;
            }
            Response::NotFound => out.push(STATUS_NOT_FOUND),
            Response::Overloaded => out.push(STATUS_OVERLOADED),
        }
        Ok(out)
    }

    /// Decodes the header answering a request of `kind` from the start of `buf`;
    /// for GET the bao stream starts at the returned length.
    pub fn decode(kind: RequestKind, buf: &[u8]) -> Result<Decoded<Self>, WireError> {
        let Some(&status) = buf.first() else {
            return Ok(Decoded::Incomplete);
        };
        match status {
            STATUS_OK => {}
            STATUS_NOT_FOUND => return Ok(Decoded::Frame(Response::NotFound, 1)),
            STATUS_OVERLOADED => return Ok(Decoded::Frame(Response::Overloaded, 1)),
            other => return Err(WireError::UnknownStatus(other)),
        }
        let rest = buf.get(1..).unwrap_or_default();
        Ok(match kind {
            RequestKind::Ping => Decoded::Frame(Response::Pong, 1),
            RequestKind::Get => match rest.first_chunk::<8>() {
                Some(size) => Decoded::Frame(
                    Response::Get {
                        size: u64::from_le_bytes(*size),
                    },
                    9,
                ),
                None => Decoded::Incomplete,
            },
            RequestKind::Have => match RangeSpec::decode(rest)? {
                Decoded::Frame(ranges, used) => Decoded::Frame(Response::Have(ranges), 1 + used),
                Decoded::Incomplete => Decoded::Incomplete,
            },
            RequestKind::FetchUrl | RequestKind::Purge | RequestKind::PurgeLog => {
                match decode_message(rest, kind.max_answer())? {
                    Decoded::Frame(message, used) => {
                        Decoded::Frame(Response::Message(message), 1 + used)
                    }
                    Decoded::Incomplete => Decoded::Incomplete,
                }
            }
        })
    }
}

/// One frame of a URL response body (see `PROTOCOL.md`): a data frame's
/// header, or the end with the sender's BLAKE3 hash and size of every data
/// byte it sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyFrame {
    /// This many data bytes follow (1 ..= [`MAX_BODY_FRAME`]).
    Data(usize),
    /// The body is complete.
    End {
        /// BLAKE3 of the body's bytes.
        hash: Hash,
        /// The body's length.
        size: u64,
    },
}

/// A data frame's header, then the end frame: 4 + 32 + 8 bytes.
const END_FRAME_LEN: usize = 4 + 32 + 8;

impl BodyFrame {
    /// The encoded frame header (for [`BodyFrame::Data`], the bytes follow it);
    /// fails if a data frame is empty or exceeds [`MAX_BODY_FRAME`].
    pub fn encode(&self) -> Result<Vec<u8>, WireError> {
        match self {
            BodyFrame::Data(len) => {
                let len32 = u32::try_from(*len)
                    .ok()
                    .filter(|&l| l > 0 && *len <= MAX_BODY_FRAME)
                    .ok_or(WireError::TooLarge {
                        len: *len,
                        limit: MAX_BODY_FRAME,
                    })?;
                Ok(len32.to_be_bytes().to_vec())
            }
            BodyFrame::End { hash, size } => {
                let mut out = Vec::with_capacity(END_FRAME_LEN);
                out.extend_from_slice(&0u32.to_be_bytes());
                out.extend_from_slice(hash.as_bytes());
                out.extend_from_slice(&size.to_be_bytes());
                Ok(out)
            }
        }
    }

    /// Decodes a frame header from the start of `buf`.
    pub fn decode(buf: &[u8]) -> Result<Decoded<Self>, WireError> {
        let Some(len) = buf.first_chunk::<4>() else {
            return Ok(Decoded::Incomplete);
        };
        let len = u32::from_be_bytes(*len) as usize;
        if len > MAX_BODY_FRAME {
            return Err(WireError::TooLarge {
                len,
                limit: MAX_BODY_FRAME,
            });
        }
        if len > 0 {
            return Ok(Decoded::Frame(BodyFrame::Data(len), 4));
        }
        let hash = buf.get(4..).and_then(|b| b.first_chunk::<32>());
        let size = buf.get(36..).and_then(|b| b.first_chunk::<8>());
        let (Some(hash), Some(size)) = (hash, size) else {
            return Ok(Decoded::Incomplete);
        };
        let end = BodyFrame::End {
            hash: Hash::from_bytes(*hash),
            size: u64::from_be_bytes(*size),
        };
        Ok(Decoded::Frame(end, END_FRAME_LEN))
    }
}

/// Appends a message: its length (4 bytes) and its bytes.
fn encode_message(out: &mut Vec<u8>, message: &[u8], limit: usize) -> Result<(), WireError> {
    let len = u32::try_from(message.len())
        .ok()
        .filter(|_| message.len() <= limit)
        .ok_or(WireError::TooLarge {
            len: message.len(),
            limit,
        })?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(message);
    Ok(())
}

/// Decodes a length-prefixed message at the start of `buf`.
fn decode_message(buf: &[u8], limit: usize) -> Result<Decoded<Bytes>, WireError> {
    let Some(len) = buf.first_chunk::<4>() else {
        return Ok(Decoded::Incomplete);
    };
    let len = u32::from_be_bytes(*len) as usize;
    if len > limit {
        return Err(WireError::TooLarge { len, limit });
    }
    Ok(match buf.get(4..4 + len) {
        Some(message) => Decoded::Frame(Bytes::copy_from_slice(message), 4 + len),
        None => Decoded::Incomplete,
    })
}

fn write_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        // Truncation to the low seven bits is the point of the encoding.
        out.push((value & 0x7f) as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Reads one minimal LEB128 u64 from a slice that must contain all of it.
fn read_varint(buf: &[u8]) -> Result<(u64, usize), WireError> {
    let mut value: u64 = 0;
    for (i, &byte) in buf.iter().take(MAX_VARINT_LEN).enumerate() {
        let bits = u64::from(byte & 0x7f);
        // The tenth byte may carry only the single top bit of a u64.
        if i == MAX_VARINT_LEN - 1 && byte > 1 {
            return Err(WireError::BadVarint);
        }
        value |= bits << (7 * i);
        if byte & 0x80 == 0 {
            // A zero final byte after others is padding: the encoding is not minimal.
            if byte == 0 && i > 0 {
                return Err(WireError::BadVarint);
            }
            return Ok((value, i + 1));
        }
    }
    // Ran out of bytes (the field ended mid-varint) or past ten bytes.
    Err(WireError::BadVarint)
}

#[cfg(test)]
#[path = "wire_tests.rs"]
mod tests;

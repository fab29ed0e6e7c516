//! A raw HTTP/2 client over TLS for hostile-client tests: frames are written
//! by hand (so a test can break every rule a real client keeps) and whatever
//! the server sends is read back frame by frame.
//!
//! HPACK is hand-encoded too: requests use static-table indexes and literals
//! without indexing, so the server's decoder state never matters. Of the
//! server's header blocks only the `:status` of a response is decoded.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use crate::tls_support::{TestCa, tls_connect};

pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

// Frame types (RFC 9113 §6).
pub const DATA: u8 = 0x0;
pub const HEADERS: u8 = 0x1;
pub const RST_STREAM: u8 = 0x3;
pub const SETTINGS: u8 = 0x4;
pub const PING: u8 = 0x6;
pub const GOAWAY: u8 = 0x7;
pub const WINDOW_UPDATE: u8 = 0x8;
pub const CONTINUATION: u8 = 0x9;

// Flags.
pub const END_STREAM: u8 = 0x1;
pub const ACK: u8 = 0x1;
pub const END_HEADERS: u8 = 0x4;

// Error codes (RFC 9113 §7).
pub const NO_ERROR: u32 = 0x0;
pub const PROTOCOL_ERROR: u32 = 0x1;
pub const CANCEL: u32 = 0x8;
pub const REFUSED_STREAM: u32 = 0x7;
pub const COMPRESSION_ERROR: u32 = 0x9;
pub const ENHANCE_YOUR_CALM: u32 = 0xb;

// Settings identifiers.
pub const SETTINGS_MAX_CONCURRENT_STREAMS: u16 = 0x3;
pub const SETTINGS_INITIAL_WINDOW_SIZE: u16 = 0x4;

/// One frame as read from the server.
#[derive(Clone)]
pub struct Frame {
    pub kind: u8,
    pub flags: u8,
    pub stream: u32,
    pub payload: Vec<u8>,
}

impl std::fmt::Debug for Frame {
    /// Type, flags, stream and the start of the payload (DATA can be long).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown = &self.payload[..self.payload.len().min(16)];
        write!(
            f,
            "Frame(type {:#x}, flags {:#x}, stream {}, {} bytes {shown:02x?})",
            self.kind,
            self.flags,
            self.stream,
            self.payload.len()
        )
    }
}

impl Frame {
    /// The error code of a RST_STREAM or GOAWAY.
    pub fn error_code(&self) -> Option<u32> {
        let at = match self.kind {
            RST_STREAM => 0,
            GOAWAY => 4,
            _ => return None,
        };
        let bytes = self.payload.get(at..at + 4)?;
        Some(u32::from_be_bytes(bytes.try_into().ok()?))
    }

    /// The last stream id of a GOAWAY.
    pub fn last_stream(&self) -> Option<u32> {
        let bytes = self.payload.get(..4)?;
        (self.kind == GOAWAY).then(|| u32::from_be_bytes(bytes.try_into().unwrap()) & 0x7fff_ffff)
    }

    /// A SETTINGS frame's value for `id`.
    pub fn setting(&self, id: u16) -> Option<u32> {
        if self.kind != SETTINGS || self.flags & ACK != 0 {
            return None;
        }
        self.payload.chunks_exact(6).find_map(|entry| {
            (u16::from_be_bytes([entry[0], entry[1]]) == id)
                .then(|| u32::from_be_bytes([entry[2], entry[3], entry[4], entry[5]]))
        })
    }

    /// The `:status` of a response HEADERS frame, when the server sent it
    /// from the static table or as a literal (always so for the first
    /// response with that status on a connection).
    pub fn status(&self) -> Option<u16> {
        if self.kind != HEADERS {
            return None;
        }
        // Skip padding length and priority fields when flagged.
        let mut block = &self.payload[..];
        if self.flags & 0x8 != 0 {
            block = block.get(1..)?;
        }
        if self.flags & 0x20 != 0 {
            block = block.get(5..)?;
        }
        // A dynamic table size update may come first.
        while block.first().is_some_and(|b| b & 0xe0 == 0x20) {
            let (_, used) = hpack_int(block, 5)?;
            block = &block[used..];
        }
        let first = *block.first()?;
        if first & 0x80 != 0 {
            return match first & 0x7f {
                8 => Some(200),
                9 => Some(204),
                10 => Some(206),
                11 => Some(304),
                12 => Some(400),
                13 => Some(404),
                14 => Some(500),
                _ => None,
            };
        }
        // A literal whose name is static index 8 (`:status`): with
        // incremental indexing (6-bit prefix) or without / never (4-bit).
        let prefix = if first & 0xc0 == 0x40 { 6 } else { 4 };
        let (name, used) = hpack_int(block, prefix)?;
        if name != 8 {
            return None;
        }
        let rest = &block[used..];
        let huffman = rest.first()? & 0x80 != 0;
        let (len, used) = hpack_int(rest, 7)?;
        let value = rest.get(used..used + len)?;
        let digits = if huffman {
            huffman_digits(value)?
        } else {
            String::from_utf8(value.to_vec()).ok()?
        };
        digits.parse().ok()
    }
}

/// An HPACK integer with an `prefix`-bit prefix: (value, bytes used).
fn hpack_int(bytes: &[u8], prefix: u32) -> Option<(usize, usize)> {
    let max = (1usize << prefix) - 1;
    let mut value = usize::from(*bytes.first()?) & max;
    if value < max {
        return Some((value, 1));
    }
    let mut shift = 0;
    for (i, byte) in bytes.iter().enumerate().skip(1) {
        value += usize::from(byte & 0x7f) << shift;
        shift += 7;
        if byte & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

/// Decodes a Huffman-coded string of decimal digits (RFC 7541 Appendix B:
/// '0'..'2' are 5-bit codes 0..2, '3'..'9' 6-bit codes 0x19..0x1f).
fn huffman_digits(bytes: &[u8]) -> Option<String> {
    let bits: Vec<bool> = bytes
        .iter()
        .flat_map(|b| (0..8).rev().map(move |i| b >> i & 1 == 1))
        .collect();
    let mut out = String::new();
    let mut at = 0;
    while at < bits.len() {
        let rest = &bits[at..];
        if rest.len() < 8 && rest.iter().all(|b| *b) {
            break; // EOS padding
        }
        let code = |n: usize| {
            rest.get(..n)
                .map(|b| b.iter().fold(0u8, |acc, bit| acc << 1 | u8::from(*bit)))
        };
        if let Some(c @ 0..=2) = code(5) {
            out.push(char::from(b'0' + c));
            at += 5;
        } else if let Some(c @ 0x19..=0x1f) = code(6) {
            out.push(char::from(b'3' + c - 0x19));
            at += 6;
        } else {
            return None;
        }
    }
    Some(out)
}

/// Encodes one frame.
pub fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).expect("frame length");
    assert!(len < 1 << 24, "frame too long");
    let mut out = Vec::with_capacity(9 + payload.len());
    out.extend_from_slice(&len.to_be_bytes()[1..]);
    out.push(kind);
    out.push(flags);
    out.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

pub fn settings(values: &[(u16, u32)]) -> Vec<u8> {
    let payload: Vec<u8> = values
        .iter()
        .flat_map(|(id, value)| id.to_be_bytes().into_iter().chain(value.to_be_bytes()))
        .collect();
    frame(SETTINGS, 0, 0, &payload)
}

pub fn settings_ack() -> Vec<u8> {
    frame(SETTINGS, ACK, 0, &[])
}

pub fn ping_ack(opaque: &[u8]) -> Vec<u8> {
    frame(PING, ACK, 0, opaque)
}

pub fn ping(opaque: [u8; 8]) -> Vec<u8> {
    frame(PING, 0, 0, &opaque)
}

pub fn rst_stream(stream: u32, code: u32) -> Vec<u8> {
    frame(RST_STREAM, 0, stream, &code.to_be_bytes())
}

pub fn window_update(stream: u32, increment: u32) -> Vec<u8> {
    frame(WINDOW_UPDATE, 0, stream, &increment.to_be_bytes())
}

/// A HEADERS frame carrying all of `block` (END_HEADERS set).
pub fn headers(stream: u32, block: &[u8], end_stream: bool) -> Vec<u8> {
    let flags = END_HEADERS | if end_stream { END_STREAM } else { 0 };
    frame(HEADERS, flags, stream, block)
}

pub fn continuation(stream: u32, block: &[u8], end_headers: bool) -> Vec<u8> {
    frame(
        CONTINUATION,
        if end_headers { END_HEADERS } else { 0 },
        stream,
        block,
    )
}

/// HPACK for a request: `:method` (GET from the static table, others as a
/// literal), `:scheme https`, `:path`, `:authority`, then `extra` fields, all
/// literals without indexing and without Huffman coding.
pub fn request_block(method: &str, path: &str, authority: &str, extra: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    if method == "GET" {
        out.push(0x82);
    } else {
        literal_indexed_name(&mut out, 2, method);
    }
    out.push(0x87);
    if path == "/" {
        out.push(0x84);
    } else {
        literal_indexed_name(&mut out, 4, path);
    }
    literal_indexed_name(&mut out, 1, authority);
    for (name, value) in extra {
        out.push(0x00);
        string(&mut out, name);
        string(&mut out, value);
    }
    out
}

fn literal_indexed_name(out: &mut Vec<u8>, index: u8, value: &str) {
    out.push(index); // 0000xxxx: literal without indexing, name by index
    string(out, value);
}

fn string(out: &mut Vec<u8>, value: &str) {
    integer(out, 7, 0x00, value.len());
    out.extend_from_slice(value.as_bytes());
}

fn integer(out: &mut Vec<u8>, prefix: u32, first: u8, value: usize) {
    let max = (1usize << prefix) - 1;
    if value < max {
        out.push(first | value as u8);
        return;
    }
    out.push(first | max as u8);
    let mut rest = value - max;
    while rest >= 0x80 {
        out.push((rest & 0x7f) as u8 | 0x80);
        rest >>= 7;
    }
    out.push(rest as u8);
}

/// The reading half: whole frames as the server sends them.
pub struct Reader {
    io: ReadHalf<TlsStream<TcpStream>>,
    buf: BytesMut,
}

impl Reader {
    /// The next frame; `None` once the server closed the connection (or it
    /// failed).
    pub async fn next(&mut self) -> Option<Frame> {
        loop {
            if self.buf.len() >= 9 {
                let len = u32::from_be_bytes([0, self.buf[0], self.buf[1], self.buf[2]]) as usize;
                if self.buf.len() >= 9 + len {
                    let head = self.buf.split_to(9);
                    let payload = self.buf.split_to(len).to_vec();
                    let mut head = &head[..];
                    head.advance(3);
                    let kind = head.get_u8();
                    let flags = head.get_u8();
                    let stream = head.get_u32() & 0x7fff_ffff;
                    return Some(Frame {
                        kind,
                        flags,
                        stream,
                        payload,
                    });
                }
            }
            match self.io.read_buf(&mut self.buf).await {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    }

    /// The next frame within `limit`; panics if none comes (the server
    /// neither sent one nor closed).
    pub async fn next_within(&mut self, limit: Duration) -> Option<Frame> {
        tokio::time::timeout(limit, self.next())
            .await
            .expect("the server sent nothing and did not close")
    }

    /// Reads until a frame matching `pick` (returned) or the end of the
    /// connection (`None`), within `limit`. Frames passed over are kept in
    /// `seen`.
    pub async fn until(
        &mut self,
        limit: Duration,
        seen: &mut Vec<Frame>,
        mut pick: impl FnMut(&Frame) -> bool,
    ) -> Option<Frame> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let frame = tokio::time::timeout_at(deadline, self.next())
                .await
                .unwrap_or_else(|_| panic!("no matching frame within {limit:?}; saw {seen:?}"))?;
            if pick(&frame) {
                return Some(frame);
            }
            seen.push(frame);
        }
    }
}

/// The writing half.
pub struct Writer {
    io: WriteHalf<TlsStream<TcpStream>>,
    /// Bytes written so far (after the preface).
    pub sent: u64,
}

impl Writer {
    /// Writes `bytes` and flushes; an error means the server closed.
    pub async fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.io.write_all(bytes).await?;
        self.io.flush().await?;
        self.sent += bytes.len() as u64;
        Ok(())
    }
}

/// Connects over TLS with ALPN `h2` (checked) and sends the client preface
/// with `settings`. The server's SETTINGS are left for the reader.
pub async fn connect(
    ca: &TestCa,
    addr: SocketAddr,
    name: &str,
    values: &[(u16, u32)],
) -> (Reader, Writer) {
    let tls = tls_connect(ca, addr, name, &[b"h2"])
        .await
        .expect("TLS handshake");
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]), "ALPN h2");
    let (read, write) = tokio::io::split(tls);
    let mut writer = Writer { io: write, sent: 0 };
    let mut preface = PREFACE.to_vec();
    preface.extend_from_slice(&settings(values));
    writer.send(&preface).await.expect("preface");
    writer.sent = 0;
    (
        Reader {
            io: read,
            buf: BytesMut::new(),
        },
        writer,
    )
}

#[test]
fn hpack_helpers_round_trip() {
    let mut out = Vec::new();
    integer(&mut out, 5, 0, 1337);
    assert_eq!(out, [31, 154, 10]); // RFC 7541 C.1.2
    assert_eq!(hpack_int(&out, 5), Some((1337, 3)));
    // "431" Huffman-coded: 011010 011001 00001 + 7 bits of padding.
    assert_eq!(huffman_digits(&[0x69, 0x90, 0xff]).as_deref(), Some("431"));
    let status = Frame {
        kind: HEADERS,
        flags: END_HEADERS,
        stream: 1,
        payload: vec![0x48, 0x83, 0x69, 0x90, 0xff],
    };
    assert_eq!(status.status(), Some(431));
}

//! Request framing checks hyper cannot report: a request with both
//! `Content-Length` and `Transfer-Encoding` is the classic smuggling vector
//! (RFC 9112 §6.3). hyper frames it safely (chunked wins, the connection closes
//! afterwards) but drops the `Content-Length` before the handler sees the
//! request, so the handler cannot refuse it. This wrapper reads the same bytes
//! hyper reads, follows the framing of each request on the connection, and
//! queues one verdict per request head; the service pops them in order and
//! answers an ambiguous request with 400 before anything is forwarded.
//!
//! It never changes the bytes. Whenever it cannot follow the stream (a head it
//! does not understand, an upgrade), it stops judging and hyper's own parsing
//! decides, as it would without it.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use crate::sync::lock;

/// Most header fields examined in one head (hyper refuses more anyway).
const MAX_HEADERS: usize = 1000;
/// Fields parsed without a heap allocation.
const FEW_HEADERS: usize = 48;
/// Longest chunk-size line followed; longer ones are left to hyper.
const MAX_CHUNK_LINE: usize = 4096;

/// One verdict per request head, in connection order.
#[derive(Debug, Clone, Default)]
pub(crate) struct Verdicts(Arc<Mutex<VecDeque<Verdict>>>);

/// What the inspector saw in one request head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    Clear,
    /// Both `Content-Length` and `Transfer-Encoding`.
    Ambiguous,
}

impl Verdicts {
    /// The verdict on the next request hyper hands over; `Clear` when the
    /// inspector stopped following the connection.
    pub(crate) fn next(&self) -> Verdict {
        lock(&self.0).pop_front().unwrap_or(Verdict::Clear)
    }

    fn push(&self, verdict: Verdict) {
        lock(&self.0).push_back(verdict);
    }
}

#[derive(Debug)]
enum State {
    /// Collecting a request head.
    Head(Vec<u8>),
    /// Skipping a body of known length.
    Body(u64),
    /// Reading a chunk-size line.
    ChunkSize(Vec<u8>),
    /// Skipping chunk data, then its CRLF.
    ChunkData(u64),
    /// Reading trailer lines after the last chunk, up to an empty line.
    Trailers(Vec<u8>),
    /// Not following this connection any more.
    Off,
}

/// Follows one connection's request framing and judges every request head.
#[derive(Debug)]
pub(crate) struct Inspector {
    state: State,
    verdicts: Verdicts,
    max_head: usize,
}

impl Inspector {
    pub(crate) fn new(verdicts: Verdicts, max_head: usize) -> Self {
        Inspector {
            state: State::Head(Vec::new()),
            verdicts,
            max_head,
        }
    }

    /// An inspector that judges nothing: for HTTP/2, whose frames carry
    /// their own lengths and which forbids `Transfer-Encoding`.
    pub(crate) fn off(verdicts: Verdicts) -> Self {
        Inspector {
            state: State::Off,
            verdicts,
            max_head: 0,
        }
    }

    /// Feeds bytes read from the client through the framing state machine.
    pub(crate) fn observe(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            let state = std::mem::replace(&mut self.state, State::Off);
            let (next, used) = self.step(state, bytes);
            self.state = next;
            if matches!(self.state, State::Off) {
                return;
            }
            bytes = &bytes[used..];
        }
    }

    fn step(&self, state: State, bytes: &[u8]) -> (State, usize) {
        match state {
            State::Off => (State::Off, bytes.len()),
            // The usual case: a whole head in one read, judged where it lies.
            State::Head(head) if head.is_empty() => match self.judge(bytes) {
                Some((used, next)) => (next, used),
                None if bytes.len() > self.max_head => (State::Off, bytes.len()),
                None => (State::Head(bytes.to_vec()), bytes.len()),
            },
            State::Head(mut head) => {
                let before = head.len();
                head.extend_from_slice(bytes);
                match self.judge(&head) {
                    None if head.len() > self.max_head => (State::Off, bytes.len()),
                    None => (State::Head(head), bytes.len()),
                    Some((used, next)) => (next, used.saturating_sub(before)),
                }
            }
            State::Body(remaining) => {
                let take = remaining.min(bytes.len() as u64);
                let next = if take == remaining {
                    State::Head(Vec::new())
                } else {
                    State::Body(remaining - take)
                };
                (next, take as usize)
            }
            State::ChunkSize(mut line) => match bytes.iter().position(|&b| b == b'\n') {
                None if line.len() + bytes.len() > MAX_CHUNK_LINE => (State::Off, bytes.len()),
                None => {
                    line.extend_from_slice(bytes);
                    (State::ChunkSize(line), bytes.len())
                }
                Some(end) => {
                    line.extend_from_slice(&bytes[..end]);
                    let next = match chunk_size(&line) {
                        Some(0) => State::Trailers(Vec::new()),
                        // The data, then its CRLF.
                        Some(size) => State::ChunkData(size.saturating_add(2)),
                        None => State::Off,
                    };
                    (next, end + 1)
                }
            },
            State::ChunkData(remaining) => {
                let take = remaining.min(bytes.len() as u64);
                let next = if take == remaining {
                    State::ChunkSize(Vec::new())
                } else {
                    State::ChunkData(remaining - take)
                };
                (next, take as usize)
            }
            State::Trailers(mut line) => match bytes.iter().position(|&b| b == b'\n') {
                None if line.len() + bytes.len() > self.max_head => (State::Off, bytes.len()),
                None => {
                    line.extend_from_slice(bytes);
                    (State::Trailers(line), bytes.len())
                }
                Some(end) => {
                    line.extend_from_slice(&bytes[..end]);
                    let blank = line.iter().all(|&b| b == b'\r');
                    let next = if blank {
                        State::Head(Vec::new())
                    } else {
                        State::Trailers(Vec::new())
                    };
                    (next, end + 1)
                }
            },
        }
    }

    /// Parses a complete head, queues its verdict and says how its body is
    /// framed: `(bytes of the head, next state)`; `None` while incomplete.
    fn judge(&self, head: &[u8]) -> Option<(usize, State)> {
        // Leading blank lines before a request line are allowed (RFC 9112 §2.2).
        let skipped = head
            .iter()
            .position(|&b| b != b'\r' && b != b'\n')
            .unwrap_or(head.len());
        if skipped == head.len() {
            return None;
        }
        // Most heads fit the stack; zeroing room for a thousand fields on every
        // request cost more than parsing the head.
        let mut few = [httparse::EMPTY_HEADER; FEW_HEADERS];
        let mut many;
        let mut request = httparse::Request::new(&mut few);
        let parsed = match request.parse(&head[skipped..]) {
            Err(httparse::Error::TooManyHeaders) => {
                many = vec![httparse::EMPTY_HEADER; MAX_HEADERS];
                request = httparse::Request::new(&mut many);
                request.parse(&head[skipped..])
            }
            parsed => parsed,
        };
        let len = match parsed {
            Ok(httparse::Status::Complete(len)) => skipped + len,
            Ok(httparse::Status::Partial) => return None,
            // hyper refuses it and closes the connection.
            Err(_) => return Some((head.len(), State::Off)),
        };
        let mut lengths = Vec::new();
        let mut encodings = Vec::new();
        let mut upgrade = false;
        for field in request.headers.iter() {
            if field.name.eq_ignore_ascii_case("content-length") {
                lengths.push(field.value);
            } else if field.name.eq_ignore_ascii_case("transfer-encoding") {
                encodings.push(field.value);
            } else if field.name.eq_ignore_ascii_case("upgrade") {
                upgrade = true;
            }
        }
        if !lengths.is_empty() && !encodings.is_empty() {
            self.verdicts.push(Verdict::Ambiguous);
            // hyper closes the connection after this request: nothing follows.
            return Some((len, State::Off));
        }
        self.verdicts.push(Verdict::Clear);
        if upgrade || request.method == Some("CONNECT") {
            return Some((len, State::Off));
        }
        let next = if let Some(last) = encodings.last() {
            let chunked = last
                .rsplit(|&b| b == b',')
                .next()
                .is_some_and(|coding| coding.trim_ascii().eq_ignore_ascii_case(b"chunked"));
            if chunked {
                State::ChunkSize(Vec::new())
            } else {
                State::Off
            }
        } else if let Some(first) = lengths.first() {
            match std::str::from_utf8(first)
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
            {
                Some(0) => State::Head(Vec::new()),
                Some(length) if lengths.iter().all(|l| l == first) => State::Body(length),
                _ => State::Off,
            }
        } else {
            State::Head(Vec::new())
        };
        Some((len, next))
    }
}

/// The size on a chunk-size line (`1a;ext=1\r`), `None` if malformed.
fn chunk_size(line: &[u8]) -> Option<u64> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let digits = line.split(|&b| b == b';').next()?.trim_ascii();
    if digits.is_empty() || digits.len() > 16 {
        return None;
    }
    u64::from_str_radix(std::str::from_utf8(digits).ok()?, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdicts(stream: &[u8], split: usize) -> Vec<Verdict> {
        let verdicts = Verdicts::default();
        let mut inspected = Inspector::new(verdicts.clone(), 64 * 1024);
        // Any split into reads gives the same verdicts.
        for piece in stream.chunks(split.max(1)) {
            inspected.observe(piece);
        }
        let mut out = Vec::new();
        while let Some(v) = lock(&verdicts.0).pop_front() {
            out.push(v);
        }
        out
    }

    #[test]
    fn pipelined_requests_are_followed_through_their_bodies() {
        let stream = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n\
POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 44\r\n\r\n\
GET /fake HTTP/1.1\r\nTransfer-Encoding: x\r\n\r\n\
POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
5;ext=1\r\nhello\r\n1a\r\nContent-Length: 1\r\n\r\nxxxxx\r\n0\r\nX-Trailer: 1\r\n\r\n\
GET /d HTTP/1.1\r\nHost: x\r\n\r\n";
        for split in [1, 2, 3, 7, 64, 1000] {
            assert_eq!(
                verdicts(stream, split),
                [Verdict::Clear; 4],
                "split {split}"
            );
        }
    }

    #[test]
    fn length_and_encoding_together_are_ambiguous() {
        for stream in [
            &b"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"[..],
            b"POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\ncontent-length: 0\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\nPOST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\nContent-Length: 3\r\n\r\n",
        ] {
            let got = verdicts(stream, 5);
            assert_eq!(got.last(), Some(&Verdict::Ambiguous), "{got:?}");
        }
    }

    #[test]
    fn heads_with_more_fields_than_the_stack_holds_are_judged_too() {
        let mut head = b"POST /x HTTP/1.1\r\n".to_vec();
        for i in 0..2 * FEW_HEADERS {
            head.extend_from_slice(format!("X-Filler-{i}: {i}\r\n").as_bytes());
        }
        let mut ambiguous = head.clone();
        ambiguous.extend_from_slice(b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n");
        head.extend_from_slice(b"Content-Length: 5\r\n\r\nhelloGET / HTTP/1.1\r\n\r\n");
        for split in [3, 4096] {
            assert_eq!(verdicts(&ambiguous, split), [Verdict::Ambiguous]);
            assert_eq!(verdicts(&head, split), [Verdict::Clear; 2]);
        }
    }

    #[test]
    fn what_it_cannot_follow_it_leaves_to_hyper() {
        // Garbage, an unknown coding, an oversized head: no verdicts after.
        assert!(verdicts(b"\x00\x01garbage\r\n\r\nGET / HTTP/1.1\r\n\r\n", 4).is_empty());
        let coded = b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\nGET / HTTP/1.1\r\n\r\n";
        assert_eq!(verdicts(coded, 8), [Verdict::Clear]);
        assert!(verdicts(&vec![b'a'; 70 * 1024], 1000).is_empty());
        assert_eq!(chunk_size(b"ffffffffffffffffff"), None);
        assert_eq!(chunk_size(b"1A\r"), Some(26));
        assert_eq!(chunk_size(b"\r"), None);
    }
}

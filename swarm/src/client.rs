//! The requesting side: one request per QUIC stream, responses decoded by bao-tree so
//! every 16 KiB group is checked against the root hash before it leaves this module.

use std::collections::VecDeque;
use std::io;
use std::time::Duration;

use bao_tree::io::fsm::{ResponseDecoder, ResponseDecoderNext};
use bao_tree::io::{BaoContentItem, DecodeError, Parent};
use bao_tree::{BaoTree, ChunkRanges};
use bytes::{Bytes, BytesMut};
use fleetcache_store::{BLOCK_SIZE, Hash};
use iroh_io::AsyncStreamReader;

use crate::wire::{Decoded, ErrorCode, RangeSpec, Request, Response};

/// The most a single read from a stream asks for.
const READ_CHUNK: usize = 256 * 1024;

/// Why a request to one peer failed. Only [`PeerError::Lied`] counts as a verification
/// failure; everything else is the network or the peer's load.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    /// The peer has no live connection.
    #[error("not connected")]
    NotConnected,
    /// The connection or stream failed: lost connection, reset stream, refused stream.
    #[error("transport: {0}")]
    Transport(String),
    /// No bytes arrived within the peer timeout.
    #[error("stalled: nothing received for {0:?}")]
    Stalled(Duration),
    /// The peer sent bytes that fail verification, a truncated stream, a wrong size or a
    /// malformed frame.
    #[error("verification failed: {0}")]
    Lied(String),
    /// The peer does not hold the object (or declines the request).
    #[error("not found")]
    NotFound,
    /// The peer asked us to go elsewhere.
    #[error("overloaded")]
    Overloaded,
}

impl PeerError {
    /// A short reason, for metric labels and `Cache-Status` details.
    pub fn reason(&self) -> &'static str {
        match self {
            PeerError::NotConnected => "not-connected",
            PeerError::Transport(_) => "transport",
            PeerError::Stalled(_) => "timeout",
            PeerError::Lied(_) => "verification",
            PeerError::NotFound => "declined",
            PeerError::Overloaded => "overloaded",
        }
    }

    fn from_decode(err: DecodeError, stall: Duration) -> Self {
        match err {
            DecodeError::ParentHashMismatch(node) => {
                PeerError::Lied(format!("hash pair of node {node:?} does not match"))
            }
            DecodeError::LeafHashMismatch(chunk) => PeerError::Lied(format!(
                "chunk group at byte {} does not match the hash",
                chunk.to_bytes()
            )),
            DecodeError::ParentNotFound(_) | DecodeError::LeafNotFound(_) => {
                PeerError::Lied("stream ended before the requested ranges".into())
            }
            DecodeError::Io(err) => PeerError::from_io(err, stall),
        }
    }

    pub(crate) fn from_io(err: io::Error, stall: Duration) -> Self {
        match err.kind() {
            io::ErrorKind::TimedOut => PeerError::Stalled(stall),
            io::ErrorKind::UnexpectedEof => {
                PeerError::Lied("stream ended before the requested ranges".into())
            }
            _ => PeerError::Transport(err.to_string()),
        }
    }
}

/// A response body as bao-tree's decoder reads it: QUIC chunks taken in batches, sliced
/// without copying where one chunk holds a whole read, each wait bounded by the stall
/// timeout.
pub(crate) struct StreamReader {
    recv: quinn::RecvStream,
    pending: VecDeque<Bytes>,
    finished: bool,
    stall: Duration,
}

/// Chunks taken from quinn per call: one await per batch of packets, not per packet.
const CHUNK_BATCH: usize = 32;

impl std::fmt::Debug for StreamReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamReader")
            .field("pending", &self.pending.len())
            .field("finished", &self.finished)
            .finish_non_exhaustive()
    }
}

impl StreamReader {
    fn new(recv: quinn::RecvStream, stall: Duration) -> Self {
        StreamReader {
            recv,
            pending: VecDeque::new(),
            finished: false,
            stall,
        }
    }

    /// Takes the next batch of chunks from the stream; false at its clean end.
    async fn refill(&mut self) -> io::Result<bool> {
        if self.finished {
            return Ok(false);
        }
        let mut batch: [Bytes; CHUNK_BATCH] = std::array::from_fn(|_| Bytes::new());
        match tokio::time::timeout(self.stall, self.recv.read_chunks(&mut batch)).await {
            Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "peer stalled")),
            Ok(Ok(Some(n))) => {
                self.pending
                    .extend(batch.into_iter().take(n).filter(|b| !b.is_empty()));
                Ok(true)
            }
            Ok(Ok(None)) => {
                self.finished = true;
                Ok(false)
            }
            Ok(Err(err)) => Err(io::Error::other(describe_read_error(err))),
        }
    }

    /// How long a read may wait for bytes.
    pub(crate) fn stall(&self) -> Duration {
        self.stall
    }

    /// Waits up to `stall` for each read from now on.
    pub(crate) fn set_stall(&mut self, stall: Duration) {
        self.stall = stall;
    }

    /// Puts bytes read too far back in front of the stream.
    pub(crate) fn unread(&mut self, bytes: Bytes) {
        if !bytes.is_empty() {
            self.pending.push_front(bytes);
        }
    }

    /// The stream must end here: anything more is a protocol violation.
    pub(crate) async fn expect_end(&mut self) -> Result<(), PeerError> {
        match self.next_chunk(1).await {
            Ok(None) => Ok(()),
            Ok(Some(_)) => Err(PeerError::Lied("bytes after the end of the answer".into())),
            Err(err) => Err(PeerError::from_io(err, self.stall)),
        }
    }

    /// The next bytes from the stream, at most `max`; `None` at its clean end.
    pub(crate) async fn next_chunk(&mut self, max: usize) -> io::Result<Option<Bytes>> {
        loop {
            if let Some(front) = self.pending.front_mut() {
                let chunk = if front.len() <= max {
                    self.pending.pop_front().unwrap_or_default()
                } else {
                    front.split_to(max)
                };
                return Ok(Some(chunk));
            }
            if !self.refill().await? {
                return Ok(None);
            }
        }
    }
}

fn describe_read_error(err: quinn::ReadError) -> String {
    match err {
        quinn::ReadError::Reset(code) => match ErrorCode::from_u64(code.into_inner()) {
            Some(code) => format!("stream reset by peer: {code:?}"),
            None => format!("stream reset by peer with unknown code {code}"),
        },
        other => other.to_string(),
    }
}

impl Drop for StreamReader {
    fn drop(&mut self) {
        // Tell the peer to stop sending what nobody reads; harmless if the stream ended.
        let _ = self.recv.stop(ErrorCode::Cancelled.to_u32().into());
    }
}

impl AsyncStreamReader for StreamReader {
    async fn read_bytes(&mut self, len: usize) -> io::Result<Bytes> {
        let Some(first) = self.next_chunk(len).await? else {
            return Ok(Bytes::new());
        };
        if first.len() == len {
            return Ok(first);
        }
        let mut out = BytesMut::with_capacity(len);
        out.extend_from_slice(&first);
        while out.len() < len {
            match self.next_chunk(len - out.len()).await? {
                Some(chunk) => out.extend_from_slice(&chunk),
                None => break,
            }
        }
        Ok(out.freeze())
    }

    async fn read<const L: usize>(&mut self) -> io::Result<[u8; L]> {
        let bytes = self.read_bytes(L).await?;
        <[u8; L]>::try_from(&bytes[..]).map_err(|_| io::ErrorKind::UnexpectedEof.into())
    }
}

/// Sends `request` on a new stream and reads the response header; for GET the
/// returned reader is positioned at the start of the bao stream.
pub(crate) async fn send_request(
    connection: &quinn::Connection,
    request: &Request,
    stall: Duration,
) -> Result<(Response, StreamReader), PeerError> {
    let transport = |e: &dyn std::fmt::Display| PeerError::Transport(e.to_string());
    let frame = request
        .encode()
        .map_err(|e| PeerError::Transport(format!("encoding request: {e}")))?;
    let (mut send, recv) = tokio::time::timeout(stall, connection.open_bi())
        .await
        .map_err(|_| PeerError::Stalled(stall))?
        .map_err(|e| transport(&e))?;
    send.write_all(&frame).await.map_err(|e| transport(&e))?;
    send.finish().map_err(|e| transport(&e))?;
    let mut reader = StreamReader::new(recv, stall);
    let mut header = BytesMut::new();
    loop {
        match Response::decode(request.kind(), &header) {
            Ok(Decoded::Frame(response, used)) => {
                reader.unread(header.split_off(used).freeze());
                return Ok((response, reader));
            }
            Ok(Decoded::Incomplete) => {}
            Err(err) => return Err(PeerError::Lied(format!("malformed response: {err}"))),
        }
        match reader.next_chunk(READ_CHUNK).await {
            Ok(Some(chunk)) => header.extend_from_slice(&chunk),
            Ok(None) => return Err(PeerError::Lied("stream ended inside the header".into())),
            Err(err) => return Err(PeerError::from_io(err, stall)),
        }
    }
}

/// One verified GET from one peer: yields the groups of `ranges` in order.
pub(crate) struct VerifiedStream {
    decoder: Option<ResponseDecoder<StreamReader>>,
    stall: Duration,
}

impl std::fmt::Debug for VerifiedStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifiedStream").finish_non_exhaustive()
    }
}

/// One verified item of a GET's stream, in the encoding's order.
#[derive(Debug)]
pub(crate) enum Verified {
    /// A hash pair of the tree, checked against its parent.
    Pair(Parent),
    /// A chunk group, checked against its pair: its offset in the blob and its bytes.
    Group { offset: u64, data: Bytes },
}

impl VerifiedStream {
    /// Opens a GET of `ranges`. `expected_size` is a size already proven; a peer that
    /// claims another is lying. `None` accepts the claim (its last group proves it).
    pub(crate) async fn open(
        connection: &quinn::Connection,
        hash: Hash,
        ranges: &ChunkRanges,
        expected_size: Option<u64>,
        stall: Duration,
    ) -> Result<(u64, VerifiedStream), PeerError> {
        let spec = RangeSpec::from_chunk_ranges(ranges)
            .ok_or_else(|| PeerError::Transport("empty range request".into()))?;
        let request = Request::Get {
            hash,
            ranges: spec.clone(),
        };
        let (response, reader) = send_request(connection, &request, stall).await?;
        let size = match response {
            Response::Get { size } => size,
            Response::NotFound => return Err(PeerError::NotFound),
            Response::Overloaded => return Err(PeerError::Overloaded),
            other => return Err(PeerError::Lied(format!("{other:?} answers a GET"))),
        };
        if expected_size.is_some_and(|expected| expected != size) {
            return Err(PeerError::Lied(format!(
                "claims size {size}, proven size is {expected_size:?}"
            )));
        }
        let tree = BaoTree::new(size, BLOCK_SIZE);
        let root = blake3::Hash::from_bytes(*hash.as_bytes());
        let decoder = ResponseDecoder::new(root, spec.to_chunk_ranges(), tree, reader);
        Ok((
            size,
            VerifiedStream {
                decoder: Some(decoder),
                stall,
            },
        ))
    }

    /// The next verified item, or `None` once every requested group has arrived.
    pub(crate) async fn next(&mut self) -> Result<Option<Verified>, PeerError> {
        let Some(decoder) = self.decoder.take() else {
            return Ok(None);
        };
        let (decoder, item) = match decoder.next().await {
            ResponseDecoderNext::Done(_) => return Ok(None),
            ResponseDecoderNext::More(next) => next,
        };
        let item = match item {
            Ok(BaoContentItem::Parent(parent)) => Verified::Pair(parent),
            Ok(BaoContentItem::Leaf(leaf)) => Verified::Group {
                offset: leaf.offset,
                data: leaf.data,
            },
            Err(err) => return Err(PeerError::from_decode(err, self.stall)),
        };
        self.decoder = Some(decoder);
        Ok(Some(item))
    }
}

/// Proves the size of `hash` on one peer: fetches and verifies its last chunk group.
pub(crate) async fn prove_size(
    connection: &quinn::Connection,
    hash: Hash,
    stall: Duration,
) -> Result<u64, PeerError> {
    let last = RangeSpec::last_chunk().to_chunk_ranges();
    let (size, mut stream) = VerifiedStream::open(connection, hash, &last, None, stall).await?;
    let mut groups = 0;
    while let Some(item) = stream.next().await? {
        if matches!(item, Verified::Group { .. }) {
            groups += 1;
        }
    }
    if groups == 0 {
        return Err(PeerError::Lied("size proof carried no data".into()));
    }
    Ok(size)
}

/// Asks one peer whether it holds `hash`.
pub(crate) async fn have(
    connection: &quinn::Connection,
    hash: Hash,
    stall: Duration,
) -> Result<bool, PeerError> {
    let request = Request::Have {
        hash,
        ranges: RangeSpec::all(),
    };
    match send_request(connection, &request, stall).await?.0 {
        Response::Have(_) => Ok(true),
        Response::NotFound => Ok(false),
        Response::Overloaded => Err(PeerError::Overloaded),
        other => Err(PeerError::Lied(format!("{other:?} answers a HAVE"))),
    }
}

/// One PING round trip.
pub(crate) async fn ping(connection: &quinn::Connection, stall: Duration) -> Result<(), PeerError> {
    match send_request(connection, &Request::Ping, stall).await?.0 {
        Response::Pong => Ok(()),
        Response::Overloaded => Err(PeerError::Overloaded),
        other => Err(PeerError::Lied(format!("{other:?} answers a PING"))),
    }
}

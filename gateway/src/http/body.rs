//! The response body type: empty, a buffer, bytes streamed out of a stored
//! blob (whole, one range, or multipart byteranges), or bytes another task
//! produces (a verifiable encoding) handed over through a bounded channel.
//!
//! Blob bytes in memory (inline objects, chunks in the store's memory tier)
//! are taken as they are; others are read with verification on the blocking
//! pool, one chunk ahead of the socket so disk reads overlap network writes.
//! Memory per response is bounded by two chunks whatever the object size.

use std::collections::VecDeque;
use std::ops::Range;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use std::sync::Arc;

use bytes::Bytes;
use fleetcache_store::{Blob, ReadError};
use http_body::{Frame, SizeHint};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::fill::{DirectFetch, Flight};
use crate::metrics::ResponseObserver;

/// Bytes read from a blob per blocking read: large enough to amortise the
/// thread hop and verification setup, small enough to keep memory flat.
const READ_CHUNK: usize = 256 * 1024;

/// Why a response body stopped early. Hyper closes the connection on this, so
/// the client sees a truncated response, never wrong bytes.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BodyError {
    /// Reading or verifying the stored blob failed.
    #[error("reading blob: {0}")]
    Read(#[from] ReadError),
    /// The blocking read task died (runtime shutting down).
    #[error("blob read task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    /// The fill feeding this response failed.
    #[error("fill failed: {0}")]
    Fill(String),
    /// The origin's body failed mid-way (a passed-through response).
    #[error("{0}")]
    Origin(#[from] crate::origin::OriginError),
    /// The source returned less than its size promised.
    #[error("the object's bytes ended early, at byte {0}")]
    EndedEarly(u64),
    /// The task producing a channel body went away with this many bytes
    /// still owed.
    #[error("the body's producer ended {0} bytes short")]
    ProducerEnded(u64),
    /// The task producing a channel body sent more than the response's length.
    #[error("the body's producer sent more than its length")]
    Overlong,
}

/// Where a response's object bytes come from.
#[derive(Debug, Clone)]
pub(crate) enum Source {
    /// The local store.
    Stored(Blob),
    /// A fill in progress, read as its verified bytes arrive.
    Filling(Arc<Flight>),
    /// Peers directly, for a range of an object nobody is filling.
    Direct(Arc<DirectFetch>),
}

impl Source {
    /// Up to one read chunk from `start`, at most to `end`; empty at the end of
    /// a fill whose size was not known.
    pub(crate) async fn read(&self, start: u64, end: u64) -> Result<Bytes, BodyError> {
        match Next::start(self, start, end) {
            Next::Ready(bytes) => Ok(bytes),
            Next::Reading(handle) => handle.await?,
        }
    }

    /// The read, when it needs no disk and no waiting: inline bytes, a chunk in
    /// the store's memory tier, or the newest bytes of a fill.
    fn read_in_memory(&self, start: u64, end: u64) -> Option<Bytes> {
        match self {
            Source::Stored(blob) => blob.read_chunk_in_memory(start, read_len(start, end)),
            Source::Filling(flight) => flight.read_in_memory(start, read_len(start, end)),
            Source::Direct(_) => None,
        }
    }

    fn spawn_read(&self, start: u64, end: u64) -> JoinHandle<Result<Bytes, BodyError>> {
        let len = read_len(start, end);
        match self {
            Source::Stored(blob) => {
                let blob = blob.clone();
                tokio::task::spawn_blocking(move || Ok(blob.read_chunk(start, len)?))
            }
            Source::Filling(flight) => {
                let read = flight.clone().read(start, len);
                tokio::spawn(async move { read.await.map_err(BodyError::Fill) })
            }
            Source::Direct(fetch) => {
                let read = fetch.clone().read(start, end);
                tokio::spawn(async move { read.await.map_err(BodyError::Fill) })
            }
        }
    }
}

fn read_len(start: u64, end: u64) -> usize {
    usize::try_from(end - start)
        .unwrap_or(usize::MAX)
        .min(READ_CHUNK)
}

/// One piece of a body built from a blob.
#[derive(Debug, Clone)]
pub(crate) enum Segment {
    /// Literal bytes, such as a multipart part header.
    Literal(Bytes),
    /// A byte range of the blob.
    Blob(Range<u64>),
    /// Everything from this offset to the end of an object whose size is not
    /// known yet (a chunked origin response still arriving).
    Rest(u64),
}

impl Segment {
    /// Bytes in the segment; `None` for one that runs to an end not known yet.
    pub(crate) fn len(&self) -> Option<u64> {
        match self {
            Segment::Literal(bytes) => Some(bytes.len() as u64),
            Segment::Blob(range) => Some(range.end - range.start),
            Segment::Rest(_) => None,
        }
    }
}

/// A hyper response body.
#[derive(Debug)]
pub(crate) struct ResponseBody {
    kind: Kind,
    observer: Option<ResponseObserver>,
}

#[derive(Debug)]
enum Kind {
    Empty,
    Full(Option<Bytes>),
    Blob(BlobStream),
    /// An origin response passed through as it arrives.
    Origin(crate::origin::OriginBody),
    /// Batches of pieces produced by another task, sent one piece per frame;
    /// `remaining` is what the response's `Content-Length` still promises.
    Channel {
        rx: mpsc::Receiver<Result<Vec<Bytes>, BodyError>>,
        pending: std::vec::IntoIter<Bytes>,
        remaining: u64,
    },
}

impl ResponseBody {
    pub(crate) fn empty() -> Self {
        Self {
            kind: Kind::Empty,
            observer: None,
        }
    }

    pub(crate) fn full(bytes: impl Into<Bytes>) -> Self {
        let bytes = bytes.into();
        let kind = if bytes.is_empty() {
            Kind::Empty
        } else {
            Kind::Full(Some(bytes))
        };
        Self {
            kind,
            observer: None,
        }
    }

    /// Streams `segments` out of `source`.
    pub(crate) fn blob(source: Source, segments: Vec<Segment>) -> Self {
        let remaining = segments.iter().map(Segment::len).sum();
        Self {
            kind: Kind::Blob(BlobStream {
                source,
                segments: segments.into(),
                in_flight: None,
                remaining,
            }),
            observer: None,
        }
    }

    /// Streams an origin's body through (nothing stored).
    pub(crate) fn origin(body: crate::origin::OriginBody) -> Self {
        Self {
            kind: Kind::Origin(body),
            observer: None,
        }
    }

    /// Streams what a producer task sends through `rx`: exactly `len` bytes,
    /// or an error. The channel's bound is the memory the response may hold;
    /// dropping the body closes the channel, which tells the producer to stop.
    /// A producer that goes away early is a cut response, never a clean end.
    pub(crate) fn channel(rx: mpsc::Receiver<Result<Vec<Bytes>, BodyError>>, len: u64) -> Self {
        Self {
            kind: Kind::Channel {
                rx,
                pending: Vec::new().into_iter(),
                remaining: len,
            },
            observer: None,
        }
    }

    /// Attaches the per-request observer that records bytes and duration
    /// when the body finishes or is dropped.
    pub(crate) fn observed(mut self, observer: ResponseObserver) -> Self {
        self.observer = Some(observer);
        self
    }
}

impl http_body::Body for ResponseBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.get_mut();
        let next = match &mut this.kind {
            Kind::Empty => None,
            Kind::Full(bytes) => bytes.take().map(Ok),
            Kind::Blob(stream) => ready!(stream.poll_next(cx)),
            Kind::Origin(body) => match ready!(Pin::new(body).poll_frame(cx)) {
                None => None,
                Some(Ok(frame)) => Some(Ok(frame.into_data().unwrap_or_default())),
                Some(Err(err)) => Some(Err(BodyError::Origin(err))),
            },
            Kind::Channel {
                rx,
                pending,
                remaining,
            } => loop {
                if let Some(bytes) = pending.next() {
                    if bytes.len() as u64 > *remaining {
                        break Some(Err(BodyError::Overlong));
                    }
                    *remaining -= bytes.len() as u64;
                    break Some(Ok(bytes));
                }
                match ready!(rx.poll_recv(cx)) {
                    Some(Ok(pieces)) => *pending = pieces.into_iter(),
                    Some(Err(err)) => break Some(Err(err)),
                    None if *remaining == 0 => break None,
                    None => break Some(Err(BodyError::ProducerEnded(*remaining))),
                }
            },
        };
        if let (Some(Ok(bytes)), Some(observer)) = (&next, &mut this.observer) {
            observer.add_bytes(bytes.len() as u64);
        }
        if let (Some(Err(err)), Some(observer)) = (&next, &mut this.observer) {
            observer.failed(err);
        }
        Poll::Ready(next.map(|r| r.map(Frame::data)))
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Empty => true,
            Kind::Full(bytes) => bytes.is_none(),
            Kind::Blob(stream) => stream.remaining == Some(0),
            Kind::Origin(body) => body.is_end_stream(),
            Kind::Channel { remaining, .. } => *remaining == 0,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Empty => SizeHint::with_exact(0),
            Kind::Full(bytes) => SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64)),
            Kind::Blob(stream) => match stream.remaining {
                Some(remaining) => SizeHint::with_exact(remaining),
                None => SizeHint::default(),
            },
            Kind::Origin(body) => body.size_hint(),
            Kind::Channel { remaining, .. } => SizeHint::with_exact(*remaining),
        }
    }
}

#[derive(Debug)]
struct BlobStream {
    source: Source,
    segments: VecDeque<Segment>,
    /// The next chunk, being read or at hand.
    in_flight: Option<Next>,
    /// Bytes still to yield, across all segments; `None` while a segment runs to
    /// an end not known yet.
    remaining: Option<u64>,
}

/// The next chunk of a blob stream.
#[derive(Debug)]
enum Next {
    /// Found in memory: no task needed.
    Ready(Bytes),
    Reading(JoinHandle<Result<Bytes, BodyError>>),
}

impl Next {
    fn start(source: &Source, start: u64, end: u64) -> Next {
        match source.read_in_memory(start, end) {
            Some(bytes) => Next::Ready(bytes),
            None => Next::Reading(source.spawn_read(start, end)),
        }
    }
}

/// Polls the read of `start..end` from `source`, starting it unless one is in
/// flight (the prefetched next chunk).
fn poll_read(
    in_flight: &mut Option<Next>,
    source: &Source,
    cx: &mut Context<'_>,
    start: u64,
    end: u64,
) -> Poll<Result<Bytes, BodyError>> {
    let result = match in_flight.get_or_insert_with(|| Next::start(source, start, end)) {
        Next::Ready(bytes) => Ok(std::mem::take(bytes)),
        Next::Reading(handle) => {
            ready!(Pin::new(handle).poll(cx)).unwrap_or_else(|err| Err(err.into()))
        }
    };
    *in_flight = None;
    Poll::Ready(result)
}

impl BlobStream {
    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, BodyError>>> {
        let chunk = match self.segments.front_mut() {
            None => return Poll::Ready(None),
            Some(Segment::Literal(bytes)) => {
                let bytes = std::mem::take(bytes);
                self.segments.pop_front();
                bytes
            }
            Some(Segment::Blob(range)) if range.is_empty() => {
                self.segments.pop_front();
                return self.poll_next(cx);
            }
            Some(Segment::Rest(start)) => {
                let read = poll_read(&mut self.in_flight, &self.source, cx, *start, u64::MAX);
                let bytes = match ready!(read) {
                    Ok(bytes) => bytes,
                    Err(err) => return Poll::Ready(Some(Err(err))),
                };
                if bytes.is_empty() {
                    // The object ended here: a complete object, not a cut one (a
                    // failed fill is an error, never an empty read).
                    self.segments.pop_front();
                    return self.poll_next(cx);
                }
                *start += bytes.len() as u64;
                bytes
            }
            Some(Segment::Blob(range)) => {
                let read = poll_read(
                    &mut self.in_flight,
                    &self.source,
                    cx,
                    range.start,
                    range.end,
                );
                let bytes = match ready!(read) {
                    Ok(bytes) => bytes,
                    Err(err) => return Poll::Ready(Some(Err(err))),
                };
                if bytes.is_empty() {
                    return Poll::Ready(Some(Err(BodyError::EndedEarly(range.start))));
                }
                range.start += bytes.len() as u64;
                if range.is_empty() {
                    self.segments.pop_front();
                }
                self.prefetch();
                bytes
            }
        };
        if let Some(remaining) = &mut self.remaining {
            *remaining = remaining.saturating_sub(chunk.len() as u64);
        }
        Poll::Ready(Some(Ok(chunk)))
    }

    /// Starts reading the next blob chunk while the current one is written.
    fn prefetch(&mut self) {
        if self.in_flight.is_some() {
            return;
        }
        let next = self.segments.iter().find_map(|s| match s {
            Segment::Blob(r) if !r.is_empty() => Some(r.clone()),
            _ => None,
        });
        if let Some(range) = next {
            self.in_flight = Some(Next::start(&self.source, range.start, range.end));
        }
    }
}

impl Drop for BlobStream {
    fn drop(&mut self) {
        if let Some(Next::Reading(handle)) = self.in_flight.take() {
            handle.abort();
        }
    }
}

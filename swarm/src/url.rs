//! The asking side of the version 2 requests: a URL request to its owner, whose
//! body is hashed as it arrives and checked against the owner's closing hash and
//! size before the last bytes are handed over; purges and purge logs.

use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::{Bytes, BytesMut};

use crate::client::{PeerError, StreamReader, send_request};
use crate::peers::PeerHandle;
use crate::swarm::{Swarm, record_failure};
use crate::wire::{BodyFrame, Decoded, Request, Response};

/// A URL response streaming from its owner.
#[derive(Debug)]
pub struct OwnerFetch {
    head: Bytes,
    reader: StreamReader,
    owner: PeerHandle,
    hasher: blake3::Hasher,
    received: u64,
    /// Data bytes left in the current frame.
    in_frame: usize,
    /// The bytes last received, handed over only once more bytes or the
    /// verified end arrive: a client whose response has a length can then
    /// never complete it with bytes the end contradicts.
    held: Option<Bytes>,
    done: bool,
}

impl Swarm {
    /// Asks `owner` for a URL response (`request` is the gateway's encoding).
    /// The owner has `first_byte` to answer with the response head, then `stall`
    /// between body bytes. NOT_FOUND is [`PeerError::NotFound`] (the owner does
    /// not share it), OVERLOADED [`PeerError::Overloaded`].
    pub async fn fetch_url(
        &self,
        owner: &PeerHandle,
        request: Bytes,
        first_byte: Duration,
        stall: Duration,
    ) -> Result<OwnerFetch, PeerError> {
        let result = self.open_url(owner, request, first_byte, stall).await;
        if let Err(err) = &result {
            record_failure(owner.peer(), err);
        }
        result
    }

    async fn open_url(
        &self,
        owner: &PeerHandle,
        request: Bytes,
        first_byte: Duration,
        stall: Duration,
    ) -> Result<OwnerFetch, PeerError> {
        let connection = owner.peer().connection().ok_or(PeerError::NotConnected)?;
        let request = Request::FetchUrl(request);
        let (response, mut reader) = send_request(&connection, &request, first_byte).await?;
        let head = match response {
            Response::Message(head) => head,
            Response::NotFound => return Err(PeerError::NotFound),
            Response::Overloaded => return Err(PeerError::Overloaded),
            other => return Err(PeerError::Lied(format!("{other:?} answers a FETCH_URL"))),
        };
        reader.set_stall(stall);
        Ok(OwnerFetch {
            head,
            reader,
            owner: owner.clone(),
            hasher: blake3::Hasher::new(),
            received: 0,
            in_frame: 0,
            held: None,
            done: false,
        })
    }

    /// Sends a PURGE to `peer` and returns its answer.
    pub async fn purge(
        &self,
        peer: &PeerHandle,
        request: Bytes,
        timeout: Duration,
    ) -> Result<Bytes, PeerError> {
        self.message(peer, Request::Purge(request), timeout).await
    }

    /// Asks `peer` for the purges it keeps.
    pub async fn purge_log(
        &self,
        peer: &PeerHandle,
        request: Bytes,
        timeout: Duration,
    ) -> Result<Bytes, PeerError> {
        self.message(peer, Request::PurgeLog(request), timeout)
            .await
    }

    async fn message(
        &self,
        peer: &PeerHandle,
        request: Request,
        timeout: Duration,
    ) -> Result<Bytes, PeerError> {
        let connection = peer.peer().connection().ok_or(PeerError::NotConnected)?;
        let exchange = async {
            let (response, mut reader) = send_request(&connection, &request, timeout).await?;
            let Response::Message(answer) = response else {
                return match response {
                    Response::NotFound => Err(PeerError::NotFound),
                    Response::Overloaded => Err(PeerError::Overloaded),
                    other => Err(PeerError::Lied(format!("{other:?} answers a message"))),
                };
            };
            reader.expect_end().await?;
            Ok(answer)
        };
        let result = match tokio::time::timeout(timeout, exchange).await {
            Ok(result) => result,
            Err(_) => Err(PeerError::Stalled(timeout)),
        };
        if let Err(err) = &result {
            record_failure(peer.peer(), err);
        }
        result
    }
}

impl OwnerFetch {
    /// The owner's encoded response head.
    pub fn head(&self) -> &Bytes {
        &self.head
    }

    /// The owner answering.
    pub fn owner(&self) -> &PeerHandle {
        &self.owner
    }

    /// The next body bytes; `None` once the body ended and its hash and size
    /// matched what arrived. The last bytes come only after that check. A
    /// mismatch, a cut or a malformed frame is [`PeerError::Lied`] and counts
    /// against the owner.
    pub async fn next(&mut self) -> Result<Option<Bytes>, PeerError> {
        loop {
            match self.next_bytes().await {
                Ok(Some(bytes)) => {
                    if let Some(previous) = self.held.replace(bytes) {
                        return Ok(Some(previous));
                    }
                }
                Ok(None) => return Ok(self.held.take()),
                Err(err) => {
                    record_failure(self.owner.peer(), &err);
                    self.done = true;
                    self.held = None;
                    return Err(err);
                }
            }
        }
    }

    async fn next_bytes(&mut self) -> Result<Option<Bytes>, PeerError> {
        if self.done {
            return Ok(None);
        }
        let stall = self.reader.stall();
        loop {
            if self.in_frame > 0 {
                let Some(bytes) = self
                    .reader
                    .next_chunk(self.in_frame)
                    .await
                    .map_err(|e| PeerError::from_io(e, stall))?
                else {
                    return Err(cut());
                };
                self.in_frame -= bytes.len();
                self.received += bytes.len() as u64;
                self.hasher.update(&bytes);
                self.owner
                    .peer()
                    .counters
                    .bytes_received
                    .fetch_add(bytes.len() as u64, Ordering::Relaxed);
                return Ok(Some(bytes));
            }
            match self.read_frame().await? {
                BodyFrame::Data(len) => self.in_frame = len,
                BodyFrame::End { hash, size } => {
                    let got = self.hasher.finalize();
                    if size != self.received || hash.as_bytes() != got.as_bytes() {
                        return Err(PeerError::Lied(format!(
                            "the body ended claiming {size} bytes hashing to {hash}; \
                             {} bytes arrived hashing to {got}",
                            self.received
                        )));
                    }
                    self.reader.expect_end().await?;
                    self.done = true;
                    self.owner
                        .peer()
                        .counters
                        .transfers
                        .fetch_add(1, Ordering::Relaxed);
                    return Ok(None);
                }
            }
        }
    }

    async fn read_frame(&mut self) -> Result<BodyFrame, PeerError> {
        let stall = self.reader.stall();
        let mut buf = BytesMut::new();
        loop {
            match BodyFrame::decode(&buf) {
                Ok(Decoded::Frame(frame, used)) => {
                    let rest = buf.split_off(used).freeze();
                    self.reader.unread(rest);
                    return Ok(frame);
                }
                Ok(Decoded::Incomplete) => {}
                Err(err) => return Err(PeerError::Lied(format!("malformed body frame: {err}"))),
            }
            // Frame headers are at most 44 bytes: read no further than that.
            let want = 44 - buf.len().min(44);
            match self
                .reader
                .next_chunk(want.max(1))
                .await
                .map_err(|e| PeerError::from_io(e, stall))?
            {
                Some(bytes) => buf.extend_from_slice(&bytes),
                None => return Err(cut()),
            }
        }
    }
}

fn cut() -> PeerError {
    PeerError::Lied("the body stream ended before its end frame".into())
}

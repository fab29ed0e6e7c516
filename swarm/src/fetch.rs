//! The verified multi-source transfer: proving an object's size from its holders, then
//! streaming a range from one holder at a time, every 16 KiB group verified before it
//! is handed out.

use std::net::SocketAddr;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bao_tree::{ChunkNum, ChunkRanges};
use bytes::Bytes;
use fleetcache_store::Hash;

use crate::client::{self, PeerError, Verified, VerifiedStream};
use crate::peers::Peer;
use crate::swarm::{Inner, record_failure};

/// Times a fetch whose holders all failed waits (one peer timeout plus two
/// ping intervals, enough for a restart to be noticed) for one to come back.
const COMEBACKS: u8 = 1;
/// How often a waiting fetch looks whether a holder is up again.
const COMEBACK_POLL: Duration = Duration::from_millis(50);

/// Why a fetch from the fleet failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum FetchError {
    /// Every peer that could have served the object failed; `timed_out` if the last
    /// failure was a peer going silent.
    #[error("no peer could serve {hash}: {last}")]
    AllSourcesFailed {
        /// The object.
        hash: Hash,
        /// The last peer's failure.
        last: String,
        /// Whether that failure was a timeout.
        timed_out: bool,
    },
}

impl FetchError {
    /// Whether the last failure was a peer that went silent (HTTP 504 rather than 502).
    pub fn is_timeout(&self) -> bool {
        match self {
            FetchError::AllSourcesFailed { timed_out, .. } => *timed_out,
        }
    }
}

fn all_failed(hash: Hash, err: &PeerError) -> FetchError {
    FetchError::AllSourcesFailed {
        hash,
        last: err.to_string(),
        timed_out: matches!(err, PeerError::Stalled(_)),
    }
}

/// Proves the size of `hash` from the first of `holders` (best first) that can.
/// `Ok(None)` if every holder said it no longer holds the object.
pub(crate) async fn prove(
    inner: &Arc<Inner>,
    hash: Hash,
    holders: Vec<Arc<Peer>>,
) -> Result<Option<Located>, FetchError> {
    let mut last_failure = None;
    for (i, peer) in holders.iter().enumerate() {
        let Some(connection) = peer.connection() else {
            continue;
        };
        match client::prove_size(&connection, hash, inner.peer_timeout).await {
            Ok(size) => {
                peer.counters.transfers.fetch_add(1, Ordering::Relaxed);
                let mut sources = holders.clone();
                sources.rotate_left(i);
                return Ok(Some(Located {
                    hash,
                    size,
                    sources,
                    inner: inner.clone(),
                }));
            }
            // Evicted since it answered HAVE: as if it had said no.
            Err(PeerError::NotFound) => {}
            Err(err) => {
                record_failure(peer, &err);
                last_failure = Some(err);
            }
        }
    }
    match last_failure {
        None => Ok(None),
        Some(err) => Err(all_failed(hash, &err)),
    }
}

/// An object some peers hold, with its size proven.
#[derive(Debug, Clone)]
pub struct Located {
    hash: Hash,
    size: u64,
    sources: Vec<Arc<Peer>>,
    inner: Arc<Inner>,
}

impl Located {
    /// The object's size, proven by its last chunk group.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Fetches `range` (clamped to the object) as verified bytes in order.
    pub fn fetch(&self, range: Range<u64>) -> Fetch {
        let end = range.end.min(self.size);
        Fetch {
            located: self.clone(),
            pos: range.start.min(end),
            end,
            next_source: 0,
            current: None,
            last_failure: None,
            skip: Vec::new(),
            failed_connections: Vec::new(),
            comebacks: COMEBACKS,
            started: Instant::now(),
        }
    }
}

/// One verified item of a [`Fetch`].
#[derive(Debug)]
pub enum FetchItem {
    /// Bytes of the range, in order.
    Bytes(Bytes),
    /// A pair of the object's hash tree (bao-tree's node and its two child hashes),
    /// already checked against its parent up to the root.
    Pair(bao_tree::io::Parent),
}

/// A running verified fetch; failing sources are replaced by the next holder, resuming
/// at the first byte not yet delivered.
#[derive(Debug)]
pub struct Fetch {
    located: Located,
    pos: u64,
    end: u64,
    next_source: usize,
    current: Option<(Arc<Peer>, VerifiedStream)>,
    last_failure: Option<PeerError>,
    /// Sources not to ask again in this fetch: caught lying, or no longer
    /// holding the object.
    skip: Vec<SocketAddr>,
    /// Connections that failed or went silent (by `stable_id`): a source is
    /// asked again only over a new connection, as after a restart.
    failed_connections: Vec<usize>,
    /// How many more times the fetch may wait for a failed holder to come back.
    comebacks: u8,
    started: Instant,
}

impl Fetch {
    /// The next verified bytes, in order from the start of the range; `None` when the
    /// whole range has been delivered.
    pub async fn next(&mut self) -> Result<Option<Bytes>, FetchError> {
        loop {
            match self.next_item().await? {
                Some(FetchItem::Bytes(bytes)) => return Ok(Some(bytes)),
                Some(FetchItem::Pair(_)) => {}
                None => return Ok(None),
            }
        }
    }

    /// Like [`Fetch::next`], but also yields the hash tree's pairs as they are verified,
    /// for a store that keeps the tree instead of hashing the bytes again. A pair may
    /// come twice when the fetch moves to another source.
    pub async fn next_item(&mut self) -> Result<Option<FetchItem>, FetchError> {
        while self.pos < self.end {
            let Some((peer, stream)) = &mut self.current else {
                self.open_next_source().await?;
                continue;
            };
            match stream.next().await {
                Ok(Some(Verified::Pair(parent))) => return Ok(Some(FetchItem::Pair(parent))),
                Ok(Some(Verified::Group { offset, data })) => {
                    let group_end = offset + data.len() as u64;
                    if group_end <= self.pos {
                        continue;
                    }
                    let from = (self.pos.saturating_sub(offset)) as usize;
                    let to = (group_end.min(self.end) - offset) as usize;
                    let Some(bytes) = data.get(from..to) else {
                        continue;
                    };
                    let bytes = data.slice_ref(bytes);
                    peer.counters
                        .bytes_received
                        .fetch_add(bytes.len() as u64, Ordering::Relaxed);
                    self.pos += bytes.len() as u64;
                    return Ok(Some(FetchItem::Bytes(bytes)));
                }
                Ok(None) => {
                    let err = PeerError::Lied(format!(
                        "stream ended at byte {} of {}",
                        self.pos, self.end
                    ));
                    record_failure(peer, &err);
                    self.fail_current(err);
                }
                Err(err) => {
                    record_failure(peer, &err);
                    self.fail_current(err);
                }
            }
        }
        if let Some((peer, _)) = self.current.take() {
            peer.counters.transfers.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(
                peer = %peer.addr,
                elapsed_ms = self.started.elapsed().as_millis() as u64,
                "fetch complete"
            );
        }
        Ok(None)
    }

    /// What is left to deliver: from the next byte to the end of the range.
    pub fn remaining(&self) -> Range<u64> {
        self.pos..self.end
    }

    fn fail_current(&mut self, err: PeerError) {
        if let Some((peer, _)) = self.current.take() {
            tracing::warn!(peer = %peer.addr, at = self.pos, "abandoning source: {err}");
            self.note_failure(&peer, err);
        }
    }

    fn note_failure(&mut self, peer: &Peer, err: PeerError) {
        match err {
            PeerError::Lied(_) | PeerError::NotFound => self.skip.push(peer.addr),
            // Silent or cut: that connection is done; a restarted holder comes
            // back over a new one with the same bytes.
            _ => {
                if let Some(connection) = peer.current_connection() {
                    self.failed_connections.push(connection.stable_id());
                }
            }
        }
        self.last_failure = Some(err);
    }

    /// A connection to `peer` worth asking: up, not caught lying, and not one
    /// that already failed this fetch.
    fn usable(&self, peer: &Peer) -> Option<quinn::Connection> {
        if self.skip.contains(&peer.addr) {
            return None;
        }
        peer.connection()
            .filter(|connection| !self.failed_connections.contains(&connection.stable_id()))
    }

    /// Every holder failed. One that lost its connection (a crash, a restart)
    /// may be back in a moment: wait a bounded time for any holder not
    /// skipped to be up again, and say whether one is.
    async fn wait_for_comeback(&mut self) -> bool {
        if self.comebacks == 0 {
            return false;
        }
        self.comebacks -= 1;
        let inner = &self.located.inner;
        let deadline = tokio::time::Instant::now() + inner.peer_timeout + inner.ping_interval * 2;
        while tokio::time::Instant::now() < deadline && !inner.cancel.is_cancelled() {
            tokio::time::sleep(COMEBACK_POLL).await;
            let back = self
                .located
                .sources
                .iter()
                .any(|peer| self.usable(peer).is_some());
            if back {
                tracing::info!(at = self.pos, "a holder is back; resuming");
                return true;
            }
        }
        false
    }

    async fn open_next_source(&mut self) -> Result<(), FetchError> {
        let stall = self.located.inner.peer_timeout;
        let hash = self.located.hash;
        let size = self.located.size;
        let ranges =
            ChunkRanges::from(ChunkNum(self.pos / 1024)..ChunkNum(self.end.div_ceil(1024)));
        loop {
            while let Some(peer) = self.located.sources.get(self.next_source).cloned() {
                self.next_source += 1;
                let Some(connection) = self.usable(&peer) else {
                    continue;
                };
                match VerifiedStream::open(&connection, hash, &ranges, Some(size), stall).await {
                    Ok((_, stream)) => {
                        tracing::debug!(peer = %peer.addr, from = self.pos, "fetching");
                        self.current = Some((peer, stream));
                        return Ok(());
                    }
                    Err(err) => {
                        record_failure(&peer, &err);
                        self.note_failure(&peer, err);
                    }
                }
            }
            if !self.wait_for_comeback().await {
                break;
            }
            self.next_source = 0;
        }
        let last = self.last_failure.take().unwrap_or(PeerError::NotConnected);
        Err(all_failed(hash, &last))
    }
}

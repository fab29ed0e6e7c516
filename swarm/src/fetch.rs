//! The verified multi-source transfer: a range of an object fetched from every live
//! holder at once, every 16 KiB group verified before it is handed out, handed out in
//! order and once each.
//!
//! Round trips before the first byte: one HAVE round, then one more (the size proof
//! and the early GET of the first piece go together, see `prove.rs`).
//!
//! Which holder fetches which bytes is the schedule's business (`schedule.rs`,
//! sans-IO): the range is cut into pieces of whole groups, each holder works on one
//! piece at a time (and is given the next a round trip before it finishes), holders
//! that finish take the next piece nobody has, so slower holders get less; pieces that
//! arrive ahead of the delivery point wait in a bounded window; a failed, lying or
//! silent holder's piece goes back for the others, resumed at its first unverified
//! byte. With one holder the whole range is one request, as it always was.
//!
//! This module is the IO around it. Each request is a verified ranged GET whose read
//! of its next item is a future that owns its stream, so a request can wait in a race
//! and be dropped (its stream stopped with `CANCELLED`) without losing bytes half-read
//! into a stream that is kept. [`Fetch::next_item`] polls every running request, feeds
//! what they verify to the schedule, starts what the schedule plans, and hands out the
//! next bytes once they are there.
//!
//! Hedging: the piece blocking delivery, when its holder keeps us waiting longer than
//! its hedge delay (`latency.rs`), is asked of another holder as well; the first to
//! deliver the next byte stays and the other request is cancelled. An idle holder
//! with nothing left to fetch takes over a piece another holder would finish much
//! later in the same way (a steal). Both count as hedges against the slow holder.

use std::future::Future;
use std::net::SocketAddr;
use std::ops::Range;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use bao_tree::{ChunkNum, ChunkRanges};
use bytes::Bytes;
use fleetcache_store::Hash;
use tokio::time::Instant;
use tracing::Instrument;

use crate::client::{PeerError, Verified, VerifiedStream};
use crate::peers::Peer;
use crate::prove::EarlyGet;
use crate::schedule::{HolderView, RequestId, Schedule, Start, Why};
use crate::swarm::{Inner, record_failure};

/// Times a fetch whose holders all failed waits (one peer timeout plus two
/// ping intervals, enough for a restart to be noticed) for one to come back.
const COMEBACKS: u8 = 1;
/// How often a waiting fetch looks whether a holder is up again.
const COMEBACK_POLL: Duration = Duration::from_millis(50);
/// How long the holders' state (up, latency, hedge delay) read for the schedule is
/// used before it is read again; a failure or a finished request reads it at once.
const VIEWS_FRESH: Duration = Duration::from_millis(20);

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

pub(crate) fn all_failed(hash: Hash, err: &PeerError) -> FetchError {
    FetchError::AllSourcesFailed {
        hash,
        last: err.to_string(),
        timed_out: matches!(err, PeerError::Stalled(_)),
    }
}

/// Counts a failed request against `peer` and feeds it to its latency estimate: a
/// failure counts as the slowest a peer may be. A holder that no longer has the
/// object says nothing about its speed.
pub(crate) fn fail(inner: &Inner, peer: &Peer, err: &PeerError) {
    record_failure(peer, err);
    if !matches!(err, PeerError::NotFound) {
        peer.latency(|latency| latency.failed(inner.hedging));
    }
}

pub(crate) fn count_hedge(inner: &Inner, slow: &Peer) {
    slow.counters.hedges.fetch_add(1, Ordering::Relaxed);
    inner.counters.hedges.fetch_add(1, Ordering::Relaxed);
}

/// The proof winner's early GET and where it ends (`u64::MAX`: the whole object).
#[derive(Debug)]
pub(crate) struct Early {
    pub(crate) get: EarlyGet,
    pub(crate) end: u64,
}

/// An object some peers hold, with its size proven.
#[derive(Debug, Clone)]
pub struct Located {
    pub(crate) hash: Hash,
    pub(crate) size: u64,
    /// The holders, the one that proved the size first, then in rendezvous order.
    pub(crate) sources: Vec<Arc<Peer>>,
    /// The first holder's early GET, until a fetch of the whole object takes it.
    pub(crate) early: Arc<Mutex<Option<Early>>>,
    pub(crate) inner: Arc<Inner>,
}

impl Located {
    /// The object's size, proven by its last chunk group.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Fetches `range` (clamped to the object) as verified bytes in order.
    pub fn fetch(&self, range: Range<u64>) -> Fetch {
        let end = range.end.min(self.size);
        let start = range.start.min(end);
        // Only a fetch of the whole object starts on the early GET.
        let early = (start == 0 && end == self.size)
            .then(|| {
                self.early
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .as_ref()
                    .map(|early| early.end)
            })
            .flatten();
        Fetch {
            located: self.clone(),
            schedule: Schedule::new(start..end, self.sources.len(), early),
            sources: Vec::new(),
            views: Vec::new(),
            views_at: None,
            waiting_since: None,
            rotate: 0,
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

/// What reading a request's next item gives: its stream back, to read on, and the
/// item (`None` at the stream's end).
type Step = Result<(VerifiedStream, Option<Verified>), PeerError>;

type NextStep = Pin<Box<dyn Future<Output = Step> + Send>>;

/// One running request: a holder's GET of a piece.
struct Source {
    id: RequestId,
    peer: Arc<Peer>,
    /// The read of its next item; `None` while its last item is being handled.
    next: Option<NextStep>,
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Source")
            .field("id", &self.id)
            .field("peer", &self.peer.addr)
            .finish_non_exhaustive()
    }
}

impl Source {
    fn read_on(&mut self, mut stream: VerifiedStream) {
        self.next = Some(Box::pin(
            async move {
                let item = stream.next().await?;
                Ok((stream, item))
            }
            .in_current_span(),
        ));
    }
}

/// A running verified fetch (see the module documentation).
#[derive(Debug)]
pub struct Fetch {
    located: Located,
    schedule: Schedule,
    /// The running requests.
    sources: Vec<Source>,
    /// The holders as the schedule sees them, read at `views_at`.
    views: Vec<HolderView>,
    views_at: Option<Instant>,
    /// Since when delivery has been waiting for the next bytes.
    waiting_since: Option<Instant>,
    /// Which request is polled first next time, so none is starved.
    rotate: usize,
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
    /// for a store that keeps the tree instead of hashing the bytes again. Pairs come
    /// as each request verifies them, not in order, and some more than once (every
    /// request carries the pairs above its piece); together they are every pair of
    /// the part of the tree the range covers.
    pub async fn next_item(&mut self) -> Result<Option<FetchItem>, FetchError> {
        loop {
            if let Some(bytes) = self.schedule.take_ready() {
                self.waiting_since = None;
                return Ok(Some(FetchItem::Bytes(bytes)));
            }
            if self.schedule.done() {
                self.finish();
                return Ok(None);
            }
            let now = Instant::now();
            // The caller's own pace between items is not the holders'.
            let waiting_since = *self.waiting_since.get_or_insert(now);
            self.refresh_views(now);
            let starts = self.schedule.plan(&self.views, waiting_since, now);
            for start in starts {
                self.open(start);
            }
            if self.sources.is_empty() {
                // Nothing running and nothing could start: every holder failed.
                if self.wait_for_comeback().await {
                    self.views_at = None;
                    continue;
                }
                let last = self.last_failure.take().unwrap_or(PeerError::NotConnected);
                return Err(all_failed(self.located.hash, &last));
            }
            let wake = self.schedule.wake_at(&self.views, waiting_since, now);
            match self.next_step(wake).await {
                Some((index, step)) => {
                    if let Some(pair) = self.settle(index, step) {
                        return Ok(Some(FetchItem::Pair(pair)));
                    }
                }
                // A hedge or steal may be due, or a bench over: plan again.
                None => self.views_at = None,
            }
        }
    }

    /// What is left to deliver: from the next byte to the end of the range.
    pub fn remaining(&self) -> Range<u64> {
        self.schedule.remaining()
    }

    fn refresh_views(&mut self, now: Instant) {
        if self
            .views_at
            .is_some_and(|at| now.saturating_duration_since(at) < VIEWS_FRESH)
        {
            return;
        }
        let hedging = self.located.inner.hedging;
        self.views = self
            .located
            .sources
            .iter()
            .map(|peer| {
                let (latency, hedge_delay) = peer.latency_and_delay(hedging);
                HolderView {
                    usable: self.usable(peer).is_some(),
                    latency: latency.unwrap_or(hedging.floor),
                    hedge_delay,
                }
            })
            .collect();
        self.views_at = Some(now);
    }

    /// Waits for the next item of any running request, or until `wake`.
    async fn next_step(&mut self, wake: Option<Instant>) -> Option<(usize, Step)> {
        let first = self.rotate;
        self.rotate = self.rotate.wrapping_add(1);
        let sources = &mut self.sources;
        let ready = std::future::poll_fn(|cx| {
            let n = sources.len();
            for k in 0..n {
                let i = (first + k) % n;
                let Some(next) = sources[i].next.as_mut() else {
                    continue;
                };
                if let Poll::Ready(step) = next.as_mut().poll(cx) {
                    sources[i].next = None;
                    return Poll::Ready((i, step));
                }
            }
            Poll::Pending
        });
        tokio::select! {
            biased;
            (i, step) = ready => Some((i, step)),
            () = tokio::time::sleep_until(wake.unwrap_or_else(Instant::now)), if wake.is_some() => None,
        }
    }

    /// Handles one request's item; a verified pair is returned for the caller.
    fn settle(&mut self, index: usize, step: Step) -> Option<bao_tree::io::Parent> {
        let now = Instant::now();
        let id = self.sources.get(index)?.id;
        let (stream, item) = match step {
            Ok((stream, Some(item))) => (stream, item),
            Ok((_, None)) => {
                let at = self.schedule.piece_of(id);
                let err = PeerError::Lied(match at {
                    Some(piece) => format!(
                        "stream ended at byte {} of its piece ending at {}",
                        piece.start, piece.end
                    ),
                    None => "stream ended early".into(),
                });
                self.drop_failed(index, err);
                return None;
            }
            Err(err) => {
                self.drop_failed(index, err);
                return None;
            }
        };
        let (offset, data) = match item {
            Verified::Pair(parent) => {
                self.schedule.progress(id, now);
                self.sources[index].read_on(stream);
                return Some(parent);
            }
            Verified::Group { offset, data } => (offset, data),
        };
        let accepted = self.schedule.accept(id, offset, &data, now);
        let peer = self.sources[index].peer.clone();
        if let Some(latency) = accepted.first_group {
            peer.latency(|estimate| estimate.observe(latency));
        }
        if accepted.bytes > 0 {
            peer.counters
                .bytes_received
                .fetch_add(accepted.bytes, Ordering::Relaxed);
        }
        if accepted.completed {
            peer.counters.transfers.fetch_add(1, Ordering::Relaxed);
            // Its stream has nothing more to send that anyone wants.
            self.sources.swap_remove(index);
            self.views_at = None;
        } else {
            self.sources[index].read_on(stream);
        }
        if accepted.won_race {
            self.located
                .inner
                .counters
                .hedges_won
                .fetch_add(1, Ordering::Relaxed);
            tracing::debug!(peer = %peer.addr, at = offset, "the racing request answered first");
        }
        if let Some(loser) = accepted.loser
            && let Some(at) = self.sources.iter().position(|s| s.id == loser.id)
        {
            let lost = self.sources.swap_remove(at);
            if let Some(elapsed) = loser.unanswered_for {
                lost.peer.latency(|latency| latency.outlasted(elapsed));
            }
            tracing::debug!(peer = %lost.peer.addr, "cancelled the slower request");
            self.views_at = None;
        }
        None
    }

    fn drop_failed(&mut self, index: usize, err: PeerError) {
        if index >= self.sources.len() {
            return;
        }
        let source = self.sources.swap_remove(index);
        self.schedule.remove_request(source.id);
        fail(&self.located.inner, &source.peer, &err);
        tracing::warn!(
            peer = %source.peer.addr,
            at = self.schedule.remaining().start,
            "abandoning source: {err}"
        );
        self.note_failure(&source.peer, err);
        self.views_at = None;
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

    /// Starts a request the schedule planned; one that cannot start (its holder's
    /// connection went away since the views were read) goes back to the schedule.
    fn open(&mut self, start: Start) {
        let Some(peer) = self.located.sources.get(start.holder).cloned() else {
            self.schedule.remove_request(start.id);
            return;
        };
        let span = tracing::debug_span!(
            "piece",
            peer = %peer.addr,
            from = start.range.start,
            to = start.range.end
        );
        let next = match start.why {
            Why::Early => self.adopt_early(&peer),
            _ => None,
        };
        let next = next.or_else(|| {
            let connection = self.usable(&peer)?;
            let get: NextStep = Box::pin(self.get(connection, start.range.clone()));
            Some(get)
        });
        let Some(next) = next else {
            self.schedule.remove_request(start.id);
            self.views_at = None;
            return;
        };
        if let Why::Hedge { slow } | Why::Steal { slow } = start.why
            && let Some(slow) = self.located.sources.get(slow)
        {
            count_hedge(&self.located.inner, slow);
            tracing::debug!(
                slow = %slow.addr,
                also = %peer.addr,
                from = start.range.start,
                to = start.range.end,
                why = ?start.why,
                "racing a slow holder"
            );
        }
        tracing::debug!(peer = %peer.addr, from = start.range.start, to = start.range.end, why = ?start.why, "fetching");
        self.sources.push(Source {
            id: start.id,
            peer,
            next: Some(Box::pin(next.instrument(span))),
        });
    }

    /// A verified GET of `range` (whole chunk groups around it); its first item is
    /// read when it is polled.
    fn get(
        &self,
        connection: quinn::Connection,
        range: Range<u64>,
    ) -> impl Future<Output = Step> + Send + 'static {
        let hash = self.located.hash;
        let size = self.located.size;
        let stall = self.located.inner.peer_timeout;
        let ranges =
            ChunkRanges::from(ChunkNum(range.start / 1024)..ChunkNum(range.end.div_ceil(1024)));
        async move {
            let (_, mut stream) =
                VerifiedStream::open(&connection, hash, &ranges, Some(size), stall).await?;
            let item = stream.next().await?;
            Ok((stream, item))
        }
    }

    /// The first request of a fetch of the whole object: the early GET sent with the
    /// size proof, already on its way. Its claimed size must be the proven one.
    fn adopt_early(&mut self, peer: &Arc<Peer>) -> Option<NextStep> {
        let early = self
            .located
            .early
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()?;
        self.usable(peer)?;
        let size = self.located.size;
        tracing::debug!(peer = %peer.addr, "fetching on the early GET");
        Some(Box::pin(async move {
            let (claimed, mut stream) = match early.get.await {
                Ok(opened) => opened?,
                Err(err) => return Err(PeerError::Transport(format!("early GET: {err}"))),
            };
            if claimed != size {
                return Err(PeerError::Lied(format!(
                    "claims size {claimed}, proven size is {size}"
                )));
            }
            let item = stream.next().await?;
            Ok((stream, item))
        }))
    }

    /// The range is delivered: whatever still runs is cancelled (nothing should).
    fn finish(&mut self) {
        for source in self.sources.drain(..) {
            self.schedule.remove_request(source.id);
        }
        tracing::debug!(
            elapsed_ms = self.started.elapsed().as_millis() as u64,
            "fetch complete"
        );
    }

    /// Every holder failed. One that lost its connection (a crash, a restart)
    /// may be back in a moment: wait a bounded time for any holder not
    /// skipped to be up again, and say whether one is.
    async fn wait_for_comeback(&mut self) -> bool {
        if self.comebacks == 0 {
            return false;
        }
        self.comebacks -= 1;
        let inner = self.located.inner.clone();
        let deadline = Instant::now() + inner.peer_timeout + inner.ping_interval * 2;
        while Instant::now() < deadline && !inner.cancel.is_cancelled() {
            tokio::time::sleep(COMEBACK_POLL).await;
            if self
                .located
                .sources
                .iter()
                .any(|peer| self.usable(peer).is_some())
            {
                tracing::info!(
                    at = self.schedule.remaining().start,
                    "a holder is back; resuming"
                );
                return true;
            }
        }
        false
    }
}

//! The verified multi-source transfer: proving an object's size from its holders, then
//! streaming a range from one holder at a time, every 16 KiB group verified before it
//! is handed out.
//!
//! Round trips before the first byte: one HAVE round, then one more. Each holder
//! asked for the size proof is asked, on the same round trip, for the whole object
//! too (an *early GET*, its size still a claim); the winner's early GET becomes the
//! first source of the first fetch of the whole object, once its claim matches the
//! proven size. The others are cancelled with the proofs that lost.
//!
//! Hedging: a holder that keeps a request waiting longer than its hedge delay (see
//! `latency.rs`) for a verified group gets company: the next holder is asked as well,
//! the first verified answer wins and the other request is cancelled (its stream
//! stopped with `CANCELLED`). That covers the size proof, the first group of every
//! source, and a source that slows to a crawl mid-transfer. Bytes still leave in order,
//! once each: a racing source is asked from the first undelivered byte, and only the
//! source that delivers that byte first stays.

use std::future::Future;
use std::net::SocketAddr;
use std::ops::Range;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bao_tree::{ChunkNum, ChunkRanges};
use bytes::Bytes;
use fleetcache_store::Hash;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::task::AbortOnDropHandle;
use tracing::Instrument;

use crate::client::{self, PeerError, Verified, VerifiedStream};
use crate::peers::Peer;
use crate::swarm::{Inner, record_failure};

/// Times a fetch whose holders all failed waits (one peer timeout plus two
/// ping intervals, enough for a restart to be noticed) for one to come back.
const COMEBACKS: u8 = 1;
/// How often a waiting fetch looks whether a holder is up again.
const COMEBACK_POLL: Duration = Duration::from_millis(50);
/// Least time between two hedges of one fetch. On a lossy link every repaired loss
/// can look like a crawl for a moment; this keeps such a link to at most four extra
/// requests a second per transfer, while a real crawl is still left within a quarter
/// of a second (plus the hedge delay).
const HEDGE_SPACING: Duration = Duration::from_millis(250);

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

/// Counts a failed request against `peer` and feeds it to its latency estimate: a
/// failure counts as the slowest a peer may be. A holder that no longer has the
/// object says nothing about its speed.
fn fail(inner: &Inner, peer: &Peer, err: &PeerError) {
    record_failure(peer, err);
    if !matches!(err, PeerError::NotFound) {
        peer.latency(|latency| latency.failed(inner.hedging));
    }
}

/// Proves the size of `hash` from `holders` (best first). The first is asked; each
/// time the newest request has gone unanswered for its holder's hedge delay, or
/// every request in flight has failed, the next holder is asked as well. The first
/// verified proof wins; the others are cancelled. `Ok(None)` if every holder said it
/// no longer holds the object.
pub(crate) async fn prove(
    inner: &Arc<Inner>,
    hash: Hash,
    holders: Vec<Arc<Peer>>,
) -> Result<Option<Located>, FetchError> {
    let mut asks = Asks {
        set: JoinSet::new(),
        pending: Vec::new(),
        next: 0,
        early: Vec::new(),
    };
    let mut last_failure = None;
    loop {
        if asks.set.is_empty() {
            asks.pending.clear();
            if !asks.ask_next(inner, hash, &holders) {
                break;
            }
        }
        let hedge_at = asks.pending.last().and_then(|&(i, asked)| {
            let more = asks.next < holders.len();
            more.then(|| asked + holders[i].hedge_delay(inner.hedging))
        });
        let joined = tokio::select! {
            joined = asks.set.join_next() => joined,
            () = tokio::time::sleep_until(hedge_at.unwrap_or_else(Instant::now)),
                if hedge_at.is_some() =>
            {
                let slow = asks.pending.last().map(|&(i, _)| holders[i].clone());
                if asks.ask_next(inner, hash, &holders)
                    && let Some(slow) = slow
                {
                    count_hedge(inner, &slow);
                    tracing::debug!(slow = %slow.addr, "size proof hedged");
                }
                continue;
            }
        };
        // A task that could not finish (it cannot panic; aborted only on drop).
        let Some(Ok((i, answer))) = joined else {
            continue;
        };
        let Some(at) = asks.pending.iter().position(|&(j, _)| j == i) else {
            continue;
        };
        let (_, asked) = asks.pending.remove(at);
        let peer = &holders[i];
        match answer {
            Ok(size) => {
                peer.latency(|latency| latency.observe(asked.elapsed()));
                peer.counters.transfers.fetch_add(1, Ordering::Relaxed);
                if asks.pending.iter().any(|&(j, _)| j < i) {
                    inner.counters.hedges_won.fetch_add(1, Ordering::Relaxed);
                }
                // The others lost the race: they had taken at least this long.
                for &(j, asked) in &asks.pending {
                    let elapsed = asked.elapsed();
                    holders[j].latency(|latency| latency.outlasted(elapsed));
                }
                let early = asks.take_early(i);
                // Dropping the set aborts the losers; their streams are stopped.
                drop(asks);
                let mut sources = holders;
                sources.rotate_left(i);
                return Ok(Some(Located {
                    hash,
                    size,
                    sources,
                    early: Arc::new(Mutex::new(early)),
                    inner: inner.clone(),
                }));
            }
            // Evicted since it answered HAVE: as if it had said no.
            Err(PeerError::NotFound) => {}
            Err(err) => {
                fail(inner, peer, &err);
                last_failure = Some(err);
            }
        }
    }
    match last_failure {
        None => Ok(None),
        Some(err) => Err(all_failed(hash, &err)),
    }
}

/// The size proofs of one `prove`.
struct Asks {
    set: JoinSet<(usize, Result<u64, PeerError>)>,
    /// Requests in flight: the holder's index and when it was asked, oldest first.
    pending: Vec<(usize, Instant)>,
    /// The next holder to ask.
    next: usize,
    /// Each asked holder's early GET of the whole object, by holder index.
    early: Vec<(usize, EarlyGet)>,
}

/// A GET of the whole object sent with the size proof, its size a claim until the
/// proof verifies; aborted (its stream stopped) when dropped unused.
type EarlyGet = AbortOnDropHandle<Result<(u64, VerifiedStream), PeerError>>;

impl Asks {
    /// Asks the next holder that is up; false if none is left.
    fn ask_next(&mut self, inner: &Inner, hash: Hash, holders: &[Arc<Peer>]) -> bool {
        let stall = inner.peer_timeout;
        while let Some(peer) = holders.get(self.next) {
            let i = self.next;
            self.next += 1;
            let Some(connection) = peer.connection() else {
                continue;
            };
            let whole = connection.clone();
            let early = tokio::spawn(
                async move {
                    let all = ChunkRanges::all();
                    VerifiedStream::open(&whole, hash, &all, None, stall).await
                }
                .in_current_span(),
            );
            self.early.push((i, AbortOnDropHandle::new(early)));
            self.set.spawn(
                async move { (i, client::prove_size(&connection, hash, stall).await) }
                    .in_current_span(),
            );
            self.pending.push((i, Instant::now()));
            return true;
        }
        false
    }

    /// The early GET of holder `i`, for the fetch that follows its proof.
    fn take_early(&mut self, i: usize) -> Option<EarlyGet> {
        let at = self.early.iter().position(|(j, _)| *j == i)?;
        Some(self.early.swap_remove(at).1)
    }
}

fn count_hedge(inner: &Inner, slow: &Peer) {
    slow.counters.hedges.fetch_add(1, Ordering::Relaxed);
    inner.counters.hedges.fetch_add(1, Ordering::Relaxed);
}

/// An object some peers hold, with its size proven.
#[derive(Debug, Clone)]
pub struct Located {
    hash: Hash,
    size: u64,
    /// The holders, the one that proved the size first.
    sources: Vec<Arc<Peer>>,
    /// The first holder's early GET of the whole object, until a fetch of the whole
    /// object takes it.
    early: Arc<Mutex<Option<EarlyGet>>>,
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
            hedge: None,
            last_hedge: None,
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

/// What reading a source's next item gives: its stream back, to read on, and the item
/// (`None` at the stream's end).
type Step = Result<(VerifiedStream, Option<Verified>), PeerError>;

/// One holder's GET in progress. The read of its next item is a future that owns the
/// stream, so it can wait in a race and be dropped (the stream stopped with
/// `CANCELLED`) without losing bytes half-read into a stream that is kept.
struct Source {
    peer: Arc<Peer>,
    next: Pin<Box<dyn Future<Output = Step> + Send>>,
    /// When its request was sent.
    asked: Instant,
    /// Whether a verified group has come from it yet.
    answered: bool,
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Source")
            .field("peer", &self.peer.addr)
            .field("answered", &self.answered)
            .finish_non_exhaustive()
    }
}

impl Source {
    /// Sends the GET; its first item is read when the source is polled.
    fn open(peer: Arc<Peer>, connection: quinn::Connection, get: Get) -> Source {
        let next = Box::pin(async move {
            let (_, mut stream) = VerifiedStream::open(
                &connection,
                get.hash,
                &get.ranges,
                Some(get.size),
                get.stall,
            )
            .await?;
            let item = stream.next().await?;
            Ok((stream, item))
        });
        Source {
            peer,
            next,
            asked: Instant::now(),
            answered: false,
        }
    }

    /// A source whose request is already on its way (`next` reads its first item).
    fn adopt(peer: Arc<Peer>, next: impl Future<Output = Step> + Send + 'static) -> Source {
        Source {
            peer,
            next: Box::pin(next),
            asked: Instant::now(),
            answered: false,
        }
    }

    fn read_on(&mut self, mut stream: VerifiedStream) {
        self.next = Box::pin(async move {
            let item = stream.next().await?;
            Ok((stream, item))
        });
    }

    /// Drops a source that lost a race. One that had not answered at all tells its
    /// latency estimate how long it had kept us waiting.
    fn cancel(self) {
        if !self.answered {
            let elapsed = self.asked.elapsed();
            self.peer.latency(|latency| latency.outlasted(elapsed));
        }
        tracing::debug!(peer = %self.peer.addr, "cancelled the slower request");
    }
}

/// What a source is asked for.
struct Get {
    hash: Hash,
    ranges: ChunkRanges,
    size: u64,
    stall: Duration,
}

#[derive(Debug, Clone, Copy)]
enum Role {
    Current,
    Hedge,
}

/// A running verified fetch; failing sources are replaced by the next holder, resuming
/// at the first byte not yet delivered, and slow ones are raced by it (see the module
/// documentation).
#[derive(Debug)]
pub struct Fetch {
    located: Located,
    pos: u64,
    end: u64,
    /// Where the search for the next holder starts in `located.sources`.
    next_source: usize,
    current: Option<Source>,
    /// A second request racing `current` for the next bytes.
    hedge: Option<Source>,
    last_hedge: Option<Instant>,
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
    /// come twice when the fetch moves to another source or races two.
    pub async fn next_item(&mut self) -> Result<Option<FetchItem>, FetchError> {
        // A source that has answered is judged by how long this item takes: the
        // caller's own pace between items is not the source's.
        let waiting_since = Instant::now();
        while self.pos < self.end {
            if self.current.is_none() {
                match self.hedge.take() {
                    Some(hedge) => self.current = Some(hedge),
                    None => self.open_next_source().await?,
                }
                continue;
            }
            if let Some((role, step)) = self.race(waiting_since).await
                && let Some(item) = self.settle(role, step)
            {
                return Ok(Some(item));
            }
        }
        if let Some(hedge) = self.hedge.take() {
            hedge.cancel();
        }
        if let Some(source) = self.current.take() {
            source
                .peer
                .counters
                .transfers
                .fetch_add(1, Ordering::Relaxed);
            tracing::debug!(
                peer = %source.peer.addr,
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

    /// Waits for the current source's next item or the hedge's, starting the hedge
    /// when the current source has kept us waiting past its hedge delay.
    async fn race(&mut self, waiting_since: Instant) -> Option<(Role, Step)> {
        loop {
            let hedge_at = self.hedge_at(waiting_since);
            let current = self.current.as_mut()?;
            let hedge = self.hedge.as_mut();
            tokio::select! {
                biased;
                step = &mut current.next => return Some((Role::Current, step)),
                step = async {
                    match hedge {
                        Some(hedge) => (&mut hedge.next).await,
                        None => std::future::pending().await,
                    }
                } => return Some((Role::Hedge, step)),
                () = tokio::time::sleep_until(hedge_at.unwrap_or_else(Instant::now)),
                    if hedge_at.is_some() => {}
            }
            self.start_hedge();
        }
    }

    /// When to ask another holder as well: `None` while a hedge is running or there is
    /// no other holder to ask.
    fn hedge_at(&self, waiting_since: Instant) -> Option<Instant> {
        if self.hedge.is_some() {
            return None;
        }
        let current = self.current.as_ref()?;
        self.spare(Some(current.peer.addr))?;
        let since = if current.answered {
            waiting_since
        } else {
            current.asked
        };
        let at = since + current.peer.hedge_delay(self.located.inner.hedging);
        Some(match self.last_hedge {
            Some(last) => at.max(last + HEDGE_SPACING),
            None => at,
        })
    }

    fn start_hedge(&mut self) {
        let Some(slow) = self.current.as_ref().map(|s| s.peer.clone()) else {
            return;
        };
        let Some((i, peer, connection)) = self.spare(Some(slow.addr)) else {
            return;
        };
        self.next_source = i + 1;
        count_hedge(&self.located.inner, &slow);
        tracing::debug!(slow = %slow.addr, also = %peer.addr, at = self.pos, "hedging");
        self.hedge = Some(Source::open(peer, connection, self.get()));
        self.last_hedge = Some(Instant::now());
    }

    /// Takes one source's next item. Bytes at the next position make that source the
    /// only one (the other request lost the race); pairs pass through from either.
    fn settle(&mut self, role: Role, step: Step) -> Option<FetchItem> {
        let slot = match role {
            Role::Current => &mut self.current,
            Role::Hedge => &mut self.hedge,
        };
        let mut source = slot.take()?;
        let (stream, item) = match step {
            Ok((stream, Some(item))) => (stream, item),
            Ok((_, None)) => {
                let err =
                    PeerError::Lied(format!("stream ended at byte {} of {}", self.pos, self.end));
                self.drop_failed(source, err);
                return None;
            }
            Err(err) => {
                self.drop_failed(source, err);
                return None;
            }
        };
        source.read_on(stream);
        let (offset, data) = match item {
            Verified::Pair(parent) => {
                *slot = Some(source);
                return Some(FetchItem::Pair(parent));
            }
            Verified::Group { offset, data } => (offset, data),
        };
        if !source.answered {
            source.answered = true;
            let elapsed = source.asked.elapsed();
            source.peer.latency(|latency| latency.observe(elapsed));
        }
        let group_end = offset + data.len() as u64;
        let from = self.pos.saturating_sub(offset) as usize;
        let to = (group_end.min(self.end).saturating_sub(offset)) as usize;
        let bytes = match data.get(from..to) {
            Some(bytes) if group_end > self.pos && !bytes.is_empty() => data.slice_ref(bytes),
            // Before the next position (or past the range): read on.
            _ => {
                *slot = Some(source);
                return None;
            }
        };
        let loser = match role {
            Role::Current => self.hedge.take(),
            Role::Hedge => {
                self.located
                    .inner
                    .counters
                    .hedges_won
                    .fetch_add(1, Ordering::Relaxed);
                tracing::debug!(peer = %source.peer.addr, at = self.pos, "the hedge answered first");
                self.current.take()
            }
        };
        if let Some(loser) = loser {
            loser.cancel();
        }
        source
            .peer
            .counters
            .bytes_received
            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
        self.pos += bytes.len() as u64;
        self.current = Some(source);
        Some(FetchItem::Bytes(bytes))
    }

    fn drop_failed(&mut self, source: Source, err: PeerError) {
        fail(&self.located.inner, &source.peer, &err);
        tracing::warn!(peer = %source.peer.addr, at = self.pos, "abandoning source: {err}");
        self.note_failure(&source.peer, err);
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

    /// The next holder worth asking other than `except`, in rendezvous order from
    /// `next_source` round to the start (a holder left behind for being slow, not
    /// for failing, may serve again), with its index.
    fn spare(&self, except: Option<SocketAddr>) -> Option<(usize, Arc<Peer>, quinn::Connection)> {
        let sources = &self.located.sources;
        (0..sources.len())
            .map(|k| (self.next_source + k) % sources.len())
            .find_map(|i| {
                let peer = &sources[i];
                if Some(peer.addr) == except {
                    return None;
                }
                self.usable(peer)
                    .map(|connection| (i, peer.clone(), connection))
            })
    }

    /// The first source of a fetch of the whole object: the early GET sent with the
    /// size proof, already on its way. Its claimed size must be the proven one.
    fn adopt_early(&mut self) -> Option<Source> {
        if self.pos != 0 || self.end != self.located.size {
            return None;
        }
        let early = self
            .located
            .early
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()?;
        let peer = self.located.sources.first()?.clone();
        self.usable(&peer)?;
        let size = self.located.size;
        tracing::debug!(peer = %peer.addr, "fetching on the early GET");
        Some(Source::adopt(peer, async move {
            let (claimed, mut stream) = match early.await {
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

    /// The GET for what is left of the range.
    fn get(&self) -> Get {
        Get {
            hash: self.located.hash,
            ranges: ChunkRanges::from(ChunkNum(self.pos / 1024)..ChunkNum(self.end.div_ceil(1024))),
            size: self.located.size,
            stall: self.located.inner.peer_timeout,
        }
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
        let deadline = Instant::now() + inner.peer_timeout + inner.ping_interval * 2;
        while Instant::now() < deadline && !inner.cancel.is_cancelled() {
            tokio::time::sleep(COMEBACK_POLL).await;
            if self.spare(None).is_some() {
                tracing::info!(at = self.pos, "a holder is back; resuming");
                return true;
            }
        }
        false
    }

    /// Starts the next holder worth asking (its first item is read by `race`).
    async fn open_next_source(&mut self) -> Result<(), FetchError> {
        if let Some(source) = self.adopt_early() {
            self.next_source = 1;
            self.current = Some(source);
            return Ok(());
        }
        loop {
            if let Some((i, peer, connection)) = self.spare(None) {
                self.next_source = i + 1;
                tracing::debug!(peer = %peer.addr, from = self.pos, "fetching");
                self.current = Some(Source::open(peer, connection, self.get()));
                return Ok(());
            }
            if !self.wait_for_comeback().await {
                break;
            }
        }
        let last = self.last_failure.take().unwrap_or(PeerError::NotConnected);
        Err(all_failed(self.located.hash, &last))
    }
}

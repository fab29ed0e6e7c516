//! The miss pipeline's one single-flight: one fill per cold key, whatever the key
//! (a BLAKE3 hash, or a URL and its variant) and whatever the source (peers, or the
//! origin). Bytes are teed into the store and to every waiting client as they arrive.
//!
//! A fill writes into a store ingest; waiters take the newest bytes from memory
//! (`recent.rs`), read older ones back from the ingest, and wait for more. Once the
//! ingest is committed, waiters move to the stored blob. A
//! client that goes away never stops the fill: the other waiters and the store still
//! want the object.
//!
//! What each source does lives beside this file: `peer.rs` (verified bytes from fleet
//! members) and `origin.rs` (an origin response, judged by the RFC 9111 policy).
//! Bytes read back from a running fill are the bytes the fill wrote: verified against
//! the hash for peer fills, as received for origin fills (the origin is the authority
//! for a URL). Once committed, every read is verified against the stored tree.

mod origin;
mod owner;
mod peer;
mod recent;
mod remembered;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Instant;

use bytes::Bytes;
use fleetcache_store::{Blob, Hash, Ingest, IngestError, ReadError, Store};
use fleetcache_swarm::{FetchError, FetchItem, Swarm};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::Instrument;

use crate::error::RequestError;
use crate::metrics::Metrics;
use crate::sync::lock;
use recent::Recent;
use remembered::Remembered;

pub(crate) use origin::{Handoff, OriginJob, OwnerAsk, StaleEntry};
pub(crate) use peer::DirectFetch;

/// Bytes gathered before one blocking write into the ingest: large writes for the
/// disk, and waiters see progress in steps of this size.
const WRITE_BATCH: usize = 256 * 1024;

/// What a fill is for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum FillKey {
    /// An object by hash, from peers.
    Hash(Hash),
    /// A URL response (cache key and Vary variant), from the origin.
    Url { key: String, variant: Vec<u8> },
    /// A fill of the inner key that no other request joins: for a URL whose
    /// last answer was not for sharing (numbered to be unique).
    Alone { of: Box<FillKey>, n: u64 },
}

impl FillKey {
    /// The key other requests for the same object use.
    pub(crate) fn shared(&self) -> &FillKey {
        match self {
            FillKey::Alone { of, .. } => of,
            key => key,
        }
    }
}

impl std::fmt::Display for FillKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FillKey::Hash(hash) => write!(f, "{hash}"),
            FillKey::Url { key, .. } => f.write_str(key),
            FillKey::Alone { of, .. } => write!(f, "{of} (alone)"),
        }
    }
}

/// What a fill knows once its source has answered.
#[derive(Debug)]
pub(crate) struct FillHead {
    /// Total bytes, when known before the end: proven by peers, or the origin's
    /// `Content-Length`. `None` for a chunked origin response.
    pub(crate) size: Option<u64>,
    /// URL fills: the response as it is stored (status, headers, times).
    pub(crate) response: Option<Arc<crate::cache::stored::StoredResponse>>,
    /// URL fills: the status the origin answered (304 for a revalidation).
    pub(crate) origin_status: Option<u16>,
    /// Where the bytes come from: `peer`, `owner` (the URL's owner in the
    /// fleet) or `origin`.
    pub(crate) source: &'static str,
}

/// Why an answer is not shared with the fill's waiters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Declined {
    /// Not for the cache (private, too large, …): a short reason.
    NotShared(&'static str),
    /// The origin answered a revalidation with this server error; waiters
    /// holding the stale entry may serve it instead (stale-if-error).
    OriginError(u16),
}

impl std::fmt::Display for Declined {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Declined::NotShared(reason) => f.write_str(reason),
            Declined::OriginError(status) => write!(f, "origin-{status}"),
        }
    }
}

/// Where a fill stands; waiters watch it.
#[derive(Debug, Clone)]
pub(crate) enum Progress {
    /// Asking peers, or waiting for the origin's response head.
    Starting,
    /// The head is known; the first `available` bytes can be read (the newest from
    /// memory, the others from the ingest).
    Streaming { head: Arc<FillHead>, available: u64 },
    /// Stored and committed (or, for a revalidation, the stored object confirmed).
    Done { head: Arc<FillHead>, blob: Blob },
    /// Every byte arrived but the object is not kept (too large for the store
    /// limits); waiters read the rest back from the fill.
    Unstored { head: Arc<FillHead>, size: u64 },
    /// The answer is not for sharing; waiters fetch for themselves.
    Declined(Declined),
    /// Gave up; nothing was stored.
    Failed(FillFailure),
}

/// Why a fill ended without an object.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum FillFailure {
    /// No live peer holds the object.
    #[error("no peer holds the object")]
    NotFound,
    /// Peers hold it but none delivered it.
    #[error("{0}")]
    Fetch(#[from] FetchError),
    /// The origin failed.
    #[error("{0}")]
    Origin(#[from] crate::origin::OriginError),
    /// The URL's owner failed after its answer had begun (too late to go to
    /// the origin: clients have bytes).
    #[error("the URL's owner {owner} failed mid-answer: {reason}")]
    Owner {
        /// The owner's node name.
        owner: String,
        /// What went wrong.
        reason: String,
        /// Whether it went silent.
        timed_out: bool,
    },
    /// The store has no room for it.
    #[error("storing the fill: {0}")]
    StorageFull(String),
    /// The store could not take it.
    #[error("storing the fill: {0}")]
    Store(String),
}

impl From<IngestError> for FillFailure {
    fn from(err: IngestError) -> Self {
        match err {
            IngestError::StorageFull | IngestError::TooLarge { .. } => {
                FillFailure::StorageFull(err.to_string())
            }
            other => FillFailure::Store(other.to_string()),
        }
    }
}

impl From<fleetcache_store::WriteError> for FillFailure {
    fn from(err: fleetcache_store::WriteError) -> Self {
        FillFailure::Store(err.to_string())
    }
}

impl From<ReadError> for FillFailure {
    fn from(err: ReadError) -> Self {
        FillFailure::Store(err.to_string())
    }
}

/// A failure of the fill's own bookkeeping (never expected).
fn lost(what: &str) -> FillFailure {
    FillFailure::Store(format!("the fill lost its {what}"))
}

impl From<FillFailure> for RequestError {
    fn from(failure: FillFailure) -> Self {
        match failure {
            FillFailure::NotFound => RequestError::NotFound,
            FillFailure::Fetch(err) if err.is_timeout() => {
                RequestError::PeerTimeout(err.to_string())
            }
            FillFailure::Fetch(err) => RequestError::Peer(err.to_string()),
            FillFailure::Origin(err) => RequestError::from(err),
            FillFailure::Owner {
                timed_out: true,
                reason,
                ..
            } => RequestError::PeerTimeout(reason),
            FillFailure::Owner { reason, .. } => RequestError::Peer(reason),
            FillFailure::StorageFull(msg) => RequestError::StorageFull(msg),
            FillFailure::Store(msg) => RequestError::Internal(msg),
        }
    }
}

/// How a fill ended, before it is published to waiters.
enum Outcome {
    Stored { head: Arc<FillHead>, blob: Blob },
    Unstored { head: Arc<FillHead>, size: u64 },
    Declined(Declined),
}

/// Where a fill's bytes come from.
pub(crate) enum FillSource {
    /// Fleet members holding the hash.
    Peers,
    /// The origin, for a URL.
    Origin(Box<OriginJob>),
}

/// Every fill in progress on this node.
#[derive(Debug)]
pub(crate) struct Fills {
    store: Store,
    metrics: Arc<Metrics>,
    swarm: Option<Swarm>,
    flights: Mutex<HashMap<FillKey, Arc<Flight>>>,
    /// Hashes no peer held a moment ago.
    absent: Mutex<Remembered<Hash>>,
    /// URLs (and variants) whose last answer was not for sharing.
    unshared: Mutex<Remembered<FillKey>>,
    /// Numbers fills nobody joins (`FillKey::Alone`).
    alone: std::sync::atomic::AtomicU64,
}

/// One fill and what its waiters need to read it.
#[derive(Debug)]
pub(crate) struct Flight {
    key: FillKey,
    progress: watch::Sender<Progress>,
    /// Shared with blocking tasks: the fill writes, waiters read back.
    ingest: Arc<Mutex<Option<Ingest>>>,
    /// The newest bytes, for waiters at the live edge.
    recent: Mutex<Recent>,
    /// A declined URL answer, kept for the request that started the fill.
    handoff: Mutex<Option<Handoff>>,
    /// Waiting for the URL's owner to answer (see [`Flight::asking_owner`]).
    asking_owner: AtomicBool,
}

/// What joining a key's fill found.
#[derive(Debug)]
pub(crate) enum Joined {
    /// The object was stored meanwhile (hash fills only).
    Stored(Blob),
    /// No peer held this hash a moment ago (hash fills only): a 404 at once.
    Absent,
    /// This request started the fill.
    Started(Arc<Flight>),
    /// A fill was already running; this request waits on it.
    Waiting(Arc<Flight>),
}

impl Fills {
    pub(crate) fn new(store: Store, metrics: Arc<Metrics>, swarm: Option<Swarm>) -> Arc<Self> {
        Arc::new(Fills {
            store,
            metrics,
            swarm,
            flights: Mutex::new(HashMap::new()),
            absent: Mutex::new(Remembered::new(remembered::ABSENT_FOR)),
            unshared: Mutex::new(Remembered::new(remembered::UNSHARED_FOR)),
            alone: std::sync::atomic::AtomicU64::new(0),
        })
    }

    pub(crate) fn swarm(&self) -> Option<&Swarm> {
        self.swarm.as_ref()
    }

    /// Whether the last answer for `key` was not for sharing (a while ago at
    /// most: see `remembered.rs`).
    pub(crate) fn unshared(&self, key: &FillKey) -> bool {
        lock(&self.unshared).contains(key, Instant::now())
    }

    /// A key for a fill of `key` that no other request joins.
    pub(crate) fn alone(&self, key: FillKey) -> FillKey {
        let n = self.alone.fetch_add(1, Ordering::Relaxed);
        FillKey::Alone {
            of: Box::new(key),
            n,
        }
    }

    /// Joins the running fill of `key`, if there is one (counted as a waiter).
    pub(crate) fn join_running(&self, key: &FillKey) -> Option<Arc<Flight>> {
        let flight = lock(&self.flights).get(key).cloned();
        if flight.is_some() {
            self.metrics.fill_waiters.inc();
        }
        flight
    }

    /// Joins the fill of `key`, starting it from `source` if none is running.
    pub(crate) fn join(
        self: &Arc<Self>,
        key: FillKey,
        source: FillSource,
    ) -> Result<Joined, ReadError> {
        let mut flights = lock(&self.flights);
        if let Some(flight) = flights.get(&key) {
            self.metrics.fill_waiters.inc();
            return Ok(Joined::Waiting(flight.clone()));
        }
        // A fill leaves the map only after its commit, so one that finished since the
        // caller's miss is in the store now: serve that rather than fetch it again.
        if let FillKey::Hash(hash) = &key {
            if let Some(blob) = self.store.get(hash)? {
                return Ok(Joined::Stored(blob));
            }
            if lock(&self.absent).contains(hash, Instant::now()) {
                return Ok(Joined::Absent);
            }
        }
        let asking_owner = matches!(&source, FillSource::Origin(job) if job.owner.is_some());
        let flight = Arc::new(Flight {
            key: key.clone(),
            progress: watch::Sender::new(Progress::Starting),
            ingest: Arc::new(Mutex::new(None)),
            recent: Mutex::new(Recent::default()),
            handoff: Mutex::new(None),
            asking_owner: AtomicBool::new(asking_owner),
        });
        flights.insert(key, flight.clone());
        drop(flights);
        let fills = self.clone();
        let task_flight = flight.clone();
        let span = tracing::info_span!("fill", key = %flight.key);
        tokio::spawn(async move { fills.run(task_flight, source).await }.instrument(span));
        Ok(Joined::Started(flight))
    }

    async fn run(self: Arc<Self>, flight: Arc<Flight>, source: FillSource) {
        let start = Instant::now();
        self.metrics.fills_active.inc();
        let label = match source {
            FillSource::Peers => "peer",
            FillSource::Origin(_) => "origin",
        };
        let outcome = match source {
            FillSource::Peers => self.fill_from_peers(&flight).await,
            FillSource::Origin(job) => self.fill_from_origin(&flight, *job).await,
        };
        self.metrics.fills_active.dec();
        let result = match &outcome {
            Ok(Outcome::Stored { .. }) => "ok",
            Ok(Outcome::Unstored { .. }) => "unstored",
            Ok(Outcome::Declined(_)) => "declined",
            Err(FillFailure::NotFound) => "not_found",
            Err(_) => "failed",
        };
        self.metrics.fills.with_label_values(&[label, result]).inc();
        self.metrics
            .fill_duration
            .with_label_values(&[label])
            .observe(start.elapsed().as_secs_f64());
        match flight.key.shared() {
            FillKey::Hash(hash) => {
                let mut absent = lock(&self.absent);
                match &outcome {
                    Err(FillFailure::NotFound) => absent.insert(*hash, Instant::now()),
                    _ => absent.remove(hash),
                }
            }
            url => {
                let mut unshared = lock(&self.unshared);
                match &outcome {
                    Ok(Outcome::Declined(Declined::NotShared(_))) => {
                        unshared.insert(url.clone(), Instant::now());
                    }
                    Ok(Outcome::Stored { .. }) => unshared.remove(url),
                    _ => {}
                }
            }
        }
        // Leave the map before publishing: a request that arrives after the end must
        // find the stored object or start afresh, never join a finished fill.
        lock(&self.flights).remove(&flight.key);
        let progress = match outcome {
            Ok(Outcome::Stored { head, blob }) => {
                tracing::info!(
                    size = blob.size(),
                    elapsed_ms = start.elapsed().as_millis() as u64,
                    source = label,
                    "filled"
                );
                Progress::Done { head, blob }
            }
            Ok(Outcome::Unstored { head, size }) => {
                tracing::info!(size, source = label, "streamed without storing");
                Progress::Unstored { head, size }
            }
            Ok(Outcome::Declined(reason)) => {
                tracing::debug!(%reason, "answer not shared");
                *lock(&flight.ingest) = None;
                Progress::Declined(reason)
            }
            Err(failure) => {
                tracing::warn!("fill failed: {failure}");
                *lock(&flight.ingest) = None;
                Progress::Failed(failure)
            }
        };
        if !matches!(progress, Progress::Unstored { .. }) {
            // Waiters read the stored object now, or nothing.
            lock(&flight.recent).clear();
        }
        flight.progress.send_replace(progress);
    }

    /// Streams `items` (bytes, and for verified fills the tree's pairs) into the
    /// flight's ingest in batches, publishing progress; one batch is written on the
    /// blocking pool while the next arrives. Returns the bytes written.
    async fn stream_into<S>(
        &self,
        flight: &Flight,
        head: &Arc<FillHead>,
        mut items: S,
    ) -> Result<u64, FillFailure>
    where
        S: ItemSource,
    {
        let mut batches = Batches {
            flight,
            head,
            batch: Vec::new(),
            batch_len: 0,
            writing: None,
            available: 0,
            written: 0,
        };
        loop {
            let mut pending = Box::pin(items.next_item());
            // Waiters should see bytes as soon as they arrive: when the source
            // has nothing ready, write what the batch holds and publish it
            // instead of waiting for the batch to fill.
            let ready = std::future::poll_fn(|cx| Poll::Ready(pending.as_mut().poll(cx))).await;
            let next = match ready {
                Poll::Ready(next) => next?,
                Poll::Pending => {
                    batches.write().await?;
                    match batches.writing.take() {
                        Some(mut write) => tokio::select! {
                            biased;
                            next = &mut pending => {
                                batches.writing = Some(write);
                                next?
                            }
                            done = &mut write => {
                                batches.finished(join_result(done)?);
                                pending.await?
                            }
                        },
                        None => pending.await?,
                    }
                }
            };
            let Some(item) = next else { break };
            if let FetchItem::Bytes(bytes) = &item {
                batches.batch_len += bytes.len();
            }
            batches.batch.push(item);
            if batches.batch_len >= WRITE_BATCH {
                batches.write().await?;
            }
        }
        batches.write().await?;
        if let Some(last) = batches.writing.take() {
            batches.finished(joined(last).await?);
        }
        Ok(batches.written)
    }
}

/// A fill's batches on their way into the ingest: the one being gathered, and
/// at most one being written on the blocking pool.
struct Batches<'a> {
    flight: &'a Flight,
    head: &'a Arc<FillHead>,
    batch: Vec<FetchItem>,
    batch_len: usize,
    writing: Option<JoinHandle<Result<u64, FillFailure>>>,
    /// Bytes handed to the waiters (in the recent window or the ingest).
    available: u64,
    /// Bytes the ingest holds.
    written: u64,
}

impl Batches<'_> {
    /// Hands the gathered batch, if any, to the waiters and starts writing it once
    /// the previous write is done.
    async fn write(&mut self) -> Result<(), FillFailure> {
        if self.batch_len == 0 {
            return Ok(());
        }
        if let Some(previous) = self.writing.take() {
            self.finished(joined(previous).await?);
        }
        let end = self.available + self.batch_len as u64;
        // The bytes that complete an object of known size are published with its
        // commit: a client holding every byte then finds the object stored, as a
        // request made right after expects (and so do the store's counters).
        if self.head.size != Some(end) {
            let mut recent = lock(&self.flight.recent);
            for item in &self.batch {
                if let FetchItem::Bytes(bytes) = item {
                    recent.push(bytes.clone());
                }
            }
            drop(recent);
            self.available = end;
            self.flight.progress.send_replace(Progress::Streaming {
                head: self.head.clone(),
                available: self.available,
            });
        }
        self.writing = Some(self.flight.start_write(std::mem::take(&mut self.batch)));
        self.batch_len = 0;
        Ok(())
    }

    /// Counts a completed write: the window may let go of those bytes.
    fn finished(&mut self, bytes: u64) {
        self.written += bytes;
        lock(&self.flight.recent).trim(self.written);
    }
}

/// What a fill writes into its ingest, in order: bytes, and for verified fills the
/// tree's pairs (origin fills have bytes only).
pub(crate) trait ItemSource {
    async fn next_item(&mut self) -> Result<Option<FetchItem>, FillFailure>;
}

impl Flight {
    /// Waits until the fill's source has answered: the head, the stored object, or
    /// why there is none.
    pub(crate) async fn head(&self) -> Result<HeadState, FillFailure> {
        self.wait(false).await
    }

    /// Waits for the fill to end: the stored object, or why there is none.
    pub(crate) async fn finished(&self) -> Result<HeadState, FillFailure> {
        self.wait(true).await
    }

    async fn wait(&self, to_the_end: bool) -> Result<HeadState, FillFailure> {
        let mut rx = self.progress.subscribe();
        loop {
            let state = match &*rx.borrow_and_update() {
                Progress::Starting => None,
                Progress::Streaming { .. } if to_the_end => None,
                Progress::Streaming { head, .. } | Progress::Unstored { head, .. } => {
                    Some(Ok(HeadState::Streaming(head.clone())))
                }
                Progress::Done { head, blob } => {
                    Some(Ok(HeadState::Stored(head.clone(), blob.clone())))
                }
                Progress::Declined(reason) => Some(Ok(HeadState::Declined(*reason))),
                Progress::Failed(failure) => Some(Err(failure.clone())),
            };
            if let Some(state) = state {
                return state;
            }
            if rx.changed().await.is_err() {
                return Err(FillFailure::Store("the fill task ended".into()));
            }
        }
    }

    /// Whether the source has answered (the head is known, or the fill ended).
    pub(crate) fn head_known(&self) -> bool {
        !matches!(*self.progress.borrow(), Progress::Starting)
    }

    /// Bytes waiters can read so far (all of them once the fill has ended with an
    /// object).
    pub(crate) fn available(&self) -> u64 {
        match &*self.progress.borrow() {
            Progress::Streaming { available, .. } => *available,
            Progress::Unstored { size, .. } => *size,
            Progress::Done { blob, .. } => blob.size(),
            Progress::Starting | Progress::Declined(_) | Progress::Failed(_) => 0,
        }
    }

    /// Whether the fill is waiting for the URL's owner to answer. A peer's URL
    /// request that finds such a fill declines instead of waiting on it: that
    /// would be a second forward (this node asked a third because its view of
    /// the members differs), and a chain of them could stack first-byte
    /// timeouts. Rendezvous order is global, so no chain is a cycle.
    pub(crate) fn asking_owner(&self) -> bool {
        self.asking_owner.load(Ordering::Acquire)
    }

    /// The declined answer, for the request that started the fill (once).
    pub(crate) fn take_handoff(&self) -> Option<Handoff> {
        lock(&self.handoff).take()
    }

    /// Appends bytes and saves verified pairs on the blocking pool; returns the bytes
    /// appended.
    fn start_write(&self, batch: Vec<FetchItem>) -> JoinHandle<Result<u64, FillFailure>> {
        let ingest = self.ingest.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = lock(&ingest);
            let ingest = guard.as_mut().ok_or_else(|| lost("ingest"))?;
            let mut n = 0;
            // The bytes go in one vectored write; pairs have their own places.
            let mut run: Vec<&[u8]> = Vec::with_capacity(batch.len());
            for item in &batch {
                match item {
                    FetchItem::Bytes(bytes) => {
                        run.push(bytes);
                        n += bytes.len() as u64;
                    }
                    FetchItem::Pair(parent) => ingest.save_pair(parent.node, &parent.pair)?,
                }
            }
            ingest.write_vectored(&run)?;
            Ok(n)
        })
    }

    /// Up to `len` bytes from `start` if they are among the newest, in memory.
    pub(crate) fn read_in_memory(&self, start: u64, len: usize) -> Option<Bytes> {
        lock(&self.recent).read(start, len)
    }

    /// Up to `len` bytes from `start`, waiting until the fill has them. Empty once
    /// `start` is at the end of a complete object.
    pub(crate) async fn read(self: Arc<Self>, start: u64, len: usize) -> Result<Bytes, String> {
        let mut rx = self.progress.subscribe();
        loop {
            let progress = rx.borrow_and_update().clone();
            let (available, complete) = match progress {
                Progress::Done { blob, .. } => {
                    if start >= blob.size() {
                        return Ok(Bytes::new());
                    }
                    return blocking(move || Ok(blob.read_verified(start, len)?))
                        .await
                        .map_err(|e| e.to_string());
                }
                Progress::Failed(failure) => return Err(failure.to_string()),
                Progress::Declined(reason) => return Err(format!("fill declined: {reason}")),
                Progress::Unstored { size, .. } => (size, true),
                Progress::Streaming { available, .. } => (available, false),
                Progress::Starting => (0, false),
            };
            if available > start {
                if let Some(bytes) = self.read_in_memory(start, len) {
                    return Ok(bytes);
                }
                // Older than the window: the ingest has them.
                let ingest = self.ingest.clone();
                let read = blocking(move || {
                    let guard = lock(&ingest);
                    match guard.as_ref() {
                        Some(ingest) => Ok(Some(
                            ingest.read_written(start, len.min((available - start) as usize))?,
                        )),
                        // Being committed: wait for Done.
                        None => Ok(None),
                    }
                })
                .await
                .map_err(|e| e.to_string())?;
                if let Some(bytes) = read {
                    return Ok(bytes);
                }
            } else if complete {
                return Ok(Bytes::new());
            }
            if rx.changed().await.is_err() {
                return Err("the fill task ended".into());
            }
        }
    }
}

/// What a waiter learns once the fill's source has answered.
#[derive(Debug)]
pub(crate) enum HeadState {
    /// Bytes are arriving (or arrived without being stored); read them from the flight.
    Streaming(Arc<FillHead>),
    /// Already stored.
    Stored(Arc<FillHead>, Blob),
    /// Not shared: fetch for yourself.
    Declined(Declined),
}

async fn joined<T>(task: JoinHandle<Result<T, FillFailure>>) -> Result<T, FillFailure> {
    join_result(task.await)
}

fn join_result<T>(
    result: Result<Result<T, FillFailure>, tokio::task::JoinError>,
) -> Result<T, FillFailure> {
    match result {
        Ok(result) => result,
        Err(err) => Err(FillFailure::Store(format!("blocking task failed: {err}"))),
    }
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, FillFailure> + Send + 'static,
) -> Result<T, FillFailure> {
    join_result(crate::sync::blocking(work).await)
}

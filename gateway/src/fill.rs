//! The miss pipeline: one fill per cold hash (single-flight), verified bytes from the
//! fleet teed into the store and to every waiting client as they arrive.
//!
//! A fill writes into a store ingest; waiters read back what has been written (bytes
//! the swarm verified) and wait for more. Once the ingest is committed, waiters move to
//! the stored blob. A client that goes away never stops the fill: the other waiters and
//! the store still want the object.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use bytes::Bytes;
use fleetcache_store::{Blob, Hash, Ingest, IngestError, ReadError, Store};
use fleetcache_swarm::{Fetch, FetchError, FetchItem, Located, Swarm};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::Instrument;

use crate::error::RequestError;
use crate::metrics::Metrics;

/// Verified bytes gathered before one blocking write into the ingest: large writes for
/// the disk, and waiters see progress in steps of this size.
const WRITE_BATCH: usize = 256 * 1024;

/// Where a fill stands; waiters watch it.
#[derive(Debug, Clone)]
pub(crate) enum Progress {
    /// Asking peers and proving the size.
    Locating,
    /// The size is proven; `written` verified bytes can be read back.
    Streaming { size: u64, written: u64 },
    /// Stored and committed.
    Done(Blob),
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
            FillFailure::StorageFull(msg) => RequestError::StorageFull(msg),
            FillFailure::Store(msg) => RequestError::Internal(msg),
        }
    }
}

/// Every fill in progress on this node, by hash.
#[derive(Debug)]
pub(crate) struct Fills {
    swarm: Swarm,
    store: Store,
    metrics: Arc<Metrics>,
    flights: Mutex<HashMap<Hash, Arc<Flight>>>,
}

/// One fill and what its waiters need to read it.
#[derive(Debug)]
pub(crate) struct Flight {
    hash: Hash,
    progress: watch::Sender<Progress>,
    /// Shared with blocking tasks: the fill writes, waiters read back.
    ingest: Arc<Mutex<Option<Ingest>>>,
}

impl Fills {
    pub(crate) fn new(swarm: Swarm, store: Store, metrics: Arc<Metrics>) -> Arc<Self> {
        Arc::new(Fills {
            swarm,
            store,
            metrics,
            flights: Mutex::new(HashMap::new()),
        })
    }

    pub(crate) fn swarm(&self) -> &Swarm {
        &self.swarm
    }

    /// The fill of `hash`, joined if one is running.
    pub(crate) fn running(&self, hash: &Hash) -> Option<Arc<Flight>> {
        let flight = lock(&self.flights).get(hash).cloned();
        if flight.is_some() {
            self.metrics.fill_waiters.inc();
        }
        flight
    }

    /// Joins the fill of `hash`, starting it if none is running.
    pub(crate) fn join(self: &Arc<Self>, hash: Hash) -> Result<Joined, ReadError> {
        let mut flights = lock(&self.flights);
        if let Some(flight) = flights.get(&hash) {
            self.metrics.fill_waiters.inc();
            return Ok(Joined::Flight(flight.clone()));
        }
        // A fill leaves the map only after its commit, so one that finished since the
        // caller's miss is in the store now: serve that rather than fetch it again.
        if let Some(blob) = self.store.get(&hash)? {
            return Ok(Joined::Stored(blob));
        }
        let flight = Arc::new(Flight {
            hash,
            progress: watch::Sender::new(Progress::Locating),
            ingest: Arc::new(Mutex::new(None)),
        });
        flights.insert(hash, flight.clone());
        drop(flights);
        let fills = self.clone();
        let task_flight = flight.clone();
        let span = tracing::info_span!("fill", %hash);
        tokio::spawn(async move { fills.run(task_flight).await }.instrument(span));
        Ok(Joined::Flight(flight))
    }

    async fn run(self: Arc<Self>, flight: Arc<Flight>) {
        let start = Instant::now();
        self.metrics.fills_active.inc();
        let outcome = self.fill(&flight).await;
        self.metrics.fills_active.dec();
        let result = match &outcome {
            Ok(_) => "ok",
            Err(FillFailure::NotFound) => "not_found",
            Err(_) => "failed",
        };
        self.metrics
            .fills
            .with_label_values(&["peer", result])
            .inc();
        self.metrics
            .fill_duration
            .with_label_values(&["peer"])
            .observe(start.elapsed().as_secs_f64());
        // Leave the map before publishing: a request that arrives after the end must
        // find the stored blob or start afresh, never join a finished fill.
        lock(&self.flights).remove(&flight.hash);
        match outcome {
            Ok(blob) => {
                tracing::info!(
                    size = blob.size(),
                    elapsed_ms = start.elapsed().as_millis() as u64,
                    "filled from peers"
                );
                flight.progress.send_replace(Progress::Done(blob));
            }
            Err(failure) => {
                tracing::warn!("fill failed: {failure}");
                *lock(&flight.ingest) = None;
                flight.progress.send_replace(Progress::Failed(failure));
            }
        }
    }

    async fn fill(&self, flight: &Flight) -> Result<Blob, FillFailure> {
        let located = self
            .swarm
            .locate(flight.hash)
            .await?
            .ok_or(FillFailure::NotFound)?;
        let size = located.size();
        let capacity = self.store.stats().capacity;
        if size > capacity {
            return Err(FillFailure::StorageFull(format!(
                "object of {size} bytes exceeds the store capacity of {capacity} bytes"
            )));
        }
        let store = self.store.clone();
        let hash = flight.hash;
        // The swarm verifies every group and pair; the store keeps the pairs instead
        // of hashing the bytes again.
        let ingest = blocking(move || Ok(store.ingest_verified(hash, size)?)).await?;
        *lock(&flight.ingest) = Some(ingest);
        flight
            .progress
            .send_replace(Progress::Streaming { size, written: 0 });
        let mut fetch = located.fetch(0..size);
        let mut batch = Vec::new();
        let mut batch_len = 0;
        let mut written = 0u64;
        // One batch is written on the blocking pool while the next arrives.
        let mut writing: Option<JoinHandle<Result<u64, FillFailure>>> = None;
        loop {
            let next = fetch.next_item().await?;
            let end = next.is_none();
            if let Some(item) = next {
                if let FetchItem::Bytes(bytes) = &item {
                    batch_len += bytes.len();
                }
                batch.push(item);
            }
            if batch_len >= WRITE_BATCH || (end && batch_len > 0) {
                if let Some(previous) = writing.take() {
                    written += joined(previous).await?;
                    flight
                        .progress
                        .send_replace(Progress::Streaming { size, written });
                }
                writing = Some(flight.start_write(std::mem::take(&mut batch)));
                batch_len = 0;
            }
            if end {
                break;
            }
        }
        if let Some(last) = writing {
            written += joined(last).await?;
            flight
                .progress
                .send_replace(Progress::Streaming { size, written });
        }
        let ingest = lock(&flight.ingest).take();
        let store = self.store.clone();
        blocking(move || {
            let outcome = ingest.ok_or_else(|| lost("ingest"))?.finish()?;
            if outcome.hash != hash {
                // Verified bytes cannot hash differently; this would be our bug.
                return Err(FillFailure::Store(format!(
                    "stored bytes hash to {}",
                    outcome.hash
                )));
            }
            store
                .get(&hash)?
                .ok_or_else(|| FillFailure::Store("evicted as soon as it was stored".into()))
        })
        .await
    }
}

impl Flight {
    /// The proven size, once known; the failure if the fill gave up first.
    pub(crate) async fn size(&self) -> Result<FlightSize, FillFailure> {
        let mut rx = self.progress.subscribe();
        loop {
            match &*rx.borrow_and_update() {
                Progress::Locating => {}
                Progress::Streaming { size, .. } => return Ok(FlightSize::Streaming(*size)),
                Progress::Done(blob) => return Ok(FlightSize::Stored(blob.clone())),
                Progress::Failed(failure) => return Err(failure.clone()),
            }
            if rx.changed().await.is_err() {
                return Err(FillFailure::Store("the fill task ended".into()));
            }
        }
    }

    /// Appends verified bytes and saves verified pairs on the blocking pool; returns
    /// the bytes appended.
    fn start_write(&self, batch: Vec<FetchItem>) -> JoinHandle<Result<u64, FillFailure>> {
        let ingest = self.ingest.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = lock(&ingest);
            let ingest = guard.as_mut().ok_or_else(|| lost("ingest"))?;
            let mut n = 0;
            for item in &batch {
                match item {
                    FetchItem::Bytes(bytes) => {
                        ingest.write(bytes)?;
                        n += bytes.len() as u64;
                    }
                    FetchItem::Pair(parent) => ingest.save_pair(parent.node, &parent.pair)?,
                }
            }
            Ok(n)
        })
    }

    /// Up to `len` bytes from `start`, waiting until the fill has them.
    pub(crate) async fn read(self: Arc<Self>, start: u64, len: usize) -> Result<Bytes, String> {
        let mut rx = self.progress.subscribe();
        loop {
            let progress = rx.borrow_and_update().clone();
            match progress {
                Progress::Done(blob) => {
                    return blocking(move || Ok(blob.read_verified(start, len)?))
                        .await
                        .map_err(|e| e.to_string());
                }
                Progress::Failed(failure) => return Err(failure.to_string()),
                Progress::Streaming { written, .. } if written > start => {
                    let ingest = self.ingest.clone();
                    let read = blocking(move || {
                        let guard = lock(&ingest);
                        match guard.as_ref() {
                            Some(ingest) => Ok(Some(
                                ingest.read_written(start, len.min((written - start) as usize))?,
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
                }
                Progress::Streaming { .. } | Progress::Locating => {}
            }
            if rx.changed().await.is_err() {
                return Err("the fill task ended".into());
            }
        }
    }
}

/// What joining a hash's fill found.
#[derive(Debug)]
pub(crate) enum Joined {
    /// The object was stored meanwhile.
    Stored(Blob),
    /// The fill to wait on (just started, or already running).
    Flight(Arc<Flight>),
}

/// What a waiter learns once the size is proven.
#[derive(Debug)]
pub(crate) enum FlightSize {
    /// Still arriving; this many bytes in all.
    Streaming(u64),
    /// Already stored.
    Stored(Blob),
}

/// A range fetched straight from peers for one response, not stored.
#[derive(Debug)]
pub(crate) struct DirectFetch {
    located: Located,
    fetch: tokio::sync::Mutex<Option<Fetch>>,
}

impl DirectFetch {
    pub(crate) fn new(located: Located) -> Self {
        DirectFetch {
            located,
            fetch: tokio::sync::Mutex::new(None),
        }
    }

    /// The next verified bytes of `start..end`; continues the running fetch when it
    /// is exactly there, else starts one.
    pub(crate) async fn read(self: Arc<Self>, start: u64, end: u64) -> Result<Bytes, String> {
        let mut guard = self.fetch.lock().await;
        let fetch = match guard.take() {
            Some(fetch) if fetch.remaining() == (start..end) => guard.insert(fetch),
            _ => guard.insert(self.located.fetch(start..end)),
        };
        match fetch.next().await {
            Ok(bytes) => Ok(bytes.unwrap_or_default()),
            Err(err) => Err(err.to_string()),
        }
    }
}

async fn joined<T>(task: JoinHandle<Result<T, FillFailure>>) -> Result<T, FillFailure> {
    match task.await {
        Ok(result) => result,
        Err(err) => Err(FillFailure::Store(format!("blocking task failed: {err}"))),
    }
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, FillFailure> + Send + 'static,
) -> Result<T, FillFailure> {
    joined(tokio::task::spawn_blocking(work)).await
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

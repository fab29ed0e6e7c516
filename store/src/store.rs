//! The store handle: opening, lookups, and the state shared with blobs, ingests and the
//! writer thread.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Sender, SyncSender, sync_channel};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::thread::JoinHandle;

use redb::{Database, ReadableDatabase};

use crate::blob::{Blob, Protection};
use crate::error::{IngestError, OpenError, ReadError, WriteError};
use crate::hash::Hash;
use crate::hot::HotBlobs;
use crate::index::{BLOBS, Totals, sanitize_content_type};
use crate::ingest::Ingest;
use crate::layout::Layout;
use crate::memory::{MemoryStats, MemoryTier};
use crate::record::{
    KeyFilter, NewRecord, Record, RecordRef, check_key, check_prefix, check_tag, check_variant,
};
use crate::records::{self, Selector};
use crate::startup;
use crate::writer::{self, Command, Limits};

/// Pending LRU touches that make `get` nudge the writer to flush early.
const TOUCH_NUDGE: usize = 16 * 1024;
/// Pending touches kept at most (32 MiB) should the writer fall behind; later reads then
/// go unrecorded, which only makes the LRU order approximate.
const TOUCH_MAX: usize = 1 << 20;

/// How to open a store.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Directory holding the index, blob files, temp files and quarantine.
    pub data_dir: PathBuf,
    /// Bytes of objects the store may hold.
    pub capacity: u64,
    /// Fraction of `capacity` above which a commit triggers eviction.
    pub high_watermark: f64,
    /// Fraction of `capacity` eviction brings usage down to.
    pub low_watermark: f64,
    /// Bytes of verified chunks of file objects kept in memory (the memory tier); 0
    /// turns it off. Objects larger than half of it are always read from disk.
    pub memory_cache: u64,
}

impl StoreOptions {
    fn validate(&self) -> Result<Limits, OpenError> {
        // The one place these rules are checked: the gateway reports a failure
        // here as a configuration error naming `store.<option>`.
        let invalid = |option, problem: String| Err(OpenError::InvalidOptions { option, problem });
        if self.data_dir.as_os_str().is_empty() {
            return invalid("data_dir", "must not be empty".into());
        }
        if self.capacity == 0 {
            return invalid("capacity", "must be greater than 0 bytes".into());
        }
        let (low, high) = (self.low_watermark, self.high_watermark);
        // Written so that NaN fails every check.
        if !(high > 0.0 && high <= 1.0) {
            return invalid(
                "high_watermark",
                format!("{high} must be greater than 0 and at most 1"),
            );
        }
        if !(low > 0.0 && low < high) {
            return invalid(
                "low_watermark",
                format!("{low} must be greater than 0 and below high_watermark ({high})"),
            );
        }
        let cap = self.capacity as f64;
        Ok(Limits {
            capacity: self.capacity,
            high_bytes: ((cap * high) as u64).min(self.capacity),
            low_bytes: ((cap * low) as u64).min(self.capacity),
        })
    }
}

/// A snapshot of the store's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Bytes of objects stored.
    pub bytes: u64,
    /// Objects stored.
    pub objects: u64,
    /// The configured capacity in bytes.
    pub capacity: u64,
    /// Objects pinned (never evicted).
    pub pinned_objects: u64,
    /// Objects evicted to stay under capacity, since the store was created.
    pub evictions: u64,
    /// Bytes evicted, since the store was created.
    pub evicted_bytes: u64,
    /// New objects ingested (duplicates not counted), since the store was created.
    pub ingests: u64,
    /// Bytes of new objects ingested, since the store was created.
    pub ingested_bytes: u64,
    /// Objects found corrupt and quarantined while serving, since the store was created.
    pub corrupt_detected: u64,
    /// Records stored (they do not count against `capacity`).
    pub records: u64,
    /// The memory tier's configured size in bytes (0: off).
    pub memory_capacity: u64,
    /// Bytes of verified chunks in the memory tier.
    pub memory_bytes: u64,
    /// Chunk reads of objects the memory tier admits, answered from it / from disk,
    /// since the store was opened.
    pub memory_hits: u64,
    pub memory_misses: u64,
}

#[derive(Debug, Default)]
pub(crate) struct AtomicStats {
    bytes: AtomicU64,
    objects: AtomicU64,
    pinned_objects: AtomicU64,
    evictions: AtomicU64,
    evicted_bytes: AtomicU64,
    ingests: AtomicU64,
    ingested_bytes: AtomicU64,
    corrupt_detected: AtomicU64,
    records: AtomicU64,
}

impl AtomicStats {
    pub(crate) fn publish(&self, t: &Totals) {
        let set = |a: &AtomicU64, v| a.store(v, Ordering::Relaxed);
        set(&self.bytes, t.bytes);
        set(&self.objects, t.objects);
        set(&self.pinned_objects, t.pinned_objects);
        set(&self.evictions, t.evictions);
        set(&self.evicted_bytes, t.evicted_bytes);
        set(&self.ingests, t.ingests);
        set(&self.ingested_bytes, t.ingested_bytes);
        set(&self.corrupt_detected, t.corrupt_detected);
        set(&self.records, t.records);
    }

    fn snapshot(&self, capacity: u64, memory: MemoryStats) -> StoreStats {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        StoreStats {
            bytes: get(&self.bytes),
            objects: get(&self.objects),
            capacity,
            pinned_objects: get(&self.pinned_objects),
            evictions: get(&self.evictions),
            evicted_bytes: get(&self.evicted_bytes),
            ingests: get(&self.ingests),
            ingested_bytes: get(&self.ingested_bytes),
            corrupt_detected: get(&self.corrupt_detected),
            records: get(&self.records),
            memory_capacity: memory.capacity,
            memory_bytes: memory.bytes,
            memory_hits: memory.hits,
            memory_misses: memory.misses,
        }
    }
}

/// State shared by the store handle, its blobs and ingests, and the writer thread.
pub(crate) struct Shared {
    pub(crate) layout: Layout,
    pub(crate) capacity: u64,
    db: RwLock<Option<Arc<Database>>>,
    tx: Mutex<Option<Sender<Command>>>,
    /// Hashes with live `Blob` handles, with handle counts: never evicted.
    protected: Mutex<HashMap<Hash, u32>>,
    /// Reads not yet recorded in the LRU table, oldest first.
    touches: Mutex<Vec<Hash>>,
    /// Bumped each time the writer takes the touches: a hot blob records one read per
    /// epoch.
    touch_epoch: AtomicU64,
    /// Blobs loaded for recent reads.
    pub(crate) hot: HotBlobs,
    /// Verified chunks of file objects.
    pub(crate) memory: MemoryTier,
    /// Bumped after every commit that put or removed a record.
    records_version: AtomicU64,
    pub(crate) stats: AtomicStats,
    /// Records attached to ingests still open, by attachment number. A removal
    /// that selects one withdraws it: the ingest commits its object without it.
    pub(crate) attached: Mutex<HashMap<u64, Attached>>,
    pub(crate) next_attachment: std::sync::atomic::AtomicU64,
}

/// A record waiting for its ingest's commit, as removals see it.
#[derive(Debug)]
pub(crate) struct Attached {
    pub(crate) key: Vec<u8>,
    pub(crate) variant: Vec<u8>,
    pub(crate) tags: Vec<Vec<u8>>,
    /// A removal selected it after it was attached.
    pub(crate) withdrawn: bool,
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared")
            .field("data_dir", &self.layout.root())
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    /// The database, unless the store is closed.
    pub(crate) fn db(&self) -> Option<Arc<Database>> {
        self.db
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Sends a command to the writer and waits for its answer; `None` once closed.
    pub(crate) fn request<T>(&self, make: impl FnOnce(SyncSender<T>) -> Command) -> Option<T> {
        let (reply, answer) = sync_channel(1);
        {
            let tx = lock(&self.tx);
            tx.as_ref()?.send(make(reply)).ok()?;
        }
        answer.recv().ok()
    }

    fn nudge(&self) {
        if let Some(tx) = lock(&self.tx).as_ref() {
            let _ = tx.send(Command::Nudge);
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        lock(&self.tx).is_none()
    }

    pub(crate) fn protect(&self, hash: Hash) {
        *lock(&self.protected).entry(hash).or_insert(0) += 1;
    }

    pub(crate) fn unprotect(&self, hash: &Hash) {
        let mut protected = lock(&self.protected);
        if let Some(count) = protected.get_mut(hash) {
            *count -= 1;
            if *count == 0 {
                protected.remove(hash);
            }
        }
    }

    /// Held by the writer while it picks eviction victims.
    pub(crate) fn protected(&self) -> MutexGuard<'_, HashMap<Hash, u32>> {
        lock(&self.protected)
    }

    /// Records a read for the LRU order; the writer applies it in its next transaction.
    pub(crate) fn touch(&self, hash: Hash) {
        let len = {
            let mut touches = lock(&self.touches);
            if touches.len() < TOUCH_MAX {
                touches.push(hash);
            }
            touches.len()
        };
        if len == TOUCH_NUDGE {
            self.nudge();
        }
    }

    /// Drops what is kept in memory of `hashes` (loaded blobs, memory-tier chunks):
    /// their index entries changed or went.
    pub(crate) fn forget_loaded(&self, hashes: &[Hash]) {
        self.hot.forget(hashes);
        self.memory.forget(hashes);
    }

    pub(crate) fn records_changed(&self) {
        self.records_version.fetch_add(1, Ordering::Release);
    }

    pub(crate) fn take_touches(&self) -> Vec<Hash> {
        self.touch_epoch.fetch_add(1, Ordering::Relaxed);
        std::mem::take(&mut *lock(&self.touches))
    }

    pub(crate) fn has_touches(&self) -> bool {
        !lock(&self.touches).is_empty()
    }

    /// Takes a corrupt object out of service; waits until the index no longer has it.
    pub(crate) fn quarantine(&self, hash: Hash, reason: &str) {
        tracing::warn!(%hash, reason, "corrupt blob detected; quarantining it");
        if self
            .request(|reply| Command::Quarantine { hash, reply })
            .is_none()
        {
            tracing::warn!(%hash, "store closed before the corrupt blob could be quarantined");
        }
    }

    pub(crate) fn contains(&self, hash: &Hash) -> Result<bool, ReadError> {
        let db = self.db().ok_or(ReadError::Closed)?;
        let txn = db.begin_read().map_err(ReadError::database)?;
        let blobs = txn.open_table(BLOBS).map_err(ReadError::database)?;
        let found = blobs.get(hash.as_bytes()).map_err(ReadError::database)?;
        Ok(found.is_some())
    }
}

/// A content-addressed blob store. Cheap to clone; the last clone dropped closes it.
#[derive(Clone)]
pub struct Store {
    inner: Arc<StoreInner>,
}

struct StoreInner {
    shared: Arc<Shared>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("data_dir", &self.inner.shared.layout.root())
            .field("stats", &self.stats())
            .finish()
    }
}

impl Store {
    /// Opens (creating if needed) the store in `options.data_dir`. Blocks while it takes
    /// the index lock, finishes interrupted deletes and removes leftover temp files; it
    /// does not scan the objects.
    pub fn open(options: StoreOptions) -> Result<Store, OpenError> {
        let limits = options.validate()?;
        let layout = Layout::new(&options.data_dir);
        startup::create_dirs(&layout)?;
        let db = startup::open_database(&layout.index(), true).map_err(|e| e.into_open())?;
        let totals = startup::init_tables(&db).map_err(|e| e.into_open())?;
        startup::recover(&db, &layout).map_err(|e| e.into_open())?;

        let db = Arc::new(db);
        let shared = Arc::new(Shared {
            layout,
            capacity: options.capacity,
            db: RwLock::new(Some(Arc::clone(&db))),
            tx: Mutex::new(None),
            protected: Mutex::new(HashMap::new()),
            touches: Mutex::new(Vec::new()),
            touch_epoch: AtomicU64::new(0),
            hot: HotBlobs::default(),
            memory: MemoryTier::new(options.memory_cache),
            records_version: AtomicU64::new(0),
            stats: AtomicStats::default(),
            attached: Mutex::new(HashMap::new()),
            next_attachment: std::sync::atomic::AtomicU64::new(0),
        });
        shared.stats.publish(&totals);
        let (tx, handle) =
            writer::spawn(Arc::clone(&shared), db, totals, limits).map_err(|source| {
                OpenError::Io {
                    path: options.data_dir.clone(),
                    source,
                }
            })?;
        *lock(&shared.tx) = Some(tx);
        tracing::info!(
            data_dir = %options.data_dir.display(),
            objects = totals.objects,
            bytes = totals.bytes,
            "store opened"
        );
        Ok(Store {
            inner: Arc::new(StoreInner {
                shared,
                writer: Mutex::new(Some(handle)),
            }),
        })
    }

    /// Looks a blob up and records the read for LRU order: from the recently read blobs
    /// kept loaded, else with one read transaction (and the blob is then kept). The
    /// returned handle keeps the blob's files open and protects it from eviction.
    pub fn get(&self, hash: &Hash) -> Result<Option<Blob>, ReadError> {
        let shared = &self.inner.shared;
        // Protect before looking, so eviction cannot pick the blob between the lookup and
        // the handle existing.
        let protection = Protection::new(Arc::clone(shared), *hash);
        let epoch = shared.touch_epoch.load(Ordering::Relaxed);
        if let Some(loaded) = shared.hot.get(hash) {
            if loaded.first_touch_in(epoch) {
                shared.touch(*hash);
            }
            return Ok(Some(Blob::new(protection, loaded)));
        }
        let generation = shared.hot.generation();
        let Some(loaded) = Blob::load(shared, *hash)? else {
            return Ok(None);
        };
        let loaded = Arc::new(loaded);
        loaded.first_touch_in(epoch);
        shared.touch(*hash);
        shared.hot.insert(*hash, Arc::clone(&loaded), generation);
        Ok(Some(Blob::new(protection, loaded)))
    }

    /// Whether the index has the blob (no LRU touch).
    pub fn contains(&self, hash: &Hash) -> Result<bool, ReadError> {
        self.inner.shared.contains(hash)
    }

    /// Starts writing a new object. `content_type` is stored if it is at most 255 bytes
    /// of printable ASCII, and dropped (stored as none) otherwise.
    pub fn ingest(&self, content_type: Option<&str>) -> Result<Ingest, IngestError> {
        let shared = &self.inner.shared;
        if shared.is_closed() {
            return Err(IngestError::Closed);
        }
        Ok(Ingest::new(
            Arc::clone(shared),
            sanitize_content_type(content_type),
        ))
    }

    /// Starts writing an object of `size` bytes whose bytes and hash tree the caller
    /// has already verified against `hash` (a fill from peers): instead of hashing the
    /// bytes again, the ingest takes the tree's pairs through
    /// [`Ingest::save_pair`]. It commits only with every pair present, the root pair
    /// hashing to `hash` and exactly `size` bytes written; reads verify against the
    /// stored tree as always.
    pub fn ingest_verified(&self, hash: Hash, size: u64) -> Result<Ingest, IngestError> {
        let shared = &self.inner.shared;
        if shared.is_closed() {
            return Err(IngestError::Closed);
        }
        Ok(Ingest::verified(Arc::clone(shared), hash, size))
    }

    /// Removes a blob; false if it was not stored. Open handles keep reading it.
    pub fn delete(&self, hash: &Hash) -> Result<bool, WriteError> {
        let hash = *hash;
        self.inner
            .shared
            .request(|reply| Command::Delete { hash, reply })
            .unwrap_or(Err(WriteError::Closed))
    }

    /// Pins (never evicted) or unpins a blob; false if it is not stored.
    pub fn set_pinned(&self, hash: &Hash, pinned: bool) -> Result<bool, WriteError> {
        let hash = *hash;
        self.inner
            .shared
            .request(|reply| Command::SetPinned {
                hash,
                pinned,
                reply,
            })
            .unwrap_or(Err(WriteError::Closed))
    }

    /// Changes after every committed write that put or removed any record. Read it
    /// before [`Store::records`]: what that returns stays current for as long as the
    /// version has not moved, so a caller may keep what it derived from it until then.
    pub fn records_version(&self) -> u64 {
        self.inner.shared.records_version.load(Ordering::Acquire)
    }

    /// Every record stored under exactly `key` (not under keys it is a prefix of), one
    /// per variant, in variant byte order; one read transaction. Does not count as a read
    /// of the blobs: [`get`](Self::get) the one you serve.
    pub fn records(&self, key: &[u8]) -> Result<Vec<Record>, ReadError> {
        check_key(key).map_err(ReadError::InvalidRecord)?;
        let db = self.inner.shared.db().ok_or(ReadError::Closed)?;
        records::lookup(&db, key)
    }

    /// Stores `record` pointing at `blob`, replacing any record at its (key, variant)
    /// (the old one's tags go with it); true if one was replaced. Counts as a read of the
    /// blob for LRU order. Fails with [`WriteError::BlobNotFound`] unless the blob is in
    /// the index when the write happens, so a record can never be left pointing at a
    /// blob evicted meanwhile. The record lives at most as long as its blob: deleting,
    /// evicting or quarantining the blob removes it in the same transaction.
    pub fn put_record(&self, blob: Hash, record: NewRecord) -> Result<bool, WriteError> {
        record.validate().map_err(WriteError::InvalidRecord)?;
        self.inner
            .shared
            .request(|reply| Command::PutRecord {
                blob,
                record,
                attachment: None,
                reply,
            })
            .unwrap_or(Err(WriteError::Closed))
    }

    /// Removes every variant of exactly `key`; returns what was removed. Blobs stay
    /// (other records may share them; unreferenced ones age out by LRU).
    pub fn remove_records(&self, key: &[u8]) -> Result<Vec<RecordRef>, WriteError> {
        check_key(key).map_err(WriteError::InvalidRecord)?;
        self.remove_selected(Selector::Key(key.to_vec()))
    }

    /// Removes the record at (`key`, `variant`), if there is one.
    pub fn remove_record(
        &self,
        key: &[u8],
        variant: &[u8],
    ) -> Result<Option<RecordRef>, WriteError> {
        check_key(key).map_err(WriteError::InvalidRecord)?;
        check_variant(variant).map_err(WriteError::InvalidRecord)?;
        let removed = self.remove_selected(Selector::Exact(key.to_vec(), variant.to_vec()))?;
        Ok(removed.into_iter().next())
    }

    /// Removes every record whose key starts with `prefix` (no 0x00; empty means every
    /// record) and, if given, passes `filter`; returns what was removed. A range scan of
    /// the matching keys in one transaction, so a short prefix over many records makes
    /// one large transaction. The filter runs on the writer thread (see [`KeyFilter`]).
    pub fn remove_records_by_prefix(
        &self,
        prefix: &[u8],
        filter: Option<KeyFilter>,
    ) -> Result<Vec<RecordRef>, WriteError> {
        check_prefix(prefix).map_err(WriteError::InvalidRecord)?;
        self.remove_selected(Selector::Prefix(prefix.to_vec(), filter))
    }

    /// Removes every record carrying `tag`; returns what was removed.
    pub fn remove_records_by_tag(&self, tag: &[u8]) -> Result<Vec<RecordRef>, WriteError> {
        check_tag(tag).map_err(WriteError::InvalidRecord)?;
        self.remove_selected(Selector::Tag(tag.to_vec()))
    }

    fn remove_selected(&self, selector: Selector) -> Result<Vec<RecordRef>, WriteError> {
        self.inner
            .shared
            .request(|reply| Command::RemoveRecords { selector, reply })
            .unwrap_or(Err(WriteError::Closed))
    }

    /// Counters, from memory.
    pub fn stats(&self) -> StoreStats {
        let shared = &self.inner.shared;
        shared
            .stats
            .snapshot(shared.capacity, shared.memory.stats())
    }

    /// Applies recorded LRU touches now instead of within the next second (the writer
    /// also does so before every eviction and at close).
    pub fn flush(&self) -> Result<(), WriteError> {
        self.inner
            .shared
            .request(|reply| Command::Flush { reply })
            .unwrap_or(Err(WriteError::Closed))
    }

    /// Flushes LRU touches, stops the writer thread and releases the index lock.
    /// Idempotent; also done when the last clone is dropped. Open `Blob`s keep working.
    pub fn close(&self) -> Result<(), WriteError> {
        self.inner.close()
    }
}

impl StoreInner {
    fn close(&self) -> Result<(), WriteError> {
        let Some(tx) = lock(&self.shared.tx).take() else {
            return Ok(());
        };
        let (reply, answer) = sync_channel(1);
        let result = match tx.send(Command::Shutdown { reply }) {
            Ok(()) => answer.recv().unwrap_or(Err(WriteError::Closed)),
            Err(_) => Ok(()),
        };
        drop(tx);
        let writer = lock(&self.writer).take();
        if let Some(handle) = writer
            && handle.join().is_err()
        {
            tracing::error!("store writer thread panicked");
        }
        self.shared
            .db
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        tracing::info!(data_dir = %self.shared.layout.root().display(), "store closed");
        result
    }
}

impl Drop for StoreInner {
    fn drop(&mut self) {
        if let Err(err) = self.close() {
            tracing::warn!("closing the store on drop: {err}");
        }
    }
}

//! The single writer: a thread that owns every write transaction. It drains whatever
//! commands are waiting into one transaction (one commit, one set of fsyncs for many
//! operations), applies recorded LRU touches and evicts, then does the file work that must
//! follow the commit.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io;
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, SyncSender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use redb::{Database, Durability, ReadableTable, Table, WriteTransaction};

use crate::error::{IngestError, WriteError};
use crate::hash::Hash;
use crate::index::{
    BLOBS, DELETES, Entry, INLINE, LRU, META, PendingFileOp, TOTALS_KEY, Totals, lru_key,
    lru_key_hash,
};
use crate::ingest::{IngestOutcome, TempGuard};
use crate::layout::{self, Layout};
use crate::record::{NewRecord, RECORDS_KEY, RecordRef, encode_count};
use crate::records::{RecordTables, Selector};
use crate::store::{Shared, lock};

/// Idle time after which recorded touches and finished deletes are written anyway.
const FLUSH_INTERVAL: Duration = Duration::from_secs(1);
/// Transactions that only record reads are committed without an fsync (a crash
/// loses recency hints, nothing else), but at least this often one is durable:
/// redb frees the pages a non-durable commit replaced only at a durable one.
const DURABLE_AT_LEAST_EVERY: Duration = Duration::from_secs(30);
/// Most commands in one transaction.
const MAX_BATCH: usize = 256;

/// Capacity limits in bytes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) capacity: u64,
    pub(crate) high_bytes: u64,
    pub(crate) low_bytes: u64,
}

/// A finished ingest waiting to be committed.
#[derive(Debug)]
pub(crate) struct PendingObject {
    pub(crate) hash: Hash,
    pub(crate) size: u64,
    pub(crate) content_type: Option<String>,
    pub(crate) body: PendingBody,
    /// Put in the same transaction once the blob is in the index (validated already).
    pub(crate) record: Option<NewRecord>,
    /// The record's entry in `Shared::attached`: not put if a removal withdrew it.
    pub(crate) attachment: Option<u64>,
}

#[derive(Debug)]
pub(crate) enum PendingBody {
    Inline(Bytes),
    /// Synced temp files, named after the hash.
    File(TempGuard),
}

/// What the writer is asked to do.
#[derive(Debug)]
pub(crate) enum Command {
    Ingest {
        object: PendingObject,
        reply: SyncSender<Result<IngestOutcome, IngestError>>,
    },
    Delete {
        hash: Hash,
        reply: SyncSender<Result<bool, WriteError>>,
    },
    SetPinned {
        hash: Hash,
        pinned: bool,
        reply: SyncSender<Result<bool, WriteError>>,
    },
    Quarantine {
        hash: Hash,
        reply: SyncSender<()>,
    },
    /// Validated already; fails with `BlobNotFound` unless `blob` is in the index.
    PutRecord {
        blob: Hash,
        record: NewRecord,
        /// An ingest's attached record: not put if a removal withdrew it.
        attachment: Option<u64>,
        reply: SyncSender<Result<bool, WriteError>>,
    },
    RemoveRecords {
        selector: Selector,
        reply: SyncSender<Result<Vec<RecordRef>, WriteError>>,
    },
    Flush {
        reply: SyncSender<Result<(), WriteError>>,
    },
    /// Many touches are waiting: flush them now.
    Nudge,
    Shutdown {
        reply: SyncSender<Result<(), WriteError>>,
    },
}

pub(crate) fn spawn(
    shared: Arc<Shared>,
    db: Arc<Database>,
    totals: Totals,
    limits: Limits,
) -> io::Result<(Sender<Command>, JoinHandle<()>)> {
    let (tx, rx) = mpsc::channel();
    let writer = Writer {
        layout: shared.layout.clone(),
        shared,
        db,
        rx,
        totals,
        limits,
        cleared: Vec::new(),
        // Capacity may have shrunk since the last run.
        evict_check: totals.bytes > limits.high_bytes,
        record_writes: 0,
        last_durable: Instant::now(),
        stopping: false,
    };
    let handle = std::thread::Builder::new()
        .name("fleetcache-store-writer".into())
        .spawn(move || writer.run())?;
    Ok((tx, handle))
}

struct Writer {
    shared: Arc<Shared>,
    layout: Layout,
    db: Arc<Database>,
    rx: Receiver<Command>,
    /// Committed totals; the source for `stats()`.
    totals: Totals,
    limits: Limits,
    /// Hashes whose files are gone, to drop from `deletes-1` in the next transaction.
    cleared: Vec<Hash>,
    evict_check: bool,
    /// Record rows put or removed so far: a commit that moved it changed records.
    record_writes: u64,
    last_durable: Instant,
    /// Shutting down: the last commits must be durable.
    stopping: bool,
}

struct Tables<'t> {
    blobs: Table<'t, &'static [u8; 32], &'static [u8]>,
    inline: Table<'t, &'static [u8; 32], &'static [u8]>,
    lru: Table<'t, &'static [u8; 40], ()>,
    deletes: Table<'t, &'static [u8; 32], &'static [u8]>,
    meta: Table<'t, &'static str, &'static [u8]>,
    records: RecordTables<'t>,
}

impl<'t> Tables<'t> {
    fn open(txn: &'t WriteTransaction) -> Result<Self, redb::Error> {
        Ok(Tables {
            blobs: txn.open_table(BLOBS)?,
            inline: txn.open_table(INLINE)?,
            lru: txn.open_table(LRU)?,
            deletes: txn.open_table(DELETES)?,
            meta: txn.open_table(META)?,
            records: RecordTables::open(txn)?,
        })
    }

    /// The entry of a hash: `Some(Err)` if it exists but does not decode.
    fn entry(&self, hash: &Hash) -> Result<Option<Result<Entry, String>>, redb::Error> {
        Ok(self
            .blobs
            .get(hash.as_bytes())?
            .map(|v| Entry::decode(v.value())))
    }
}

/// A reply held back until the transaction's fate is known.
enum Reply {
    Ingest(
        SyncSender<Result<IngestOutcome, IngestError>>,
        Result<IngestOutcome, IngestError>,
    ),
    Bool(SyncSender<Result<bool, WriteError>>, bool),
    /// A put's answer, which may be a refusal that does not depend on the commit.
    Put(
        SyncSender<Result<bool, WriteError>>,
        Result<bool, WriteError>,
    ),
    Removed(
        SyncSender<Result<Vec<RecordRef>, WriteError>>,
        Vec<RecordRef>,
    ),
    Done(SyncSender<Result<(), WriteError>>),
    Quarantine(SyncSender<()>),
}

/// Everything a batch must do after (or instead of) its commit.
#[derive(Default)]
struct Batch {
    replies: Vec<Reply>,
    /// Blob files to unlink or quarantine once committed.
    file_ops: Vec<(Hash, PendingFileOp)>,
    file_op_hashes: HashSet<Hash>,
    /// Links made under `blobs/` for new objects: removed again if the commit fails.
    linked: Vec<Hash>,
    /// Temp files of this batch's ingests, removed after the commit either way.
    temps: Vec<TempGuard>,
    /// Ingests that must wait for this batch's file removals of the same hash.
    deferred: Vec<Command>,
    /// Hashes removed or whose entry changed: loaded copies must be forgotten.
    changed: Vec<Hash>,
}

impl Batch {
    fn has_file_op(&self, hash: &Hash) -> bool {
        self.file_op_hashes.contains(hash)
    }

    fn add_file_op(&mut self, hash: Hash, op: PendingFileOp) {
        self.file_op_hashes.insert(hash);
        self.file_ops.push((hash, op));
    }
}

impl Writer {
    fn run(mut self) {
        let mut deferred = Vec::new();
        let mut shutdown = Vec::new();
        let mut stopping = false;
        loop {
            let mut commands = std::mem::take(&mut deferred);
            if commands.is_empty() && !stopping {
                match self.rx.recv_timeout(FLUSH_INTERVAL) {
                    Ok(command) => commands.push(command),
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => stopping = true,
                }
            }
            while commands.len() < MAX_BATCH {
                match self.rx.try_recv() {
                    Ok(command) => commands.push(command),
                    Err(_) => break,
                }
            }
            commands.retain_mut(|command| match command {
                Command::Shutdown { reply } => {
                    shutdown.push(reply.clone());
                    stopping = true;
                    false
                }
                Command::Nudge => false,
                _ => true,
            });
            let idle = commands.is_empty()
                && self.cleared.is_empty()
                && !self.evict_check
                && !self.shared.has_touches();
            let mut result = Ok(());
            if !idle {
                self.stopping = stopping;
                let (later, outcome) = self.run_batch(commands);
                deferred = later;
                result = outcome;
            } else if !stopping {
                continue;
            }
            // One more round clears the deletes-1 rows of files removed just now.
            let settled = self.cleared.is_empty() || result.is_err();
            if stopping && deferred.is_empty() && settled {
                for reply in shutdown {
                    let _ = reply.send(result.clone().map_err(WriteError::Database));
                }
                return;
            }
        }
    }

    /// Applies commands in one transaction. Returns the commands deferred to the next one
    /// and whether the commit succeeded.
    fn run_batch(&mut self, commands: Vec<Command>) -> (Vec<Command>, Result<(), String>) {
        let touches = self.shared.take_touches();
        let cleared = std::mem::take(&mut self.cleared);
        let before = self.totals;
        let record_writes = self.record_writes;
        let mut batch = Batch::default();
        match self.transact(commands, &touches, &cleared, &mut batch) {
            Ok(()) => {
                // Before any answer: a get after a delete's reply must not find it hot,
                // nor a lookup after a purge's reply a remembered record.
                self.shared.forget_loaded(&batch.changed);
                if self.record_writes != record_writes {
                    self.shared.records_changed();
                }
                self.evict_check = false;
                self.shared.stats.publish(&self.totals);
                self.after_commit(&mut batch);
                for reply in batch.replies {
                    match reply {
                        Reply::Ingest(tx, result) => drop(tx.send(result)),
                        Reply::Bool(tx, value) => drop(tx.send(Ok(value))),
                        Reply::Put(tx, result) => drop(tx.send(result)),
                        Reply::Removed(tx, removed) => drop(tx.send(Ok(removed))),
                        Reply::Done(tx) => drop(tx.send(Ok(()))),
                        Reply::Quarantine(tx) => drop(tx.send(())),
                    }
                }
                (batch.deferred, Ok(()))
            }
            Err(err) => {
                tracing::error!("store write transaction failed: {err}");
                self.totals = before;
                self.cleared = cleared;
                for hash in &batch.linked {
                    if let Err(e) = layout::remove_blob_files(&self.layout, hash) {
                        tracing::warn!(%hash, "removing uncommitted blob files: {e}");
                    }
                }
                drop(batch.temps);
                for reply in batch.replies {
                    match reply {
                        Reply::Ingest(tx, Ok(_)) => drop(tx.send(Err(IngestError::database(&err)))),
                        Reply::Ingest(tx, Err(e)) => drop(tx.send(Err(e))),
                        Reply::Bool(tx, _) => drop(tx.send(Err(WriteError::database(&err)))),
                        Reply::Put(tx, Ok(_)) => drop(tx.send(Err(WriteError::database(&err)))),
                        Reply::Put(tx, Err(e)) => drop(tx.send(Err(e))),
                        Reply::Removed(tx, _) => drop(tx.send(Err(WriteError::database(&err)))),
                        Reply::Done(tx) => drop(tx.send(Err(WriteError::database(&err)))),
                        Reply::Quarantine(tx) => drop(tx.send(())),
                    }
                }
                (batch.deferred, Err(err.to_string()))
            }
        }
    }

    fn transact(
        &mut self,
        commands: Vec<Command>,
        touches: &[Hash],
        cleared: &[Hash],
        batch: &mut Batch,
    ) -> Result<(), redb::Error> {
        let reads_only = commands.is_empty() && cleared.is_empty() && !self.stopping;
        let mut txn = self.db.begin_write()?;
        // Commits cost a little more; reopening after a crash no longer walks the file.
        txn.set_quick_repair(true);
        {
            let mut t = Tables::open(&txn)?;
            for hash in cleared {
                t.deletes.remove(hash.as_bytes())?;
            }
            self.apply_touches(&mut t, touches)?;
            for command in commands {
                self.apply(&mut t, command, batch)?;
            }
            if self.totals.bytes > self.limits.high_bytes {
                self.evict(&mut t, self.limits.low_bytes, batch)?;
            }
            t.meta.insert(TOTALS_KEY, self.totals.encode().as_slice())?;
            t.meta
                .insert(RECORDS_KEY, encode_count(self.totals.records).as_slice())?;
        }
        if !batch.linked.is_empty() {
            // The new links must be durable before the index points at them.
            let dir = self.layout.blobs_dir();
            if let Err(err) = layout::sync_dir(&dir) {
                drop(txn.abort());
                return Err(redb::Error::Io(err));
            }
        }
        let hints_only = reads_only && batch.file_ops.is_empty() && batch.linked.is_empty();
        let durable = !hints_only
            || self.last_durable.elapsed() >= DURABLE_AT_LEAST_EVERY
            || txn.set_durability(Durability::None).is_err();
        txn.commit()?;
        if durable {
            self.last_durable = Instant::now();
        }
        Ok(())
    }

    fn apply(
        &mut self,
        t: &mut Tables<'_>,
        command: Command,
        batch: &mut Batch,
    ) -> Result<(), redb::Error> {
        match command {
            Command::Ingest { mut object, reply } => {
                if let Some(Err(reason)) = t.entry(&object.hash)? {
                    tracing::warn!(hash = %object.hash, reason, "replacing an undecodable index entry");
                    self.remove(t, &object.hash, PendingFileOp::Quarantine, batch)?;
                }
                // Files of this hash are removed after this commit: link the new ones after.
                let is_file = matches!(object.body, PendingBody::File(_));
                if is_file && batch.has_file_op(&object.hash) {
                    batch.deferred.push(Command::Ingest { object, reply });
                    return Ok(());
                }
                let (hash, record) = (object.hash, object.record.take());
                let withdrawn = self.withdrawn(object.attachment);
                let result = self.ingest(t, object, batch)?;
                if let (Ok(_), Some(record), false) = (&result, record, withdrawn) {
                    self.put_record(t, &hash, &record)?;
                }
                batch.replies.push(Reply::Ingest(reply, result));
            }
            Command::Delete { hash, reply } => {
                let found = self
                    .remove(t, &hash, PendingFileOp::Unlink, batch)?
                    .is_some();
                batch.replies.push(Reply::Bool(reply, found));
            }
            Command::SetPinned {
                hash,
                pinned,
                reply,
            } => {
                let found = self.set_pinned(t, &hash, pinned, batch)?;
                batch.replies.push(Reply::Bool(reply, found));
            }
            Command::Quarantine { hash, reply } => {
                if self
                    .remove(t, &hash, PendingFileOp::Quarantine, batch)?
                    .is_some()
                {
                    self.totals.corrupt_detected += 1;
                }
                batch.replies.push(Reply::Quarantine(reply));
            }
            Command::PutRecord {
                blob,
                record,
                attachment,
                reply,
            } => {
                let result = match t.entry(&blob)? {
                    // Withdrawn by a removal while its ingest was open.
                    Some(Ok(_)) if self.withdrawn(attachment) => Ok(false),
                    Some(Ok(entry)) => {
                        // A new record makes its blob as recently useful as a read would.
                        self.touch(t, &blob, entry)?;
                        Ok(self.put_record(t, &blob, &record)?)
                    }
                    _ => Err(WriteError::BlobNotFound { hash: blob }),
                };
                batch.replies.push(Reply::Put(reply, result));
            }
            Command::RemoveRecords { selector, reply } => {
                let removal = t.records.remove(&selector)?;
                self.record_writes += removal.rows;
                self.totals.records = self.totals.records.saturating_sub(removal.rows);
                for attached in lock(&self.shared.attached).values_mut() {
                    if selector.selects(&attached.key, &attached.variant, &attached.tags) {
                        attached.withdrawn = true;
                    }
                }
                batch.replies.push(Reply::Removed(reply, removal.removed));
            }
            Command::Flush { reply } => batch.replies.push(Reply::Done(reply)),
            Command::Nudge | Command::Shutdown { .. } => {}
        }
        Ok(())
    }

    fn ingest(
        &mut self,
        t: &mut Tables<'_>,
        object: PendingObject,
        batch: &mut Batch,
    ) -> Result<Result<IngestOutcome, IngestError>, redb::Error> {
        let PendingObject {
            hash,
            size,
            content_type,
            body,
            record: _,
            attachment: _,
        } = object;
        let outcome = |already_present| IngestOutcome {
            hash,
            size,
            already_present,
        };
        if let Some(Ok(entry)) = t.entry(&hash)? {
            self.touch(t, &hash, entry)?;
            if let PendingBody::File(temp) = body {
                batch.temps.push(temp);
            }
            return Ok(Ok(outcome(true)));
        }
        let capacity = self.limits.capacity;
        if size > capacity {
            return Ok(Err(IngestError::TooLarge { size, capacity }));
        }
        if self.totals.bytes + size > capacity {
            self.evict(t, capacity - size, batch)?;
            if self.totals.bytes + size > capacity {
                return Ok(Err(IngestError::StorageFull));
            }
        }
        match body {
            PendingBody::Inline(bytes) => {
                t.inline.insert(hash.as_bytes(), &bytes[..])?;
            }
            PendingBody::File(temp) => {
                let linked = self.link(&temp, &hash);
                batch.temps.push(temp);
                if let Err((path, err)) = linked {
                    return Ok(Err(IngestError::io(path, err)));
                }
                batch.linked.push(hash);
                t.deletes.remove(hash.as_bytes())?;
            }
        }
        let entry = Entry {
            size,
            pinned: false,
            tick: self.totals.tick(),
            content_type,
        };
        t.lru.insert(&lru_key(entry.tick, &hash), ())?;
        t.blobs.insert(hash.as_bytes(), entry.encode().as_slice())?;
        self.totals.bytes += size;
        self.totals.objects += 1;
        self.totals.ingests += 1;
        self.totals.ingested_bytes += size;
        Ok(Ok(outcome(false)))
    }

    /// Hard-links the temp files into `blobs/`. The temp names stay until the commit, so a
    /// crash in between leaves a marker saying these links are uncommitted.
    fn link(&self, temp: &TempGuard, hash: &Hash) -> Result<(), (std::path::PathBuf, io::Error)> {
        let targets = [self.layout.data(hash), self.layout.outboard(hash)];
        for (i, (src, dst)) in temp.paths.iter().zip(&targets).enumerate() {
            let result = match fs::hard_link(src, dst) {
                // Not in the index and no removal pending: a stale leftover, safe to replace.
                Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {
                    layout::remove_if_exists(dst).and_then(|()| fs::hard_link(src, dst))
                }
                other => other,
            };
            if let Err(err) = result {
                for done in &targets[..i] {
                    let _ = layout::remove_if_exists(done);
                }
                return Err((dst.clone(), err));
            }
        }
        Ok(())
    }

    /// Whether a removal withdrew the record attached to an open ingest.
    fn withdrawn(&self, attachment: Option<u64>) -> bool {
        attachment.is_some_and(|id| {
            lock(&self.shared.attached)
                .get(&id)
                .is_some_and(|attached| attached.withdrawn)
        })
    }

    /// Puts a record for a blob found in the index in this transaction.
    fn put_record(
        &mut self,
        t: &mut Tables<'_>,
        blob: &Hash,
        record: &NewRecord,
    ) -> Result<bool, redb::Error> {
        let replaced = t.records.put(blob, record)?;
        self.record_writes += 1;
        if !replaced {
            self.totals.records += 1;
        }
        Ok(replaced)
    }

    fn set_pinned(
        &mut self,
        t: &mut Tables<'_>,
        hash: &Hash,
        pinned: bool,
        batch: &mut Batch,
    ) -> Result<bool, redb::Error> {
        let mut entry = match t.entry(hash)? {
            None => return Ok(false),
            Some(Ok(entry)) => entry,
            Some(Err(reason)) => {
                tracing::warn!(%hash, reason, "cannot pin: undecodable index entry");
                return Ok(false);
            }
        };
        if entry.pinned == pinned {
            return Ok(true);
        }
        if pinned {
            t.lru.remove(&lru_key(entry.tick, hash))?;
            self.totals.pinned_objects += 1;
        } else {
            entry.tick = self.totals.tick();
            t.lru.insert(&lru_key(entry.tick, hash), ())?;
            self.totals.pinned_objects = self.totals.pinned_objects.saturating_sub(1);
            // Unpinning may leave usage above the high watermark.
        }
        entry.pinned = pinned;
        t.blobs.insert(hash.as_bytes(), entry.encode().as_slice())?;
        batch.changed.push(*hash);
        Ok(true)
    }

    /// Moves a blob to the most recently used end of the LRU order.
    fn touch(
        &mut self,
        t: &mut Tables<'_>,
        hash: &Hash,
        mut entry: Entry,
    ) -> Result<(), redb::Error> {
        if entry.pinned {
            return Ok(());
        }
        t.lru.remove(&lru_key(entry.tick, hash))?;
        entry.tick = self.totals.tick();
        t.lru.insert(&lru_key(entry.tick, hash), ())?;
        t.blobs.insert(hash.as_bytes(), entry.encode().as_slice())?;
        Ok(())
    }

    fn apply_touches(&mut self, t: &mut Tables<'_>, touches: &[Hash]) -> Result<(), redb::Error> {
        // Only each hash's latest touch counts, in touch order.
        let last: HashMap<&Hash, usize> = touches.iter().enumerate().map(|(i, h)| (h, i)).collect();
        for (i, hash) in touches.iter().enumerate() {
            if last.get(hash) != Some(&i) {
                continue;
            }
            if let Some(Ok(entry)) = t.entry(hash)?
                && !self.among_the_youngest(&entry)
            {
                self.touch(t, hash, entry)?;
            }
        }
        Ok(())
    }

    /// Whether a blob is among the most recently used quarter already: at most
    /// `next_tick - tick` objects can be younger, and eviction starts from the
    /// oldest, so moving it again changes nothing eviction would see. Skipping
    /// those spares a hot object one index rewrite per flush (two B-tree updates,
    /// deep ones in a large store).
    fn among_the_youngest(&self, entry: &Entry) -> bool {
        self.totals.next_tick.saturating_sub(entry.tick) <= self.totals.objects / 4
    }

    /// Drops a blob from the index; its files are handled after the commit.
    fn remove(
        &mut self,
        t: &mut Tables<'_>,
        hash: &Hash,
        op: PendingFileOp,
        batch: &mut Batch,
    ) -> Result<Option<Option<Entry>>, redb::Error> {
        let entry = match t.entry(hash)? {
            None => return Ok(None),
            Some(Ok(entry)) => Some(entry),
            Some(Err(_)) => None,
        };
        t.blobs.remove(hash.as_bytes())?;
        batch.changed.push(*hash);
        // A record never outlives its blob.
        let records = t.records.remove_for_blob(hash)?;
        self.record_writes += records;
        self.totals.records = self.totals.records.saturating_sub(records);
        match &entry {
            Some(entry) => {
                if !entry.pinned {
                    t.lru.remove(&lru_key(entry.tick, hash))?;
                }
                self.totals.remove(entry);
            }
            // Unknown size and tick: the LRU row is dropped when eviction meets it, and
            // fsck recomputes the totals.
            None => self.totals.objects = self.totals.objects.saturating_sub(1),
        }
        if entry.as_ref().is_some_and(Entry::is_inline) {
            t.inline.remove(hash.as_bytes())?;
        } else {
            if entry.is_none() {
                t.inline.remove(hash.as_bytes())?;
            }
            t.deletes.insert(hash.as_bytes(), op.encode().as_slice())?;
            batch.add_file_op(*hash, op);
        }
        Ok(Some(entry))
    }

    /// Evicts least recently used, unpinned, unread blobs until usage is at most `target`.
    fn evict(
        &mut self,
        t: &mut Tables<'_>,
        target: u64,
        batch: &mut Batch,
    ) -> Result<(), redb::Error> {
        if self.totals.bytes <= target {
            return Ok(());
        }
        let mut victims = Vec::new();
        let mut stale = Vec::new();
        {
            let protected = self.shared.protected();
            let mut projected = self.totals.bytes;
            for row in t.lru.iter()? {
                let (key, _) = row?;
                let key = *key.value();
                let hash = lru_key_hash(&key);
                if protected.contains_key(&hash) {
                    continue;
                }
                match t.entry(&hash)? {
                    Some(Ok(entry)) if !entry.pinned && lru_key(entry.tick, &hash) == key => {
                        projected = projected.saturating_sub(entry.size);
                        victims.push(hash);
                        if projected <= target {
                            break;
                        }
                    }
                    _ => stale.push(key),
                }
            }
        }
        for key in stale {
            t.lru.remove(&key)?;
        }
        let mut seen = HashSet::new();
        for hash in victims {
            if !seen.insert(hash) {
                continue;
            }
            if let Some(Some(entry)) = self.remove(t, &hash, PendingFileOp::Unlink, batch)? {
                self.totals.evictions += 1;
                self.totals.evicted_bytes += entry.size;
                tracing::debug!(%hash, size = entry.size, "evicted");
            }
        }
        Ok(())
    }

    /// Unlinks or quarantines the files of blobs dropped by the committed transaction.
    fn after_commit(&mut self, batch: &mut Batch) {
        for (hash, op) in batch.file_ops.drain(..) {
            let result = match op {
                PendingFileOp::Unlink => layout::remove_blob_files(&self.layout, &hash),
                PendingFileOp::Quarantine => {
                    layout::quarantine_files(&self.layout, &hash).map(drop)
                }
            };
            match result {
                Ok(()) => self.cleared.push(hash),
                // The deletes-1 row stays; the next start-up retries.
                Err(err) => tracing::warn!(%hash, ?op, "removing blob files: {err}"),
            }
        }
        if !self.cleared.is_empty() {
            // Unlinks must be durable before their deletes-1 rows go.
            if let Err(err) = layout::sync_dir(&self.layout.blobs_dir()) {
                tracing::warn!("syncing the blobs dir: {err}");
                self.cleared.clear();
            }
        }
        batch.temps.clear();
    }
}

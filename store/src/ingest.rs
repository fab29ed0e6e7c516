//! Streaming ingest: bytes are hashed and the outboard built in the same pass that writes
//! them to a temp file, so memory stays at one buffer whatever the object size.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, IoSlice, Write};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;

use crate::error::{IngestError, WriteError};
use crate::given::GivenTree;
use crate::hash::Hash;
use crate::index::INLINE_MAX;
use crate::record::NewRecord;
use crate::store::{Attached, Shared, lock};
use crate::tree::OutboardBuilder;
use crate::writer::{Command, PendingBody, PendingObject};

/// Bytes gathered before hashing and writing: 16 chunk groups, so BLAKE3 gets whole
/// groups to hash in parallel and the disk gets large writes.
const WRITE_BUF: usize = 256 * 1024;
/// Outboard bytes gathered before writing them out.
const PAIRS_BUF: usize = 64 * 1024;
/// Given pairs gathered before they are written, in runs of neighbours: one
/// `pwrite` of 64 bytes per pair would be a system call per 32 KiB of object.
const PENDING_PAIRS: usize = 1024;
/// Data written between syncs while an object arrives: the commit's own sync then
/// has little left to wait for, instead of writing a whole large object to disk
/// after its last byte arrived.
const EARLY_SYNC: u64 = 16 << 20;
/// `writev` takes at most this many buffers (Linux's `IOV_MAX`).
const MAX_IOVECS: usize = 1024;

/// An object being written. Finish it with [`finish`](Self::finish); dropping it
/// unfinished removes its temp files.
pub struct Ingest {
    shared: Arc<Shared>,
    content_type: Option<String>,
    builder: OutboardBuilder,
    /// The hash tree, when the caller verified the bytes already; `builder` is then
    /// left idle.
    given: Option<GivenTree>,
    /// The given tree's pairs not written yet, with their outboard offsets.
    pending_pairs: Vec<(u64, [u8; 64])>,
    buf: Vec<u8>,
    files: Option<TempFiles>,
    written: u64,
    /// Data bytes written to the temp file since its last sync.
    unsynced: u64,
    failed: bool,
    /// Committed with the object, in the same transaction.
    record: Option<NewRecord>,
    /// The record's entry in `Shared::attached`, while this ingest is open.
    attachment: Option<u64>,
}

impl Drop for Ingest {
    fn drop(&mut self) {
        if let Some(id) = self.attachment {
            lock(&self.shared.attached).remove(&id);
        }
    }
}

impl fmt::Debug for Ingest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ingest")
            .field("bytes_written", &self.written)
            .field("content_type", &self.content_type)
            .field("temp_file", &self.files.as_ref().map(|f| &f.guard.paths[0]))
            .field("record_attached", &self.record.is_some())
            .finish()
    }
}

/// Temp files that are removed when this is dropped: by an abandoned ingest, or by the
/// writer once the object is committed (their hard links under `blobs/` remain) or failed.
#[derive(Debug)]
pub(crate) struct TempGuard {
    pub(crate) paths: [PathBuf; 2],
}

impl Drop for TempGuard {
    fn drop(&mut self) {
        for path in &self.paths {
            if let Err(err) = crate::layout::remove_if_exists(path) {
                tracing::warn!(path = %path.display(), "removing temp file: {err}");
            }
        }
    }
}

struct TempFiles {
    data: File,
    outboard: File,
    guard: TempGuard,
}

impl Ingest {
    pub(crate) fn new(shared: Arc<Shared>, content_type: Option<String>) -> Self {
        Ingest {
            shared,
            content_type,
            builder: OutboardBuilder::new(),
            given: None,
            pending_pairs: Vec::new(),
            buf: Vec::new(),
            files: None,
            written: 0,
            unsynced: 0,
            failed: false,
            record: None,
            attachment: None,
        }
    }

    pub(crate) fn verified(shared: Arc<Shared>, hash: Hash, size: u64) -> Self {
        let mut ingest = Ingest::new(shared, None);
        ingest.given = Some(GivenTree::new(hash, size));
        ingest
    }

    /// Saves one pair of the hash tree given to
    /// [`Store::ingest_verified`](crate::Store::ingest_verified), as bao-tree's decoder
    /// yields it.
    pub fn save_pair(
        &mut self,
        node: bao_tree::TreeNode,
        pair: &(blake3::Hash, blake3::Hash),
    ) -> Result<(), IngestError> {
        self.check_usable()?;
        let Some(offset) = self.given.as_mut().and_then(|given| given.place(node)) else {
            self.abandon();
            return Err(IngestError::Inconsistent(format!(
                "{node:?} is not a parent in this object's hash tree"
            )));
        };
        let mut bytes = [0u8; 64];
        bytes[..32].copy_from_slice(pair.0.as_bytes());
        bytes[32..].copy_from_slice(pair.1.as_bytes());
        self.pending_pairs.push((offset, bytes));
        if self.pending_pairs.len() < PENDING_PAIRS {
            return Ok(());
        }
        let result = self.write_pending_pairs();
        if result.is_err() {
            self.abandon();
        }
        result
    }

    /// Writes the pending pairs, each run of neighbours with one `pwrite`. Pairs
    /// arrive in pre-order and sit in post-order, so a thousand of them make a few
    /// runs.
    fn write_pending_pairs(&mut self) -> Result<(), IngestError> {
        if self.pending_pairs.is_empty() {
            return Ok(());
        }
        let mut pairs = std::mem::take(&mut self.pending_pairs);
        pairs.sort_unstable_by_key(|(offset, _)| *offset);
        let files = self.temp_files()?;
        let write_run = |run: &[u8], at: u64| {
            files
                .outboard
                .write_all_at(run, at)
                .map_err(|e| IngestError::io(&files.guard.paths[1], e))
        };
        let mut run: Vec<u8> = Vec::with_capacity(pairs.len() * 64);
        let mut run_start = 0;
        for (offset, pair) in &pairs {
            if !run.is_empty() && run_start + run.len() as u64 != *offset {
                write_run(&run, run_start)?;
                run.clear();
            }
            if run.is_empty() {
                run_start = *offset;
            }
            run.extend_from_slice(pair);
        }
        write_run(&run, run_start)?;
        // The allocation is kept for the next pairs.
        pairs.clear();
        self.pending_pairs = pairs;
        Ok(())
    }

    /// Appends bytes.
    pub fn write(&mut self, data: &[u8]) -> Result<(), IngestError> {
        self.admit(data.len())?;
        let result = if self.buf.is_empty() && data.len() >= WRITE_BUF {
            self.store(&[data])
        } else {
            let mut data = data;
            let mut result = Ok(());
            while !data.is_empty() && result.is_ok() {
                if self.buf.capacity() == 0 {
                    self.buf.reserve_exact(WRITE_BUF);
                }
                let take = (WRITE_BUF - self.buf.len()).min(data.len());
                self.buf.extend_from_slice(&data[..take]);
                data = &data[take..];
                if self.buf.len() == WRITE_BUF {
                    result = self.flush_buf();
                }
            }
            result
        };
        if result.is_err() {
            self.abandon();
        }
        self.written += data.len() as u64;
        result
    }

    /// Appends the bytes of `parts`, in order: past the first few hundred KiB,
    /// with one `writev` and no copy.
    pub fn write_vectored(&mut self, parts: &[&[u8]]) -> Result<(), IngestError> {
        if !self.buf.is_empty() || self.files.is_none() {
            // Still gathering (an object may yet be small enough to keep inline).
            return parts.iter().try_for_each(|part| self.write(part));
        }
        let len = parts.iter().map(|part| part.len()).sum();
        self.admit(len)?;
        let result = self.store(parts);
        if result.is_err() {
            self.abandon();
        }
        self.written += len as u64;
        result
    }

    /// Checks that `len` more bytes fit the object and the store.
    fn admit(&mut self, len: usize) -> Result<(), IngestError> {
        self.check_usable()?;
        let total = self.written.saturating_add(len as u64);
        if let Some(given) = self.given.as_ref().filter(|g| total > g.size) {
            let size = given.size;
            self.abandon();
            return Err(IngestError::Inconsistent(format!(
                "{total} bytes written to an object of {size}"
            )));
        }
        if total > self.shared.capacity {
            self.abandon();
            return Err(IngestError::TooLarge {
                size: total,
                capacity: self.shared.capacity,
            });
        }
        Ok(())
    }

    /// Attaches a record that [`finish`](Self::finish) commits pointing at this object,
    /// in the same transaction as the object, whose hash is only known then: one commit
    /// instead of two, and no moment at which a crash leaves the object without its
    /// record. If the store already has the object, the record is put all the same. A
    /// second call replaces the first record. Errors if the record breaks a limit
    /// (see [`NewRecord`]); the ingest stays usable.
    ///
    /// A removal of records that selects this one while the ingest is open (a purge
    /// racing a fill) withdraws it: the object is committed without it, exactly as
    /// if the record had been committed first and then removed.
    pub fn attach_record(&mut self, record: NewRecord) -> Result<(), IngestError> {
        record.validate().map_err(IngestError::InvalidRecord)?;
        let id = *self.attachment.get_or_insert_with(|| {
            self.shared
                .next_attachment
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        });
        lock(&self.shared.attached).insert(
            id,
            Attached {
                key: record.key.clone(),
                variant: record.variant.clone(),
                tags: record.tags.clone(),
                withdrawn: false,
            },
        );
        self.record = Some(record);
        Ok(())
    }

    /// Bytes written so far.
    pub fn bytes_written(&self) -> u64 {
        self.written
    }

    /// Reads back up to `len` bytes already written, from `offset`: a fill shares the
    /// object with readers while it is still arriving. Fewer bytes only at the end of
    /// what has been written. Blocks on a disk read. The bytes are as the writer gave
    /// them; verifying them was the writer's job.
    pub fn read_written(&self, offset: u64, len: usize) -> Result<Bytes, IngestError> {
        self.check_usable()?;
        if offset > self.written {
            return Err(self.internal(format!(
                "read at {offset} past the {} bytes written",
                self.written
            )));
        }
        let in_file = self.written - self.buf.len() as u64;
        let end = offset.saturating_add(len as u64).min(self.written);
        let mut out = Vec::with_capacity((end - offset) as usize);
        if offset < in_file {
            let file_end = end.min(in_file);
            let Some(files) = &self.files else {
                return Err(self.internal("ingest lost its temp files"));
            };
            out.resize((file_end - offset) as usize, 0);
            files
                .data
                .read_exact_at(&mut out, offset)
                .map_err(|e| IngestError::io(&files.guard.paths[0], e))?;
        }
        if end > in_file {
            let from = (offset.max(in_file) - in_file) as usize;
            let to = (end - in_file) as usize;
            out.extend_from_slice(self.buf.get(from..to).unwrap_or_default());
        }
        Ok(Bytes::from(out))
    }

    /// Makes the object durable and adds it to the index (or finds it already there),
    /// with the attached record, if any.
    pub fn finish(mut self) -> Result<IngestOutcome, IngestError> {
        self.check_usable()?;
        let size = self.written;
        let content_type = self.content_type.take();
        if size <= INLINE_MAX && self.files.is_none() {
            let bytes = Bytes::from(std::mem::take(&mut self.buf));
            let mut builder = std::mem::take(&mut self.builder);
            builder.update(&bytes);
            let (root, _) = builder.finalize();
            let hash = Hash::from(root);
            if let Some(given) = &self.given
                && (given.hash != hash || given.size != size)
            {
                return Err(IngestError::Inconsistent(format!(
                    "{size} bytes hashing to {hash}, expected {} bytes hashing to {}",
                    given.size, given.hash
                )));
            }
            if let Some(outcome) = self.already_present(hash, size)? {
                return Ok(outcome);
            }
            let record = self.record.take();
            return self.commit(PendingObject {
                hash,
                size,
                content_type,
                body: PendingBody::Inline(bytes),
                record,
                attachment: self.attachment,
            });
        }
        self.flush_buf()?;
        self.write_pending_pairs()?;
        let Some(mut files) = self.files.take() else {
            return Err(self.internal("ingest lost its temp files"));
        };
        let hash = match self.given.take() {
            Some(given) => {
                check_given(&given, size, &files)?;
                given.hash
            }
            None => {
                let builder = std::mem::take(&mut self.builder);
                let (root, pairs) = builder.finalize();
                write_file(&mut files.outboard, &pairs, &files.guard.paths[1])?;
                Hash::from(root)
            }
        };
        if let Some(outcome) = self.already_present(hash, size)? {
            return Ok(outcome);
        }
        sync(&files.data, &files.guard.paths[0])?;
        sync(&files.outboard, &files.guard.paths[1])?;
        drop((files.data, files.outboard));
        // Renamed to carry the hash: a crash after the writer links them under `blobs/`
        // but before the commit leaves a marker naming the uncommitted link.
        let mut guard = files.guard;
        for path in &mut guard.paths {
            let marker = self.shared.layout.marker(&hash, path);
            fs::rename(&*path, &marker).map_err(|e| IngestError::io(&*path, e))?;
            *path = marker;
        }
        let record = self.record.take();
        self.commit(PendingObject {
            hash,
            size,
            content_type,
            body: PendingBody::File(guard),
            record,
            attachment: self.attachment,
        })
    }

    fn commit(&self, object: PendingObject) -> Result<IngestOutcome, IngestError> {
        self.shared
            .request(|reply| Command::Ingest { object, reply })
            .unwrap_or(Err(IngestError::Closed))
    }

    /// A duplicate skips the fsyncs and, without a record, the writer: it only counts as
    /// a read. With a record, only the record is committed. `None` means: store the
    /// object (it is not there, or it left the index before the record could be put).
    fn already_present(
        &mut self,
        hash: Hash,
        size: u64,
    ) -> Result<Option<IngestOutcome>, IngestError> {
        if !matches!(self.shared.contains(&hash), Ok(true)) {
            return Ok(None);
        }
        let outcome = IngestOutcome {
            hash,
            size,
            already_present: true,
        };
        let Some(record) = &self.record else {
            self.shared.touch(hash);
            return Ok(Some(outcome));
        };
        // A copy, because the object may be evicted before the writer gets to the put;
        // the record then goes with the object's own commit.
        let record = record.clone();
        let attachment = self.attachment;
        let put = self.shared.request(|reply| Command::PutRecord {
            blob: hash,
            record,
            attachment,
            reply,
        });
        match put {
            None => Err(IngestError::Closed),
            Some(Ok(_)) => {
                self.record = None;
                Ok(Some(outcome))
            }
            Some(Err(WriteError::BlobNotFound { .. })) => Ok(None),
            Some(Err(WriteError::Database(msg))) => Err(IngestError::Database(msg)),
            Some(Err(WriteError::Io { path, source })) => Err(IngestError::io(path, source)),
            Some(Err(WriteError::Closed)) => Err(IngestError::Closed),
            Some(Err(WriteError::InvalidRecord(err))) => Err(IngestError::InvalidRecord(err)),
        }
    }

    /// An error in the ingest's own state, reported against the temp directory.
    fn internal(&self, what: impl Into<String>) -> IngestError {
        IngestError::Io {
            path: self.shared.layout.tmp_dir(),
            source: io::Error::other(what.into()),
        }
    }

    fn check_usable(&self) -> Result<(), IngestError> {
        if self.failed {
            return Err(self.internal("an earlier write to this ingest failed"));
        }
        Ok(())
    }

    /// Removes the temp files after a failure; the ingest refuses further use.
    fn abandon(&mut self) {
        self.failed = true;
        self.files = None;
        self.buf = Vec::new();
        self.pending_pairs = Vec::new();
    }

    fn flush_buf(&mut self) -> Result<(), IngestError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let buf = std::mem::take(&mut self.buf);
        let result = self.store(&[&buf]);
        self.buf = buf;
        self.buf.clear();
        result
    }

    fn temp_files(&mut self) -> Result<&mut TempFiles, IngestError> {
        match self.files {
            Some(ref mut files) => Ok(files),
            None => Ok(self.files.insert(create_temp_files(&self.shared)?)),
        }
    }

    /// Hashes (unless the tree was given) and writes bytes past the inline limit.
    fn store(&mut self, parts: &[&[u8]]) -> Result<(), IngestError> {
        let hashing = self.given.is_none();
        let pairs = if hashing {
            for part in parts {
                self.builder.update(part);
            }
            (self.builder.pending_pairs_len() >= PAIRS_BUF).then(|| self.builder.take_pairs())
        } else {
            None
        };
        let unsynced = self.unsynced + parts.iter().map(|part| part.len() as u64).sum::<u64>();
        let early_sync = unsynced >= EARLY_SYNC;
        self.unsynced = if early_sync { 0 } else { unsynced };
        let files = self.temp_files()?;
        write_parts(&mut files.data, parts, &files.guard.paths[0])?;
        if early_sync {
            sync(&files.data, &files.guard.paths[0])?;
        }
        if let Some(pairs) = pairs {
            write_file(&mut files.outboard, &pairs, &files.guard.paths[1])?;
        }
        Ok(())
    }
}

/// A given tree must be complete, its root pair must hash to the object's hash, and
/// the byte count must match before the object is committed.
fn check_given(given: &GivenTree, size: u64, files: &TempFiles) -> Result<(), IngestError> {
    if size != given.size {
        return Err(IngestError::Inconsistent(format!(
            "{size} bytes written to an object of {}",
            given.size
        )));
    }
    if let Some(problem) = given.incomplete() {
        return Err(IngestError::Inconsistent(problem));
    }
    let outboard_len = crate::tree::outboard_size(size);
    let root_pair = if outboard_len == 0 {
        None
    } else {
        let mut pair = [0u8; 64];
        files
            .outboard
            .read_exact_at(&mut pair, outboard_len - 64)
            .map_err(|e| IngestError::io(&files.guard.paths[1], e))?;
        Some(pair)
    };
    match given.root_problem(root_pair.as_ref()) {
        Some(problem) => Err(IngestError::Inconsistent(problem)),
        None => Ok(()),
    }
}

fn create_temp_files(shared: &Shared) -> Result<TempFiles, IngestError> {
    let (data_path, outboard_path) = shared.layout.new_temp();
    let create = |path: &PathBuf| {
        // Readable too: a fill reads back what it wrote for clients that join late.
        OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(|e| IngestError::io(path, e))
    };
    let data = create(&data_path)?;
    let outboard = create(&outboard_path).inspect_err(|_| {
        let _ = crate::layout::remove_if_exists(&data_path);
    })?;
    Ok(TempFiles {
        data,
        outboard,
        guard: TempGuard {
            paths: [data_path, outboard_path],
        },
    })
}

fn write_file(file: &mut File, bytes: &[u8], path: &PathBuf) -> Result<(), IngestError> {
    file.write_all(bytes).map_err(|e| IngestError::io(path, e))
}

fn write_parts(file: &mut File, parts: &[&[u8]], path: &PathBuf) -> Result<(), IngestError> {
    let mut slices: Vec<IoSlice<'_>> = parts.iter().map(|part| IoSlice::new(part)).collect();
    let mut left = &mut slices[..];
    // Drops leading empty parts: parts that are all empty write nothing.
    IoSlice::advance_slices(&mut left, 0);
    while !left.is_empty() {
        let at_once = left.len().min(MAX_IOVECS);
        match file.write_vectored(&left[..at_once]) {
            Ok(0) => return Err(IngestError::io(path, io::ErrorKind::WriteZero.into())),
            Ok(n) => IoSlice::advance_slices(&mut left, n),
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(IngestError::io(path, err)),
        }
    }
    Ok(())
}

fn sync(file: &File, path: &PathBuf) -> Result<(), IngestError> {
    file.sync_data().map_err(|e| IngestError::io(path, e))
}

/// The result of a finished ingest.
#[derive(Debug, Clone)]
pub struct IngestOutcome {
    /// The object's BLAKE3 hash.
    pub hash: Hash,
    /// Its size in bytes.
    pub size: u64,
    /// True if the store already had it (nothing was counted twice).
    pub already_present: bool,
}

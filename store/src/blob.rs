//! Handles to stored blobs: loaded with one read transaction, read with verification.

use std::fmt;
use std::fs::File;
use std::io;
use std::sync::Arc;

use bao_tree::io::outboard::{PostOrderMemOutboard, PostOrderOutboard};
use bao_tree::{BaoTree, ChunkRanges};
use bytes::Bytes;
use redb::ReadableDatabase;

use crate::encode::{EncodeFailure, encode};
use crate::error::ReadError;
use crate::hash::Hash;
use crate::hot::Loaded;
use crate::index::{BLOBS, Entry, INLINE};
use crate::memory::CHUNK;
use crate::slab::SlabReader;
use crate::store::Shared;
use crate::tree::outboard_size;
use crate::verify::{VerifiedFile, VerifyError};

/// Data read at a time when encoding for a peer: 64 groups.
const DATA_SLAB: usize = 1 << 20;
/// Outboard read at a time when encoding: the pairs of a 16 MiB subtree.
const OUTBOARD_SLAB: usize = 64 << 10;

/// Keeps a hash out of eviction while it lives.
pub(crate) struct Protection {
    shared: Arc<Shared>,
    hash: Hash,
}

impl Protection {
    pub(crate) fn new(shared: Arc<Shared>, hash: Hash) -> Self {
        shared.protect(hash);
        Protection { shared, hash }
    }
}

impl Drop for Protection {
    fn drop(&mut self) {
        self.shared.unprotect(&self.hash);
    }
}

/// A stored object. Cheap to clone; while any clone lives the object is not evicted, and
/// its files stay readable even if it is deleted meanwhile.
#[derive(Clone)]
pub struct Blob {
    inner: Arc<BlobInner>,
}

struct BlobInner {
    protection: Protection,
    loaded: Arc<Loaded>,
}

pub(crate) enum Body {
    Inline(Bytes),
    File(VerifiedFile),
}

impl fmt::Debug for Blob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Blob")
            .field("hash", &self.hash())
            .field("size", &self.size())
            .field("content_type", &self.content_type())
            .field("pinned", &self.is_pinned())
            .field("inline", &self.inline_bytes().is_some())
            .finish()
    }
}

impl Blob {
    pub(crate) fn new(protection: Protection, loaded: Arc<Loaded>) -> Blob {
        Blob {
            inner: Arc::new(BlobInner { protection, loaded }),
        }
    }

    /// Looks `hash` up in the index and opens its files. Corruption found on the way
    /// quarantines the object.
    pub(crate) fn load(shared: &Shared, hash: Hash) -> Result<Option<Loaded>, ReadError> {
        let db = shared.db().ok_or(ReadError::Closed)?;
        let txn = db.begin_read().map_err(ReadError::database)?;
        let blobs = txn.open_table(BLOBS).map_err(ReadError::database)?;
        let raw = match blobs.get(hash.as_bytes()).map_err(ReadError::database)? {
            Some(raw) => raw.value().to_vec(),
            None => return Ok(None),
        };
        let entry = match Entry::decode(&raw) {
            Ok(entry) => entry,
            Err(reason) => return Err(corrupt(shared, hash, 0, &reason)),
        };
        let body = if entry.is_inline() {
            let inline = txn.open_table(INLINE).map_err(ReadError::database)?;
            let bytes = inline
                .get(hash.as_bytes())
                .map_err(ReadError::database)?
                .map(|b| Bytes::copy_from_slice(b.value()));
            match bytes {
                Some(b) if b.len() as u64 == entry.size && blake3::hash(&b) == *hash.as_bytes() => {
                    Body::Inline(b)
                }
                _ => return Err(corrupt(shared, hash, 0, "inline bytes missing or wrong")),
            }
        } else {
            drop((blobs, txn));
            match open_files(shared, &hash, &entry)? {
                Some(file) => Body::File(file),
                None => return Ok(None),
            }
        };
        Ok(Some(Loaded::new(
            entry.size,
            entry.content_type,
            entry.pinned,
            body,
        )))
    }

    /// The blob's hash.
    pub fn hash(&self) -> Hash {
        self.inner.protection.hash
    }

    /// Size in bytes.
    pub fn size(&self) -> u64 {
        self.inner.loaded.size
    }

    /// The content type given at ingest, if any.
    pub fn content_type(&self) -> Option<&str> {
        self.inner.loaded.content_type.as_deref()
    }

    /// Whether the blob was pinned when this handle was loaded.
    pub fn is_pinned(&self) -> bool {
        self.inner.loaded.pinned
    }

    /// The bytes of a small (at most 16 KiB) blob, kept in the index and verified when
    /// loaded; `None` for blobs stored in files.
    pub fn inline_bytes(&self) -> Option<&Bytes> {
        match &self.inner.loaded.body {
            Body::Inline(bytes) => Some(bytes),
            Body::File(_) => None,
        }
    }

    /// Reads up to `max_len` bytes from `offset`, every byte verified against the hash
    /// first. Returns fewer only at the end of the blob; `offset == size` gives an empty
    /// buffer. Blocks on disk reads. A mismatch quarantines the blob and returns
    /// [`ReadError::Corrupt`].
    pub fn read_verified(&self, offset: u64, max_len: usize) -> Result<Bytes, ReadError> {
        let len = self.clamp(offset, max_len)?;
        match &self.inner.loaded.body {
            Body::Inline(bytes) => Ok(bytes.slice(offset as usize..(offset + len) as usize)),
            Body::File(file) => self.read_file(file, offset, len as usize),
        }
    }

    /// Like [`Blob::read_verified`], but may stop early at a 256 KiB boundary: the
    /// unit of the store's memory tier. A chunk found there is served from memory; one
    /// read from disk is verified and, if the object fits the tier, kept there (readers
    /// of a chunk being loaded wait for that load rather than reading it again). Returns
    /// at least one byte unless `offset` is the end.
    pub fn read_chunk(&self, offset: u64, max_len: usize) -> Result<Bytes, ReadError> {
        if let Some(bytes) = self.read_chunk_in_memory(offset, max_len) {
            return Ok(bytes);
        }
        let len = self.clamp(offset, max_len)?;
        let tier = &self.inner.protection.shared.memory;
        match &self.inner.loaded.body {
            Body::File(file) if len > 0 && tier.admits(self.size()) => {
                let index = offset / CHUNK;
                let start = index * CHUNK;
                let chunk = tier.get_or_load(self.hash(), index, || {
                    self.read_file(file, start, CHUNK.min(self.size() - start) as usize)
                })?;
                Ok(part_of_chunk(&chunk, offset - start, len))
            }
            _ => self.read_verified(offset, max_len),
        }
    }

    /// What [`Blob::read_chunk`] would return, if it needs neither the disk nor the
    /// hash: inline bytes, or a chunk in the memory tier. Never blocks.
    pub fn read_chunk_in_memory(&self, offset: u64, max_len: usize) -> Option<Bytes> {
        let len = self.clamp(offset, max_len).ok()?;
        let tier = &self.inner.protection.shared.memory;
        match &self.inner.loaded.body {
            Body::Inline(bytes) => Some(bytes.slice(offset as usize..(offset + len) as usize)),
            Body::File(_) if len > 0 && tier.admits(self.size()) => {
                let index = offset / CHUNK;
                let chunk = tier.get(self.hash(), index)?;
                tier.count(true);
                Some(part_of_chunk(&chunk, offset - index * CHUNK, len))
            }
            Body::File(_) => None,
        }
    }

    /// Bytes readable from `offset`, at most `max_len`.
    fn clamp(&self, offset: u64, max_len: usize) -> Result<u64, ReadError> {
        let size = self.size();
        if offset > size {
            return Err(ReadError::OutOfRange { offset, size });
        }
        Ok((size - offset).min(max_len as u64))
    }

    fn read_file(&self, file: &VerifiedFile, offset: u64, len: usize) -> Result<Bytes, ReadError> {
        file.read(offset, len).map_err(|err| self.read_error(err))
    }

    /// What a failed read of this blob's files is to the caller: the file that
    /// failed, or corruption (which quarantines the blob).
    fn read_error(&self, err: VerifyError) -> ReadError {
        let shared = &self.inner.protection.shared;
        let hash = self.hash();
        match err {
            VerifyError::Data(source) => ReadError::Io {
                path: shared.layout.data(&hash),
                source,
            },
            VerifyError::Outboard(source) => ReadError::Io {
                path: shared.layout.outboard(&hash),
                source,
            },
            VerifyError::Corrupt { offset } => {
                corrupt(shared, hash, offset, "data does not match the hash tree")
            }
        }
    }
}

impl Blob {
    /// Hands the bao-tree pre-order encoding of `ranges` (16 KiB chunk groups, the
    /// tree of the store's outboards) to `emit` in pieces: a run of hash pairs, then
    /// the group they lead to, every group checked against the hash first. A group of
    /// a file blob is a slice of a 1 MiB read, not a copy. Blocks on disk reads and on
    /// `emit`. A mismatch quarantines the blob and returns [`ReadError::Corrupt`]; an
    /// error from `emit` is [`ReadError::Output`].
    pub fn encode_ranges_with(
        &self,
        ranges: &ChunkRanges,
        mut emit: impl FnMut(Bytes) -> io::Result<()>,
    ) -> Result<(), ReadError> {
        let hash = self.hash();
        let tree = BaoTree::new(self.size(), crate::tree::BLOCK_SIZE);
        let root = blake3::Hash::from_bytes(*hash.as_bytes());
        let result = match &self.inner.loaded.body {
            Body::Inline(bytes) => {
                // One chunk group: the tree has no parent pairs, so the outboard is empty.
                let outboard = PostOrderMemOutboard {
                    root,
                    tree,
                    data: Vec::new(),
                };
                encode(tree, root, ranges, bytes, &outboard, &mut emit)
            }
            Body::File(file) => {
                let outboard = PostOrderOutboard {
                    root,
                    tree,
                    data: SlabReader::new(file.outboard_file(), OUTBOARD_SLAB),
                };
                let data = SlabReader::new(file.data_file(), DATA_SLAB);
                encode(tree, root, ranges, &data, &outboard, &mut emit)
            }
        };
        result.map_err(|failure| match failure {
            EncodeFailure::BadPair(node) => corrupt(
                &self.inner.protection.shared,
                hash,
                node.mid().to_bytes(),
                "outboard does not match the hash",
            ),
            EncodeFailure::BadData(chunk) => self.read_error(VerifyError::Corrupt {
                offset: chunk.to_bytes(),
            }),
            EncodeFailure::ReadData(source) => self.read_error(VerifyError::Data(source)),
            EncodeFailure::ReadOutboard(source) => self.read_error(VerifyError::Outboard(source)),
            EncodeFailure::Output(source) => ReadError::Output(source),
        })
    }

    /// [`Blob::encode_ranges_with`], the pieces gathered into batches of at least
    /// `batch` bytes (the last may hold less), so that a consumer on another thread
    /// or behind a vectored write takes them over once per batch rather than once
    /// per piece. After a failure the pieces encoded before it, all verified, are
    /// still handed over, then the error returns.
    pub fn encode_ranges_batched(
        &self,
        ranges: &ChunkRanges,
        batch: usize,
        mut emit: impl FnMut(Vec<Bytes>) -> io::Result<()>,
    ) -> Result<(), ReadError> {
        let mut pieces = Vec::new();
        let mut len = 0;
        let result = self.encode_ranges_with(ranges, |piece| {
            len += piece.len();
            pieces.push(piece);
            if len < batch {
                return Ok(());
            }
            len = 0;
            emit(std::mem::take(&mut pieces))
        });
        if matches!(result, Err(ReadError::Output(_))) || pieces.is_empty() {
            return result;
        }
        let rest = emit(pieces).map_err(ReadError::Output);
        // The encoder's own error says more than a failed last hand-over.
        result.and(rest)
    }

    /// [`Blob::encode_ranges_with`], written to `out`.
    pub fn encode_ranges(
        &self,
        ranges: &ChunkRanges,
        mut out: impl io::Write,
    ) -> Result<(), ReadError> {
        self.encode_ranges_with(ranges, |piece| out.write_all(&piece))
    }
}

/// `len` bytes of `chunk` from `from`, fewer at its end.
fn part_of_chunk(chunk: &Bytes, from: u64, len: u64) -> Bytes {
    let from = from as usize;
    chunk.slice(from..chunk.len().min(from + len as usize))
}

fn corrupt(shared: &Shared, hash: Hash, offset: u64, reason: &str) -> ReadError {
    shared.quarantine(hash, reason);
    ReadError::Corrupt { hash, offset }
}

/// Opens a file blob's data and outboard. The descriptors keep the bytes readable after a
/// concurrent eviction or delete unlinks the files. `None` if the blob vanished between
/// the index lookup and the open.
fn open_files(
    shared: &Shared,
    hash: &Hash,
    entry: &Entry,
) -> Result<Option<VerifiedFile>, ReadError> {
    let data_path = shared.layout.data(hash);
    let outboard_path = shared.layout.outboard(hash);
    let open = |path: &std::path::Path| match File::open(path) {
        Ok(file) => Ok(Some(file)),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(ReadError::Io {
            path: path.to_owned(),
            source,
        }),
    };
    let (Some(data), Some(outboard)) = (open(&data_path)?, open(&outboard_path)?) else {
        if !shared.contains(hash)? {
            return Ok(None);
        }
        shared.quarantine(*hash, "blob file missing");
        return Err(ReadError::Io {
            path: data_path,
            source: io::Error::new(
                io::ErrorKind::NotFound,
                "blob file missing; blob quarantined",
            ),
        });
    };
    let len = |file: &File, path: &std::path::Path| {
        file.metadata()
            .map(|m| m.len())
            .map_err(|source| ReadError::Io {
                path: path.to_owned(),
                source,
            })
    };
    let data_len = len(&data, &data_path)?;
    if data_len != entry.size {
        return Err(corrupt(
            shared,
            *hash,
            data_len.min(entry.size),
            "data file has the wrong size",
        ));
    }
    if len(&outboard, &outboard_path)? != outboard_size(entry.size) {
        return Err(corrupt(
            shared,
            *hash,
            0,
            "outboard file has the wrong size",
        ));
    }
    Ok(Some(VerifiedFile::new(
        data,
        outboard,
        entry.size,
        *hash.as_bytes(),
    )))
}

//! fleetcache's content-addressed BLAKE3 blob store.
//!
//! Objects are addressed by their BLAKE3 hash. A redb database indexes them; objects of at
//! most 16 KiB live inside it, larger ones in files with a bao outboard (bao-tree post
//! order, 16 KiB chunk groups) so any byte range can be read and verified on its own.
//! Capacity is bounded in bytes with LRU eviction between watermarks; pinned objects and
//! objects being read are never evicted.
//!
//! Next to the blobs the index keeps *records*: opaque values under a byte key and a
//! variant, each pointing at one blob and carrying tags (the gateway stores a cached URL
//! response as one). A record never outlives its blob: every transaction that takes a
//! blob out of the index (delete, eviction, quarantine, fsck) removes its records too.
//! Records can be removed by key, by key and variant, by key prefix and by tag; removing
//! records never removes blobs, which many records may share.
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use fleetcache_store::{Store, StoreOptions};
//!
//! let store = Store::open(StoreOptions {
//!     data_dir: "/var/lib/fleetcache".into(),
//!     capacity: 10 << 30,
//!     high_watermark: 0.9,
//!     low_watermark: 0.8,
//!     memory_cache: 0,
//! })?;
//! let mut ingest = store.ingest(Some("text/plain"))?;
//! ingest.write(b"hello")?;
//! let outcome = ingest.finish()?;
//! let blob = store.get(&outcome.hash)?.expect("just stored");
//! assert_eq!(&blob.read_verified(0, 5)?[..], b"hello");
//! store.close()?;
//! # Ok(())
//! # }
//! ```
//!
//! # On-disk layout
//!
//! ```text
//! <data_dir>/
//!   index.redb            the index (redb; exclusively locked while open)
//!   blobs/<hash>.data     bytes of objects over 16 KiB
//!   blobs/<hash>.obao     their outboards: (n_groups - 1) × 64-byte hash pairs, post order
//!   tmp/                  ingests in progress; emptied at start-up
//!   quarantine/           files of objects found corrupt, and orphans moved by fsck
//! ```
//!
//! Tables (names carry a version; every value starts with a version byte and is decoded
//! by hand, returning an error, never panicking, on anything malformed):
//!
//! | table | key | value |
//! |---|---|---|
//! | `blobs-1` | hash (32 B) | `1, flags (1 inline, 2 pinned), size u64 LE, tick u64 LE, ct_len u8, content type` |
//! | `inline-1` | hash | the bytes of an object of at most 16 KiB |
//! | `lru-1` | tick u64 BE ‖ hash | `()`; one row per unpinned object, oldest first |
//! | `deletes-1` | hash | `1, op` (1 unlink, 2 quarantine): files to remove after a commit |
//! | `meta-1` | `"format"` / `"totals"` / `"records"` | `[1]` / `1` then 9 × u64 LE: bytes, objects, pinned, next tick, evictions, evicted bytes, ingests, ingested bytes, corrupt detected / `1, record count u64 LE` |
//! | `records-1` | key ‖ 0x00 ‖ variant | `1, blob hash (32 B), n_tags u8, (tag len u16 LE, tag)*, value` |
//! | `record-tags-1` | tag ‖ 0x00 ‖ key ‖ 0x00 ‖ variant | `()`; one row per tag of each record |
//! | `blob-records-1` | hash ‖ key ‖ 0x00 ‖ variant | `()`; one row per record, found by the hash when the blob goes |
//!
//! Record keys and tags never contain 0x00, so the first 0x00 ends them: the variants of a
//! key, the keys under a prefix, the records of a tag and those of a blob are each one
//! range scan. Stores written before records existed get the three record tables and the
//! `"records"` row when first opened; the format version is unchanged.
//!
//! Opening reads `meta-1`, the `deletes-1` rows and the names under `tmp/`; it never
//! iterates the objects, so its cost does not grow with their number. Commits use redb's
//! quick-repair mode, so reopening after a crash does not walk the database either.
//!
//! # Writes
//!
//! A single writer thread owns every write transaction. Commands (commit an ingest,
//! delete, pin, quarantine, put or remove records) queue on a channel; the writer drains what is waiting into
//! one transaction, so concurrent ingests share one commit. Reads run their own read
//! transactions on any thread. Reads are recorded in memory and applied to `lru-1` by the
//! writer in its next transaction (at least every second, before any eviction, and at
//! close), never one write per read; a read of an object already among the youngest
//! quarter of the LRU order is not applied (eviction would not see the difference).
//! A transaction that only applies reads commits without an fsync (a crash loses
//! recency hints only); one is durable at least every 30 s. `totals` is rewritten in
//! every transaction.
//!
//! # Crash safety
//!
//! An ingest streams into `tmp/ingest-*.{data,obao}` while hashing and building the
//! outboard in the same pass. At `finish` both files are fsynced and renamed to
//! `tmp/<hash>.ingest-*.*`: from then on the temp name says which hash it is for. The
//! writer hard-links them to `blobs/<hash>.*`, fsyncs `blobs/`, commits the index entry,
//! and only then removes the temp names.
//!
//! * Before the commit the object is not in the index, so it cannot be served.
//! * A crash between link and commit leaves `blobs/<hash>.*` plus its `tmp/` marker;
//!   start-up (and fsck) see the marker, find the hash absent from the index, and remove
//!   the links before the marker. After the commit, the marker is just a temp file.
//! * Deletes, evictions and quarantines remove the entry and add a `deletes-1` row in the
//!   same transaction; files are unlinked (or moved to `quarantine/`) after the commit,
//!   `blobs/` is fsynced, and the rows are cleared in a later transaction. Start-up
//!   finishes any rows left, skipping hashes that are back in the index.
//! * So at any crash point the index names only objects whose bytes are durable, and
//!   every file under `blobs/` is either indexed, pending removal, or marked uncommitted.
//!   Only a power loss that drops the marker rename but keeps the link can leave an
//!   orphan; fsck reports it and moves it away.
//! * A record attached to an ingest ([`Ingest::attach_record`]) is written in the
//!   transaction that commits the blob's entry, after the blob's files are durable; a
//!   record put on its own ([`Store::put_record`]) is refused unless the blob is in the
//!   index inside the writer's transaction. So a crash leaves either no record or one
//!   whose blob is durable, and since blob removals take the records with them in the
//!   same transaction, no record ever points at a missing blob (fsck checks this).
//!
//! # Reads
//!
//! [`Store::get`] does one read transaction and opens the blob's files; the handle keeps
//! them open, so a blob deleted or evicted meanwhile stays readable through it, and the
//! live handle keeps the hash out of eviction. Recently read blobs stay loaded (a
//! bounded set, forgotten by the writer whenever their entry changes), so a hot `get`
//! is a map lookup. With `memory_cache` set, [`Blob::read_chunk`] keeps verified
//! 256 KiB chunks of file objects in memory and serves them without reading or hashing
//! again. [`Blob::read_verified`] reads whole chunk
//! groups with `pread`, checks them against the outboard up to the root hash and returns
//! only verified bytes; a mismatch returns [`ReadError::Corrupt`] and quarantines the
//! object. Inline objects are verified when loaded.

#![forbid(unsafe_code)]

mod blob;
mod clock;
mod encode;
mod error;
mod fsck;
mod given;
mod hash;
mod hot;
mod index;
mod ingest;
mod layout;
mod memory;
mod record;
mod records;
mod slab;
mod startup;
mod store;
mod tree;
mod verify;
mod writer;

pub use blob::Blob;
pub use error::{FsckError, IngestError, InvalidRecord, OpenError, ReadError, WriteError};
pub use fsck::{FsckReport, fsck};
pub use hash::{Hash, HexDigits, ParseHashError};
pub use ingest::{Ingest, IngestOutcome};
pub use record::{KeyFilter, NewRecord, Record, RecordRef};
pub use store::{Store, StoreOptions, StoreStats};
pub use tree::BLOCK_SIZE;

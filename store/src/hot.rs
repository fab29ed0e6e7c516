//! Blobs loaded for recent reads, kept so that the next read of a hot object needs no
//! index transaction, no `open` and no re-hash: its metadata, the verified bytes of an
//! inline object, or a file object's open descriptors with the hash pairs already
//! checked against its root.
//!
//! What is kept was verified when it was loaded, exactly as a [`crate::Blob`] handle's
//! state always was; keeping it longer changes how long, not what, is trusted. File
//! bytes are still read and checked on every read.
//!
//! The writer forgets a hash after every commit that removed it or changed its entry
//! (delete, eviction, quarantine, pin), before it answers the command. A load that read
//! the index before such a commit must not put its stale result back: loads note the
//! generation first and are kept only if no forgetting happened since.
//!
//! Bounded by entries, by inline bytes and by open files; replacement is CLOCK (a
//! second chance for entries read since they were last passed).

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::blob::Body;
use crate::clock::{Budget, Clock};
use crate::hash::Hash;
use crate::store::lock;

/// Entries kept at most.
const MAX_ENTRIES: usize = 4096;
/// Bytes of inline objects kept at most.
const MAX_INLINE_BYTES: usize = 8 << 20;
/// File objects kept at most (two descriptors each): well inside a 1024-descriptor
/// process limit next to the connections.
const MAX_FILES: usize = 128;

/// A blob as loaded from the index and its files.
pub(crate) struct Loaded {
    pub(crate) size: u64,
    pub(crate) content_type: Option<String>,
    pub(crate) pinned: bool,
    pub(crate) body: Body,
    /// The touch epoch in which this entry last recorded a read for the LRU order.
    touched: AtomicU64,
}

impl Loaded {
    pub(crate) fn new(size: u64, content_type: Option<String>, pinned: bool, body: Body) -> Self {
        Loaded {
            size,
            content_type,
            pinned,
            body,
            touched: AtomicU64::new(u64::MAX),
        }
    }

    /// Whether a read in touch epoch `epoch` is the first one of this entry, and so
    /// should be recorded; the writer dedups touches anyway, this keeps a hot object
    /// from queueing one per read.
    pub(crate) fn first_touch_in(&self, epoch: u64) -> bool {
        self.touched.swap(epoch, Ordering::Relaxed) != epoch
    }

    fn inline_len(&self) -> usize {
        match &self.body {
            Body::Inline(bytes) => bytes.len(),
            Body::File(_) => 0,
        }
    }

    fn is_file(&self) -> bool {
        matches!(self.body, Body::File(_))
    }
}

pub(crate) struct HotBlobs {
    state: Mutex<State>,
}

struct State {
    blobs: Clock<Hash, Arc<Loaded>, Held>,
    /// Bumped by every forgetting.
    generation: u64,
}

#[derive(Default)]
struct Held {
    inline_bytes: usize,
    files: usize,
}

impl Budget<Arc<Loaded>> for Held {
    fn add(&mut self, loaded: &Arc<Loaded>) {
        self.inline_bytes += loaded.inline_len();
        self.files += usize::from(loaded.is_file());
    }

    fn remove(&mut self, loaded: &Arc<Loaded>) {
        self.inline_bytes -= loaded.inline_len();
        self.files -= usize::from(loaded.is_file());
    }

    fn over(&self, entries: usize) -> bool {
        entries > MAX_ENTRIES || self.inline_bytes > MAX_INLINE_BYTES || self.files > MAX_FILES
    }
}

impl Default for HotBlobs {
    fn default() -> Self {
        HotBlobs {
            state: Mutex::new(State {
                blobs: Clock::new(Held::default()),
                generation: 0,
            }),
        }
    }
}

impl HotBlobs {
    pub(crate) fn get(&self, hash: &Hash) -> Option<Arc<Loaded>> {
        lock(&self.state).blobs.get(hash)
    }

    /// To be read before loading from the index; see [`HotBlobs::insert`].
    pub(crate) fn generation(&self) -> u64 {
        lock(&self.state).generation
    }

    /// Keeps `loaded`, unless a forgetting happened after `generation` was read (the
    /// load may predate it).
    pub(crate) fn insert(&self, hash: Hash, loaded: Arc<Loaded>, generation: u64) {
        let mut state = lock(&self.state);
        if state.generation == generation {
            state.blobs.insert(hash, loaded);
        }
    }

    /// Drops `hashes`; later loads that began before this are not kept.
    pub(crate) fn forget(&self, hashes: &[Hash]) {
        if hashes.is_empty() {
            return;
        }
        let mut state = lock(&self.state);
        state.generation += 1;
        state.blobs.remove_keys(hashes);
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        lock(&self.state).blobs.len()
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn inline(len: usize) -> Arc<Loaded> {
        Arc::new(Loaded::new(
            len as u64,
            None,
            false,
            Body::Inline(Bytes::from(vec![7u8; len])),
        ))
    }

    fn hash(n: u32) -> Hash {
        Hash::from(blake3::hash(&n.to_le_bytes()))
    }

    #[test]
    fn a_load_that_began_before_a_forgetting_is_not_kept() {
        let hot = HotBlobs::default();
        let before = hot.generation();
        hot.forget(&[hash(1)]);
        hot.insert(hash(1), inline(10), before);
        assert!(hot.get(&hash(1)).is_none());
        hot.insert(hash(1), inline(10), hot.generation());
        assert!(hot.get(&hash(1)).is_some());
        hot.forget(&[hash(1)]);
        assert!(hot.get(&hash(1)).is_none());
    }

    #[test]
    fn entries_and_inline_bytes_stay_bounded_and_read_entries_get_a_second_chance() {
        let hot = HotBlobs::default();
        hot.insert(hash(0), inline(16), hot.generation());
        for n in 1..=MAX_ENTRIES as u32 + 100 {
            // Read the first entry now and then: it must survive the sweeps.
            assert!(hot.get(&hash(0)).is_some(), "lost the hot entry at {n}");
            hot.insert(hash(n), inline(16), hot.generation());
            assert!(hot.len() <= MAX_ENTRIES);
        }
        let big = 16 * 1024;
        for n in 0..(MAX_INLINE_BYTES / big) as u32 * 2 {
            hot.insert(hash(1_000_000 + n), inline(big), hot.generation());
            assert!(lock(&hot.state).blobs.budget().inline_bytes <= MAX_INLINE_BYTES);
        }
        // Forgotten slots do not pile up in the clock.
        let all: Vec<Hash> = (0..=MAX_ENTRIES as u32 + 100)
            .chain(1_000_000..1_000_000 + (MAX_INLINE_BYTES / big) as u32 * 2)
            .map(hash)
            .collect();
        hot.forget(&all);
        assert_eq!(hot.len(), 0);
        assert!(lock(&hot.state).blobs.ring_len() <= 64);
        assert_eq!(lock(&hot.state).blobs.budget().inline_bytes, 0);
    }
}

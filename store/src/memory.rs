//! The memory tier (`StoreOptions::memory_cache`): verified 256 KiB chunks of
//! file objects kept in memory, so that hot large objects are served without a
//! disk read, a re-hash or a trip to the blocking pool, like Varnish's malloc
//! storage.
//!
//! A chunk is read from the file and checked against the object's hash tree
//! once, when it enters the tier; from then on it is served as it is. Chunks
//! are addressed by (hash, index) and hold exactly the verified bytes of that
//! hash, so they can never be wrong for it: a chunk outliving its object's
//! index entry can only be reached through a handle loaded before the object
//! went (which may read the object anyway). Forgetting on removal only gives
//! the memory back sooner.
//!
//! Only objects of at most half the tier are admitted, so one large object
//! streamed once cannot flush everything else.

use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;

use crate::clock::{Budget, Clock};
use crate::hash::Hash;
use crate::store::lock;

/// Bytes per chunk: the unit read, verified and kept.
pub(crate) const CHUNK: u64 = 256 * 1024;

pub(crate) struct MemoryTier {
    capacity: u64,
    chunks: Mutex<Clock<(Hash, u64), Bytes, Held>>,
    hits: AtomicU64,
    misses: AtomicU64,
}

struct Held {
    bytes: u64,
    capacity: u64,
}

impl Budget<Bytes> for Held {
    fn add(&mut self, chunk: &Bytes) {
        self.bytes += chunk.len() as u64;
    }

    fn remove(&mut self, chunk: &Bytes) {
        self.bytes -= chunk.len() as u64;
    }

    fn over(&self, _entries: usize) -> bool {
        self.bytes > self.capacity
    }
}

/// What the tier holds and how often it answered, for the store's stats.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct MemoryStats {
    pub(crate) capacity: u64,
    pub(crate) bytes: u64,
    pub(crate) hits: u64,
    pub(crate) misses: u64,
}

impl MemoryTier {
    /// A tier of `capacity` bytes; 0 turns it off.
    pub(crate) fn new(capacity: u64) -> Self {
        MemoryTier {
            capacity,
            chunks: Mutex::new(Clock::new(Held { bytes: 0, capacity })),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// Whether chunks of an object of `size` bytes are kept.
    pub(crate) fn admits(&self, size: u64) -> bool {
        self.capacity > 0 && size <= self.capacity / 2
    }

    pub(crate) fn get(&self, hash: Hash, index: u64) -> Option<Bytes> {
        lock(&self.chunks).get(&(hash, index))
    }

    /// Counts a chunk read served from memory (`true`) or from disk.
    pub(crate) fn count(&self, hit: bool) {
        let counter = if hit { &self.hits } else { &self.misses };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Keeps a chunk the caller has just verified.
    pub(crate) fn insert(&self, hash: Hash, index: u64, chunk: Bytes) {
        lock(&self.chunks).insert((hash, index), chunk);
    }

    pub(crate) fn forget(&self, hashes: &[Hash]) {
        if hashes.is_empty() || self.capacity == 0 {
            return;
        }
        let doomed: HashSet<&Hash> = hashes.iter().collect();
        lock(&self.chunks).remove_where(|(hash, _)| doomed.contains(hash));
    }

    pub(crate) fn stats(&self) -> MemoryStats {
        MemoryStats {
            capacity: self.capacity,
            bytes: lock(&self.chunks).budget().bytes,
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(n: u32) -> Hash {
        Hash::from(blake3::hash(&n.to_le_bytes()))
    }

    #[test]
    fn chunks_stay_within_the_capacity_and_are_forgotten_with_their_object() {
        let tier = MemoryTier::new(4 * CHUNK);
        assert!(tier.admits(2 * CHUNK) && !tier.admits(2 * CHUNK + 1));
        let chunk = Bytes::from(vec![1u8; CHUNK as usize]);
        for index in 0..10 {
            tier.insert(hash(1), index, chunk.clone());
            assert!(tier.stats().bytes <= 4 * CHUNK);
        }
        tier.insert(hash(2), 0, chunk.slice(..100));
        assert!(tier.get(hash(2), 0).is_some());
        tier.forget(&[hash(1)]);
        assert_eq!(tier.stats().bytes, 100);
        assert!(tier.get(hash(1), 9).is_none());
    }

    #[test]
    fn a_tier_of_nothing_keeps_nothing() {
        let tier = MemoryTier::new(0);
        assert!(!tier.admits(1));
        tier.insert(hash(1), 0, Bytes::from_static(b"x"));
        assert_eq!(tier.stats().bytes, 0);
    }
}

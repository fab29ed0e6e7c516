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
//!
//! A chunk is loaded once however many readers want it at the same moment
//! (clients that started a new object together read it in step): the first
//! reads and verifies it, the others wait for it to enter the tier.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use bytes::Bytes;

use crate::clock::{Budget, Clock};
use crate::hash::Hash;
use crate::store::lock;

/// Bytes per chunk: the unit read, verified and kept.
pub(crate) const CHUNK: u64 = 256 * 1024;

pub(crate) struct MemoryTier {
    capacity: u64,
    chunks: Mutex<Clock<(Hash, u64), Bytes, Held>>,
    /// Chunks being read from disk right now.
    loading: Mutex<HashMap<(Hash, u64), Arc<Load>>>,
    hits: AtomicU64,
    misses: AtomicU64,
}

/// One chunk's load in progress; waiters sleep until it is over.
#[derive(Default)]
struct Load {
    over: Mutex<bool>,
    signal: Condvar,
}

impl Load {
    fn wait(&self) {
        let mut over = lock(&self.over);
        while !*over {
            over = self
                .signal
                .wait(over)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
    }
}

/// Ends a load however the loader leaves (an error or a panic included):
/// takes it out of the map and wakes its waiters.
struct Loading<'a> {
    tier: &'a MemoryTier,
    key: (Hash, u64),
    load: Arc<Load>,
}

impl Drop for Loading<'_> {
    fn drop(&mut self) {
        lock(&self.tier.loading).remove(&self.key);
        *lock(&self.load.over) = true;
        self.load.signal.notify_all();
    }
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
            loading: Mutex::new(HashMap::new()),
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

    /// Chunk `index` of `hash` from the tier, or from `load_chunk` (which reads and
    /// verifies it) and then kept. Readers asking while a load of the same
    /// chunk is under way wait for it and take its result from the tier; if
    /// it failed (or was not kept), the next of them loads for itself, so an
    /// error is never handed to a reader that did not meet it.
    pub(crate) fn get_or_load<E>(
        &self,
        hash: Hash,
        index: u64,
        load_chunk: impl FnOnce() -> Result<Bytes, E>,
    ) -> Result<Bytes, E> {
        let key = (hash, index);
        loop {
            if let Some(chunk) = self.get(hash, index) {
                self.count(true);
                return Ok(chunk);
            }
            // The map's lock is let go before loading or waiting.
            let (load, mine) = match lock(&self.loading).entry(key) {
                Entry::Occupied(running) => (Arc::clone(running.get()), false),
                Entry::Vacant(vacant) => (Arc::clone(vacant.insert(Arc::default())), true),
            };
            if !mine {
                load.wait();
                continue;
            }
            let _loading = Loading {
                tier: self,
                key,
                load,
            };
            self.count(false);
            let chunk = load_chunk()?;
            self.insert(hash, index, chunk.clone());
            return Ok(chunk);
        }
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
#[allow(clippy::unwrap_used)]
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

    /// Starts a load of chunk 0 of `hash(1)` on its own thread that holds until
    /// `release` is sent, then ends as `finish` does; waits until it is under way.
    fn held_load<'scope, 'env: 'scope>(
        scope: &'scope std::thread::Scope<'scope, 'env>,
        tier: &'env MemoryTier,
        finish: impl FnOnce() -> Result<Bytes, &'static str> + Send + 'scope,
    ) -> (
        std::sync::mpsc::Sender<()>,
        std::thread::ScopedJoinHandle<'scope, Result<Bytes, &'static str>>,
    ) {
        let (release, hold) = std::sync::mpsc::channel();
        let (started, running) = std::sync::mpsc::channel();
        let leader = scope.spawn(move || {
            tier.get_or_load(hash(1), 0, || {
                started.send(()).unwrap();
                hold.recv().unwrap();
                finish()
            })
        });
        running.recv().unwrap();
        (release, leader)
    }

    /// Waits until `n` readers wait for the load of chunk 0 of `hash(1)`.
    fn until_waiting(tier: &MemoryTier, n: usize) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        // The map and the loader hold the load too.
        while lock(&tier.loading)
            .get(&(hash(1), 0))
            .is_none_or(|load| Arc::strong_count(load) < n + 2)
        {
            assert!(std::time::Instant::now() < deadline, "readers never waited");
            std::thread::yield_now();
        }
    }

    #[test]
    fn readers_of_a_chunk_being_loaded_wait_for_that_load() {
        let tier = MemoryTier::new(16 * CHUNK);
        let chunk = Bytes::from(vec![7u8; CHUNK as usize]);
        let loads = AtomicU64::new(0);
        std::thread::scope(|scope| {
            let (release, leader) = held_load(scope, &tier, || Ok(chunk.clone()));
            let waiters: Vec<_> = (0..4)
                .map(|_| {
                    scope.spawn(|| {
                        tier.get_or_load(hash(1), 0, || {
                            loads.fetch_add(1, Ordering::Relaxed);
                            Err("a second load")
                        })
                    })
                })
                .collect();
            until_waiting(&tier, 4);
            release.send(()).unwrap();
            assert_eq!(leader.join().unwrap(), Ok(chunk.clone()));
            for waiter in waiters {
                assert_eq!(waiter.join().unwrap(), Ok(chunk.clone()));
            }
        });
        assert_eq!(loads.load(Ordering::Relaxed), 0);
        let stats = tier.stats();
        assert_eq!((stats.hits, stats.misses), (4, 1));
        assert!(lock(&tier.loading).is_empty());
    }

    #[test]
    fn a_failed_or_abandoned_load_leaves_its_waiters_to_load_for_themselves() {
        let tier = MemoryTier::new(16 * CHUNK);
        let chunk = Bytes::from(vec![9u8; 100]);
        let loads = AtomicU64::new(0);
        std::thread::scope(|scope| {
            let (release, leader) = held_load(scope, &tier, || Err("disk error"));
            let waiters: Vec<_> = (0..3)
                .map(|_| {
                    scope.spawn(|| {
                        tier.get_or_load(hash(1), 0, || {
                            loads.fetch_add(1, Ordering::Relaxed);
                            Ok::<_, &str>(chunk.clone())
                        })
                    })
                })
                .collect();
            until_waiting(&tier, 3);
            release.send(()).unwrap();
            assert_eq!(leader.join().unwrap(), Err("disk error"));
            for waiter in waiters {
                assert_eq!(waiter.join().unwrap(), Ok(chunk.clone()));
            }
        });
        // The first waiter to wake loaded it; the others found it kept.
        assert_eq!(loads.load(Ordering::Relaxed), 1);

        // A loader that panics must not strand its waiters either.
        tier.forget(&[hash(1)]);
        std::thread::scope(|scope| {
            let (release, leader) = held_load(scope, &tier, || panic!("loader gave up"));
            let waiter =
                scope.spawn(|| tier.get_or_load(hash(1), 0, || Ok::<_, &str>(chunk.clone())));
            until_waiting(&tier, 1);
            release.send(()).unwrap();
            assert!(leader.join().is_err());
            assert_eq!(waiter.join().unwrap(), Ok(chunk.clone()));
        });
        assert!(lock(&tier.loading).is_empty());
    }

    #[test]
    fn a_tier_of_nothing_keeps_nothing() {
        let tier = MemoryTier::new(0);
        assert!(!tier.admits(1));
        tier.insert(hash(1), 0, Bytes::from_static(b"x"));
        assert_eq!(tier.stats().bytes, 0);
    }
}

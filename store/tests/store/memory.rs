//! The memory tier: verified chunks of file objects served from memory.

use std::path::Path;

use fleetcache_store::{Blob, ReadError, Store};

use crate::support::{KIB, data_file, flip_byte, options, pattern, put};

const CHUNK: usize = 256 * KIB;

fn open_with_tier(dir: &Path, memory_cache: u64) -> Store {
    let mut opts = options(dir, 1 << 30);
    opts.memory_cache = memory_cache;
    Store::open(opts).unwrap()
}

/// Reads the whole blob the way a response does: chunk by chunk.
fn read_by_chunks(blob: &Blob) -> Result<Vec<u8>, ReadError> {
    let mut out = Vec::new();
    while (out.len() as u64) < blob.size() {
        let bytes = blob.read_chunk(out.len() as u64, usize::MAX)?;
        assert!(!bytes.is_empty());
        out.extend_from_slice(&bytes);
    }
    Ok(out)
}

#[test]
fn chunks_read_once_are_served_from_memory_without_the_disk() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_with_tier(dir.path(), 8 << 20);
    let data = pattern(3 * CHUNK + 1234, 1);
    let hash = put(&store, &data);
    let blob = store.get(&hash).unwrap().unwrap();
    // Nothing in memory before the first read.
    assert!(blob.read_chunk_in_memory(0, CHUNK).is_none());
    assert!(read_by_chunks(&blob).unwrap() == data);
    let stats = store.stats();
    assert_eq!((stats.memory_hits, stats.memory_misses), (0, 4));
    assert_eq!(stats.memory_bytes, data.len() as u64);
    assert_eq!(stats.memory_capacity, 8 << 20);

    // Reads stop at chunk boundaries and slice the kept chunk.
    let middle = blob.read_chunk(CHUNK as u64 - 10, 100).unwrap();
    assert_eq!(&middle[..], &data[CHUNK - 10..CHUNK]);
    let cached = blob
        .read_chunk_in_memory(2 * CHUNK as u64 + 5, 7)
        .expect("in memory");
    assert_eq!(&cached[..], &data[2 * CHUNK + 5..2 * CHUNK + 12]);

    // The trust model: what was verified into memory is served from memory; a
    // byte flipped on disk afterwards is not read, so not served either.
    flip_byte(&data_file(dir.path(), &hash), CHUNK as u64 + 7);
    assert!(read_by_chunks(&blob).unwrap() == data);
    assert!(store.get(&hash).unwrap().is_some());
    assert_eq!(store.stats().corrupt_detected, 0);
    assert_eq!(store.stats().memory_misses, 4);
    assert!(store.stats().memory_hits >= 6);
}

#[test]
fn without_a_tier_every_read_verifies_the_disk() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_with_tier(dir.path(), 0);
    let data = pattern(2 * CHUNK, 2);
    let hash = put(&store, &data);
    let blob = store.get(&hash).unwrap().unwrap();
    assert!(read_by_chunks(&blob).unwrap() == data);
    assert!(blob.read_chunk_in_memory(0, 10).is_none());
    flip_byte(&data_file(dir.path(), &hash), 9);
    assert!(matches!(
        read_by_chunks(&blob),
        Err(ReadError::Corrupt { offset: 0, .. })
    ));
    let stats = store.stats();
    assert_eq!(
        (stats.memory_bytes, stats.memory_hits, stats.memory_misses),
        (0, 0, 0)
    );
    assert!(store.get(&hash).unwrap().is_none(), "quarantined");
}

#[test]
fn objects_over_half_the_tier_stream_from_disk_and_deletes_give_memory_back() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_with_tier(dir.path(), 4 * CHUNK as u64);
    let large = pattern(2 * CHUNK + 1, 3);
    let small = pattern(2 * CHUNK, 4);
    let (large_hash, small_hash) = (put(&store, &large), put(&store, &small));
    let blob = store.get(&large_hash).unwrap().unwrap();
    assert!(read_by_chunks(&blob).unwrap() == large);
    assert_eq!(
        store.stats().memory_bytes,
        0,
        "over half the tier: not kept"
    );

    let blob = store.get(&small_hash).unwrap().unwrap();
    assert!(read_by_chunks(&blob).unwrap() == small);
    assert_eq!(store.stats().memory_bytes, small.len() as u64);
    drop(blob);
    assert!(store.delete(&small_hash).unwrap());
    assert_eq!(store.stats().memory_bytes, 0);
}

#[test]
fn many_objects_never_hold_more_than_the_tier() {
    let dir = tempfile::tempdir().unwrap();
    let tier = 6 * CHUNK as u64;
    let store = open_with_tier(dir.path(), tier);
    for seed in 0..8 {
        let data = pattern(2 * CHUNK + 99, 10 + seed);
        let hash = put(&store, &data);
        let blob = store.get(&hash).unwrap().unwrap();
        assert!(read_by_chunks(&blob).unwrap() == data);
        assert!(store.stats().memory_bytes <= tier);
    }
    assert!(store.stats().memory_bytes > 0);
}

#[test]
fn readers_in_step_load_each_chunk_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_with_tier(dir.path(), 64 << 20);
    let chunks = 64;
    let data = pattern(chunks * CHUNK, 8);
    let hash = put(&store, &data);
    // Clients that start a new object together: each reads it whole, on its own
    // thread, at the same time.
    let readers = 8;
    let barrier = std::sync::Barrier::new(readers);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..readers)
            .map(|_| {
                scope.spawn(|| {
                    let blob = store.get(&hash).unwrap().unwrap();
                    barrier.wait();
                    read_by_chunks(&blob).unwrap()
                })
            })
            .collect();
        for handle in handles {
            assert!(handle.join().unwrap() == data);
        }
    });
    let stats = store.stats();
    assert_eq!(
        stats.memory_misses, chunks as u64,
        "a chunk read from disk twice"
    );
    assert_eq!(stats.memory_hits, ((readers - 1) * chunks) as u64);
}

//! Objects: ingest, reads, eviction, crash safety, fsck.

use crate::support::{
    KIB, count_files, data_file, flip_byte, open, options, outboard_file, pattern,
};
use std::fs;
use std::path::PathBuf;

use bao_tree::{BaoTree, BlockSize};
use fleetcache_store::{
    Blob, FsckError, Hash, IngestError, OpenError, ReadError, Store, StoreOptions, WriteError, fsck,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const GROUP: usize = 16 * KIB;

/// Ingests `data` in writes of `write_size` bytes.
fn put_in(store: &Store, data: &[u8], write_size: usize) -> Hash {
    let mut ingest = store.ingest(None).unwrap();
    for piece in data.chunks(write_size.max(1)) {
        ingest.write(piece).unwrap();
    }
    if data.is_empty() {
        ingest.write(&[]).unwrap();
    }
    assert_eq!(ingest.bytes_written(), data.len() as u64);
    let outcome = ingest.finish().unwrap();
    assert_eq!(outcome.size, data.len() as u64);
    outcome.hash
}

fn put(store: &Store, data: &[u8]) -> Hash {
    put_in(store, data, 64 * KIB)
}

fn read_all(blob: &Blob) -> Vec<u8> {
    let mut out = Vec::new();
    while (out.len() as u64) < blob.size() {
        let chunk = blob.read_verified(out.len() as u64, 100_000).unwrap();
        assert!(!chunk.is_empty());
        out.extend_from_slice(&chunk);
    }
    out
}

#[test]
fn ingests_every_size_class_and_reads_it_back() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let sizes = [
        0,
        1,
        GROUP - 1,
        GROUP,
        GROUP + 1,
        2 * GROUP,
        5 * GROUP + 3,
        3 << 20,
    ];
    for (i, &size) in sizes.iter().enumerate() {
        let data = pattern(size, i as u64);
        let hash = put_in(&store, &data, 4093 + i);
        assert_eq!(hash, Hash::from(blake3::hash(&data)), "size {size}");
        let blob = store.get(&hash).unwrap().unwrap();
        assert_eq!(blob.hash(), hash);
        assert_eq!(blob.size(), size as u64);
        assert_eq!(blob.inline_bytes().is_some(), size <= GROUP, "size {size}");
        assert!(read_all(&blob) == data, "size {size}");
        // Inline objects have no files; larger ones have data and outboard files.
        assert_eq!(data_file(dir.path(), &hash).exists(), size > GROUP);
    }
    assert_eq!(store.stats().objects, sizes.len() as u64);
    assert_eq!(store.stats().bytes, sizes.iter().sum::<usize>() as u64);
    assert_eq!(count_files(&dir.path().join("tmp")), 0);
}

#[test]
fn outboards_match_bao_tree_and_roots_match_blake3() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let mut sizes = vec![
        GROUP + 1,
        2 * GROUP - 1,
        2 * GROUP,
        2 * GROUP + 1,
        256 * KIB,
    ];
    for groups in [3, 4, 5, 7, 8, 9, 16, 17, 31, 33, 64, 65, 100] {
        sizes.extend([groups * GROUP - 1, groups * GROUP, groups * GROUP + 1]);
    }
    for (i, &size) in sizes.iter().enumerate() {
        let data = pattern(size, 100 + i as u64);
        let hash = put_in(&store, &data, [1000, 7919, GROUP, 300_001][i % 4]);
        let mut expected = Vec::new();
        let tree = BaoTree::new(size as u64, BlockSize::from_chunk_log(4));
        let root = bao_tree::io::sync::outboard_post_order(&data[..], tree, &mut expected).unwrap();
        assert_eq!(Hash::from(root), hash, "size {size}");
        let stored = fs::read(outboard_file(dir.path(), &hash)).unwrap();
        assert!(stored == expected, "outboard differs for size {size}");
        assert!(fs::read(data_file(dir.path(), &hash)).unwrap() == data);
    }
}

#[test]
fn ranged_reads_return_exactly_the_source_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let mut rng = StdRng::seed_from_u64(7);
    for size in [100, GROUP, GROUP + 1, 1 << 20, (1 << 20) + 12345] {
        let data = pattern(size, size as u64);
        let blob = store.get(&put(&store, &data)).unwrap().unwrap();
        for _ in 0..300 {
            let offset = rng.random_range(0..=size);
            let len = match rng.random_range(0..4) {
                0 => rng.random_range(0..10),
                1 => rng.random_range(0..=2 * GROUP),
                _ => rng.random_range(0..=size),
            };
            let got = blob.read_verified(offset as u64, len).unwrap();
            let end = (offset + len).min(size);
            assert!(got[..] == data[offset..end], "size {size}: {offset}+{len}");
        }
        assert!(blob.read_verified(size as u64, 10).unwrap().is_empty());
        assert!(blob.read_verified(0, usize::MAX).unwrap()[..] == data[..]);
        match blob.read_verified(size as u64 + 1, 1) {
            Err(ReadError::OutOfRange { offset, size: s }) => {
                assert_eq!((offset, s), (size as u64 + 1, size as u64));
            }
            other => panic!("expected OutOfRange, got {other:?}"),
        }
    }
}

#[test]
fn objects_and_counters_survive_close_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let small = pattern(500, 1);
    let large = pattern(700 * KIB + 3, 2);
    let (h_small, h_large, stats) = {
        let store = open(dir.path());
        let mut ingest = store.ingest(Some("image/png")).unwrap();
        ingest.write(&large).unwrap();
        let h_large = ingest.finish().unwrap().hash;
        let h_small = put(&store, &small);
        assert!(store.set_pinned(&h_small, true).unwrap());
        let stats = store.stats();
        store.close().unwrap();
        store.close().unwrap(); // idempotent
        assert!(matches!(store.ingest(None), Err(IngestError::Closed)));
        assert!(matches!(store.delete(&h_small), Err(WriteError::Closed)));
        assert!(matches!(store.get(&h_small), Err(ReadError::Closed)));
        (h_small, h_large, stats)
    };
    let store = open(dir.path());
    assert_eq!(store.stats(), stats);
    assert_eq!(stats.objects, 2);
    assert_eq!(stats.pinned_objects, 1);
    assert_eq!(stats.ingests, 2);
    let blob = store.get(&h_large).unwrap().unwrap();
    assert_eq!(blob.content_type(), Some("image/png"));
    assert!(!blob.is_pinned());
    assert!(read_all(&blob) == large);
    let blob = store.get(&h_small).unwrap().unwrap();
    assert!(blob.is_pinned());
    assert_eq!(blob.content_type(), None);
    assert_eq!(blob.inline_bytes().unwrap()[..], small[..]);
    assert!(store.contains(&h_small).unwrap());
    drop(store); // dropping the last handle closes the store
    open(dir.path());
}

#[test]
fn duplicate_ingests_are_not_counted_twice() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    for size in [10, 100 * KIB] {
        let data = pattern(size, 3);
        let first = put(&store, &data);
        let mut again = store.ingest(None).unwrap();
        again.write(&data).unwrap();
        let outcome = again.finish().unwrap();
        assert!(outcome.already_present);
        assert_eq!(outcome.hash, first);
    }
    let stats = store.stats();
    assert_eq!((stats.objects, stats.ingests), (2, 2));
    assert_eq!(stats.bytes, 10 + 100 * KIB as u64);
    assert_eq!(count_files(&dir.path().join("tmp")), 0);
    assert_eq!(count_files(&dir.path().join("blobs")), 2);
}

#[test]
fn concurrent_ingests_all_commit() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let threads: Vec<_> = (0..8u64)
        .map(|t| {
            let store = store.clone();
            std::thread::spawn(move || {
                (0..10u64)
                    .map(|i| {
                        let data = pattern(((t * 10 + i) as usize % 7) * 9000 + 1, t * 100 + i);
                        (put(&store, &data), data)
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut total = 0;
    for thread in threads {
        for (hash, data) in thread.join().unwrap() {
            assert!(read_all(&store.get(&hash).unwrap().unwrap()) == data);
            total += data.len() as u64;
        }
    }
    assert_eq!(store.stats().objects, 80);
    assert_eq!(store.stats().bytes, total);
}

#[test]
fn content_types_are_kept_only_when_sane() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let long = "x".repeat(256);
    for (i, (given, kept)) in [
        (
            Some("text/html; charset=utf-8"),
            Some("text/html; charset=utf-8"),
        ),
        (Some("bad\r\nheader"), None),
        (Some(long.as_str()), None),
        (None, None),
    ]
    .into_iter()
    .enumerate()
    {
        let mut ingest = store.ingest(given).unwrap();
        ingest.write(&pattern(100, 50 + i as u64)).unwrap();
        let hash = ingest.finish().unwrap().hash;
        assert_eq!(store.get(&hash).unwrap().unwrap().content_type(), kept);
    }
}

#[test]
fn eviction_follows_touch_order_and_spares_pinned_and_held_blobs() {
    let dir = tempfile::tempdir().unwrap();
    // 1000 KiB capacity: high 900 KiB, low 600 KiB; objects of 100 KiB.
    let store = Store::open(options(dir.path(), 1000 * KIB as u64)).unwrap();
    let objects: Vec<Vec<u8>> = (0..9).map(|i| pattern(100 * KIB, 200 + i)).collect();
    let hashes: Vec<Hash> = objects.iter().map(|d| put(&store, d)).collect();
    assert_eq!(store.stats().evictions, 0);
    // Oldest first: 0..9. Pin 0, read 1 (now the most recent), hold 2 open.
    assert!(store.set_pinned(&hashes[0], true).unwrap());
    drop(store.get(&hashes[1]).unwrap().unwrap());
    let held = store.get(&hashes[2]).unwrap().unwrap();
    // 1000 KiB > 900 KiB: evict down to 600 KiB, i.e. four objects, the least recently
    // used that are neither pinned nor held: 3, 4, 5, 6.
    let newest = put(&store, &pattern(100 * KIB, 300));
    let stats = store.stats();
    assert_eq!(stats.evictions, 4);
    assert_eq!(stats.evicted_bytes, 400 * KIB as u64);
    assert_eq!(stats.objects, 6);
    assert!(stats.bytes <= 600 * KIB as u64);
    for i in [3, 4, 5, 6] {
        assert!(store.get(&hashes[i]).unwrap().is_none(), "{i} evicted");
        assert!(!data_file(dir.path(), &hashes[i]).exists());
    }
    for hash in [
        hashes[0], hashes[1], hashes[2], hashes[7], hashes[8], newest,
    ] {
        assert!(store.get(&hash).unwrap().is_some());
    }
    assert!(read_all(&held) == objects[2]);
    drop(held);

    // Unpinning makes 0 evictable again, as the most recently used.
    assert!(store.set_pinned(&hashes[0], false).unwrap());
    assert!(!store.set_pinned(&hashes[3], true).unwrap());
    for i in 0..4 {
        put(&store, &pattern(100 * KIB, 400 + i));
    }
    assert!(
        store.get(&hashes[0]).unwrap().is_some(),
        "recently unpinned kept"
    );
    assert!(
        store.get(&hashes[2]).unwrap().is_none(),
        "released handle no longer protects"
    );
}

#[test]
fn an_ingest_that_would_overflow_evicts_first_and_oversize_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = options(dir.path(), 1000 * KIB as u64);
    opts.high_watermark = 1.0;
    opts.low_watermark = 0.5;
    let store = Store::open(opts).unwrap();
    let hashes: Vec<Hash> = (0..10)
        .map(|i| put(&store, &pattern(100 * KIB, 500 + i)))
        .collect();
    assert_eq!(store.stats().bytes, 1000 * KIB as u64);
    assert_eq!(store.stats().evictions, 0);
    put(&store, &pattern(150 * KIB, 600));
    // Room for 150 KiB takes the two oldest; usage stays under the high watermark.
    assert_eq!(store.stats().evictions, 2);
    assert_eq!(store.stats().bytes, 950 * KIB as u64);
    assert!(store.get(&hashes[1]).unwrap().is_none());
    assert!(store.get(&hashes[2]).unwrap().is_some());

    let mut ingest = store.ingest(None).unwrap();
    ingest.write(&pattern(600 * KIB, 1)).unwrap();
    match ingest.write(&pattern(600 * KIB, 2)) {
        Err(IngestError::TooLarge { size, capacity }) => {
            assert_eq!((size, capacity), (1200 * KIB as u64, 1000 * KIB as u64));
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
    assert!(ingest.finish().is_err());
    assert_eq!(count_files(&dir.path().join("tmp")), 0);
    assert_eq!(store.stats().bytes, 950 * KIB as u64);

    // With everything pinned nothing can make room.
    for hash in &hashes[2..] {
        store.set_pinned(hash, true).unwrap();
    }
    let mut ingest = store.ingest(None).unwrap();
    ingest.write(&pattern(900 * KIB, 3)).unwrap();
    assert!(matches!(ingest.finish(), Err(IngestError::StorageFull)));
    assert_eq!(count_files(&dir.path().join("tmp")), 0);
}

#[test]
fn deletes_remove_objects_but_open_handles_keep_reading() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let small = put(&store, b"tiny");
    let data = pattern(300 * KIB, 9);
    let large = put(&store, &data);
    let held = store.get(&large).unwrap().unwrap();
    assert!(store.delete(&large).unwrap());
    assert!(!store.delete(&large).unwrap());
    assert!(store.delete(&small).unwrap());
    assert!(store.get(&large).unwrap().is_none());
    assert!(store.get(&small).unwrap().is_none());
    assert!(!store.contains(&small).unwrap());
    assert!(!data_file(dir.path(), &large).exists());
    assert!(!outboard_file(dir.path(), &large).exists());
    assert!(read_all(&held) == data);
    assert_eq!((store.stats().objects, store.stats().bytes), (0, 0));
    // The same content can come back.
    assert_eq!(put(&store, &data), large);
    assert!(read_all(&store.get(&large).unwrap().unwrap()) == data);
    store.flush().unwrap();
    store.close().unwrap();
    assert!(fsck(dir.path(), false).unwrap().is_clean());
}

/// Reads keep recently read blobs loaded (metadata, inline bytes, open files); nothing
/// that changes the index may leave a stale one behind.
#[test]
fn blobs_kept_loaded_follow_deletes_pins_and_evictions() {
    let dir = tempfile::tempdir().unwrap();
    // 1000 KiB capacity: high 900 KiB, low 600 KiB.
    let store = Store::open(options(dir.path(), 1000 * KIB as u64)).unwrap();
    let small = put(&store, b"tiny");
    let objects: Vec<Vec<u8>> = (0..8).map(|i| pattern(100 * KIB, 700 + i)).collect();
    let hashes: Vec<Hash> = objects.iter().map(|d| put(&store, d)).collect();
    // Read everything: all of it is now kept loaded.
    for (hash, data) in hashes.iter().zip(&objects) {
        assert!(read_all(&store.get(hash).unwrap().unwrap()) == *data);
    }
    assert_eq!(&read_all(&store.get(&small).unwrap().unwrap())[..], b"tiny");

    assert!(store.set_pinned(&hashes[0], true).unwrap());
    assert!(store.get(&hashes[0]).unwrap().unwrap().is_pinned());
    assert!(store.set_pinned(&hashes[0], false).unwrap());
    assert!(!store.get(&hashes[0]).unwrap().unwrap().is_pinned());

    assert!(store.delete(&small).unwrap());
    assert!(store.delete(&hashes[7]).unwrap());
    assert!(store.get(&small).unwrap().is_none());
    assert!(store.get(&hashes[7]).unwrap().is_none());

    // Two more push usage over the high watermark: the least recently used go, and
    // none of them is served from memory afterwards.
    for i in 0..3 {
        put(&store, &pattern(100 * KIB, 800 + i));
    }
    assert!(store.stats().evictions > 0);
    let mut gone = 0;
    for hash in &hashes[..7] {
        let on_disk = data_file(dir.path(), hash).exists();
        let served = store.get(hash).unwrap().is_some();
        assert_eq!(
            served, on_disk,
            "{hash}: served {served}, on disk {on_disk}"
        );
        gone += usize::from(!served);
    }
    assert_eq!(gone as u64, store.stats().evictions);
    store.close().unwrap();
    assert!(fsck(dir.path(), false).unwrap().is_clean());
}

/// Reads of objects already among the most recently used are not written to the LRU
/// order again; objects read all along must still outlive everything streaming past.
#[test]
fn objects_read_all_along_survive_a_stream_of_new_ones() {
    let dir = tempfile::tempdir().unwrap();
    // Room for 40 objects of 100 KiB; eviction from 36 down to 24.
    let store = Store::open(options(dir.path(), 4000 * KIB as u64)).unwrap();
    let hot: Vec<(Hash, Vec<u8>)> = (0..2)
        .map(|i| {
            let data = pattern(100 * KIB, 900 + i);
            (put(&store, &data), data)
        })
        .collect();
    let mut passing = Vec::new();
    for i in 0..200 {
        for (hash, _) in &hot {
            drop(store.get(hash).unwrap().expect("a hot object was evicted"));
        }
        passing.push(put(&store, &pattern(100 * KIB, 1000 + i)));
    }
    assert!(store.stats().evictions >= 150, "{:?}", store.stats());
    for (hash, data) in &hot {
        assert!(read_all(&store.get(hash).unwrap().unwrap()) == *data);
    }
    let kept = passing
        .iter()
        .filter(|h| store.get(h).unwrap().is_some())
        .count();
    assert!(kept < 40, "{kept}");
}

/// Keeping files open for hot blobs must not run a process out of descriptors.
#[test]
fn reading_many_file_blobs_keeps_a_bounded_number_of_files_open() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    // Concurrent ingests share commits.
    let hashes: Vec<Hash> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..8)
            .map(|w| {
                let store = &store;
                scope.spawn(move || {
                    (0..40)
                        .map(|i| put(store, &pattern(20 * KIB, w * 40 + i)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    });
    let open_fds = || fs::read_dir("/proc/self/fd").unwrap().count();
    let before = open_fds();
    for hash in &hashes {
        drop(store.get(hash).unwrap().unwrap());
    }
    let held = open_fds().saturating_sub(before);
    assert!(
        held <= 2 * 128,
        "{held} descriptors held for 320 blobs read once"
    );
    assert!(held > 0, "nothing kept loaded");
}

#[test]
fn abandoned_ingests_and_leftover_temp_files_leave_nothing() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path());
        let mut ingest = store.ingest(None).unwrap();
        ingest.write(&pattern(2 << 20, 1)).unwrap();
        assert_eq!(count_files(&dir.path().join("tmp")), 2);
        drop(ingest);
        assert_eq!(count_files(&dir.path().join("tmp")), 0);
        assert_eq!(store.stats().objects, 0);
    }
    let tmp = dir.path().join("tmp");
    fs::write(tmp.join("ingest-1-2-3.data"), b"partial").unwrap();
    fs::write(tmp.join("ingest-1-2-3.obao"), b"partial").unwrap();
    fs::write(tmp.join("whatever"), b"junk").unwrap();
    let store = open(dir.path());
    assert_eq!(count_files(&tmp), 0);
    assert_eq!(store.stats().objects, 0);
}

#[test]
fn a_flipped_byte_is_never_served_and_the_blob_is_quarantined() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let data = pattern(40 * GROUP + 77, 11);
    let hash = put(&store, &data);
    let other = pattern(200 * KIB, 12);
    let other_hash = put(&store, &other);
    let blob = store.get(&hash).unwrap().unwrap();
    flip_byte(&data_file(dir.path(), &hash), 25 * GROUP as u64 + 5);

    // Ranges away from the damage still verify.
    assert!(blob.read_verified(0, GROUP).unwrap()[..] == data[..GROUP]);
    match blob.read_verified(24 * GROUP as u64, 3 * GROUP) {
        Err(ReadError::Corrupt { hash: h, offset }) => {
            assert_eq!(h, hash);
            assert_eq!(offset, 25 * GROUP as u64);
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    assert!(
        store.get(&hash).unwrap().is_none(),
        "quarantined blobs are not served"
    );
    assert!(!data_file(dir.path(), &hash).exists());
    let quarantine = dir.path().join("quarantine");
    assert!(quarantine.join(format!("{hash}.data")).exists());
    assert_eq!(store.stats().corrupt_detected, 1);
    assert_eq!(store.stats().objects, 1);
    assert!(read_all(&store.get(&other_hash).unwrap().unwrap()) == other);

    // A truncated file is caught when the blob is loaded...
    let cold = pattern(100 * KIB, 13);
    let cold_hash = put(&store, &cold);
    let truncate = |hash: &Hash| {
        let file = fs::OpenOptions::new()
            .write(true)
            .open(data_file(dir.path(), hash))
            .unwrap();
        file.set_len(100).unwrap();
    };
    truncate(&cold_hash);
    assert!(matches!(
        store.get(&cold_hash),
        Err(ReadError::Corrupt { .. })
    ));
    assert!(store.get(&cold_hash).unwrap().is_none());
    assert_eq!(store.stats().corrupt_detected, 2);
    // ...and, for a blob kept loaded since a recent read, when its bytes are read.
    truncate(&other_hash);
    let hot = store.get(&other_hash).unwrap().expect("kept loaded");
    assert!(matches!(
        hot.read_verified(0, 200 * KIB),
        Err(ReadError::Corrupt { .. })
    ));
    assert!(store.get(&other_hash).unwrap().is_none());
    assert_eq!(store.stats().corrupt_detected, 3);
    assert_eq!((store.stats().objects, store.stats().bytes), (0, 0));
    store.close().unwrap();
    assert!(fsck(dir.path(), false).unwrap().is_clean());
}

/// A store with one healthy object of each kind and five damaged ones.
struct Damaged {
    dir: tempfile::TempDir,
    flipped: Hash,
    truncated: Hash,
    bad_outboard: Hash,
    missing: Hash,
    orphan: PathBuf,
    healthy: Vec<(Hash, Vec<u8>)>,
}

fn damaged_store() -> Damaged {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let healthy: Vec<(Hash, Vec<u8>)> = [5, GROUP, 3 * GROUP + 1, 1 << 20]
        .iter()
        .enumerate()
        .map(|(i, &size)| {
            let data = pattern(size, 700 + i as u64);
            (put(&store, &data), data)
        })
        .collect();
    store.set_pinned(&healthy[2].0, true).unwrap();
    let [flipped, truncated, bad_outboard, missing, orphan] =
        [0, 1, 2, 3, 4].map(|i| put(&store, &pattern(100 * KIB + i, 800 + i as u64)));
    assert!(store.delete(&orphan).unwrap());
    store.close().unwrap();
    assert!(fsck(dir.path(), false).unwrap().is_clean());

    let d = dir.path();
    flip_byte(&data_file(d, &flipped), 50 * KIB as u64);
    let file = fs::OpenOptions::new()
        .write(true)
        .open(data_file(d, &truncated))
        .unwrap();
    file.set_len(10 * KIB as u64).unwrap();
    flip_byte(&outboard_file(d, &bad_outboard), 70);
    fs::remove_file(data_file(d, &missing)).unwrap();
    // A file the index does not know, as a crash between rename and commit could leave.
    let orphan_path = data_file(d, &orphan);
    fs::write(&orphan_path, b"left over").unwrap();
    Damaged {
        dir,
        flipped,
        truncated,
        bad_outboard,
        missing,
        orphan: orphan_path,
        healthy,
    }
}

#[test]
fn fsck_reports_every_kind_of_damage_and_repairs_it() {
    let d = damaged_store();
    let path = d.dir.path();
    let report = fsck(path, false).unwrap();
    assert_eq!(report.checked, 8);
    assert_eq!(report.ok, 4);
    let corrupt: Vec<Hash> = report.corrupt.iter().map(|(h, _)| *h).collect();
    for hash in [d.flipped, d.truncated, d.bad_outboard] {
        assert!(corrupt.contains(&hash), "{hash} not reported: {report:?}");
    }
    assert_eq!(corrupt.len(), 3);
    let reason = |h: Hash| {
        report
            .corrupt
            .iter()
            .find(|(x, _)| *x == h)
            .unwrap()
            .1
            .clone()
    };
    assert!(
        reason(d.flipped).contains("does not match its hash"),
        "{}",
        reason(d.flipped)
    );
    assert!(
        reason(d.truncated).contains("bytes"),
        "{}",
        reason(d.truncated)
    );
    assert!(
        reason(d.bad_outboard).contains("outboard"),
        "{}",
        reason(d.bad_outboard)
    );
    assert_eq!(report.missing, vec![d.missing]);
    assert_eq!(report.orphan_files, vec![d.orphan.clone()]);
    assert!(
        report.index_problems.is_empty(),
        "{:?}",
        report.index_problems
    );
    assert!(!report.is_clean());
    assert_eq!(report.quarantined, 0);
    // A dry run changes nothing.
    assert!(data_file(path, &d.flipped).exists());
    assert!(d.orphan.exists());
    assert_eq!(fsck(path, false).unwrap().corrupt.len(), 3);

    let report = fsck(path, true).unwrap();
    assert_eq!(report.quarantined, 5);
    assert!(!d.orphan.exists());
    assert!(!data_file(path, &d.flipped).exists());
    assert!(
        path.join("quarantine")
            .join(format!("{}.data", d.flipped))
            .exists()
    );
    let again = fsck(path, true).unwrap();
    assert!(again.is_clean(), "{again:?}");
    assert_eq!((again.checked, again.ok), (4, 4));

    let store = open(path);
    let stats = store.stats();
    assert_eq!(stats.objects, 4);
    assert_eq!(
        stats.bytes,
        d.healthy.iter().map(|(_, x)| x.len() as u64).sum::<u64>()
    );
    assert_eq!(stats.pinned_objects, 1);
    for (hash, data) in &d.healthy {
        assert!(read_all(&store.get(hash).unwrap().unwrap()) == *data);
    }
    for hash in [d.flipped, d.truncated, d.bad_outboard, d.missing] {
        assert!(store.get(&hash).unwrap().is_none());
    }
}

#[test]
fn fsck_needs_a_stopped_store() {
    let dir = tempfile::tempdir().unwrap();
    match fsck(dir.path(), false) {
        Err(FsckError::NotAStore { path }) => assert!(path.starts_with(dir.path())),
        other => panic!("expected NotAStore, got {other:?}"),
    }
    assert_eq!(count_files(dir.path()), 0, "fsck created nothing");
    let store = open(dir.path());
    let err = fsck(dir.path(), true).unwrap_err();
    assert!(matches!(err, FsckError::Locked { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains("already in use by another fleetcache process")
    );
    drop(store);
    assert!(fsck(dir.path(), true).unwrap().is_clean());
}

#[test]
fn corrupt_index_values_are_errors_and_open_does_not_decode_entries() {
    const BLOBS: redb::TableDefinition<'_, &[u8; 32], &[u8]> =
        redb::TableDefinition::new("blobs-1");
    let dir = tempfile::tempdir().unwrap();
    let good = {
        let store = open(dir.path());
        put(&store, b"fine")
    };
    let bogus = Hash::from(blake3::hash(b"bogus"));
    {
        let db = redb::Database::open(dir.path().join("index.redb")).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(BLOBS)
            .unwrap()
            .insert(bogus.as_bytes(), [9u8, 9, 9].as_slice())
            .unwrap();
        txn.commit().unwrap();
    }
    let store = open(dir.path());
    assert!(matches!(store.get(&bogus), Err(ReadError::Corrupt { .. })));
    assert!(
        store.get(&bogus).unwrap().is_none(),
        "the bad entry was dropped"
    );
    assert!(store.get(&good).unwrap().is_some());
    store.close().unwrap();
    let report = fsck(dir.path(), false).unwrap();
    // Totals still count the entry fsck can no longer see; repair fixes them.
    assert!(report.corrupt.is_empty() && report.missing.is_empty());
    fsck(dir.path(), true).unwrap();
    assert!(fsck(dir.path(), false).unwrap().is_clean());
}

#[test]
fn invalid_options_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(u64, f64, f64, &str); 6] = [
        (0, 0.9, 0.8, "capacity"),
        (1, 1.5, 0.8, "high_watermark"),
        (1, 0.0, 0.0, "high_watermark"),
        (1, 0.8, 0.9, "low_watermark"),
        (1, 0.8, 0.0, "low_watermark"),
        (1, f64::NAN, 0.5, "high_watermark"),
    ];
    for (capacity, high, low, field) in cases {
        let opts = StoreOptions {
            data_dir: dir.path().join("x"),
            capacity,
            high_watermark: high,
            low_watermark: low,
            memory_cache: 0,
        };
        match Store::open(opts) {
            Err(OpenError::InvalidOptions { option, .. }) => assert_eq!(option, field),
            other => panic!("{capacity} {high} {low}: {other:?}"),
        }
    }
    assert!(!dir.path().join("x").exists());
}

#[test]
fn handles_can_cross_threads() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<Store>();
    send_sync::<Blob>();
    send::<fleetcache_store::Ingest>();
}

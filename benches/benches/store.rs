//! Store micro-benchmarks, each next to the reference that bounds it, measured in the
//! same run: ingest against raw BLAKE3 and a plain write + fsync of the same bytes;
//! verified reads against raw `pread` and raw BLAKE3; concurrent small ingests (commit
//! batching) against one-at-a-time; and opening a store of 100k objects against an
//! empty one (set FLEETCACHE_BENCH_OPEN_OBJECTS to change the count).

use std::fs::File;
use std::hint::black_box;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use fleetcache_store::{Hash, Store, StoreOptions};

/// Upload pieces as the gateway hands them over.
const WRITE: usize = 64 * 1024;
/// Read size of the gateway's response bodies.
const READ: usize = 256 * 1024;

fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut out = vec![0u8; len];
    blake3::Hasher::new()
        .update(&seed.to_le_bytes())
        .finalize_xof()
        .fill(&mut out);
    out
}

fn open(dir: &Path, capacity: u64) -> Store {
    Store::open(StoreOptions {
        data_dir: dir.to_owned(),
        capacity,
        high_watermark: 0.9,
        low_watermark: 0.5,
        memory_cache: 0,
    })
    .expect("open store")
}

fn ingest(store: &Store, bytes: &[u8]) -> Hash {
    let mut ingest = store.ingest(None).expect("start ingest");
    for piece in bytes.chunks(WRITE) {
        ingest.write(piece).expect("write");
    }
    ingest.finish().expect("finish").hash
}

fn bench_ingest(c: &mut Criterion) {
    let mut group = c.benchmark_group("store_ingest");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(8));
    for size in [1usize << 20, 16 << 20] {
        let mut bytes = data(size, 1);
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_function(BenchmarkId::new("blake3_hash", size), |b| {
            b.iter(|| blake3::hash(black_box(&bytes)))
        });

        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("plain");
        group.bench_function(BenchmarkId::new("write_fsync", size), |b| {
            b.iter(|| {
                let mut file = File::create(&path).expect("create");
                for piece in bytes.chunks(WRITE) {
                    file.write_all(piece).expect("write");
                }
                file.sync_data().expect("fsync");
            })
        });

        // Fresh content every iteration (else it is a duplicate, which skips the disk);
        // the capacity bound makes eviction keep the disk usage flat.
        let store = open(dir.path(), 8 * size as u64);
        let mut n = 0u64;
        group.bench_function(BenchmarkId::new("store", size), |b| {
            b.iter(|| {
                n += 1;
                bytes[..8].copy_from_slice(&n.to_le_bytes());
                ingest(&store, &bytes)
            })
        });
        store.close().expect("close");
    }
    group.finish();
}

fn bench_small_ingests(c: &mut Criterion) {
    const OBJECTS: usize = 64;
    const SIZE: usize = 20 * 1024;
    let mut group = c.benchmark_group("store_small_ingests");
    group
        .sample_size(10)
        .throughput(Throughput::Elements(OBJECTS as u64));
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path(), 1 << 30);
    let mut round = 0u64;
    for threads in [1usize, 8] {
        group.bench_function(BenchmarkId::new("threads", threads), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    round += 1;
                    let inputs: Vec<Vec<Vec<u8>>> = (0..threads)
                        .map(|t| {
                            (0..OBJECTS / threads)
                                .map(|i| data(SIZE, round << 20 | (t * OBJECTS + i) as u64))
                                .collect()
                        })
                        .collect();
                    let start = Instant::now();
                    std::thread::scope(|scope| {
                        for objects in &inputs {
                            let store = &store;
                            scope.spawn(move || {
                                for bytes in objects {
                                    ingest(store, bytes);
                                }
                            });
                        }
                    });
                    total += start.elapsed();
                }
                total
            })
        });
    }
    group.finish();
    store.close().expect("close");
}

fn bench_read(c: &mut Criterion) {
    let size = 64usize << 20;
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path(), 1 << 30);
    let bytes = data(size, 2);
    let hash = ingest(&store, &bytes);
    let mut group = c.benchmark_group("store_read");
    group
        .sample_size(10)
        .throughput(Throughput::Bytes(size as u64));

    group.bench_function("blake3_hash", |b| {
        b.iter(|| blake3::hash(black_box(&bytes)))
    });
    let file = File::open(dir.path().join("blobs").join(format!("{hash}.data"))).expect("open");
    group.bench_function("pread_unverified", |b| {
        let mut buf = vec![0u8; READ];
        b.iter(|| {
            let mut offset = 0;
            while offset < size {
                let n = READ.min(size - offset);
                file.read_exact_at(&mut buf[..n], offset as u64)
                    .expect("pread");
                offset += n;
            }
            black_box(&buf);
        })
    });
    for (name, start) in [("read_verified", 0u64), ("read_verified_unaligned", 5000)] {
        group.bench_function(name, |b| {
            b.iter(|| {
                // A fresh handle per pass, as each HTTP response gets.
                let blob = store.get(&hash).expect("get").expect("stored");
                let mut offset = start;
                while offset < blob.size() {
                    offset += blob.read_verified(offset, READ).expect("read").len() as u64;
                }
            })
        });
    }
    group.finish();
    store.close().expect("close");
}

fn bench_open(c: &mut Criterion) {
    let objects: usize = std::env::var("FLEETCACHE_BENCH_OPEN_OBJECTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let empty = tempfile::tempdir().expect("tempdir");
    open(empty.path(), 1 << 30).close().expect("close");
    let full = tempfile::tempdir().expect("tempdir");
    {
        // Many writers so the single writer commits them in large batches.
        let store = open(full.path(), 1 << 40);
        let threads = 64;
        std::thread::scope(|scope| {
            for t in 0..threads {
                let store = &store;
                scope.spawn(move || {
                    for i in (t..objects).step_by(threads) {
                        let size = if i % 10 == 0 { 20_000 } else { 200 };
                        ingest(store, &data(size, i as u64));
                    }
                });
            }
        });
        assert_eq!(store.stats().objects, objects as u64);
        store.close().expect("close");
    }
    let mut group = c.benchmark_group("store_open");
    group.sample_size(10);
    group.bench_function("empty", |b| b.iter(|| open(empty.path(), 1 << 30).close()));
    group.bench_function(BenchmarkId::new("objects", objects), |b| {
        b.iter(|| open(full.path(), 1 << 40).close())
    });
    group.finish();
}

criterion_group!(
    benches,
    bench_ingest,
    bench_small_ingests,
    bench_read,
    bench_open
);
criterion_main!(benches);

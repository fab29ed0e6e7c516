//! The objects of a test store, derived from their index alone (so a store
//! built earlier can be reused and its hashes recomputed), and building a
//! store of the first `n` of them through the store crate's API.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use fleetcache_benches::interrupt;
use fleetcache_store::{Store, StoreOptions};

/// Derives every object's bytes; change it and stores built before no
/// longer match (their marker says which version built them).
const CONTEXT: &str = "fleetcache store-scale v1 object bytes";
/// Written into the data dir once a store is complete.
const MARKER: &str = "store-scale.txt";
/// One object in this many is stored in files (over 16 KiB), the rest inline.
pub(crate) const FILE_EVERY: u64 = 64;
const INLINE_SIZES: (f64, f64) = (1024.0, 16384.0);
const FILE_SIZES: (f64, f64) = (16385.0, 65536.0);
/// Capacity the stores are opened with: far above what they hold, so that
/// nothing is ever evicted.
pub(crate) const CAPACITY: u64 = 1 << 40;
/// The same, as the node's configuration takes it.
pub(crate) const CAPACITY_TEXT: &str = "1024GiB";

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Whether object `i` is stored in files.
pub(crate) fn is_file_backed(i: u64) -> bool {
    i % FILE_EVERY == FILE_EVERY - 1
}

/// Object `i`'s size: log-uniform over 1–16 KiB (inline), or over
/// 16 KiB + 1 – 64 KiB for every [`FILE_EVERY`]th object (in files).
pub(crate) fn size_of(i: u64) -> usize {
    let (lo, hi) = if is_file_backed(i) {
        FILE_SIZES
    } else {
        INLINE_SIZES
    };
    let unit = (splitmix(i) >> 11) as f64 / (1u64 << 53) as f64;
    ((lo * (hi / lo).powf(unit)) as usize).clamp(lo as usize, hi as usize)
}

/// Object `i`'s bytes, into `buf`: BLAKE3's output stream keyed by `i`, so
/// every object differs.
pub(crate) fn bytes_of(i: u64, buf: &mut Vec<u8>) {
    buf.resize(size_of(i), 0);
    let mut hasher = blake3::Hasher::new_derive_key(CONTEXT);
    hasher.update(&i.to_le_bytes());
    hasher.finalize_xof().fill(buf);
}

/// Object `i`'s hash.
pub(crate) fn hash_of(i: u64, buf: &mut Vec<u8>) -> blake3::Hash {
    bytes_of(i, buf);
    blake3::hash(buf)
}

/// The hashes of objects `indexes`, computed on `threads` threads, in order.
pub(crate) fn hashes_of(indexes: &[u64], threads: usize) -> Vec<blake3::Hash> {
    let threads = threads.max(1);
    let chunk = indexes.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let parts: Vec<_> = indexes
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    let mut buf = Vec::new();
                    part.iter()
                        .map(|&i| hash_of(i, &mut buf))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        parts
            .into_iter()
            .flat_map(|part| part.join().unwrap_or_default())
            .collect()
    })
}

pub(crate) fn options(dir: &Path) -> StoreOptions {
    StoreOptions {
        data_dir: dir.to_owned(),
        capacity: CAPACITY,
        high_watermark: 0.9,
        low_watermark: 0.8,
        memory_cache: 0,
    }
}

fn marker_text(objects: u64) -> String {
    format!("{CONTEXT}; objects {objects}\n")
}

/// What building (or finding) a store gave.
#[derive(Debug, Clone)]
pub(crate) struct Built {
    pub(crate) objects: u64,
    pub(crate) file_backed: u64,
    pub(crate) bytes: u64,
    /// Seconds it took, or `None` when an existing store was reused.
    pub(crate) secs: Option<f64>,
    /// Size of `index.redb`.
    pub(crate) index_bytes: u64,
}

/// The store of objects `0..objects` in `dir`: reused if a complete one of
/// the same objects is there, else built with `threads` concurrent ingests
/// (the store's writer commits what they finish together). Refuses a
/// non-empty directory that holds something else.
pub(crate) fn ensure(dir: &Path, objects: u64, threads: usize) -> Result<Built> {
    let marker = dir.join(MARKER);
    let file_backed = (0..objects).filter(|&i| is_file_backed(i)).count() as u64;
    if let Ok(text) = std::fs::read_to_string(&marker) {
        if text != marker_text(objects) {
            bail!(
                "{} holds a different test store ({}); give another --data-dir",
                dir.display(),
                text.trim()
            );
        }
        let store = Store::open(options(dir)).context("opening the existing store")?;
        let stats = store.stats();
        store.close()?;
        if stats.objects != objects {
            bail!(
                "{} has {} objects, its marker says {objects}",
                dir.display(),
                stats.objects
            );
        }
        eprintln!(
            "reusing the store of {objects} objects in {}",
            dir.display()
        );
        return Ok(Built {
            objects,
            file_backed,
            bytes: stats.bytes,
            secs: None,
            index_bytes: index_bytes(dir),
        });
    }
    if std::fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_some()) {
        bail!(
            "{} is not empty and holds no test store; give an empty or new directory",
            dir.display()
        );
    }
    let started = Instant::now();
    let store = Store::open(options(dir)).context("creating the store")?;
    eprintln!(
        "building a store of {objects} objects in {} ({threads} threads)",
        dir.display()
    );
    // Workers take the next index from one counter: the file-backed objects
    // (slower: files and fsyncs) spread over all of them.
    let next = AtomicU64::new(0);
    let done = AtomicU64::new(0);
    let result: Result<()> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads.max(1))
            .map(|_| {
                let (store, next, done) = (&store, &next, &done);
                scope.spawn(move || -> Result<()> {
                    let mut buf = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= objects {
                            return Ok(());
                        }
                        if i % 1024 == 0 {
                            interrupt::check()?;
                        }
                        bytes_of(i, &mut buf);
                        let mut ingest = store.ingest(None)?;
                        ingest.write(&buf)?;
                        ingest.finish()?;
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        let mut last = Instant::now();
        while workers.iter().any(|w| !w.is_finished()) {
            std::thread::sleep(Duration::from_millis(100));
            if last.elapsed() >= Duration::from_secs(10) {
                last = Instant::now();
                let n = done.load(Ordering::Relaxed);
                eprintln!(
                    "  {n} / {objects} objects, {:.0}/s",
                    n as f64 / started.elapsed().as_secs_f64()
                );
            }
        }
        workers
            .into_iter()
            .try_for_each(|w| w.join().unwrap_or_else(|_| bail!("a builder panicked")))
    });
    let stats = store.stats();
    store.close()?;
    result?;
    let secs = started.elapsed().as_secs_f64();
    if stats.objects != objects {
        bail!("built {} objects, wanted {objects}", stats.objects);
    }
    std::fs::write(&marker, marker_text(objects))
        .with_context(|| format!("writing {}", marker.display()))?;
    eprintln!(
        "built {objects} objects ({:.2} GiB) in {secs:.1} s",
        stats.bytes as f64 / (1u64 << 30) as f64
    );
    Ok(Built {
        objects,
        file_backed,
        bytes: stats.bytes,
        secs: Some(secs),
        index_bytes: index_bytes(dir),
    })
}

fn index_bytes(dir: &Path) -> u64 {
    std::fs::metadata(dir.join("index.redb")).map_or(0, |m| m.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_cover_both_kinds_and_stay_in_range() {
        let mut inline = 0;
        for i in 0..10_000 {
            let size = size_of(i);
            if is_file_backed(i) {
                assert!((16385..=65536).contains(&size), "{i}: {size}");
            } else {
                assert!((1024..=16384).contains(&size), "{i}: {size}");
                inline += 1;
            }
        }
        assert_eq!(inline, 10_000 - 10_000 / FILE_EVERY as usize);
    }

    #[test]
    fn objects_are_deterministic_and_distinct() {
        let (mut a, mut b) = (Vec::new(), Vec::new());
        bytes_of(7, &mut a);
        bytes_of(7, &mut b);
        assert_eq!(a, b);
        bytes_of(8, &mut b);
        assert_ne!(a, b);
        let hashes = hashes_of(&[7, 8, 9], 2);
        assert_eq!(hashes[0], blake3::hash(&a));
        assert_eq!(hashes[1], blake3::hash(&b));
        assert_eq!(hashes.len(), 3);
    }

    #[test]
    fn a_store_is_built_then_reused() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let built = ensure(dir.path(), 200, 4)?;
        assert_eq!(built.objects, 200);
        assert_eq!(built.file_backed, 3);
        assert!(built.secs.is_some());
        let again = ensure(dir.path(), 200, 4)?;
        assert!(again.secs.is_none());
        assert_eq!(again.bytes, built.bytes);
        assert!(ensure(dir.path(), 300, 4).is_err());
        let store = Store::open(options(dir.path()))?;
        let mut buf = Vec::new();
        for i in [0, 63, 199] {
            let hash = hash_of(i, &mut buf);
            let blob = store
                .get(&fleetcache_store::Hash::from(hash))?
                .context("stored")?;
            assert_eq!(blob.size(), buf.len() as u64);
        }
        store.close()?;
        Ok(())
    }
}

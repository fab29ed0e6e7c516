//! Helpers shared by the store's integration tests.

use std::fs;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use fleetcache_store::{Blob, Hash, NewRecord, Store, StoreOptions};
use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};

pub const KIB: usize = 1024;

/// Deterministic bytes.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut data = vec![0u8; len];
    StdRng::seed_from_u64(seed).fill_bytes(&mut data);
    data
}

pub fn options(dir: &Path, capacity: u64) -> StoreOptions {
    StoreOptions {
        data_dir: dir.to_owned(),
        capacity,
        high_watermark: 0.9,
        low_watermark: 0.6,
        memory_cache: 0,
    }
}

/// A store with room for anything the tests write.
pub fn open(dir: &Path) -> Store {
    Store::open(options(dir, 1 << 30)).unwrap()
}

pub fn data_file(dir: &Path, hash: &Hash) -> PathBuf {
    dir.join("blobs").join(format!("{hash}.data"))
}

/// Flips one bit of the byte at `offset` of the file at `path`.
pub fn flip_byte(path: &Path, offset: u64) {
    let file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let mut byte = [0u8];
    file.read_exact_at(&mut byte, offset).unwrap();
    byte[0] ^= 0x20;
    file.write_all_at(&byte, offset).unwrap();
}

/// Ingests `data` in one write.
pub fn put(store: &Store, data: &[u8]) -> Hash {
    let mut ingest = store.ingest(None).unwrap();
    ingest.write(data).unwrap();
    ingest.finish().unwrap().hash
}

pub fn read_all(blob: &Blob) -> Vec<u8> {
    blob.read_verified(0, usize::MAX).unwrap().to_vec()
}

pub fn new_record(key: &str, variant: &str, tags: &[&str], value: &str) -> NewRecord {
    NewRecord {
        key: key.into(),
        variant: variant.into(),
        tags: tags.iter().map(|t| t.as_bytes().to_vec()).collect(),
        value: value.into(),
    }
}

pub fn outboard_file(dir: &Path, hash: &Hash) -> PathBuf {
    dir.join("blobs").join(format!("{hash}.obao"))
}

pub fn count_files(dir: &Path) -> usize {
    fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

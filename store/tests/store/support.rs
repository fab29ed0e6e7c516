//! Helpers shared by the store's integration tests.

use std::fs;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use fleetcache_store::Hash;

use fleetcache_store::{Store, StoreOptions};
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

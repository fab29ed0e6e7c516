//! Helpers shared by the store's integration tests.

use std::path::Path;

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

//! The objects the origin serves: a small hot one and a large cold one.

use std::path::Path;

use anyhow::Result;
use fleetcache_benches::write_random_file;

/// The hot object (4 KiB).
pub(crate) const HOT_PATH: &str = "/hot/object.bin";
/// The cold object; each run asks for it under a fresh query string, so a
/// fresh cache key.
pub(crate) const COLD_PATH: &str = "/cold/object.bin";
/// The origin rate-limits what is under this prefix.
pub(crate) const COLD_DIR: &str = "/cold/";

/// The objects the origin serves.
#[derive(Debug)]
pub(crate) struct Objects {
    pub(crate) hot: Vec<u8>,
    pub(crate) cold_size: u64,
    pub(crate) cold_hash: blake3::Hash,
}

impl Objects {
    /// Writes the objects under `root`.
    pub(crate) fn create(root: &Path, hot_size: u64, cold_size: u64) -> Result<Self> {
        for dir in ["hot", "cold"] {
            std::fs::create_dir_all(root.join(dir))?;
        }
        let hot_file = root.join(HOT_PATH.trim_start_matches('/'));
        write_random_file(&hot_file, hot_size)?;
        let hot = std::fs::read(&hot_file)?;
        let cold_hash =
            write_random_file(&root.join(COLD_PATH.trim_start_matches('/')), cold_size)?;
        Ok(Self {
            hot,
            cold_size,
            cold_hash,
        })
    }
}

//! Where things live under the data dir, and the small file-system helpers the crash-safety
//! argument depends on.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::hash::Hash;

pub(crate) const INDEX_FILE: &str = "index.redb";
const BLOBS_DIR: &str = "blobs";
const TMP_DIR: &str = "tmp";
const QUARANTINE_DIR: &str = "quarantine";
pub(crate) const DATA_EXT: &str = "data";
pub(crate) const OUTBOARD_EXT: &str = "obao";

/// Paths of one data dir.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    root: PathBuf,
}

impl Layout {
    pub(crate) fn new(root: &Path) -> Self {
        Layout {
            root: root.to_owned(),
        }
    }

    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    pub(crate) fn index(&self) -> PathBuf {
        self.root.join(INDEX_FILE)
    }

    pub(crate) fn blobs_dir(&self) -> PathBuf {
        self.root.join(BLOBS_DIR)
    }

    pub(crate) fn tmp_dir(&self) -> PathBuf {
        self.root.join(TMP_DIR)
    }

    pub(crate) fn quarantine_dir(&self) -> PathBuf {
        self.root.join(QUARANTINE_DIR)
    }

    /// The committed data file of a blob.
    pub(crate) fn data(&self, hash: &Hash) -> PathBuf {
        self.blobs_dir().join(format!("{hash}.{DATA_EXT}"))
    }

    /// The committed outboard file of a blob.
    pub(crate) fn outboard(&self, hash: &Hash) -> PathBuf {
        self.blobs_dir().join(format!("{hash}.{OUTBOARD_EXT}"))
    }

    /// A fresh name prefix for an ingest's temp files.
    pub(crate) fn new_temp(&self) -> (PathBuf, PathBuf) {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let stem = format!("ingest-{}-{nanos:x}-{n:x}", std::process::id());
        let dir = self.tmp_dir();
        (
            dir.join(format!("{stem}.{DATA_EXT}")),
            dir.join(format!("{stem}.{OUTBOARD_EXT}")),
        )
    }

    /// The names a finished ingest's temp files take once the hash is known. They mark
    /// the ingest as in flight: start-up and fsck find the hash in the name and know that
    /// `blobs/<hash>.*` may be an uncommitted link, not an orphan.
    pub(crate) fn marker(&self, hash: &Hash, temp: &Path) -> PathBuf {
        let name = temp
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        self.tmp_dir().join(format!("{hash}.{name}"))
    }

    /// A free path under `quarantine/` for a file named `name`.
    pub(crate) fn quarantine_target(&self, name: &str) -> PathBuf {
        let dir = self.quarantine_dir();
        let first = dir.join(name);
        if !first.exists() {
            return first;
        }
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        dir.join(format!("{name}.{nanos}"))
    }
}

/// The hash a file name under `blobs/` or a marker under `tmp/` starts with.
pub(crate) fn hash_prefix(name: &str) -> Option<Hash> {
    name.get(..64)?
        .parse()
        .ok()
        .filter(|_| name.as_bytes().get(64) == Some(&b'.'))
}

/// The hash and extension of a committed blob file name, `<hash>.data` or `<hash>.obao`.
pub(crate) fn parse_blob_name(name: &str) -> Option<(Hash, &str)> {
    let hash = hash_prefix(name)?;
    let ext = name.get(65..)?;
    (ext == DATA_EXT || ext == OUTBOARD_EXT).then_some((hash, ext))
}

/// Makes a directory's entries (creations, renames, unlinks) durable.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Removes a file; a file that is already gone is fine.
pub(crate) fn remove_if_exists(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(err) if err.kind() != io::ErrorKind::NotFound => Err(err),
        _ => Ok(()),
    }
}

/// Moves a blob's files (whichever exist) to `quarantine/`.
pub(crate) fn quarantine_files(layout: &Layout, hash: &Hash) -> io::Result<u32> {
    let mut moved = 0;
    for path in [layout.data(hash), layout.outboard(hash)] {
        moved += move_to_quarantine(layout, &path)?;
    }
    Ok(moved)
}

/// Moves one file to `quarantine/`; returns 0 if it did not exist.
pub(crate) fn move_to_quarantine(layout: &Layout, path: &Path) -> io::Result<u32> {
    if !path.exists() {
        return Ok(0);
    }
    fs::create_dir_all(layout.quarantine_dir())?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "unnamed".to_owned());
    match fs::rename(path, layout.quarantine_target(&name)) {
        Ok(()) => Ok(1),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(0),
        Err(err) => Err(err),
    }
}

/// Unlinks a blob's files.
pub(crate) fn remove_blob_files(layout: &Layout, hash: &Hash) -> io::Result<()> {
    remove_if_exists(&layout.data(hash))?;
    remove_if_exists(&layout.outboard(hash))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        let layout = Layout::new(Path::new("/d"));
        let hash = Hash::from(blake3::hash(b"x"));
        let data = layout.data(&hash);
        let name = data.file_name().unwrap().to_str().unwrap();
        assert_eq!(parse_blob_name(name), Some((hash, DATA_EXT)));
        let (temp, _) = layout.new_temp();
        let marker = layout.marker(&hash, &temp);
        let marker_name = marker.file_name().unwrap().to_str().unwrap();
        assert_eq!(hash_prefix(marker_name), Some(hash));
        assert_eq!(parse_blob_name(marker_name), None);
        assert_eq!(
            hash_prefix(temp.file_name().unwrap().to_str().unwrap()),
            None
        );
        assert_eq!(parse_blob_name(&format!("{hash}.txt")), None);
        assert_eq!(parse_blob_name(&format!("{hash}")), None);
        assert_eq!(hash_prefix("é".repeat(40).as_str()), None);
    }
}

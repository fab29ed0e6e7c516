//! Opening the index and finishing what a crash interrupted, without scanning objects:
//! only the `deletes-1` rows and the files under `tmp/` are visited.

use std::fs;
use std::io;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use redb::{
    Database, DatabaseError, ReadableDatabase, ReadableTable, ReadableTableMetadata, StorageError,
};

use crate::error::{FsckError, OpenError};
use crate::hash::Hash;
use crate::index::{
    BLOBS, DELETES, Entry, FORMAT_KEY, FORMAT_VERSION, INLINE, LRU, META, PendingFileOp,
    TOTALS_KEY, Totals,
};
use crate::layout::{self, Layout};
use crate::record::{BLOB_RECORDS, RECORD_TAGS, RECORDS, RECORDS_KEY, decode_count, encode_count};

/// redb cache: the index of a million objects is a few hundred MiB on disk, but lookups
/// touch few pages; a large cache would only raise the node's memory footprint.
const CACHE_BYTES: usize = 64 << 20;

/// A start-up failure, converted into the caller's error type.
#[derive(Debug)]
pub(crate) enum StartupError {
    Io { path: PathBuf, source: io::Error },
    Locked { path: PathBuf },
    NotFound { path: PathBuf },
    Database(String),
    Corrupt(String),
}

impl StartupError {
    pub(crate) fn into_open(self) -> OpenError {
        match self {
            StartupError::Io { path, source } => OpenError::Io { path, source },
            StartupError::NotFound { path } => OpenError::Io {
                path,
                source: io::ErrorKind::NotFound.into(),
            },
            StartupError::Locked { path } => OpenError::Locked { path },
            StartupError::Database(msg) => OpenError::Database(msg),
            StartupError::Corrupt(msg) => OpenError::Corrupt(msg),
        }
    }

    pub(crate) fn into_fsck(self) -> FsckError {
        match self {
            StartupError::Io { path, source } => FsckError::Io { path, source },
            StartupError::NotFound { path } => FsckError::NotAStore { path },
            StartupError::Locked { path } => FsckError::Locked { path },
            StartupError::Database(msg) => FsckError::Database(msg),
            StartupError::Corrupt(msg) => FsckError::Corrupt(msg),
        }
    }
}

fn db_error(err: impl Into<redb::Error>) -> StartupError {
    StartupError::Database(err.into().to_string())
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> StartupError + '_ {
    move |source| StartupError::Io {
        path: path.to_owned(),
        source,
    }
}

pub(crate) fn create_dirs(layout: &Layout) -> Result<(), OpenError> {
    let root_existed = layout.root().is_dir();
    for dir in [
        layout.root().to_owned(),
        layout.blobs_dir(),
        layout.tmp_dir(),
    ] {
        fs::create_dir_all(&dir).map_err(|source| OpenError::Io { path: dir, source })?;
    }
    if !root_existed {
        layout::sync_dir(layout.root()).map_err(|source| OpenError::Io {
            path: layout.root().to_owned(),
            source,
        })?;
    }
    Ok(())
}

/// Opens (or with `create`, creates) the index, taking its exclusive lock.
pub(crate) fn open_database(path: &Path, create: bool) -> Result<Database, StartupError> {
    let mut builder = Database::builder();
    builder.set_cache_size(CACHE_BYTES);
    // redb may panic on a damaged file instead of returning an error.
    let opened = catch_unwind(AssertUnwindSafe(|| {
        if create {
            builder.create(path)
        } else {
            builder.open(path)
        }
    }));
    match opened {
        Ok(Ok(db)) => Ok(db),
        Ok(Err(DatabaseError::DatabaseAlreadyOpen)) => Err(StartupError::Locked {
            path: path.to_owned(),
        }),
        Ok(Err(DatabaseError::Storage(StorageError::Io(err))))
            if err.kind() == io::ErrorKind::NotFound =>
        {
            Err(StartupError::NotFound {
                path: path.to_owned(),
            })
        }
        Ok(Err(DatabaseError::Storage(StorageError::Io(source)))) => Err(StartupError::Io {
            path: path.to_owned(),
            source,
        }),
        Ok(Err(DatabaseError::Storage(StorageError::Corrupted(msg)))) => {
            Err(StartupError::Corrupt(format!("{}: {msg}", path.display())))
        }
        Ok(Err(err)) => Err(StartupError::Database(format!("{}: {err}", path.display()))),
        Err(_) => Err(StartupError::Corrupt(format!(
            "{}: the database file is damaged (redb panicked while opening it)",
            path.display()
        ))),
    }
}

/// Creates the tables of a new index (and the record tables of an index written before
/// records existed), checks the format of an existing one, and loads the totals. Commits
/// only when it created something.
pub(crate) fn init_tables(db: &Database) -> Result<Totals, StartupError> {
    let txn = db.begin_write().map_err(db_error)?;
    let mut changed = false;
    let totals = {
        for table in [BLOBS, INLINE, DELETES] {
            txn.open_table(table).map_err(db_error)?;
        }
        txn.open_table(LRU).map_err(db_error)?;
        let records = txn.open_table(RECORDS).map_err(db_error)?;
        for table in [RECORD_TAGS, BLOB_RECORDS] {
            txn.open_table(table).map_err(db_error)?;
        }
        let mut meta = txn.open_table(META).map_err(db_error)?;
        let format = meta
            .get(FORMAT_KEY)
            .map_err(db_error)?
            .map(|v| v.value().to_vec());
        match format.as_deref() {
            Some([FORMAT_VERSION]) => {}
            Some(other) => {
                return Err(StartupError::Corrupt(format!(
                    "index format {other:?} is not the supported version {FORMAT_VERSION}"
                )));
            }
            None => {
                meta.insert(FORMAT_KEY, [FORMAT_VERSION].as_slice())
                    .map_err(db_error)?;
                changed = true;
            }
        }
        let totals = meta
            .get(TOTALS_KEY)
            .map_err(db_error)?
            .map(|v| Totals::decode(v.value()));
        let mut totals = match totals {
            Some(Ok(totals)) => totals,
            Some(Err(reason)) => return Err(StartupError::Corrupt(reason)),
            None => {
                let totals = Totals::default();
                meta.insert(TOTALS_KEY, totals.encode().as_slice())
                    .map_err(db_error)?;
                changed = true;
                totals
            }
        };
        let count = meta
            .get(RECORDS_KEY)
            .map_err(db_error)?
            .map(|v| decode_count(v.value()));
        totals.records = match count {
            Some(Ok(count)) => count,
            Some(Err(reason)) => return Err(StartupError::Corrupt(reason)),
            // An index from before records: its record table was created just now, empty.
            None => {
                let count = records.len().map_err(db_error)?;
                meta.insert(RECORDS_KEY, encode_count(count).as_slice())
                    .map_err(db_error)?;
                changed = true;
                count
            }
        };
        totals
    };
    if changed {
        txn.commit().map_err(db_error)?;
    } else {
        txn.abort().map_err(db_error)?;
    }
    Ok(totals)
}

/// What start-up recovery found and fixed.
#[derive(Debug, Default)]
pub(crate) struct Recovered {
    pub(crate) deletes_finished: usize,
    pub(crate) uncommitted_removed: usize,
    pub(crate) temp_files_removed: usize,
}

/// Finishes interrupted deletes and removes what interrupted ingests left behind.
pub(crate) fn recover(db: &Database, layout: &Layout) -> Result<Recovered, StartupError> {
    let mut recovered = Recovered::default();
    let pending = pending_deletes(db)?;
    let mut done = Vec::new();
    for (hash, op) in pending {
        // A row whose hash is back in the index is stale: the new files are live.
        if !has_file_entry(db, &hash)? {
            let result = match op {
                PendingFileOp::Unlink => layout::remove_blob_files(layout, &hash),
                PendingFileOp::Quarantine => layout::quarantine_files(layout, &hash).map(drop),
            };
            if let Err(err) = result {
                tracing::warn!(%hash, "finishing a pending delete: {err}");
                continue;
            }
        }
        done.push(hash);
    }
    if !done.is_empty() {
        layout::sync_dir(&layout.blobs_dir()).map_err(io_error(&layout.blobs_dir()))?;
        let mut txn = db.begin_write().map_err(db_error)?;
        txn.set_quick_repair(true);
        {
            let mut deletes = txn.open_table(DELETES).map_err(db_error)?;
            for hash in &done {
                deletes.remove(hash.as_bytes()).map_err(db_error)?;
            }
        }
        txn.commit().map_err(db_error)?;
        recovered.deletes_finished = done.len();
    }

    let tmp = layout.tmp_dir();
    let entries = match fs::read_dir(&tmp) {
        Ok(entries) => entries,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(recovered),
        Err(err) => return Err(io_error(&tmp)(err)),
    };
    let mut temp_files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io_error(&tmp))?;
        temp_files.push(entry.path());
    }
    for path in temp_files {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        // A marker names a hash whose files may have been linked without the commit.
        // Its links go first: if the marker went first, a crash would leave orphans.
        if let Some(hash) = layout::hash_prefix(&name)
            && !has_file_entry(db, &hash)?
        {
            let existed = layout.data(&hash).exists() || layout.outboard(&hash).exists();
            layout::remove_blob_files(layout, &hash).map_err(io_error(&layout.data(&hash)))?;
            recovered.uncommitted_removed += usize::from(existed);
        }
        let removed = if path.is_dir() {
            fs::remove_dir_all(&path)
        } else {
            layout::remove_if_exists(&path)
        };
        removed.map_err(io_error(&path))?;
        recovered.temp_files_removed += 1;
    }
    if recovered.uncommitted_removed > 0 {
        tracing::info!(
            count = recovered.uncommitted_removed,
            "removed uncommitted blob files"
        );
    }
    Ok(recovered)
}

/// The `deletes-1` rows.
pub(crate) fn pending_deletes(db: &Database) -> Result<Vec<(Hash, PendingFileOp)>, StartupError> {
    let txn = db.begin_read().map_err(db_error)?;
    let table = txn.open_table(DELETES).map_err(db_error)?;
    let mut rows = Vec::new();
    for row in table.iter().map_err(db_error)? {
        let (key, value) = row.map_err(db_error)?;
        rows.push((
            Hash::from_bytes(*key.value()),
            PendingFileOp::decode(value.value()),
        ));
    }
    Ok(rows)
}

/// Whether the index has the hash as a blob stored in files.
pub(crate) fn has_file_entry(db: &Database, hash: &Hash) -> Result<bool, StartupError> {
    let txn = db.begin_read().map_err(db_error)?;
    let table = txn.open_table(BLOBS).map_err(db_error)?;
    let entry = table.get(hash.as_bytes()).map_err(db_error)?;
    Ok(entry.is_some_and(|v| Entry::decode(v.value()).is_ok_and(|e| !e.is_inline())))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::{Store, StoreOptions};

    fn options(dir: &Path) -> StoreOptions {
        StoreOptions {
            data_dir: dir.to_owned(),
            capacity: 1 << 30,
            high_watermark: 0.9,
            low_watermark: 0.8,
            memory_cache: 0,
        }
    }

    fn ingest(store: &Store, data: &[u8]) -> Hash {
        let mut ingest = store.ingest(None).unwrap();
        ingest.write(data).unwrap();
        ingest.finish().unwrap().hash
    }

    #[test]
    fn pending_deletes_are_finished_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path());
        let store = Store::open(options(dir.path())).unwrap();
        let kept = ingest(&store, &vec![1u8; 100_000]);
        let doomed = ingest(&store, &vec![2u8; 100_000]);
        store.close().unwrap();

        // A crash after the delete committed but before the files were unlinked.
        let db = open_database(&layout.index(), false).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut blobs = txn.open_table(BLOBS).unwrap();
            blobs.remove(doomed.as_bytes()).unwrap();
            let mut deletes = txn.open_table(DELETES).unwrap();
            deletes
                .insert(doomed.as_bytes(), PendingFileOp::Unlink.encode().as_slice())
                .unwrap();
            // A stale row for a hash that is back in the index must not touch its files.
            deletes
                .insert(kept.as_bytes(), PendingFileOp::Unlink.encode().as_slice())
                .unwrap();
        }
        txn.commit().unwrap();
        drop(db);
        assert!(layout.data(&doomed).exists());

        let store = Store::open(options(dir.path())).unwrap();
        assert!(!layout.data(&doomed).exists());
        assert!(!layout.outboard(&doomed).exists());
        assert!(layout.data(&kept).exists());
        assert!(store.get(&kept).unwrap().is_some());
        store.close().unwrap();
        let db = open_database(&layout.index(), false).unwrap();
        assert!(pending_deletes(&db).unwrap().is_empty());
    }

    #[test]
    fn uncommitted_links_and_temp_files_are_removed_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path());
        let store = Store::open(options(dir.path())).unwrap();
        let committed = ingest(&store, &vec![3u8; 50_000]);
        store.close().unwrap();

        // A crash after the writer linked an ingest's files but before its commit.
        let ghost = Hash::from(blake3::hash(b"never committed"));
        let (temp_data, temp_outboard) = layout.new_temp();
        for temp in [&temp_data, &temp_outboard] {
            fs::write(layout.marker(&ghost, temp), b"x").unwrap();
        }
        fs::write(layout.data(&ghost), b"x").unwrap();
        fs::write(layout.outboard(&ghost), b"x").unwrap();
        // A marker for a committed hash leaves its files alone.
        fs::write(layout.marker(&committed, &temp_data), b"x").unwrap();
        // A plain partial temp file and a stray directory.
        fs::write(&temp_data, b"partial").unwrap();
        fs::create_dir(layout.tmp_dir().join("junk")).unwrap();

        let db = open_database(&layout.index(), false).unwrap();
        let recovered = recover(&db, &layout).unwrap();
        assert_eq!(recovered.uncommitted_removed, 1);
        assert_eq!(recovered.temp_files_removed, 5);
        drop(db);
        assert!(!layout.data(&ghost).exists());
        assert!(!layout.outboard(&ghost).exists());
        assert!(layout.data(&committed).exists());
        assert_eq!(fs::read_dir(layout.tmp_dir()).unwrap().count(), 0);
    }

    #[test]
    fn a_second_open_is_locked() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(options(dir.path())).unwrap();
        match Store::open(options(dir.path())) {
            Err(OpenError::Locked { path }) => assert_eq!(path, Layout::new(dir.path()).index()),
            other => panic!("expected Locked, got {other:?}"),
        }
        // The refused open removed nothing of the running store's.
        let hash = ingest(&store, &vec![9u8; 40_000]);
        assert!(store.get(&hash).unwrap().is_some());
        store.close().unwrap();
        Store::open(options(dir.path())).unwrap();
    }

    #[test]
    fn a_newer_format_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        Store::open(options(dir.path())).unwrap().close().unwrap();
        let db = open_database(&Layout::new(dir.path()).index(), false).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(META)
            .unwrap()
            .insert(FORMAT_KEY, [2u8].as_slice())
            .unwrap();
        txn.commit().unwrap();
        drop(db);
        assert!(matches!(
            Store::open(options(dir.path())),
            Err(OpenError::Corrupt(_))
        ));
    }
}

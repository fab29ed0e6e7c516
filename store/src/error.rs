//! One error enum per operation.

use std::io;
use std::path::PathBuf;

use crate::hash::Hash;

/// Why [`Store::open`](crate::Store::open) failed.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// A directory or file of the data dir could not be created or read.
    #[error("store data dir: {path}: {source}")]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// Another process (or another open `Store` in this process) has the index open.
    #[error(
        "store data dir {path} is already in use by another fleetcache process (its index is locked)"
    )]
    Locked {
        /// The index file.
        path: PathBuf,
    },
    /// The index database reported an error.
    #[error("store index database: {0}")]
    Database(String),
    /// The index exists but its contents are unusable.
    #[error("store index is corrupt: {0}")]
    Corrupt(String),
    /// An option is out of range or inconsistent with another.
    #[error("invalid store option {option}: {problem}")]
    InvalidOptions {
        /// The `StoreOptions` field at fault.
        option: &'static str,
        /// What is wrong with it.
        problem: String,
    },
}

/// Why a lookup or a read of blob bytes failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// Reading a blob file failed.
    #[error("reading blob file {path}: {source}")]
    Io {
        /// The file being read.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The stored bytes (or the index entry) do not match the blob's hash; the object has
    /// been quarantined and is no longer served.
    #[error("blob {hash} is corrupt: stored bytes at offset {offset} fail verification")]
    Corrupt {
        /// The blob.
        hash: Hash,
        /// Start of the first chunk group (or index data) that failed verification.
        offset: u64,
    },
    /// The read starts past the end of the blob.
    #[error("read offset {offset} is past the end of the blob ({size} bytes)")]
    OutOfRange {
        /// The requested offset.
        offset: u64,
        /// The blob size.
        size: u64,
    },
    /// The index database reported an error.
    #[error("store index database: {0}")]
    Database(String),
    /// The store has been closed.
    #[error("the store is closed")]
    Closed,
    /// Writing an encoded stream to its output failed (the receiver went away).
    #[error("writing the encoded stream: {0}")]
    Output(io::Error),
    /// The record key asked for cannot name a record (the caller's mistake).
    #[error("{0}")]
    InvalidRecord(InvalidRecord),
}

/// Why an ingest failed. The temp file is gone and nothing already stored is affected.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// Writing, syncing or renaming a file failed.
    #[error("writing blob file {path}: {source}")]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The disk (or the user's quota) is full, or the store's capacity is taken by pinned
    /// objects and objects being read, so nothing can be evicted to make room.
    #[error("storage full: no room left for the object")]
    StorageFull,
    /// The object is larger than the store's whole capacity.
    #[error("object of {size} bytes or more exceeds the store capacity of {capacity} bytes")]
    TooLarge {
        /// Bytes received so far (a lower bound of the object size).
        size: u64,
        /// The configured capacity.
        capacity: u64,
    },
    /// The index database reported an error.
    #[error("store index database: {0}")]
    Database(String),
    /// The store has been closed.
    #[error("the store is closed")]
    Closed,
    /// Bytes or hash pairs given to a verified ingest do not make up the promised
    /// object (a caller's bug: they should have been verified already).
    #[error("inconsistent verified ingest: {0}")]
    Inconsistent(String),
    /// The record attached to the ingest breaks a limit (the caller's mistake); the
    /// ingest itself stays usable.
    #[error("{0}")]
    InvalidRecord(InvalidRecord),
}

/// Why a delete, pin change, or record put or removal failed.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The index database reported an error.
    #[error("store index database: {0}")]
    Database(String),
    /// A file operation failed.
    #[error("store file {path}: {source}")]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The store has been closed.
    #[error("the store is closed")]
    Closed,
    /// The record, or the key, prefix or tag naming records, breaks a limit (the
    /// caller's mistake). Nothing was changed.
    #[error("{0}")]
    InvalidRecord(InvalidRecord),
    /// A record was to point at a blob the index does not have (never stored, or
    /// deleted or evicted meanwhile). Nothing was changed.
    #[error("blob {hash} is not in the store; a record cannot point at it")]
    BlobNotFound {
        /// The blob the record was to point at.
        hash: Hash,
    },
}

/// Why a record, or a key, key prefix or tag naming records, was refused. Keys, key
/// prefixes and tags may not contain 0x00 because the record tables use it as a separator.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidRecord {
    /// The record key is empty.
    #[error("invalid record: the key is empty")]
    EmptyKey,
    /// A tag is empty.
    #[error("invalid record: a tag is empty")]
    EmptyTag,
    /// A key, key prefix or tag contains a 0x00 byte.
    #[error("invalid record: the {part} contains a 0x00 byte")]
    NulByte {
        /// `"key"`, `"key prefix"` or `"tag"`.
        part: &'static str,
    },
    /// A part is longer than its limit (see the constants on
    /// [`NewRecord`](crate::NewRecord)).
    #[error("invalid record: the {part} is {len} bytes, more than the {max} allowed")]
    TooLong {
        /// `"key"`, `"key prefix"`, `"variant"`, `"tag"` or `"value"`.
        part: &'static str,
        /// Its length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The record has more (distinct) tags than allowed.
    #[error("invalid record: {count} tags, more than the {max} allowed")]
    TooManyTags {
        /// Distinct tags given.
        count: usize,
        /// The limit.
        max: usize,
    },
}

/// Why [`fsck`](crate::fsck) could not run (problems it finds are in the report instead).
#[derive(Debug, thiserror::Error)]
pub enum FsckError {
    /// There is no store index in the directory.
    #[error("no fleetcache store at {path}: index file not found")]
    NotAStore {
        /// The index file that was expected.
        path: PathBuf,
    },
    /// A running node holds the index; fsck works offline only.
    #[error(
        "store data dir {path} is already in use by another fleetcache process; stop the node before running fsck"
    )]
    Locked {
        /// The index file.
        path: PathBuf,
    },
    /// A file or directory could not be read or changed.
    #[error("fsck: {path}: {source}")]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The index database reported an error.
    #[error("store index database: {0}")]
    Database(String),
    /// The index metadata is unusable, so objects cannot be checked.
    #[error("store index is corrupt: {0}")]
    Corrupt(String),
}

/// True for the OS errors that mean "no space": a full disk or an exhausted quota.
pub(crate) fn is_storage_full(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
    )
}

/// Walks a redb error down to an I/O cause, if there is one.
pub(crate) fn redb_io_error(err: &redb::Error) -> Option<&io::Error> {
    match err {
        redb::Error::Io(err) => Some(err),
        _ => None,
    }
}

impl IngestError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: io::Error) -> Self {
        if is_storage_full(&source) {
            IngestError::StorageFull
        } else {
            IngestError::Io {
                path: path.into(),
                source,
            }
        }
    }

    pub(crate) fn database(err: &redb::Error) -> Self {
        if redb_io_error(err).is_some_and(is_storage_full) {
            IngestError::StorageFull
        } else {
            IngestError::Database(err.to_string())
        }
    }
}

impl WriteError {
    pub(crate) fn database(err: &redb::Error) -> Self {
        WriteError::Database(err.to_string())
    }
}

impl ReadError {
    pub(crate) fn database(err: impl Into<redb::Error>) -> Self {
        ReadError::Database(err.into().to_string())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn enospc_and_edquot_are_storage_full() {
        // /dev/full answers every write with ENOSPC.
        if let Ok(mut full) = std::fs::OpenOptions::new().write(true).open("/dev/full") {
            let err = full
                .write_all(&[0u8; 4096])
                .and_then(|()| full.flush())
                .unwrap_err();
            assert!(matches!(
                IngestError::io("/dev/full", err),
                IngestError::StorageFull
            ));
        }
        for code in [28, 122] {
            let err = io::Error::from_raw_os_error(code);
            assert!(
                matches!(IngestError::io("x", err), IngestError::StorageFull),
                "{code}"
            );
        }
        let other = io::Error::from_raw_os_error(5);
        assert!(matches!(
            IngestError::io("x", other),
            IngestError::Io { .. }
        ));
    }

    #[test]
    fn messages_name_the_problem() {
        let locked = OpenError::Locked {
            path: PathBuf::from("/data/index.redb"),
        };
        assert!(
            locked
                .to_string()
                .contains("already in use by another fleetcache process")
        );
        assert!(locked.to_string().contains("/data/index.redb"));
        let too_large = IngestError::TooLarge {
            size: 10,
            capacity: 5,
        };
        assert!(too_large.to_string().contains("capacity of 5"));
    }
}

//! The purges this node keeps, and where it has read each peer's log to, in a
//! small redb database of its own: `<data_dir>/purges.redb`.
//!
//! Why not tables in the store's `index.redb`: the store's API is about blobs
//! and the records that point at them, and keeps no policy; a purge log has
//! retention, peer cursors and a fleet clock, which would each need a store
//! method of their own. Purges are written rarely (a few per operator action),
//! so a second database with its own transactions costs nothing measurable,
//! and the store stays as narrow as it is. The store's exclusive lock on the
//! data dir already keeps two nodes off one log.
//!
//! Tables (every value of `purges-1` starts with a version byte; rows are
//! decoded by hand and a malformed one is skipped with a warning, never a
//! panic):
//!
//! | table | key | value |
//! |---|---|---|
//! | `purges-1` | id (16 B) | `1, created u64 BE, received u64 BE, purge JSON` |
//! | `purges-received-1` | received (u64) | id: the log in receive order, for PURGE_LOG pages |
//! | `purges-created-1` | created u64 BE ‖ id | `()`: the log in creation order, for retention |
//! | `purge-cursors-1` | peer node name | `after` for that peer's next PURGE_LOG |
//! | `purge-meta-1` | `"clock"` / `"dropped_through"` / `"last_contact"` | u64 |
//!
//! All blocking: callers run these on the blocking pool.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::{Arc, PoisonError, RwLock};

use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};

use super::message::{Purge, PurgeId, purge_from_json, purge_to_json};
use super::retention::{expired, next_received};

const PURGES: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("purges-1");
const RECEIVED: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("purges-received-1");
const CREATED: TableDefinition<'_, &[u8], ()> = TableDefinition::new("purges-created-1");
const CURSORS: TableDefinition<'_, &str, u64> = TableDefinition::new("purge-cursors-1");
const META: TableDefinition<'_, &str, u64> = TableDefinition::new("purge-meta-1");

const VALUE_VERSION: u8 = 1;
const VALUE_FIXED: usize = 1 + 8 + 8;
const CLOCK: &str = "clock";
const DROPPED_THROUGH: &str = "dropped_through";
const LAST_CONTACT: &str = "last_contact";

/// Why the purge log could not be read or written.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LogError {
    /// redb failed (IO, a damaged file, a lock held by another process).
    #[error("purge log: {0}")]
    Database(String),
    /// The node is shutting down.
    #[error("the purge log is closed")]
    Closed,
    /// A purge could not be encoded (never expected).
    #[error("purge log: {0}")]
    Encode(String),
}

fn db_error(err: impl Into<redb::Error>) -> LogError {
    LogError::Database(err.into().to_string())
}

/// One page of the log for a PURGE_LOG answer.
#[derive(Debug)]
pub(crate) struct Page {
    pub(crate) purges: Vec<Purge>,
    pub(crate) through: u64,
    pub(crate) dropped_through: Option<u64>,
    pub(crate) more: bool,
}

/// Where a node has read a peer's log to, recorded with the purges of that read.
#[derive(Debug)]
pub(crate) struct ReadTo<'a> {
    pub(crate) peer: &'a str,
    pub(crate) through: u64,
}

/// The purge log. Cheap to share; [`PurgeLog::close`] releases the file.
#[derive(Debug)]
pub(crate) struct PurgeLog {
    db: RwLock<Option<Arc<Database>>>,
}

impl PurgeLog {
    /// Opens (creating if needed) the log at `path`.
    pub(crate) fn open(path: &Path) -> Result<PurgeLog, LogError> {
        // redb may panic on a damaged file instead of returning an error.
        let db = catch_unwind(AssertUnwindSafe(|| Database::create(path)))
            .map_err(|_| {
                LogError::Database(format!(
                    "{}: the file is damaged (redb panicked opening it)",
                    path.display()
                ))
            })?
            .map_err(|err| LogError::Database(format!("{}: {err}", path.display())))?;
        let txn = db.begin_write().map_err(db_error)?;
        {
            txn.open_table(PURGES).map_err(db_error)?;
            txn.open_table(RECEIVED).map_err(db_error)?;
            txn.open_table(CREATED).map_err(db_error)?;
            txn.open_table(CURSORS).map_err(db_error)?;
            txn.open_table(META).map_err(db_error)?;
        }
        txn.commit().map_err(db_error)?;
        Ok(PurgeLog {
            db: RwLock::new(Some(Arc::new(db))),
        })
    }

    /// Releases the database (once operations in progress end). Later calls
    /// fail with [`LogError::Closed`].
    pub(crate) fn close(&self) {
        self.db
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
    }

    fn db(&self) -> Result<Arc<Database>, LogError> {
        self.db
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .ok_or(LogError::Closed)
    }

    /// Whether the purge `id` is kept.
    pub(crate) fn contains(&self, id: &PurgeId) -> Result<bool, LogError> {
        let db = self.db()?;
        let txn = db.begin_read().map_err(db_error)?;
        let table = txn.open_table(PURGES).map_err(db_error)?;
        Ok(table.get(id.0.as_slice()).map_err(db_error)?.is_some())
    }

    /// Purges kept now.
    pub(crate) fn len(&self) -> Result<u64, LogError> {
        let db = self.db()?;
        let txn = db.begin_read().map_err(db_error)?;
        let table = txn.open_table(PURGES).map_err(db_error)?;
        table.len().map_err(db_error)
    }

    /// Where this node had read `peer`'s log to, if it ever did.
    pub(crate) fn cursor(&self, peer: &str) -> Result<Option<u64>, LogError> {
        let db = self.db()?;
        let txn = db.begin_read().map_err(db_error)?;
        let table = txn.open_table(CURSORS).map_err(db_error)?;
        Ok(table.get(peer).map_err(db_error)?.map(|v| v.value()))
    }

    /// When this node last read any peer's log (its own clock).
    pub(crate) fn last_contact(&self) -> Result<Option<u64>, LogError> {
        self.meta(LAST_CONTACT)
    }

    fn meta(&self, key: &str) -> Result<Option<u64>, LogError> {
        let db = self.db()?;
        let txn = db.begin_read().map_err(db_error)?;
        let table = txn.open_table(META).map_err(db_error)?;
        Ok(table.get(key).map_err(db_error)?.map(|v| v.value()))
    }

    /// Keeps the purges not kept yet and not past their retention, in one
    /// transaction; with `read_to`, the same transaction records where this
    /// node has read that peer's log to and that it was in touch at `now`, so
    /// a crash never moves a cursor past purges that were not kept. Returns
    /// how many were newly kept.
    pub(crate) fn keep(
        &self,
        purges: &[Purge],
        now: u64,
        retention: u64,
        read_to: Option<ReadTo<'_>>,
    ) -> Result<usize, LogError> {
        let db = self.db()?;
        let mut txn = db.begin_write().map_err(db_error)?;
        txn.set_quick_repair(true);
        let mut kept = 0;
        {
            let mut table = txn.open_table(PURGES).map_err(db_error)?;
            let mut received = txn.open_table(RECEIVED).map_err(db_error)?;
            let mut created = txn.open_table(CREATED).map_err(db_error)?;
            let mut meta = txn.open_table(META).map_err(db_error)?;
            let mut clock = meta.get(CLOCK).map_err(db_error)?.map_or(0, |v| v.value());
            for purge in purges {
                let id = purge.id.0.as_slice();
                if expired(purge.created, now, retention)
                    || table.get(id).map_err(db_error)?.is_some()
                {
                    continue;
                }
                clock = next_received(clock, now);
                let json = purge_to_json(purge).map_err(|e| LogError::Encode(e.to_string()))?;
                let mut value = Vec::with_capacity(VALUE_FIXED + json.len());
                value.push(VALUE_VERSION);
                value.extend_from_slice(&purge.created.to_be_bytes());
                value.extend_from_slice(&clock.to_be_bytes());
                value.extend_from_slice(&json);
                table.insert(id, value.as_slice()).map_err(db_error)?;
                received.insert(clock, id).map_err(db_error)?;
                created
                    .insert(created_key(purge.created, &purge.id).as_slice(), ())
                    .map_err(db_error)?;
                kept += 1;
            }
            meta.insert(CLOCK, clock).map_err(db_error)?;
            if let Some(read_to) = read_to {
                meta.insert(LAST_CONTACT, now).map_err(db_error)?;
                let mut cursors = txn.open_table(CURSORS).map_err(db_error)?;
                cursors
                    .insert(read_to.peer, read_to.through)
                    .map_err(db_error)?;
            }
        }
        txn.commit().map_err(db_error)?;
        Ok(kept)
    }

    /// Drops the purges past their retention; remembers the latest receive
    /// time among them (`dropped_through`), which tells peers that read this
    /// log less far whether they may have missed one. Returns how many went.
    pub(crate) fn prune(&self, now: u64, retention: u64) -> Result<usize, LogError> {
        let db = self.db()?;
        // Most calls find nothing to drop: look before taking the writer.
        {
            let txn = db.begin_read().map_err(db_error)?;
            let created = txn.open_table(CREATED).map_err(db_error)?;
            let oldest = created.first().map_err(db_error)?;
            match oldest.and_then(|(key, _)| split_created_key(key.value())) {
                Some((at, _)) if expired(at, now, retention) => {}
                _ => return Ok(0),
            }
        }
        let mut txn = db.begin_write().map_err(db_error)?;
        txn.set_quick_repair(true);
        let mut dropped = 0;
        {
            let mut table = txn.open_table(PURGES).map_err(db_error)?;
            let mut received = txn.open_table(RECEIVED).map_err(db_error)?;
            let mut created = txn.open_table(CREATED).map_err(db_error)?;
            let mut meta = txn.open_table(META).map_err(db_error)?;
            let mut doomed = Vec::new();
            for row in created.iter().map_err(db_error)? {
                let (key, _) = row.map_err(db_error)?;
                let key = key.value().to_vec();
                match split_created_key(&key) {
                    Some((at, _)) if !expired(at, now, retention) => break,
                    // A malformed key is dropped with the expired ones.
                    _ => doomed.push(key),
                }
            }
            let mut through = meta
                .get(DROPPED_THROUGH)
                .map_err(db_error)?
                .map(|v| v.value());
            for key in doomed {
                created.remove(key.as_slice()).map_err(db_error)?;
                let Some((_, id)) = split_created_key(&key) else {
                    continue;
                };
                let value = table.remove(id.as_slice()).map_err(db_error)?;
                let header = value.as_ref().and_then(|v| decode_header(v.value()));
                if let Some((_, at)) = header {
                    received.remove(at).map_err(db_error)?;
                    through = Some(through.map_or(at, |t| t.max(at)));
                }
                dropped += 1;
            }
            if let Some(through) = through {
                meta.insert(DROPPED_THROUGH, through).map_err(db_error)?;
            }
        }
        txn.commit().map_err(db_error)?;
        Ok(dropped)
    }

    /// One page of the purges received after `after` (all when `None`), oldest
    /// received first, whose JSON fits in `budget` bytes. Prunes first, so a
    /// page never carries an expired purge and `dropped_through` is current.
    pub(crate) fn page(
        &self,
        after: Option<u64>,
        budget: usize,
        now: u64,
        retention: u64,
    ) -> Result<Page, LogError> {
        self.prune(now, retention)?;
        let db = self.db()?;
        let txn = db.begin_read().map_err(db_error)?;
        let table = txn.open_table(PURGES).map_err(db_error)?;
        let received = txn.open_table(RECEIVED).map_err(db_error)?;
        let meta = txn.open_table(META).map_err(db_error)?;
        let clock = meta.get(CLOCK).map_err(db_error)?.map_or(0, |v| v.value());
        let dropped_through = meta
            .get(DROPPED_THROUGH)
            .map_err(db_error)?
            .map(|v| v.value());
        let start = after.map_or(0, |a| a.saturating_add(1));
        let mut page = Page {
            purges: Vec::new(),
            through: clock.max(after.unwrap_or(0)),
            dropped_through,
            more: false,
        };
        let mut used = 0;
        for row in received.range(start..).map_err(db_error)? {
            let (at, id) = row.map_err(db_error)?;
            let at = at.value();
            let Some(value) = table.get(id.value()).map_err(db_error)? else {
                continue;
            };
            let value = value.value();
            let Some(json) = value
                .get(VALUE_FIXED..)
                .filter(|_| value[0] == VALUE_VERSION)
            else {
                tracing::warn!(received = at, "skipping a malformed row of the purge log");
                continue;
            };
            // Each purge costs its JSON and a comma in the answer.
            if used + json.len() + 1 > budget && !page.purges.is_empty() {
                page.more = true;
                break;
            }
            match purge_from_json(json) {
                Ok(purge) => {
                    used += json.len() + 1;
                    page.purges.push(purge);
                    page.through = at;
                }
                Err(err) => {
                    tracing::warn!(received = at, "skipping a purge the log cannot read: {err}")
                }
            }
        }
        if !page.more {
            page.through = clock.max(after.unwrap_or(0));
        }
        Ok(page)
    }
}

fn created_key(created: u64, id: &PurgeId) -> [u8; 24] {
    let mut key = [0u8; 24];
    key[..8].copy_from_slice(&created.to_be_bytes());
    key[8..].copy_from_slice(&id.0);
    key
}

fn split_created_key(key: &[u8]) -> Option<(u64, [u8; 16])> {
    let at: [u8; 8] = key.get(..8)?.try_into().ok()?;
    let id: [u8; 16] = key.get(8..)?.try_into().ok()?;
    Some((u64::from_be_bytes(at), id))
}

/// (created, received) from a `purges-1` value.
fn decode_header(value: &[u8]) -> Option<(u64, u64)> {
    if value.first() != Some(&VALUE_VERSION) {
        return None;
    }
    let created: [u8; 8] = value.get(1..9)?.try_into().ok()?;
    let received: [u8; 8] = value.get(9..17)?.try_into().ok()?;
    Some((u64::from_be_bytes(created), u64::from_be_bytes(received)))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::proxy::purge::PurgeRequest;

    const RETENTION: u64 = 10_000;

    fn purge(n: u8, created: u64) -> Purge {
        Purge {
            id: PurgeId([n; 16]),
            created,
            origin: "node-1".into(),
            select: PurgeRequest {
                urls: vec![format!("/item/{n}")],
                ..PurgeRequest::default()
            },
        }
    }

    fn open() -> (tempfile::TempDir, PurgeLog) {
        let dir = tempfile::TempDir::new().unwrap();
        let log = PurgeLog::open(&dir.path().join("purges.redb")).unwrap();
        (dir, log)
    }

    fn ids(page: &Page) -> Vec<u8> {
        page.purges.iter().map(|p| p.id.0[0]).collect()
    }

    #[test]
    fn purges_are_kept_once_and_paged_in_receive_order() {
        let (_dir, log) = open();
        let now = 1_000_000;
        assert_eq!(
            log.keep(&[purge(1, now), purge(2, now)], now, RETENTION, None)
                .unwrap(),
            2
        );
        // Known already: not kept twice, and no receive time is spent on it.
        assert_eq!(log.keep(&[purge(1, now)], now, RETENTION, None).unwrap(), 0);
        assert_eq!(
            log.keep(&[purge(3, now - 5)], now, RETENTION, None)
                .unwrap(),
            1
        );
        assert!(log.contains(&PurgeId([3; 16])).unwrap());
        assert!(!log.contains(&PurgeId([4; 16])).unwrap());
        assert_eq!(log.len().unwrap(), 3);

        let all = log.page(None, usize::MAX, now, RETENTION).unwrap();
        assert_eq!(ids(&all), [1, 2, 3]);
        assert!(!all.more);
        // Receive times are unique even within one millisecond.
        assert_eq!(all.through, now + 2);
        let none = log
            .page(Some(all.through), usize::MAX, now, RETENTION)
            .unwrap();
        assert!(none.purges.is_empty());
        assert_eq!(none.through, all.through);
        let later = log.page(Some(now), usize::MAX, now, RETENTION).unwrap();
        assert_eq!(ids(&later), [2, 3]);

        // A small budget pages; following `through` reads everything once.
        let mut after = None;
        let mut seen = Vec::new();
        loop {
            let page = log.page(after, 10, now, RETENTION).unwrap();
            assert!(page.purges.len() <= 1);
            seen.extend(ids(&page));
            after = Some(page.through);
            if !page.more {
                break;
            }
        }
        assert_eq!(seen, [1, 2, 3]);
    }

    #[test]
    fn expired_purges_are_dropped_and_the_drop_is_remembered() {
        let (_dir, log) = open();
        let t0 = 1_000_000;
        log.keep(&[purge(1, t0)], t0, RETENTION, None).unwrap();
        log.keep(&[purge(2, t0 + 5_000)], t0 + 5_000, RETENTION, None)
            .unwrap();
        // A purge already past its retention is applied by the caller but not kept,
        // so it cannot come back from this log.
        assert_eq!(
            log.keep(&[purge(3, t0)], t0 + RETENTION + 1, RETENTION, None)
                .unwrap(),
            0
        );
        let early = log
            .page(None, usize::MAX, t0 + RETENTION, RETENTION)
            .unwrap();
        assert_eq!(ids(&early), [1, 2]);
        assert_eq!(early.dropped_through, None);

        let later = log
            .page(Some(t0), usize::MAX, t0 + RETENTION + 1, RETENTION)
            .unwrap();
        assert_eq!(ids(&later), [2]);
        // Purge 1 was received at t0: a reader that had read to t0 missed nothing.
        assert_eq!(later.dropped_through, Some(t0));
        assert_eq!(log.len().unwrap(), 1);
        assert_eq!(log.prune(t0 + 100 * RETENTION, RETENTION).unwrap(), 1);
        assert_eq!(log.len().unwrap(), 0);
        assert_eq!(log.prune(t0 + 100 * RETENTION, RETENTION).unwrap(), 0);
        let empty = log
            .page(None, usize::MAX, t0 + 100 * RETENTION, RETENTION)
            .unwrap();
        assert_eq!(empty.dropped_through, Some(t0 + 5_000));
    }

    #[test]
    fn cursors_and_contact_are_kept_with_the_purges_and_survive_a_reopen() {
        let dir = tempfile::TempDir::new().unwrap();
        let path = dir.path().join("purges.redb");
        let now = 2_000_000;
        {
            let log = PurgeLog::open(&path).unwrap();
            assert_eq!(log.cursor("node-2").unwrap(), None);
            assert_eq!(log.last_contact().unwrap(), None);
            let read_to = ReadTo {
                peer: "node-2",
                through: 77,
            };
            log.keep(&[purge(9, now)], now, RETENTION, Some(read_to))
                .unwrap();
            log.close();
            assert!(matches!(log.len(), Err(LogError::Closed)));
        }
        let log = PurgeLog::open(&path).unwrap();
        assert_eq!(log.cursor("node-2").unwrap(), Some(77));
        assert_eq!(log.last_contact().unwrap(), Some(now));
        assert!(log.contains(&PurgeId([9; 16])).unwrap());
        // Receive times keep growing after a reopen, even if the clock went back.
        log.keep(&[purge(10, now)], now - 1_000, RETENTION, None)
            .unwrap();
        let page = log.page(Some(now), usize::MAX, now, RETENTION).unwrap();
        assert_eq!(ids(&page), [10]);
        assert_eq!(page.through, now + 1);
    }

    #[test]
    fn a_damaged_file_is_an_error_not_a_panic() {
        let dir = tempfile::TempDir::new().unwrap();
        let path = dir.path().join("purges.redb");
        std::fs::write(&path, vec![0x5a; 8192]).unwrap();
        assert!(matches!(PurgeLog::open(&path), Err(LogError::Database(_))));
    }
}

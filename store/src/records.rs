//! Record operations: the writer's puts and removals inside its write transaction, and
//! the lookup by key that runs on the caller's thread.
//!
//! Every record row has one `blob-records-1` row and one `record-tags-1` row per tag;
//! they are written and removed together. Rows that disagree (left by damage, or by
//! replacing an undecodable record whose tags could not be read) are dropped when met and
//! reported by fsck, never trusted: a `blob-records-1` row only removes a record that
//! points at that blob, and a tag row only one that carries that tag.

use std::fmt;

use redb::{Database, ReadableDatabase, ReadableTable, Table, WriteTransaction};

use crate::error::ReadError;
use crate::hash::Hash;
use crate::record::{
    BLOB_RECORDS, DecodedValue, KeyFilter, NewRecord, RECORD_TAGS, RECORDS, Record, RecordRef,
    blob_row, decode_value, distinct_tags, encode_value, key_prefix, record_id, show_id, split_id,
    split_tag_row, tag_prefix, tag_row,
};

/// Which records a removal takes. Arguments are validated before they reach the writer.
pub(crate) enum Selector {
    /// Every variant of exactly this key.
    Key(Vec<u8>),
    /// One (key, variant).
    Exact(Vec<u8>, Vec<u8>),
    /// Every record whose key starts with the prefix (and passes the filter, if any).
    Prefix(Vec<u8>, Option<KeyFilter>),
    /// Every record carrying the tag.
    Tag(Vec<u8>),
}

impl fmt::Debug for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        match self {
            Selector::Key(key) => f.debug_tuple("Key").field(&text(key)).finish(),
            Selector::Exact(key, variant) => f
                .debug_tuple("Exact")
                .field(&text(key))
                .field(&text(variant))
                .finish(),
            Selector::Prefix(prefix, filter) => f
                .debug_tuple("Prefix")
                .field(&text(prefix))
                .field(&filter.is_some())
                .finish(),
            Selector::Tag(tag) => f.debug_tuple("Tag").field(&text(tag)).finish(),
        }
    }
}

impl Selector {
    /// Whether the selector takes a record with this key, variant and tags.
    pub(crate) fn selects(&self, key: &[u8], variant: &[u8], tags: &[Vec<u8>]) -> bool {
        match self {
            Selector::Key(k) => k == key,
            Selector::Exact(k, v) => k == key && v == variant,
            Selector::Prefix(prefix, filter) => {
                key.starts_with(prefix)
                    && filter
                        .as_ref()
                        .is_none_or(|matches| call_filter(matches, key))
            }
            Selector::Tag(tag) => tags.contains(tag),
        }
    }
}

/// What a removal did.
#[derive(Debug, Default)]
pub(crate) struct Removal {
    /// The records removed that decoded.
    pub(crate) removed: Vec<RecordRef>,
    /// Record rows removed, undecodable ones included: what the record count drops by.
    pub(crate) rows: u64,
}

impl Removal {
    fn add(&mut self, removed: Option<Option<RecordRef>>) {
        if let Some(record) = removed {
            self.rows += 1;
            self.removed.extend(record);
        }
    }
}

/// The record tables inside one write transaction.
pub(crate) struct RecordTables<'t> {
    records: Table<'t, &'static [u8], &'static [u8]>,
    tags: Table<'t, &'static [u8], ()>,
    by_blob: Table<'t, &'static [u8], ()>,
}

impl<'t> RecordTables<'t> {
    pub(crate) fn open(txn: &'t WriteTransaction) -> Result<Self, redb::Error> {
        Ok(RecordTables {
            records: txn.open_table(RECORDS)?,
            tags: txn.open_table(RECORD_TAGS)?,
            by_blob: txn.open_table(BLOB_RECORDS)?,
        })
    }

    /// Inserts or replaces the record at (key, variant), pointing at `blob`, which the
    /// caller has found in the index in this transaction. True if it replaced one.
    pub(crate) fn put(&mut self, blob: &Hash, record: &NewRecord) -> Result<bool, redb::Error> {
        let id = record_id(&record.key, &record.variant);
        let replaced = self.remove_id(&id)?.is_some();
        let tags = distinct_tags(&record.tags);
        let value = encode_value(blob, &tags, &record.value);
        self.records.insert(id.as_slice(), value.as_slice())?;
        for tag in tags {
            self.tags.insert(tag_row(tag, &id).as_slice(), ())?;
        }
        self.by_blob.insert(blob_row(blob, &id).as_slice(), ())?;
        Ok(replaced)
    }

    /// Removes one record row with its index rows. `None` if there was none; `Some(None)`
    /// if it did not decode, in which case its index rows cannot be found and stay for
    /// fsck (or for being dropped when met).
    fn remove_id(&mut self, id: &[u8]) -> Result<Option<Option<RecordRef>>, redb::Error> {
        let Some(raw) = self.records.remove(id)? else {
            return Ok(None);
        };
        let decoded = match decode_value(raw.value()) {
            Ok(decoded) => decoded,
            Err(reason) => {
                tracing::warn!(record = %show_id(id), reason, "removed an undecodable record");
                return Ok(Some(None));
            }
        };
        for tag in &decoded.tags {
            self.tags.remove(tag_row(tag, id).as_slice())?;
        }
        self.by_blob
            .remove(blob_row(&decoded.blob, id).as_slice())?;
        Ok(Some(record_ref(id, &decoded)))
    }

    /// Removes the records a selector names.
    pub(crate) fn remove(&mut self, selector: &Selector) -> Result<Removal, redb::Error> {
        let mut removal = Removal::default();
        match selector {
            Selector::Exact(key, variant) => {
                removal.add(self.remove_id(&record_id(key, variant))?);
            }
            Selector::Key(key) => {
                for id in rows_under(&self.records, &key_prefix(key))? {
                    removal.add(self.remove_id(&id)?);
                }
            }
            Selector::Prefix(prefix, filter) => {
                for id in rows_under(&self.records, prefix)? {
                    let key = split_id(&id).map_or(id.as_slice(), |(key, _)| key);
                    if filter
                        .as_ref()
                        .is_none_or(|matches| call_filter(matches, key))
                    {
                        removal.add(self.remove_id(&id)?);
                    }
                }
            }
            Selector::Tag(tag) => {
                for row in rows_under(&self.tags, &tag_prefix(tag))? {
                    let Some((_, id)) = split_tag_row(&row) else {
                        self.tags.remove(row.as_slice())?;
                        continue;
                    };
                    let carries = match self.records.get(id)? {
                        None => false,
                        // An undecodable record is removed: a purge errs on the side of
                        // refetching.
                        Some(raw) => decode_value(raw.value()).map_or(true, |d| d.has_tag(tag)),
                    };
                    if carries {
                        removal.add(self.remove_id(id)?);
                    }
                    // Gone already if the record decoded; a stale row otherwise.
                    self.tags.remove(row.as_slice())?;
                }
            }
        }
        Ok(removal)
    }

    /// Removes every record pointing at a blob that is leaving the index. Returns the
    /// number of record rows removed.
    pub(crate) fn remove_for_blob(&mut self, hash: &Hash) -> Result<u64, redb::Error> {
        let mut removal = Removal::default();
        for row in rows_under(&self.by_blob, hash.as_bytes())? {
            let id = &row[32..];
            let points_here = match self.records.get(id)? {
                None => false,
                // Undecodable: it may point here, and a record must not outlive its blob.
                Some(raw) => decode_value(raw.value()).map_or(true, |d| d.blob == *hash),
            };
            if points_here {
                removal.add(self.remove_id(id)?);
            }
            self.by_blob.remove(row.as_slice())?;
        }
        Ok(removal.rows)
    }
}

/// Runs the caller's filter; a panic in it must not take the writer thread down with
/// it, so it counts as "no" and the removal goes on.
fn call_filter(filter: &KeyFilter, key: &[u8]) -> bool {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| filter(key))) {
        Ok(matches) => matches,
        Err(_) => {
            tracing::error!("a record key filter panicked; the record is kept");
            false
        }
    }
}

fn record_ref(id: &[u8], decoded: &DecodedValue<'_>) -> Option<RecordRef> {
    let (key, variant) = split_id(id)?;
    Some(RecordRef {
        key: key.to_vec(),
        variant: variant.to_vec(),
        blob: decoded.blob,
    })
}

/// The keys of every row starting with `prefix`, collected so the rows can then be
/// removed (a table cannot change while a range over it is open).
fn rows_under<V: redb::Value + 'static>(
    table: &impl ReadableTable<&'static [u8], V>,
    prefix: &[u8],
) -> Result<Vec<Vec<u8>>, redb::Error> {
    let mut rows = Vec::new();
    for row in table.range::<&[u8]>(prefix..)? {
        let (key, _) = row?;
        let key = key.value();
        if !key.starts_with(prefix) {
            break;
        }
        rows.push(key.to_vec());
    }
    Ok(rows)
}

/// Every variant stored under exactly `key` (validated by the caller), in one read
/// transaction. Undecodable rows are skipped with a warning: the caller sees a miss, and
/// its next put replaces the row.
pub(crate) fn lookup(db: &Database, key: &[u8]) -> Result<Vec<Record>, ReadError> {
    let txn = db.begin_read().map_err(ReadError::database)?;
    let records = txn.open_table(RECORDS).map_err(ReadError::database)?;
    let prefix = key_prefix(key);
    let mut out = Vec::new();
    for row in records
        .range::<&[u8]>(prefix.as_slice()..)
        .map_err(ReadError::database)?
    {
        let (id, value) = row.map_err(ReadError::database)?;
        let id = id.value();
        if !id.starts_with(&prefix) {
            break;
        }
        let variant = &id[prefix.len()..];
        match decode_value(value.value()) {
            Ok(decoded) => out.push(Record {
                key: key.to_vec(),
                variant: variant.to_vec(),
                blob: decoded.blob,
                tags: decoded.tags.iter().map(|t| t.to_vec()).collect(),
                value: decoded.value.to_vec(),
            }),
            Err(reason) => {
                tracing::warn!(record = %show_id(id), reason, "skipping an undecodable record");
            }
        }
    }
    Ok(out)
}

//! Offline consistency check: every object re-verified against its hash and outboard,
//! index tables cross-checked, records checked against their blobs and their index rows,
//! orphan files found; with repair on, bad objects and orphans are moved to
//! `quarantine/`, records without a blob removed, and the index and totals fixed.

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

use redb::{
    Database, ReadOnlyTable, ReadTransaction, ReadableDatabase, ReadableTable, TableDefinition,
    TableError,
};

use crate::error::FsckError;
use crate::hash::Hash;
use crate::index::{
    BLOBS, DELETES, Entry, INLINE, LRU, META, PendingFileOp, TOTALS_KEY, Totals, lru_key,
    lru_key_hash,
};
use crate::layout::{self, Layout};
use crate::record::{
    BLOB_RECORDS, RECORD_TAGS, RECORDS, RECORDS_KEY, RecordRef, blob_row, decode_count,
    decode_value, encode_count, show_id, split_blob_row, split_id, split_tag_row, tag_row,
};
use crate::startup::{self, pending_deletes};
use crate::tree::{OutboardBuilder, outboard_size};

/// What [`fsck`] found, and with repair on, fixed.
#[derive(Debug, Default)]
pub struct FsckReport {
    /// Index entries examined.
    pub checked: u64,
    /// Entries whose bytes verified.
    pub ok: u64,
    /// Objects whose bytes or index entry are damaged, with the reason.
    pub corrupt: Vec<(Hash, String)>,
    /// Index entries whose data or outboard file is missing.
    pub missing: Vec<Hash>,
    /// Files under `blobs/` that no index entry, pending delete or interrupted ingest
    /// accounts for.
    pub orphan_files: Vec<PathBuf>,
    /// Objects taken out of the index plus orphan files moved to `quarantine/`.
    pub quarantined: u64,
    /// Inconsistencies between index tables (LRU rows, record tag and blob rows,
    /// totals); fixed in repair mode.
    pub index_problems: Vec<String>,
    /// Record rows examined.
    pub records_checked: u64,
    /// Records whose blob is not in the index; removed in repair mode.
    pub dangling_records: Vec<RecordRef>,
    /// Record rows that do not decode, by their stored id (`key ‖ 0x00 ‖ variant`), with
    /// the reason; removed in repair mode.
    pub corrupt_records: Vec<(Vec<u8>, String)>,
    /// Records removed in repair mode: the dangling and corrupt ones, and those of
    /// objects taken out of the index.
    pub records_removed: u64,
}

impl FsckReport {
    /// True when nothing is wrong.
    pub fn is_clean(&self) -> bool {
        self.corrupt.is_empty()
            && self.missing.is_empty()
            && self.orphan_files.is_empty()
            && self.index_problems.is_empty()
            && self.dangling_records.is_empty()
            && self.corrupt_records.is_empty()
    }
}

/// Checks the store in `data_dir`, which must not be open by a running node. With
/// `quarantine` false it only reports; with it true it also finishes interrupted
/// operations, moves bad objects and orphans to `quarantine/`, and fixes the index.
pub fn fsck(data_dir: &Path, quarantine: bool) -> Result<FsckReport, FsckError> {
    let layout = Layout::new(data_dir);
    let db = startup::open_database(&layout.index(), false).map_err(|e| e.into_fsck())?;
    if quarantine {
        startup::recover(&db, &layout).map_err(|e| e.into_fsck())?;
    }
    let mut scan = Scan::default();
    scan.run(&db, &layout)?;
    let mut report = scan.report;
    if quarantine && !report.is_clean() {
        report.quarantined = repair(&db, &layout, &scan.fix, &report.orphan_files)?;
        report.records_removed = scan.fix.records.drop.len() as u64;
    }
    Ok(report)
}

/// What repair mode will change.
#[derive(Debug, Default)]
struct Fix {
    /// Index entries to drop, with the entry if it decoded.
    drop: Vec<(Hash, Option<Entry>)>,
    stale_lru: Vec<[u8; 40]>,
    missing_lru: Vec<[u8; 40]>,
    records: RecordFix,
    /// Totals of the entries (and records) that stay.
    kept: Totals,
}

/// A record's blob and tags: what names its `blob-records-1` and `record-tags-1` rows.
type RecordRows = (Hash, Vec<Vec<u8>>);

/// What repair mode will change in the record tables.
#[derive(Debug, Default)]
struct RecordFix {
    /// Record rows to remove, with their blob and tags if they decoded.
    drop: Vec<(Vec<u8>, Option<RecordRows>)>,
    stale_tag_rows: Vec<Vec<u8>>,
    stale_blob_rows: Vec<Vec<u8>>,
    missing_tag_rows: Vec<Vec<u8>>,
    missing_blob_rows: Vec<Vec<u8>>,
}

#[derive(Debug, Default)]
struct Scan {
    report: FsckReport,
    fix: Fix,
}

enum Problem {
    Missing,
    Corrupt(String),
}

fn db_err(err: impl Into<redb::Error>) -> FsckError {
    FsckError::Database(err.into().to_string())
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> FsckError + '_ {
    move |source| FsckError::Io {
        path: path.to_owned(),
        source,
    }
}

impl Scan {
    fn run(&mut self, db: &Database, layout: &Layout) -> Result<(), FsckError> {
        let txn = db.begin_read().map_err(db_err)?;
        let blobs = txn.open_table(BLOBS).map_err(db_err)?;
        let inline = txn.open_table(INLINE).map_err(db_err)?;
        let lru = txn.open_table(LRU).map_err(db_err)?;
        let meta = txn.open_table(META).map_err(db_err)?;
        let stored = match meta.get(TOTALS_KEY).map_err(db_err)? {
            Some(v) => Totals::decode(v.value()).map_err(FsckError::Corrupt)?,
            None => return Err(FsckError::Corrupt("the totals record is missing".into())),
        };
        self.fix.kept = stored;
        let (mut kept, mut all) = (Totals::default(), Totals::default());
        for row in blobs.iter().map_err(db_err)? {
            let (key, value) = row.map_err(db_err)?;
            let hash = Hash::from_bytes(*key.value());
            self.report.checked += 1;
            all.objects += 1;
            let entry = match Entry::decode(value.value()) {
                Ok(entry) => entry,
                Err(reason) => {
                    self.report
                        .corrupt
                        .push((hash, format!("undecodable index entry: {reason}")));
                    self.fix.drop.push((hash, None));
                    continue;
                }
            };
            all.bytes += entry.size;
            all.pinned_objects += u64::from(entry.pinned);
            let checked = if entry.is_inline() {
                check_inline(&inline, &hash, &entry)?
            } else {
                check_file(layout, &hash, &entry)
            };
            match checked {
                Ok(()) => {
                    self.report.ok += 1;
                    kept.bytes += entry.size;
                    kept.objects += 1;
                    kept.pinned_objects += u64::from(entry.pinned);
                    let key = lru_key(entry.tick, &hash);
                    if !entry.pinned && lru.get(&key).map_err(db_err)?.is_none() {
                        self.report
                            .index_problems
                            .push(format!("{hash}: no LRU row"));
                        self.fix.missing_lru.push(key);
                    }
                }
                Err(Problem::Missing) => {
                    self.report.missing.push(hash);
                    self.fix.drop.push((hash, Some(entry)));
                }
                Err(Problem::Corrupt(reason)) => {
                    self.report.corrupt.push((hash, reason));
                    self.fix.drop.push((hash, Some(entry)));
                }
            }
        }
        for row in lru.iter().map_err(db_err)? {
            let (key, _) = row.map_err(db_err)?;
            let key = *key.value();
            let hash = lru_key_hash(&key);
            let matches = blobs
                .get(hash.as_bytes())
                .map_err(db_err)?
                .and_then(|v| Entry::decode(v.value()).ok())
                .is_some_and(|e| !e.pinned && lru_key(e.tick, &hash) == key);
            if !matches {
                self.report
                    .index_problems
                    .push(format!("{hash}: LRU row without a matching entry"));
                self.fix.stale_lru.push(key);
            }
        }
        if (stored.bytes, stored.objects, stored.pinned_objects)
            != (all.bytes, all.objects, all.pinned_objects)
        {
            self.report.index_problems.push(format!(
                "totals record {} objects, {} bytes, {} pinned; the index holds {}, {}, {}",
                stored.objects,
                stored.bytes,
                stored.pinned_objects,
                all.objects,
                all.bytes,
                all.pinned_objects
            ));
        }
        self.fix.kept.bytes = kept.bytes;
        self.fix.kept.objects = kept.objects;
        self.fix.kept.pinned_objects = kept.pinned_objects;
        self.scan_records(&txn, &blobs, &meta)?;
        drop((blobs, inline, lru, meta, txn));
        self.find_orphans(db, layout)
    }

    /// Records against their blobs, and the tag and blob rows against the records. A
    /// store written before records existed has no record tables: nothing to check.
    fn scan_records(
        &mut self,
        txn: &ReadTransaction,
        blobs: &BlobsTable,
        meta: &ReadOnlyTable<&'static str, &'static [u8]>,
    ) -> Result<(), FsckError> {
        let (Some(records), Some(tags), Some(by_blob)) = (
            open_optional(txn, RECORDS)?,
            open_optional(txn, RECORD_TAGS)?,
            open_optional(txn, BLOB_RECORDS)?,
        ) else {
            return Ok(());
        };
        let dropped: HashSet<Hash> = self.fix.drop.iter().map(|(hash, _)| *hash).collect();
        let fix = &mut self.fix.records;
        let report = &mut self.report;
        let mut kept = 0;
        for row in records.iter().map_err(db_err)? {
            let (id, value) = row.map_err(db_err)?;
            let id = id.value();
            report.records_checked += 1;
            let decoded = match (split_id(id), decode_value(value.value())) {
                (Some((key, variant)), Ok(decoded)) => Ok((key, variant, decoded)),
                (None, _) => Err("malformed record id".to_owned()),
                (_, Err(reason)) => Err(reason),
            };
            let (key, variant, decoded) = match decoded {
                Ok(decoded) => decoded,
                Err(reason) => {
                    report.corrupt_records.push((id.to_vec(), reason));
                    fix.drop.push((id.to_vec(), None));
                    continue;
                }
            };
            let known: RecordRows = (
                decoded.blob,
                decoded.tags.iter().map(|t| t.to_vec()).collect(),
            );
            if blobs
                .get(decoded.blob.as_bytes())
                .map_err(db_err)?
                .is_none()
            {
                report.dangling_records.push(RecordRef {
                    key: key.to_vec(),
                    variant: variant.to_vec(),
                    blob: decoded.blob,
                });
                fix.drop.push((id.to_vec(), Some(known)));
                continue;
            }
            if dropped.contains(&decoded.blob) {
                // Goes with its blob, which repair takes out of the index.
                fix.drop.push((id.to_vec(), Some(known)));
                continue;
            }
            kept += 1;
            for tag in &decoded.tags {
                let row = tag_row(tag, id);
                if tags.get(row.as_slice()).map_err(db_err)?.is_none() {
                    report.index_problems.push(format!(
                        "record {}: no tag row for one of its tags",
                        show_id(id)
                    ));
                    fix.missing_tag_rows.push(row);
                }
            }
            let row = blob_row(&decoded.blob, id);
            if by_blob.get(row.as_slice()).map_err(db_err)?.is_none() {
                report.index_problems.push(format!(
                    "record {}: no blob-records row for {}",
                    show_id(id),
                    decoded.blob
                ));
                fix.missing_blob_rows.push(row);
            }
        }
        for row in tags.iter().map_err(db_err)? {
            let (row, _) = row.map_err(db_err)?;
            let row = row.value();
            let matches = match split_tag_row(row) {
                None => false,
                Some((tag, id)) => match records.get(id).map_err(db_err)? {
                    None => false,
                    Some(v) => decode_value(v.value()).is_ok_and(|d| d.has_tag(tag)),
                },
            };
            if !matches {
                let id = split_tag_row(row).map_or(row, |(_, id)| id);
                report.index_problems.push(format!(
                    "tag row for {}: no such record carries the tag",
                    show_id(id)
                ));
                fix.stale_tag_rows.push(row.to_vec());
            }
        }
        for row in by_blob.iter().map_err(db_err)? {
            let (row, _) = row.map_err(db_err)?;
            let row = row.value();
            let matches = match split_blob_row(row) {
                None => false,
                Some((hash, id)) => match records.get(id).map_err(db_err)? {
                    None => false,
                    Some(v) => decode_value(v.value()).is_ok_and(|d| d.blob == hash),
                },
            };
            if !matches {
                let shown = split_blob_row(row).map_or_else(
                    || "a malformed row".to_owned(),
                    |(hash, id)| format!("{hash} → {}", show_id(id)),
                );
                report.index_problems.push(format!(
                    "blob-records row {shown}: no such record points at the blob"
                ));
                fix.stale_blob_rows.push(row.to_vec());
            }
        }
        let stored = meta
            .get(RECORDS_KEY)
            .map_err(db_err)?
            .map(|v| decode_count(v.value()));
        match stored {
            Some(Ok(count)) if count == report.records_checked => {}
            // Only an index from before records lacks the row, and it has no records.
            None if report.records_checked == 0 => {}
            Some(Ok(count)) => report.index_problems.push(format!(
                "record count says {count}, the index holds {}",
                report.records_checked
            )),
            Some(Err(reason)) => report.index_problems.push(reason),
            None => report
                .index_problems
                .push("the record count row is missing".into()),
        }
        self.fix.kept.records = kept;
        Ok(())
    }

    /// Files under `blobs/` that nothing accounts for. Files of pending deletes and of
    /// ingests interrupted before their commit are not orphans: the next start-up (or
    /// fsck with repair) removes them.
    fn find_orphans(&mut self, db: &Database, layout: &Layout) -> Result<(), FsckError> {
        let mut expected: HashSet<Hash> = pending_deletes(db)
            .map_err(|e| e.into_fsck())?
            .into_iter()
            .map(|(hash, _)| hash)
            .collect();
        let tmp = layout.tmp_dir();
        if tmp.is_dir() {
            for entry in fs::read_dir(&tmp).map_err(io_err(&tmp))? {
                let name = entry.map_err(io_err(&tmp))?.file_name();
                if let Some(hash) = layout::hash_prefix(&name.to_string_lossy()) {
                    expected.insert(hash);
                }
            }
        }
        let dir = layout.blobs_dir();
        if !dir.is_dir() {
            return Ok(());
        }
        let txn = db.begin_read().map_err(db_err)?;
        let blobs = txn.open_table(BLOBS).map_err(db_err)?;
        let mut orphans = Vec::new();
        for entry in fs::read_dir(&dir).map_err(io_err(&dir))? {
            let entry = entry.map_err(io_err(&dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let accounted = match layout::parse_blob_name(&name) {
                Some((hash, _)) if expected.contains(&hash) => true,
                Some((hash, _)) => blobs
                    .get(hash.as_bytes())
                    .map_err(db_err)?
                    .and_then(|v| Entry::decode(v.value()).ok())
                    .is_some_and(|e| !e.is_inline()),
                None => false,
            };
            if !accounted {
                orphans.push(entry.path());
            }
        }
        orphans.sort();
        self.report.orphan_files = orphans;
        Ok(())
    }
}

type InlineTable = ReadOnlyTable<&'static [u8; 32], &'static [u8]>;
type BlobsTable = ReadOnlyTable<&'static [u8; 32], &'static [u8]>;

/// A table, or `None` if the index was written before it existed.
fn open_optional<K: redb::Key + 'static, V: redb::Value + 'static>(
    txn: &ReadTransaction,
    table: TableDefinition<'_, K, V>,
) -> Result<Option<ReadOnlyTable<K, V>>, FsckError> {
    match txn.open_table(table) {
        Ok(table) => Ok(Some(table)),
        Err(TableError::TableDoesNotExist(_)) => Ok(None),
        Err(err) => Err(db_err(err)),
    }
}

fn check_inline(
    inline: &InlineTable,
    hash: &Hash,
    entry: &Entry,
) -> Result<Result<(), Problem>, FsckError> {
    let Some(bytes) = inline.get(hash.as_bytes()).map_err(db_err)? else {
        return Ok(Err(Problem::Missing));
    };
    let bytes = bytes.value();
    Ok(if bytes.len() as u64 != entry.size {
        Err(Problem::Corrupt(format!(
            "inline data is {} bytes, the index says {}",
            bytes.len(),
            entry.size
        )))
    } else if blake3::hash(bytes) != blake3::Hash::from(*hash) {
        Err(Problem::Corrupt(
            "inline data does not match its hash".into(),
        ))
    } else {
        Ok(())
    })
}

/// Recomputes the outboard and root from the data file, streaming, and compares both.
fn check_file(layout: &Layout, hash: &Hash, entry: &Entry) -> Result<(), Problem> {
    let open = |path: PathBuf| match File::open(&path) {
        Ok(file) => Ok(file),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Err(Problem::Missing),
        Err(err) => Err(Problem::Corrupt(format!(
            "cannot open {}: {err}",
            path.display()
        ))),
    };
    let data = open(layout.data(hash))?;
    let outboard = open(layout.outboard(hash))?;
    let len = |file: &File| file.metadata().map(|m| m.len()).unwrap_or(u64::MAX);
    let data_len = len(&data);
    if data_len != entry.size {
        return Err(Problem::Corrupt(format!(
            "data file is {data_len} bytes, the index says {}",
            entry.size
        )));
    }
    let outboard_len = len(&outboard);
    let expected_len = outboard_size(entry.size);
    if outboard_len != expected_len {
        return Err(Problem::Corrupt(format!(
            "outboard file is {outboard_len} bytes, expected {expected_len}"
        )));
    }
    let read_error = |err: io::Error| Problem::Corrupt(format!("reading blob files: {err}"));
    let mut data = data;
    let mut outboard = BufReader::with_capacity(64 * 1024, outboard);
    let mut builder = OutboardBuilder::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut stored_pairs = Vec::new();
    let mut outboard_ok = true;
    let mut compare = |pairs: &[u8], outboard: &mut BufReader<File>| -> Result<(), Problem> {
        stored_pairs.resize(pairs.len(), 0);
        outboard.read_exact(&mut stored_pairs).map_err(read_error)?;
        outboard_ok &= stored_pairs == pairs;
        Ok(())
    };
    loop {
        let n = match data.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(read_error(err)),
        };
        builder.update(&buf[..n]);
        compare(&builder.take_pairs(), &mut outboard)?;
    }
    let (root, pairs) = builder.finalize();
    compare(&pairs, &mut outboard)?;
    if root != blake3::Hash::from(*hash) {
        Err(Problem::Corrupt("data does not match its hash".into()))
    } else if !outboard_ok {
        Err(Problem::Corrupt("outboard does not match the data".into()))
    } else {
        Ok(())
    }
}

/// Removes dangling and undecodable records and records of dropped objects, with their
/// tag and blob rows, and brings the tag and blob rows in line with the records.
fn repair_records(txn: &redb::WriteTransaction, fix: &RecordFix) -> Result<(), FsckError> {
    let mut records = txn.open_table(RECORDS).map_err(db_err)?;
    let mut tags = txn.open_table(RECORD_TAGS).map_err(db_err)?;
    let mut by_blob = txn.open_table(BLOB_RECORDS).map_err(db_err)?;
    for (id, known) in &fix.drop {
        records.remove(id.as_slice()).map_err(db_err)?;
        if let Some((blob, record_tags)) = known {
            for tag in record_tags {
                tags.remove(tag_row(tag, id).as_slice()).map_err(db_err)?;
            }
            by_blob
                .remove(blob_row(blob, id).as_slice())
                .map_err(db_err)?;
        }
    }
    for row in &fix.stale_tag_rows {
        tags.remove(row.as_slice()).map_err(db_err)?;
    }
    for row in &fix.stale_blob_rows {
        by_blob.remove(row.as_slice()).map_err(db_err)?;
    }
    for row in &fix.missing_tag_rows {
        tags.insert(row.as_slice(), ()).map_err(db_err)?;
    }
    for row in &fix.missing_blob_rows {
        by_blob.insert(row.as_slice(), ()).map_err(db_err)?;
    }
    Ok(())
}

/// Applies the fixes: one transaction for the index, then the file moves.
fn repair(
    db: &Database,
    layout: &Layout,
    fix: &Fix,
    orphans: &[PathBuf],
) -> Result<u64, FsckError> {
    let mut txn = db.begin_write().map_err(db_err)?;
    txn.set_quick_repair(true);
    {
        let mut blobs = txn.open_table(BLOBS).map_err(db_err)?;
        let mut inline = txn.open_table(INLINE).map_err(db_err)?;
        let mut lru = txn.open_table(LRU).map_err(db_err)?;
        let mut deletes = txn.open_table(DELETES).map_err(db_err)?;
        let mut meta = txn.open_table(META).map_err(db_err)?;
        for (hash, entry) in &fix.drop {
            blobs.remove(hash.as_bytes()).map_err(db_err)?;
            inline.remove(hash.as_bytes()).map_err(db_err)?;
            if let Some(entry) = entry.as_ref().filter(|e| !e.pinned) {
                lru.remove(&lru_key(entry.tick, hash)).map_err(db_err)?;
            }
            let op = PendingFileOp::Quarantine.encode();
            deletes
                .insert(hash.as_bytes(), op.as_slice())
                .map_err(db_err)?;
        }
        for key in &fix.stale_lru {
            lru.remove(key).map_err(db_err)?;
        }
        for key in &fix.missing_lru {
            lru.insert(key, ()).map_err(db_err)?;
        }
        repair_records(&txn, &fix.records)?;
        meta.insert(TOTALS_KEY, fix.kept.encode().as_slice())
            .map_err(db_err)?;
        meta.insert(RECORDS_KEY, encode_count(fix.kept.records).as_slice())
            .map_err(db_err)?;
    }
    txn.commit().map_err(db_err)?;

    let mut quarantined = fix.drop.len() as u64;
    for (hash, _) in &fix.drop {
        let data = layout.data(hash);
        layout::quarantine_files(layout, hash).map_err(io_err(&data))?;
    }
    for path in orphans {
        quarantined += u64::from(layout::move_to_quarantine(layout, path).map_err(io_err(path))?);
    }
    let blobs_dir = layout.blobs_dir();
    layout::sync_dir(&blobs_dir).map_err(io_err(&blobs_dir))?;
    if !fix.drop.is_empty() {
        let txn = db.begin_write().map_err(db_err)?;
        {
            let mut deletes = txn.open_table(DELETES).map_err(db_err)?;
            for (hash, _) in &fix.drop {
                deletes.remove(hash.as_bytes()).map_err(db_err)?;
            }
        }
        txn.commit().map_err(db_err)?;
    }
    Ok(quarantined)
}

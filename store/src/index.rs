//! The redb tables and their hand-written value encodings. Every value starts with a format
//! version byte; decoding checks lengths and flags and never panics.

use redb::TableDefinition;

use crate::hash::Hash;

/// hash → [`Entry`].
pub(crate) const BLOBS: TableDefinition<'_, &[u8; 32], &[u8]> = TableDefinition::new("blobs-1");
/// hash → the bytes of an inline blob.
pub(crate) const INLINE: TableDefinition<'_, &[u8; 32], &[u8]> = TableDefinition::new("inline-1");
/// (tick big-endian ‖ hash) → (), one row per unpinned blob; the first row is the least
/// recently used.
pub(crate) const LRU: TableDefinition<'_, &[u8; 40], ()> = TableDefinition::new("lru-1");
/// hash → [`PendingFileOp`]: blob files to unlink or quarantine once the transaction that
/// dropped the blob from the index has committed.
pub(crate) const DELETES: TableDefinition<'_, &[u8; 32], &[u8]> = TableDefinition::new("deletes-1");
/// Small named values: [`FORMAT_KEY`] and [`TOTALS_KEY`].
pub(crate) const META: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("meta-1");

pub(crate) const FORMAT_KEY: &str = "format";
pub(crate) const TOTALS_KEY: &str = "totals";
/// The on-disk layout version; a store written by another version is refused.
pub(crate) const FORMAT_VERSION: u8 = 1;

/// Blobs of at most this many bytes live in the index instead of in files.
pub(crate) const INLINE_MAX: u64 = 16 * 1024;
/// Longest content type kept.
pub(crate) const CONTENT_TYPE_MAX: usize = 255;

const ENTRY_VERSION: u8 = 1;
const FLAG_INLINE: u8 = 1;
const FLAG_PINNED: u8 = 2;
const ENTRY_FIXED: usize = 1 + 1 + 8 + 8 + 1;

/// What the index knows about one blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) size: u64,
    pub(crate) pinned: bool,
    /// The blob's key in [`LRU`] while unpinned.
    pub(crate) tick: u64,
    pub(crate) content_type: Option<String>,
}

impl Entry {
    pub(crate) fn is_inline(&self) -> bool {
        self.size <= INLINE_MAX
    }

    /// `version, flags, size u64 LE, tick u64 LE, content-type length u8, content type`.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let content_type = self.content_type.as_deref().unwrap_or("").as_bytes();
        let content_type = &content_type[..content_type.len().min(CONTENT_TYPE_MAX)];
        let mut flags = 0;
        if self.is_inline() {
            flags |= FLAG_INLINE;
        }
        if self.pinned {
            flags |= FLAG_PINNED;
        }
        let mut out = Vec::with_capacity(ENTRY_FIXED + content_type.len());
        out.push(ENTRY_VERSION);
        out.push(flags);
        out.extend_from_slice(&self.size.to_le_bytes());
        out.extend_from_slice(&self.tick.to_le_bytes());
        out.push(content_type.len() as u8);
        out.extend_from_slice(content_type);
        out
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<Entry, String> {
        if bytes.len() < ENTRY_FIXED {
            return Err(format!("index entry of {} bytes is too short", bytes.len()));
        }
        if bytes[0] != ENTRY_VERSION {
            return Err(format!("index entry has unknown version {}", bytes[0]));
        }
        let flags = bytes[1];
        if flags & !(FLAG_INLINE | FLAG_PINNED) != 0 {
            return Err(format!("index entry has unknown flags {flags:#x}"));
        }
        let size = read_u64(bytes, 2);
        let tick = read_u64(bytes, 10);
        let ct_len = usize::from(bytes[18]);
        if bytes.len() != ENTRY_FIXED + ct_len {
            return Err(format!(
                "index entry is {} bytes, its content type says {}",
                bytes.len(),
                ENTRY_FIXED + ct_len
            ));
        }
        let inline = flags & FLAG_INLINE != 0;
        if inline != (size <= INLINE_MAX) {
            return Err(format!(
                "index entry inline flag disagrees with its size {size}"
            ));
        }
        let content_type = match &bytes[ENTRY_FIXED..] {
            [] => None,
            ct => Some(
                std::str::from_utf8(ct)
                    .map_err(|_| "index entry content type is not UTF-8".to_owned())?
                    .to_owned(),
            ),
        };
        Ok(Entry {
            size,
            pinned: flags & FLAG_PINNED != 0,
            tick,
            content_type,
        })
    }
}

/// Content types are kept only if short and printable; anything else is stored as none
/// (served as the default type) rather than failing the upload.
pub(crate) fn sanitize_content_type(content_type: Option<&str>) -> Option<String> {
    let ct = content_type?.trim();
    let ok = !ct.is_empty()
        && ct.len() <= CONTENT_TYPE_MAX
        && ct.bytes().all(|b| (0x20..0x7f).contains(&b));
    if !ok {
        tracing::debug!(content_type = ?content_type, "content type not stored: empty, too long or not printable ASCII");
    }
    ok.then(|| ct.to_owned())
}

/// The LRU key of a blob: sorts by tick, then hash.
pub(crate) fn lru_key(tick: u64, hash: &Hash) -> [u8; 40] {
    let mut key = [0u8; 40];
    key[..8].copy_from_slice(&tick.to_be_bytes());
    key[8..].copy_from_slice(hash.as_bytes());
    key
}

pub(crate) fn lru_key_hash(key: &[u8; 40]) -> Hash {
    let mut hash = [0u8; 32];
    hash.copy_from_slice(&key[8..]);
    Hash::from_bytes(hash)
}

const TOTALS_VERSION: u8 = 1;
const TOTALS_LEN: usize = 1 + 9 * 8;

/// Running totals, rewritten in every write transaction so that opening never scans.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Totals {
    /// Records stored. Not part of the `totals` encoding: it has its own `meta-1` row
    /// (`record::RECORDS_KEY`), so the `totals` layout of existing stores stays as it was.
    pub(crate) records: u64,
    pub(crate) bytes: u64,
    pub(crate) objects: u64,
    pub(crate) pinned_objects: u64,
    pub(crate) next_tick: u64,
    pub(crate) evictions: u64,
    pub(crate) evicted_bytes: u64,
    pub(crate) ingests: u64,
    pub(crate) ingested_bytes: u64,
    pub(crate) corrupt_detected: u64,
}

impl Totals {
    fn fields(&self) -> [u64; 9] {
        [
            self.bytes,
            self.objects,
            self.pinned_objects,
            self.next_tick,
            self.evictions,
            self.evicted_bytes,
            self.ingests,
            self.ingested_bytes,
            self.corrupt_detected,
        ]
    }

    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(TOTALS_LEN);
        out.push(TOTALS_VERSION);
        for field in self.fields() {
            out.extend_from_slice(&field.to_le_bytes());
        }
        out
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<Totals, String> {
        if bytes.len() != TOTALS_LEN || bytes[0] != TOTALS_VERSION {
            return Err(format!(
                "totals record of {} bytes with version {:?} is not version {TOTALS_VERSION}",
                bytes.len(),
                bytes.first()
            ));
        }
        let f = |i: usize| read_u64(bytes, 1 + 8 * i);
        Ok(Totals {
            records: 0,
            bytes: f(0),
            objects: f(1),
            pinned_objects: f(2),
            next_tick: f(3),
            evictions: f(4),
            evicted_bytes: f(5),
            ingests: f(6),
            ingested_bytes: f(7),
            corrupt_detected: f(8),
        })
    }

    /// Hands out the next LRU tick.
    pub(crate) fn tick(&mut self) -> u64 {
        let tick = self.next_tick;
        self.next_tick += 1;
        tick
    }

    /// Accounts for a blob leaving the index.
    pub(crate) fn remove(&mut self, entry: &Entry) {
        self.bytes = self.bytes.saturating_sub(entry.size);
        self.objects = self.objects.saturating_sub(1);
        if entry.pinned {
            self.pinned_objects = self.pinned_objects.saturating_sub(1);
        }
    }
}

/// What to do with a dropped blob's files after the commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PendingFileOp {
    Unlink,
    Quarantine,
}

const DELETE_VERSION: u8 = 1;

impl PendingFileOp {
    pub(crate) fn encode(self) -> [u8; 2] {
        let kind = match self {
            PendingFileOp::Unlink => 1,
            PendingFileOp::Quarantine => 2,
        };
        [DELETE_VERSION, kind]
    }

    /// Undecodable records are treated as quarantine: keeping a file is the safe mistake.
    pub(crate) fn decode(bytes: &[u8]) -> PendingFileOp {
        match bytes {
            [DELETE_VERSION, 1] => PendingFileOp::Unlink,
            _ => PendingFileOp::Quarantine,
        }
    }
}

fn read_u64(bytes: &[u8], at: usize) -> u64 {
    let mut buf = [0u8; 8];
    if let Some(src) = bytes.get(at..at + 8) {
        buf.copy_from_slice(src);
    }
    u64::from_le_bytes(buf)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip() {
        for (size, pinned, ct) in [
            (0, false, None),
            (INLINE_MAX, true, Some("text/plain")),
            (INLINE_MAX + 1, false, Some("image/png")),
            (u64::MAX, true, None),
        ] {
            let entry = Entry {
                size,
                pinned,
                tick: 77,
                content_type: ct.map(str::to_owned),
            };
            assert_eq!(Entry::decode(&entry.encode()).unwrap(), entry);
        }
    }

    #[test]
    fn garbage_entries_are_errors_not_panics() {
        let good = Entry {
            size: 100_000,
            pinned: false,
            tick: 1,
            content_type: Some("a/b".into()),
        }
        .encode();
        for len in 0..good.len() {
            assert!(Entry::decode(&good[..len]).is_err(), "{len}");
        }
        let mut long = good.clone();
        long.push(0);
        assert!(Entry::decode(&long).is_err());
        let mut version = good.clone();
        version[0] = 9;
        assert!(Entry::decode(&version).is_err());
        let mut flags = good.clone();
        flags[1] = 0x80;
        assert!(Entry::decode(&flags).is_err());
        let mut inline = good.clone();
        inline[1] |= FLAG_INLINE;
        assert!(Entry::decode(&inline).is_err());
        let mut utf8 = good;
        *utf8.last_mut().unwrap() = 0xff;
        assert!(Entry::decode(&utf8).is_err());
        // Random bytes never panic.
        let mut seed = 1u64;
        for _ in 0..10_000 {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let len = (seed >> 59) as usize + 10;
            let bytes: Vec<u8> = (0..len).map(|i| (seed >> (i % 56)) as u8).collect();
            let _ = Entry::decode(&bytes);
            let _ = Totals::decode(&bytes);
        }
    }

    #[test]
    fn totals_round_trip() {
        let totals = Totals {
            records: 0,
            bytes: 1,
            objects: 2,
            pinned_objects: 3,
            next_tick: 4,
            evictions: 5,
            evicted_bytes: 6,
            ingests: 7,
            ingested_bytes: 8,
            corrupt_detected: 9,
        };
        assert_eq!(Totals::decode(&totals.encode()).unwrap(), totals);
        assert!(Totals::decode(&totals.encode()[1..]).is_err());
    }

    #[test]
    fn lru_keys_sort_by_tick() {
        let a = Hash::from_bytes([0xff; 32]);
        let b = Hash::from_bytes([0; 32]);
        assert!(lru_key(1, &a) < lru_key(2, &b));
        assert!(lru_key(255, &a) < lru_key(256, &b));
        assert_eq!(lru_key_hash(&lru_key(5, &a)), a);
    }

    #[test]
    fn content_types_are_sanitized() {
        assert_eq!(
            sanitize_content_type(Some("image/png")),
            Some("image/png".into())
        );
        assert_eq!(
            sanitize_content_type(Some(" text/plain ")),
            Some("text/plain".into())
        );
        assert_eq!(sanitize_content_type(Some("")), None);
        assert_eq!(sanitize_content_type(Some("a\nb")), None);
        assert_eq!(sanitize_content_type(Some("é")), None);
        assert_eq!(sanitize_content_type(Some(&"a".repeat(256))), None);
        assert_eq!(sanitize_content_type(None), None);
    }

    #[test]
    fn pending_ops_round_trip() {
        for op in [PendingFileOp::Unlink, PendingFileOp::Quarantine] {
            assert_eq!(PendingFileOp::decode(&op.encode()), op);
        }
        assert_eq!(PendingFileOp::decode(b""), PendingFileOp::Quarantine);
    }
}

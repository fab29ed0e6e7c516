//! Records: opaque rows that point at a blob, stored under a byte key and a variant (the
//! gateway keeps one per cached URL response; to the store they are just bytes). This
//! module holds the public types, their limits, and the three record tables with their
//! hand-written encodings; the operations on them are in `records.rs`.
//!
//! A record's id is `key ‖ 0x00 ‖ variant`. Keys never contain 0x00, so the first 0x00 of
//! an id ends the key, all variants of one key sort together under `key ‖ 0x00`, and every
//! key starting with a prefix (itself without 0x00) sorts under that prefix.

use redb::TableDefinition;

use crate::error::InvalidRecord;
use crate::hash::Hash;

/// id → [`encode_value`]: the records.
pub(crate) const RECORDS: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("records-1");
/// `tag ‖ 0x00 ‖ id` → (): which records carry a tag.
pub(crate) const RECORD_TAGS: TableDefinition<'_, &[u8], ()> =
    TableDefinition::new("record-tags-1");
/// `hash ‖ id` → (): which records point at a blob, so removing the blob finds them.
pub(crate) const BLOB_RECORDS: TableDefinition<'_, &[u8], ()> =
    TableDefinition::new("blob-records-1");
/// `meta-1` key of the record count. A row of its own rather than a field of `totals`,
/// so stores written before records existed open unchanged.
pub(crate) const RECORDS_KEY: &str = "records";

const VALUE_VERSION: u8 = 1;
const COUNT_VERSION: u8 = 1;
const SEPARATOR: u8 = 0;
/// version, blob hash, tag count.
const VALUE_FIXED: usize = 1 + 32 + 1;

/// A record to store: `value` and `tags` under `(key, variant)`, pointing at a blob.
///
/// Limits (checked before anything is written): `key` non-empty, without 0x00, at most
/// [`KEY_MAX`](Self::KEY_MAX) bytes; `variant` any bytes, at most
/// [`VARIANT_MAX`](Self::VARIANT_MAX); at most [`TAGS_MAX`](Self::TAGS_MAX) distinct tags
/// (duplicates are stored once), each non-empty, without 0x00, at most
/// [`TAG_MAX`](Self::TAG_MAX) bytes; `value` at most [`VALUE_MAX`](Self::VALUE_MAX) bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewRecord {
    /// The key the record is looked up by (the gateway's URL key).
    pub key: Vec<u8>,
    /// Distinguishes records under one key (the gateway's Vary variant); may be empty.
    pub variant: Vec<u8>,
    /// Labels the record can be removed by (the gateway's surrogate keys).
    pub tags: Vec<Vec<u8>>,
    /// Opaque bytes returned as given.
    pub value: Vec<u8>,
}

impl NewRecord {
    /// Longest key, in bytes.
    pub const KEY_MAX: usize = 8 * 1024;
    /// Longest variant, in bytes.
    pub const VARIANT_MAX: usize = 8 * 1024;
    /// Longest tag, in bytes.
    pub const TAG_MAX: usize = 1024;
    /// Most distinct tags on one record.
    pub const TAGS_MAX: usize = 64;
    /// Longest value, in bytes.
    pub const VALUE_MAX: usize = 1 << 20;

    /// Checks the limits listed on the type.
    pub fn validate(&self) -> Result<(), InvalidRecord> {
        check_key(&self.key)?;
        check_len("variant", &self.variant, Self::VARIANT_MAX)?;
        for tag in &self.tags {
            check_tag(tag)?;
        }
        let count = distinct_tags(&self.tags).len();
        if count > Self::TAGS_MAX {
            return Err(InvalidRecord::TooManyTags {
                count,
                max: Self::TAGS_MAX,
            });
        }
        check_len("value", &self.value, Self::VALUE_MAX)
    }
}

/// A stored record, as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The key it is stored under.
    pub key: Vec<u8>,
    /// Its variant under that key.
    pub variant: Vec<u8>,
    /// The blob it points at; the record is removed with the blob.
    pub blob: Hash,
    /// Its tags, distinct, in the order first given.
    pub tags: Vec<Vec<u8>>,
    /// The opaque value.
    pub value: Vec<u8>,
}

/// Names a record and the blob it pointed at: what removals return.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RecordRef {
    /// The record's key.
    pub key: Vec<u8>,
    /// Its variant.
    pub variant: Vec<u8>,
    /// The blob it pointed at.
    pub blob: Hash,
}

/// A predicate on record keys for
/// [`Store::remove_records_by_prefix`](crate::Store::remove_records_by_prefix): called
/// once per record under the prefix, with its key; the record is removed if it returns
/// true. It runs on the store's writer thread inside the write transaction, so it must be
/// quick and must not call back into the store (that would wait on itself). A filter
/// that panics keeps the record.
pub type KeyFilter = Box<dyn Fn(&[u8]) -> bool + Send>;

fn check_len(part: &'static str, bytes: &[u8], max: usize) -> Result<(), InvalidRecord> {
    if bytes.len() > max {
        return Err(InvalidRecord::TooLong {
            part,
            len: bytes.len(),
            max,
        });
    }
    Ok(())
}

fn check_no_nul(part: &'static str, bytes: &[u8]) -> Result<(), InvalidRecord> {
    if bytes.contains(&SEPARATOR) {
        return Err(InvalidRecord::NulByte { part });
    }
    Ok(())
}

pub(crate) fn check_key(key: &[u8]) -> Result<(), InvalidRecord> {
    if key.is_empty() {
        return Err(InvalidRecord::EmptyKey);
    }
    check_len("key", key, NewRecord::KEY_MAX)?;
    check_no_nul("key", key)
}

pub(crate) fn check_variant(variant: &[u8]) -> Result<(), InvalidRecord> {
    check_len("variant", variant, NewRecord::VARIANT_MAX)
}

/// A prefix may be empty (every record).
pub(crate) fn check_prefix(prefix: &[u8]) -> Result<(), InvalidRecord> {
    check_len("key prefix", prefix, NewRecord::KEY_MAX)?;
    check_no_nul("key prefix", prefix)
}

pub(crate) fn check_tag(tag: &[u8]) -> Result<(), InvalidRecord> {
    if tag.is_empty() {
        return Err(InvalidRecord::EmptyTag);
    }
    check_len("tag", tag, NewRecord::TAG_MAX)?;
    check_no_nul("tag", tag)
}

/// Tags without repeats, in the order first given (at most 64 are kept, so quadratic is
/// cheaper than hashing).
pub(crate) fn distinct_tags(tags: &[Vec<u8>]) -> Vec<&[u8]> {
    let mut out: Vec<&[u8]> = Vec::with_capacity(tags.len());
    for tag in tags {
        if !out.contains(&tag.as_slice()) {
            out.push(tag);
        }
    }
    out
}

/// `key ‖ 0x00 ‖ variant`.
pub(crate) fn record_id(key: &[u8], variant: &[u8]) -> Vec<u8> {
    let mut id = Vec::with_capacity(key.len() + 1 + variant.len());
    id.extend_from_slice(key);
    id.push(SEPARATOR);
    id.extend_from_slice(variant);
    id
}

/// Where the rows of exactly `key` start: `key ‖ 0x00`; they all begin with it.
pub(crate) fn key_prefix(key: &[u8]) -> Vec<u8> {
    record_id(key, &[])
}

/// `(key, variant)` of an id; `None` if it has no separator or an empty key.
pub(crate) fn split_id(id: &[u8]) -> Option<(&[u8], &[u8])> {
    let at = id.iter().position(|&b| b == SEPARATOR)?;
    let (key, rest) = (&id[..at], &id[at + 1..]);
    (!key.is_empty()).then_some((key, rest))
}

/// `tag ‖ 0x00 ‖ id`.
pub(crate) fn tag_row(tag: &[u8], id: &[u8]) -> Vec<u8> {
    record_id(tag, id)
}

/// Where the rows of a tag start: `tag ‖ 0x00`.
pub(crate) fn tag_prefix(tag: &[u8]) -> Vec<u8> {
    record_id(tag, &[])
}

/// `(tag, id)` of a `record-tags-1` row.
pub(crate) fn split_tag_row(row: &[u8]) -> Option<(&[u8], &[u8])> {
    let (tag, id) = split_id(row)?;
    split_id(id).map(|_| (tag, id))
}

/// `hash ‖ id`.
pub(crate) fn blob_row(hash: &Hash, id: &[u8]) -> Vec<u8> {
    let mut row = Vec::with_capacity(32 + id.len());
    row.extend_from_slice(hash.as_bytes());
    row.extend_from_slice(id);
    row
}

/// `(hash, id)` of a `blob-records-1` row.
pub(crate) fn split_blob_row(row: &[u8]) -> Option<(Hash, &[u8])> {
    let (hash, id) = row.split_first_chunk::<32>()?;
    split_id(id).map(|_| (Hash::from_bytes(*hash), id))
}

/// `version, blob hash (32), n_tags u8, (len u16 LE, tag)*, value`. `tags` must be
/// distinct and within the limits ([`NewRecord::validate`]).
pub(crate) fn encode_value(blob: &Hash, tags: &[&[u8]], value: &[u8]) -> Vec<u8> {
    let tag_bytes: usize = tags.iter().map(|t| 2 + t.len()).sum();
    let mut out = Vec::with_capacity(VALUE_FIXED + tag_bytes + value.len());
    out.push(VALUE_VERSION);
    out.extend_from_slice(blob.as_bytes());
    out.push(tags.len().min(NewRecord::TAGS_MAX) as u8);
    for tag in tags.iter().take(NewRecord::TAGS_MAX) {
        let tag = &tag[..tag.len().min(NewRecord::TAG_MAX)];
        out.extend_from_slice(&(tag.len() as u16).to_le_bytes());
        out.extend_from_slice(tag);
    }
    out.extend_from_slice(value);
    out
}

/// A decoded `records-1` value, borrowing from the stored bytes.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct DecodedValue<'a> {
    pub(crate) blob: Hash,
    pub(crate) tags: Vec<&'a [u8]>,
    pub(crate) value: &'a [u8],
}

impl DecodedValue<'_> {
    pub(crate) fn has_tag(&self, tag: &[u8]) -> bool {
        self.tags.contains(&tag)
    }
}

/// Decodes a `records-1` value, checking it against the limits a put enforces, so that
/// what comes back is something a put could have written.
pub(crate) fn decode_value(bytes: &[u8]) -> Result<DecodedValue<'_>, String> {
    let Some((&version, rest)) = bytes.split_first() else {
        return Err("record value is empty".into());
    };
    if version != VALUE_VERSION {
        return Err(format!("record value has unknown version {version}"));
    }
    let Some((hash, rest)) = rest.split_first_chunk::<32>() else {
        return Err(format!(
            "record value of {} bytes is too short",
            bytes.len()
        ));
    };
    let Some((&n_tags, mut rest)) = rest.split_first() else {
        return Err(format!(
            "record value of {} bytes is too short",
            bytes.len()
        ));
    };
    if usize::from(n_tags) > NewRecord::TAGS_MAX {
        return Err(format!("record value has {n_tags} tags"));
    }
    let mut tags: Vec<&[u8]> = Vec::with_capacity(usize::from(n_tags));
    for i in 0..n_tags {
        let Some((len, after)) = rest.split_first_chunk::<2>() else {
            return Err(format!("record value ends inside tag {i}"));
        };
        let len = usize::from(u16::from_le_bytes(*len));
        let Some((tag, after)) = after.split_at_checked(len) else {
            return Err(format!("record value ends inside tag {i}"));
        };
        check_tag(tag).map_err(|e| format!("record value tag {i}: {e}"))?;
        if tags.contains(&tag) {
            return Err(format!("record value repeats tag {i}"));
        }
        tags.push(tag);
        rest = after;
    }
    if rest.len() > NewRecord::VALUE_MAX {
        return Err(format!("record value holds {} bytes", rest.len()));
    }
    Ok(DecodedValue {
        blob: Hash::from_bytes(*hash),
        tags,
        value: rest,
    })
}

/// The `records` meta row: `version, count u64 LE`.
pub(crate) fn encode_count(count: u64) -> [u8; 9] {
    let mut out = [0u8; 9];
    out[0] = COUNT_VERSION;
    out[1..].copy_from_slice(&count.to_le_bytes());
    out
}

pub(crate) fn decode_count(bytes: &[u8]) -> Result<u64, String> {
    match bytes.split_first() {
        Some((&COUNT_VERSION, count)) if count.len() == 8 => {
            let mut buf = [0u8; 8];
            buf.copy_from_slice(count);
            Ok(u64::from_le_bytes(buf))
        }
        _ => Err(format!(
            "record count row of {} bytes is not version {COUNT_VERSION}",
            bytes.len()
        )),
    }
}

/// A record id shown in logs and reports: the key and variant, escaped.
pub(crate) fn show_id(id: &[u8]) -> String {
    match split_id(id) {
        Some((key, variant)) => format!(
            "{} (variant {})",
            id_text(key),
            if variant.is_empty() {
                "empty".to_owned()
            } else {
                id_text(variant)
            }
        ),
        None => format!("malformed id {}", id_text(id)),
    }
}

fn id_text(bytes: &[u8]) -> String {
    let shown: String = bytes
        .iter()
        .take(200)
        .flat_map(|&b| std::ascii::escape_default(b))
        .map(char::from)
        .collect();
    if bytes.len() > 200 {
        format!("\"{shown}…\"")
    } else {
        format!("\"{shown}\"")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn blob() -> Hash {
        Hash::from(blake3::hash(b"body"))
    }

    fn record() -> NewRecord {
        NewRecord {
            key: b"/a?b\x01host".to_vec(),
            variant: b"gzip\0br".to_vec(),
            tags: vec![b"t1".to_vec(), b"t2".to_vec(), b"t1".to_vec()],
            value: b"status and headers".to_vec(),
        }
    }

    #[test]
    fn values_round_trip() {
        let r = record();
        r.validate().unwrap();
        let tags = distinct_tags(&r.tags);
        assert_eq!(tags, [b"t1".as_slice(), b"t2"]);
        let bytes = encode_value(&blob(), &tags, &r.value);
        let decoded = decode_value(&bytes).unwrap();
        assert_eq!(decoded.blob, blob());
        assert_eq!(decoded.tags, tags);
        assert_eq!(decoded.value, r.value);
        assert!(decoded.has_tag(b"t2") && !decoded.has_tag(b"t3"));

        let empty = encode_value(&blob(), &[], &[]);
        assert_eq!(empty.len(), VALUE_FIXED);
        let decoded = decode_value(&empty).unwrap();
        assert!(decoded.tags.is_empty() && decoded.value.is_empty());

        let max_tags: Vec<Vec<u8>> = (0..NewRecord::TAGS_MAX)
            .map(|i| vec![b'a' + (i % 26) as u8; NewRecord::TAG_MAX - i])
            .collect();
        let max_value = vec![7u8; NewRecord::VALUE_MAX];
        let tags = distinct_tags(&max_tags);
        assert_eq!(tags.len(), NewRecord::TAGS_MAX);
        let bytes = encode_value(&blob(), &tags, &max_value);
        let decoded = decode_value(&bytes).unwrap();
        assert_eq!(decoded.tags, tags);
        assert_eq!(decoded.value.len(), NewRecord::VALUE_MAX);
    }

    #[test]
    fn ids_and_rows_split_back() {
        let id = record_id(b"key", b"var\0iant");
        assert_eq!(
            split_id(&id),
            Some((b"key".as_slice(), b"var\0iant".as_slice()))
        );
        assert!(id.starts_with(&key_prefix(b"key")));
        // A longer key that merely starts with this one is not under its prefix.
        assert!(!record_id(b"keyx", b"").starts_with(&key_prefix(b"key")));
        assert_eq!(split_id(b"no separator"), None);
        assert_eq!(split_id(b"\0empty key"), None);

        let row = tag_row(b"tag", &id);
        assert!(row.starts_with(&tag_prefix(b"tag")));
        assert_eq!(
            split_tag_row(&row),
            Some((b"tag".as_slice(), id.as_slice()))
        );
        assert_eq!(split_tag_row(b"tag\0no-id-separator"), None);

        let row = blob_row(&blob(), &id);
        assert_eq!(split_blob_row(&row), Some((blob(), id.as_slice())));
        assert_eq!(split_blob_row(&row[..31]), None);
        assert_eq!(split_blob_row(&row[..34]), None);

        assert_eq!(decode_count(&encode_count(42)).unwrap(), 42);
        assert!(decode_count(&encode_count(42)[..8]).is_err());
        assert!(decode_count(&[]).is_err());
        assert!(decode_count(&[2, 0, 0, 0, 0, 0, 0, 0, 0]).is_err());
        assert!(show_id(&id).contains("key"), "{}", show_id(&id));
        assert!(show_id(b"x").contains("malformed"));
    }

    #[test]
    fn limits_are_enforced() {
        let bad = |f: fn(&mut NewRecord)| {
            let mut r = record();
            f(&mut r);
            r.validate().unwrap_err()
        };
        assert_eq!(bad(|r| r.key.clear()), InvalidRecord::EmptyKey);
        assert_eq!(
            bad(|r| r.key.push(0)),
            InvalidRecord::NulByte { part: "key" }
        );
        assert!(matches!(
            bad(|r| r.key = vec![b'k'; NewRecord::KEY_MAX + 1]),
            InvalidRecord::TooLong { part: "key", .. }
        ));
        assert!(matches!(
            bad(|r| r.variant = vec![0; NewRecord::VARIANT_MAX + 1]),
            InvalidRecord::TooLong {
                part: "variant",
                ..
            }
        ));
        assert_eq!(bad(|r| r.tags.push(Vec::new())), InvalidRecord::EmptyTag);
        assert_eq!(
            bad(|r| r.tags.push(b"a\0b".to_vec())),
            InvalidRecord::NulByte { part: "tag" }
        );
        assert!(matches!(
            bad(|r| r.tags.push(vec![b't'; NewRecord::TAG_MAX + 1])),
            InvalidRecord::TooLong { part: "tag", .. }
        ));
        assert!(matches!(
            bad(|r| r.tags = (0..=NewRecord::TAGS_MAX)
                .map(|i| i.to_string().into())
                .collect()),
            InvalidRecord::TooManyTags { count: 65, .. }
        ));
        assert!(matches!(
            bad(|r| r.value = vec![0; NewRecord::VALUE_MAX + 1]),
            InvalidRecord::TooLong { part: "value", .. }
        ));
        // Repeats do not count against the tag limit.
        let mut r = record();
        r.tags = vec![b"same".to_vec(); 200];
        r.validate().unwrap();
        r.key = vec![b'k'; NewRecord::KEY_MAX];
        r.variant = vec![0; NewRecord::VARIANT_MAX];
        r.validate().unwrap();
        check_prefix(b"").unwrap();
        assert!(check_prefix(b"a\0").is_err());
    }

    #[test]
    fn truncated_and_damaged_values_are_errors_not_panics() {
        let r = record();
        let good = encode_value(&blob(), &distinct_tags(&r.tags), &r.value);
        // Every cut that ends inside the fixed part or a tag is refused; cuts inside
        // the value decode to a shorter value, which is all the format can tell.
        let value_starts = good.len() - r.value.len();
        for len in 0..value_starts {
            assert!(decode_value(&good[..len]).is_err(), "{len}");
        }
        for len in value_starts..=good.len() {
            assert_eq!(
                decode_value(&good[..len]).unwrap().value.len(),
                len - value_starts
            );
        }
        let mut version = good.clone();
        version[0] = 2;
        assert!(decode_value(&version).is_err());
        let mut many = good.clone();
        many[33] = 65;
        assert!(decode_value(&many).is_err());
        let mut nul_tag = good.clone();
        nul_tag[36] = 0;
        assert!(decode_value(&nul_tag).is_err());
        let mut empty_tag = good.clone();
        empty_tag[34..36].copy_from_slice(&0u16.to_le_bytes());
        assert!(decode_value(&empty_tag).is_err());
        let repeated = encode_value(&blob(), &[b"x", b"x"], b"");
        assert!(decode_value(&repeated).is_err());
        let mut huge = encode_value(&blob(), &[], b"");
        huge.resize(huge.len() + NewRecord::VALUE_MAX + 1, 1);
        assert!(decode_value(&huge).is_err());

        // Random bytes, and random damage to a good value, never panic.
        let mut seed = 7u64;
        let mut next = || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            seed
        };
        for _ in 0..20_000 {
            let len = (next() >> 56) as usize;
            let bytes: Vec<u8> = (0..len).map(|_| (next() >> 33) as u8).collect();
            let _ = decode_value(&bytes);
            let _ = decode_count(&bytes);
            let _ = split_id(&bytes);
            let _ = split_tag_row(&bytes);
            let _ = split_blob_row(&bytes);
            let _ = show_id(&bytes);
            let mut damaged = good.clone();
            let at = (next() >> 40) as usize % damaged.len();
            damaged[at] = (next() >> 24) as u8;
            damaged.truncate((next() >> 40) as usize % (good.len() + 1));
            let _ = decode_value(&damaged);
            // Forcing a valid version and a small tag count reaches the tag loop.
            if bytes.len() > VALUE_FIXED {
                let mut forced = bytes.clone();
                forced[0] = VALUE_VERSION;
                forced[33] %= 4;
                let _ = decode_value(&forced);
            }
        }
    }
}

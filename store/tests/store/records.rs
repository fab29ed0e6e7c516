//! Records: URL entries attached to blobs.

use crate::support::{KIB, data_file, new_record, open, options, pattern, put, read_all};
use std::fs;
use std::os::unix::fs::FileExt;

use fleetcache_store::{
    Hash, IngestError, InvalidRecord, NewRecord, ReadError, Record, RecordRef, Store, WriteError,
    fsck,
};
use redb::{ReadableDatabase, ReadableTable, TableDefinition};

const RECORDS: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("records-1");
const RECORD_TAGS: TableDefinition<'_, &[u8], ()> = TableDefinition::new("record-tags-1");
const BLOB_RECORDS: TableDefinition<'_, &[u8], ()> = TableDefinition::new("blob-records-1");
const META: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("meta-1");

fn keys(removed: &[RecordRef]) -> Vec<(String, String)> {
    let mut keys: Vec<_> = removed
        .iter()
        .map(|r| {
            (
                String::from_utf8(r.key.clone()).unwrap(),
                String::from_utf8(r.variant.clone()).unwrap(),
            )
        })
        .collect();
    keys.sort();
    keys
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// Puts `key` with one record pointing at `hash`.
fn put_one(store: &Store, hash: Hash, key: &str, tags: &[&str]) {
    store
        .put_record(hash, new_record(key, "", tags, key))
        .unwrap();
}

#[test]
fn records_round_trip_with_variants_and_replace() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let plain = put(&store, b"plain body");
    let gzip = put(&store, &pattern(100 * KIB, 1));
    let key = "/page?q=1\x01example.com";
    assert!(store.records(key.as_bytes()).unwrap().is_empty());

    assert!(
        !store
            .put_record(plain, new_record(key, "", &["page", "site"], "v-plain"))
            .unwrap()
    );
    assert!(
        !store
            .put_record(gzip, new_record(key, "gzip", &["page"], "v-gzip"))
            .unwrap()
    );
    // A variant may hold any bytes, 0x00 included.
    let mut binary = new_record(key, "", &[], "v-binary");
    binary.variant = vec![0, 0xff, 0];
    assert!(!store.put_record(plain, binary).unwrap());
    assert_eq!(store.stats().records, 3);

    let records = store.records(key.as_bytes()).unwrap();
    let expected = vec![
        Record {
            key: key.into(),
            variant: vec![],
            blob: plain,
            tags: vec![b"page".to_vec(), b"site".to_vec()],
            value: b"v-plain".to_vec(),
        },
        Record {
            key: key.into(),
            variant: vec![0, 0xff, 0],
            blob: plain,
            tags: vec![],
            value: b"v-binary".to_vec(),
        },
        Record {
            key: key.into(),
            variant: b"gzip".to_vec(),
            blob: gzip,
            tags: vec![b"page".to_vec()],
            value: b"v-gzip".to_vec(),
        },
    ];
    assert_eq!(records, expected);
    // Reading records is not a read of the blob.
    let blob = store.get(&records[2].blob).unwrap().unwrap();
    assert_eq!(read_all(&blob), pattern(100 * KIB, 1));

    // Replacing moves the record to another blob and drops its old tags.
    assert!(
        store
            .put_record(gzip, new_record(key, "", &["new", "new"], "v-replaced"))
            .unwrap()
    );
    assert_eq!(store.stats().records, 3);
    let replaced = &store.records(key.as_bytes()).unwrap()[0];
    assert_eq!(replaced.blob, gzip);
    assert_eq!(replaced.tags, vec![b"new".to_vec()], "tags stored once");
    assert_eq!(replaced.value, b"v-replaced");
    assert!(store.remove_records_by_tag(b"site").unwrap().is_empty());
    assert_eq!(
        keys(&store.remove_records_by_tag(b"page").unwrap()),
        pairs(&[(key, "gzip")])
    );
    // Deleting the old blob no longer touches the replaced record.
    assert!(store.delete(&plain).unwrap());
    assert_eq!(store.records(key.as_bytes()).unwrap().len(), 1);
    assert_eq!(store.stats().records, 1);
    store.close().unwrap();
    assert!(fsck(dir.path(), false).unwrap().is_clean());
}

#[test]
fn records_returns_only_rows_of_exactly_that_key() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let hash = put(&store, b"shared body");
    for key in ["/a", "/a/b", "/ab", "/a\x01", "/", "/a\x7f"] {
        put_one(&store, hash, key, &[]);
        store
            .put_record(hash, new_record(key, "v", &[], key))
            .unwrap();
    }
    for key in ["/a", "/a/b", "/ab", "/a\x01", "/"] {
        let records = store.records(key.as_bytes()).unwrap();
        assert_eq!(records.len(), 2, "{key:?}");
        assert!(records.iter().all(|r| r.key == key.as_bytes()), "{key:?}");
        assert_eq!(records[0].variant, b"");
        assert_eq!(records[1].variant, b"v");
    }
    assert!(store.records(b"/a/").unwrap().is_empty());
    assert!(store.records(b"/x").unwrap().is_empty());
    assert_eq!(store.stats().records, 12);
}

#[test]
fn removal_by_key_variant_prefix_and_tag() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let hash = put(&store, &pattern(20 * KIB, 2));
    for (key, tags) in [
        ("/img/1.png", &["img", "p1"][..]),
        ("/img/2.png", &["img", "p2"]),
        ("/img/3.jpg", &["img"]),
        ("/imgx", &["p1"]),
        ("/other", &["p2"]),
        ("/keep", &[]),
    ] {
        put_one(&store, hash, key, tags);
        store
            .put_record(hash, new_record(key, "br", tags, key))
            .unwrap();
    }
    assert_eq!(store.stats().records, 12);

    // Exact (key, variant), then every variant of a key.
    let removed = store.remove_record(b"/keep", b"br").unwrap().unwrap();
    assert_eq!(
        removed,
        RecordRef {
            key: b"/keep".to_vec(),
            variant: b"br".to_vec(),
            blob: hash
        }
    );
    assert_eq!(store.remove_record(b"/keep", b"br").unwrap(), None);
    assert_eq!(
        keys(&store.remove_records(b"/keep").unwrap()),
        pairs(&[("/keep", "")])
    );
    assert!(store.remove_records(b"/keep").unwrap().is_empty());
    // A key that is a prefix of others takes only its own rows.
    assert!(store.remove_records(b"/img").unwrap().is_empty());

    // Prefix with a filter on the key.
    let removed = store
        .remove_records_by_prefix(b"/img/", Some(Box::new(|key| key.ends_with(b".png"))))
        .unwrap();
    assert_eq!(
        keys(&removed),
        pairs(&[
            ("/img/1.png", ""),
            ("/img/1.png", "br"),
            ("/img/2.png", ""),
            ("/img/2.png", "br")
        ])
    );
    assert_eq!(store.records(b"/img/3.jpg").unwrap().len(), 2);
    assert_eq!(store.records(b"/imgx").unwrap().len(), 2);
    // A filter that panics keeps its records and leaves the store working.
    let removed = store
        .remove_records_by_prefix(b"/img/", Some(Box::new(|_| panic!("filter bug"))))
        .unwrap();
    assert!(removed.is_empty());
    assert_eq!(store.records(b"/img/3.jpg").unwrap().len(), 2);

    // Prefix without a filter: "/img" also covers "/imgx".
    let removed = store.remove_records_by_prefix(b"/img", None).unwrap();
    assert_eq!(
        keys(&removed),
        pairs(&[
            ("/img/3.jpg", ""),
            ("/img/3.jpg", "br"),
            ("/imgx", ""),
            ("/imgx", "br")
        ])
    );
    assert_eq!(store.stats().records, 2);

    // Tags of removed records went with them.
    assert!(store.remove_records_by_tag(b"img").unwrap().is_empty());
    assert!(store.remove_records_by_tag(b"p1").unwrap().is_empty());
    assert_eq!(
        keys(&store.remove_records_by_tag(b"p2").unwrap()),
        pairs(&[("/other", ""), ("/other", "br")])
    );
    assert_eq!(store.stats().records, 0);

    // The empty prefix is every record; removing records never removes blobs.
    put_one(&store, hash, "/a", &[]);
    put_one(&store, hash, "/b", &[]);
    assert_eq!(store.remove_records_by_prefix(b"", None).unwrap().len(), 2);
    assert!(store.contains(&hash).unwrap());
    assert_eq!(store.stats().objects, 1);
    store.close().unwrap();
    assert!(fsck(dir.path(), false).unwrap().is_clean());
}

#[test]
fn deleting_a_blob_removes_its_records_and_tag_rows() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let doomed = put(&store, &pattern(50 * KIB, 3));
    let inline = put(&store, b"small and inline");
    let kept = put(&store, b"kept");
    put_one(&store, doomed, "/a", &["t"]);
    store
        .put_record(doomed, new_record("/a", "v2", &["t", "u"], ""))
        .unwrap();
    put_one(&store, inline, "/b", &["t"]);
    put_one(&store, kept, "/c", &["t", "u"]);
    assert!(store.delete(&doomed).unwrap());
    assert!(store.records(b"/a").unwrap().is_empty());
    assert_eq!(store.stats().records, 2);
    assert!(store.delete(&inline).unwrap());
    assert!(store.records(b"/b").unwrap().is_empty());
    assert_eq!(
        keys(&store.remove_records_by_tag(b"t").unwrap()),
        pairs(&[("/c", "")])
    );
    assert!(store.remove_records_by_tag(b"u").unwrap().is_empty());
    assert_eq!(store.stats().records, 0);
    store.close().unwrap();
    let report = fsck(dir.path(), false).unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(report.records_checked, 0, "no tag or blob rows left over");
    let db = redb::Database::open(dir.path().join("index.redb")).unwrap();
    let txn = db.begin_read().unwrap();
    assert_eq!(
        txn.open_table(RECORD_TAGS).unwrap().iter().unwrap().count(),
        0
    );
    assert_eq!(
        txn.open_table(BLOB_RECORDS)
            .unwrap()
            .iter()
            .unwrap()
            .count(),
        0
    );
}

#[test]
fn put_record_needs_the_blob_in_the_index() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let never = Hash::from(blake3::hash(b"never stored"));
    match store.put_record(never, new_record("/a", "", &[], "")) {
        Err(WriteError::BlobNotFound { hash }) => assert_eq!(hash, never),
        other => panic!("expected BlobNotFound, got {other:?}"),
    }
    let gone = put(&store, b"deleted soon");
    assert!(store.delete(&gone).unwrap());
    let err = store
        .put_record(gone, new_record("/a", "", &[], ""))
        .unwrap_err();
    assert!(err.to_string().contains("not in the store"), "{err}");
    assert!(store.records(b"/a").unwrap().is_empty());
    assert_eq!(store.stats().records, 0);
}

#[test]
fn attached_records_commit_with_the_ingest_and_on_dedup() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    for (i, size) in [0, 100, 16 * KIB, 16 * KIB + 1, 300 * KIB]
        .into_iter()
        .enumerate()
    {
        let data = pattern(size, 10 + i as u64);
        let key = format!("/obj/{size}");
        let mut ingest = store.ingest(Some("text/plain")).unwrap();
        ingest.write(&data).unwrap();
        ingest
            .attach_record(new_record(&key, "", &["first"], "one"))
            .unwrap();
        let outcome = ingest.finish().unwrap();
        assert!(!outcome.already_present);
        let records = store.records(key.as_bytes()).unwrap();
        assert_eq!(records.len(), 1, "size {size}");
        assert_eq!(records[0].blob, outcome.hash);

        // The same body again under another key: deduplicated, record still put.
        let mut ingest = store.ingest(None).unwrap();
        ingest.write(&data).unwrap();
        ingest
            .attach_record(new_record(&key, "again", &["second"], "two"))
            .unwrap();
        let again = ingest.finish().unwrap();
        assert!(again.already_present, "size {size}");
        assert_eq!(again.hash, outcome.hash);
        let records = store.records(key.as_bytes()).unwrap();
        assert_eq!(records.len(), 2, "size {size}");
        assert!(records.iter().all(|r| r.blob == outcome.hash));
    }
    assert_eq!(store.stats().records, 10);
    assert_eq!(store.stats().objects, 5);

    // A verified ingest (a fill from peers) carries a record too.
    let source_dir = tempfile::tempdir().unwrap();
    let source = open(source_dir.path());
    let data = pattern(200 * KIB + 5, 77);
    let hash = put(&source, &data);
    let mut encoded = Vec::new();
    source
        .get(&hash)
        .unwrap()
        .unwrap()
        .encode_ranges(&bao_tree::ChunkRanges::all(), &mut encoded)
        .unwrap();
    let mut ingest = store.ingest_verified(hash, data.len() as u64).unwrap();
    ingest
        .attach_record(new_record("/verified", "", &[], "v"))
        .unwrap();
    let tree = bao_tree::BaoTree::new(data.len() as u64, fleetcache_store::BLOCK_SIZE);
    let root = bao_tree::blake3::Hash::from_bytes(*hash.as_bytes());
    let all = bao_tree::ChunkRanges::all();
    for item in bao_tree::io::sync::DecodeResponseIter::new(root, tree, &encoded[..], &all) {
        match item.unwrap() {
            bao_tree::io::BaoContentItem::Parent(parent) => {
                ingest.save_pair(parent.node, &parent.pair).unwrap();
            }
            bao_tree::io::BaoContentItem::Leaf(leaf) => ingest.write(&leaf.data).unwrap(),
        }
    }
    assert_eq!(ingest.finish().unwrap().hash, hash);
    assert_eq!(store.records(b"/verified").unwrap()[0].blob, hash);

    // A failed ingest puts no record.
    let mut ingest = store.ingest_verified(hash, 10).unwrap();
    ingest
        .attach_record(new_record("/failed", "", &[], ""))
        .unwrap();
    ingest.write(b"0123456789").unwrap();
    assert!(ingest.finish().is_err());
    // Nor does an abandoned one.
    let mut ingest = store.ingest(None).unwrap();
    ingest
        .attach_record(new_record("/abandoned", "", &[], ""))
        .unwrap();
    ingest.write(&pattern(100 * KIB, 5)).unwrap();
    drop(ingest);
    assert!(store.records(b"/failed").unwrap().is_empty());
    assert!(store.records(b"/abandoned").unwrap().is_empty());
    assert_eq!(store.stats().records, 11);
    store.close().unwrap();
    assert!(fsck(dir.path(), false).unwrap().is_clean());
}

#[test]
fn a_removal_withdraws_matching_records_of_open_ingests() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let open_ingest = |key: &str, variant: &str, tags: &[&str], seed: u64| {
        let mut ingest = store.ingest(None).unwrap();
        ingest.write(&pattern(40 * KIB, seed)).unwrap();
        ingest
            .attach_record(new_record(key, variant, tags, "v"))
            .unwrap();
        ingest
    };
    // Each removal kind, while the ingest is open, against one that matches
    // and one that does not.
    type Removal = Box<dyn Fn(&Store)>;
    let cases: [(&str, Removal); 4] = [
        (
            "key",
            Box::new(|s: &Store| drop(s.remove_records(b"/a/hit").unwrap())),
        ),
        (
            "exact",
            Box::new(|s: &Store| drop(s.remove_record(b"/a/hit", b"gz").unwrap())),
        ),
        (
            "prefix",
            Box::new(|s: &Store| drop(s.remove_records_by_prefix(b"/a/", None).unwrap())),
        ),
        (
            "tag",
            Box::new(|s: &Store| drop(s.remove_records_by_tag(b"red").unwrap())),
        ),
    ];
    for (i, (kind, remove)) in cases.iter().enumerate() {
        let seed = 100 + 2 * i as u64;
        let hit = open_ingest("/a/hit", "gz", &["red"], seed);
        let miss = open_ingest("/b/miss", "gz", &["blue"], seed + 1);
        remove(&store);
        let hit_hash = hit.finish().unwrap().hash;
        miss.finish().unwrap();
        // The object is stored; only the record the removal selected is gone.
        assert!(store.get(&hit_hash).unwrap().is_some(), "{kind}");
        assert!(store.records(b"/a/hit").unwrap().is_empty(), "{kind}");
        assert_eq!(store.records(b"/b/miss").unwrap().len(), 1, "{kind}");
        assert!(store.remove_records(b"/b/miss").is_ok());
    }
    // A removal before the attach does not withdraw a record attached after it.
    store.remove_records(b"/late").unwrap();
    let late = open_ingest("/late", "", &[], 200);
    late.finish().unwrap();
    assert_eq!(store.records(b"/late").unwrap().len(), 1);
    // Nor does a withdrawn record leak into a deduplicated ingest of the same body.
    let again = open_ingest("/a/hit", "gz", &["red"], 100);
    store.remove_records_by_tag(b"red").unwrap();
    assert!(again.finish().unwrap().already_present);
    assert!(store.records(b"/a/hit").unwrap().is_empty());
    store.close().unwrap();
    assert!(fsck(dir.path(), false).unwrap().is_clean());
}

#[test]
fn eviction_removes_records_with_their_blobs() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(options(dir.path(), 1 << 20)).unwrap();
    let mut stored = Vec::new();
    for i in 0..20 {
        let key = format!("/evict/{i}");
        let mut ingest = store.ingest(None).unwrap();
        ingest.write(&pattern(100 * KIB, 100 + i)).unwrap();
        ingest
            .attach_record(new_record(&key, "", &["all"], ""))
            .unwrap();
        stored.push((key, ingest.finish().unwrap().hash));
    }
    assert!(store.stats().evictions > 0);
    let mut present = 0;
    for (key, hash) in &stored {
        let records = store.records(key.as_bytes()).unwrap();
        if store.contains(hash).unwrap() {
            present += 1;
            assert_eq!(records.len(), 1, "{key}");
        } else {
            assert!(records.is_empty(), "{key} outlived its evicted blob");
        }
    }
    assert!(present > 0 && present < stored.len());
    assert_eq!(store.stats().records, present as u64);
    assert_eq!(
        store.remove_records_by_tag(b"all").unwrap().len(),
        present,
        "tag rows of evicted records are gone"
    );
    store.close().unwrap();
    assert!(fsck(dir.path(), false).unwrap().is_clean());
}

#[test]
fn quarantine_removes_records() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let hash = put(&store, &pattern(100 * KIB, 4));
    put_one(&store, hash, "/bad", &["t"]);
    put_one(&store, hash, "/bad2", &[]);
    let file = fs::OpenOptions::new()
        .write(true)
        .open(data_file(dir.path(), &hash))
        .unwrap();
    file.write_all_at(b"garbage", 50 * KIB as u64).unwrap();
    let blob = store.get(&hash).unwrap().unwrap();
    assert!(matches!(
        blob.read_verified(0, usize::MAX),
        Err(ReadError::Corrupt { .. })
    ));
    assert!(store.records(b"/bad").unwrap().is_empty());
    assert!(store.records(b"/bad2").unwrap().is_empty());
    assert!(store.remove_records_by_tag(b"t").unwrap().is_empty());
    assert_eq!(store.stats().records, 0);
    assert_eq!(store.stats().corrupt_detected, 1);
}

#[test]
fn records_survive_close_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let (hash, before) = {
        let store = open(dir.path());
        let hash = put(&store, &pattern(40 * KIB, 6));
        for i in 0..5 {
            store
                .put_record(hash, new_record("/r", &i.to_string(), &["t"], "value"))
                .unwrap();
        }
        let before = store.records(b"/r").unwrap();
        assert_eq!(store.stats().records, 5);
        store.close().unwrap();
        (hash, before)
    };
    let store = open(dir.path());
    assert_eq!(store.stats().records, 5);
    assert_eq!(store.records(b"/r").unwrap(), before);
    assert!(store.delete(&hash).unwrap());
    assert_eq!(store.stats().records, 0);
}

#[test]
fn invalid_keys_tags_and_values_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let hash = put(&store, b"body");
    let invalid = |record: NewRecord| match store.put_record(hash, record) {
        Err(WriteError::InvalidRecord(err)) => err,
        other => panic!("expected InvalidRecord, got {other:?}"),
    };
    assert_eq!(
        invalid(new_record("", "", &[], "")),
        InvalidRecord::EmptyKey
    );
    assert_eq!(
        invalid(new_record("a\0b", "", &[], "")),
        InvalidRecord::NulByte { part: "key" }
    );
    assert!(matches!(
        invalid(new_record(&"k".repeat(8 * KIB + 1), "", &[], "")),
        InvalidRecord::TooLong { part: "key", .. }
    ));
    assert!(matches!(
        invalid(new_record("k", &"v".repeat(8 * KIB + 1), &[], "")),
        InvalidRecord::TooLong {
            part: "variant",
            ..
        }
    ));
    assert_eq!(
        invalid(new_record("k", "", &[""], "")),
        InvalidRecord::EmptyTag
    );
    assert_eq!(
        invalid(new_record("k", "", &["a\0"], "")),
        InvalidRecord::NulByte { part: "tag" }
    );
    assert!(matches!(
        invalid(new_record("k", "", &[&"t".repeat(KIB + 1)], "")),
        InvalidRecord::TooLong { part: "tag", .. }
    ));
    let many: Vec<String> = (0..65).map(|i| i.to_string()).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    assert!(matches!(
        invalid(new_record("k", "", &many, "")),
        InvalidRecord::TooManyTags { count: 65, max: 64 }
    ));
    let mut big = new_record("k", "", &[], "");
    big.value = vec![0; (1 << 20) + 1];
    let err = invalid(big);
    assert!(err.to_string().contains("value"), "{err}");
    // At the limits is fine.
    let mut limits = new_record(&"k".repeat(8 * KIB), &"v".repeat(8 * KIB), &many[..64], "");
    limits.value = vec![0; 1 << 20];
    limits.tags[63] = vec![b't'; KIB];
    store.put_record(hash, limits).unwrap();

    assert!(matches!(
        store.records(b""),
        Err(ReadError::InvalidRecord(InvalidRecord::EmptyKey))
    ));
    assert!(matches!(
        store.records(b"a\0"),
        Err(ReadError::InvalidRecord(_))
    ));
    assert!(matches!(
        store.remove_records(b"a\0"),
        Err(WriteError::InvalidRecord(_))
    ));
    assert!(matches!(
        store.remove_record(b"a", &vec![0; 8 * KIB + 1]),
        Err(WriteError::InvalidRecord(_))
    ));
    assert!(matches!(
        store.remove_records_by_prefix(b"/a\0", None),
        Err(WriteError::InvalidRecord(_))
    ));
    assert!(matches!(
        store.remove_records_by_tag(b""),
        Err(WriteError::InvalidRecord(_))
    ));

    // A refused attachment leaves the ingest usable.
    let mut ingest = store.ingest(None).unwrap();
    ingest.write(b"still fine").unwrap();
    assert!(matches!(
        ingest.attach_record(new_record("", "", &[], "")),
        Err(IngestError::InvalidRecord(InvalidRecord::EmptyKey))
    ));
    ingest
        .attach_record(new_record("/ok", "", &[], ""))
        .unwrap();
    let hash = ingest.finish().unwrap().hash;
    assert_eq!(store.records(b"/ok").unwrap()[0].blob, hash);
    assert_eq!(store.stats().records, 2);
}

#[test]
fn concurrent_record_writes_share_commits_with_ingests() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let shared = put(&store, b"shared");
    std::thread::scope(|s| {
        for t in 0..8 {
            let store = store.clone();
            s.spawn(move || {
                for i in 0..25 {
                    let key = format!("/t{t}/{i}");
                    if i % 2 == 0 {
                        put_one(&store, shared, &key, &["even"]);
                    } else {
                        let mut ingest = store.ingest(None).unwrap();
                        ingest.write(&pattern(20 * KIB, t * 1000 + i)).unwrap();
                        ingest
                            .attach_record(new_record(&key, "", &["odd"], ""))
                            .unwrap();
                        ingest.finish().unwrap();
                    }
                }
            });
        }
    });
    assert_eq!(store.stats().records, 200);
    assert_eq!(store.remove_records_by_tag(b"even").unwrap().len(), 104);
    assert_eq!(
        store.remove_records_by_prefix(b"/t3/", None).unwrap().len(),
        12
    );
    assert_eq!(store.stats().records, 84);
    store.close().unwrap();
    assert!(fsck(dir.path(), false).unwrap().is_clean());
}

/// A hand-encoded `records-1` value, as the store writes it.
fn encoded_record(blob: &Hash, tags: &[&[u8]], value: &[u8]) -> Vec<u8> {
    let mut out = vec![1];
    out.extend_from_slice(blob.as_bytes());
    out.push(tags.len() as u8);
    for tag in tags {
        out.extend_from_slice(&(tag.len() as u16).to_le_bytes());
        out.extend_from_slice(tag);
    }
    out.extend_from_slice(value);
    out
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

#[test]
fn fsck_finds_dangling_records_and_stray_rows_and_repairs_them() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path();
    let (good, doomed) = {
        let store = open(path);
        let good = put(&store, &pattern(30 * KIB, 8));
        let doomed = put(&store, &pattern(30 * KIB, 9));
        put_one(&store, good, "/good", &["g", "h"]);
        put_one(&store, doomed, "/doomed", &["d"]);
        store.close().unwrap();
        (good, doomed)
    };
    assert!(fsck(path, false).unwrap().is_clean());

    let ghost = Hash::from(blake3::hash(b"never stored"));
    {
        let db = redb::Database::open(path.join("index.redb")).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut records = txn.open_table(RECORDS).unwrap();
            let mut tags = txn.open_table(RECORD_TAGS).unwrap();
            let mut by_blob = txn.open_table(BLOB_RECORDS).unwrap();
            // A record pointing at a blob that was never stored, with its rows.
            records
                .insert(
                    b"/ghost\0v".as_slice(),
                    encoded_record(&ghost, &[b"x"], b"value").as_slice(),
                )
                .unwrap();
            tags.insert(b"x\0/ghost\0v".as_slice(), ()).unwrap();
            by_blob
                .insert(cat(&[ghost.as_bytes(), b"/ghost\0v"]).as_slice(), ())
                .unwrap();
            // A record that does not decode.
            records
                .insert(b"/garbage\0".as_slice(), [9u8, 9, 9].as_slice())
                .unwrap();
            // Rows naming no record, and a record missing one of its tag rows.
            tags.insert(b"stale\0/nothing\0".as_slice(), ()).unwrap();
            by_blob
                .insert(cat(&[good.as_bytes(), b"/nothing\0"]).as_slice(), ())
                .unwrap();
            assert!(tags.remove(b"h\0/good\0".as_slice()).unwrap().is_some());
        }
        txn.commit().unwrap();
    }
    // And a blob whose data file went missing: its record goes with it in repair.
    fs::remove_file(data_file(path, &doomed)).unwrap();

    let report = fsck(path, false).unwrap();
    assert!(!report.is_clean());
    assert_eq!(report.records_checked, 4);
    assert_eq!(
        report.dangling_records,
        vec![RecordRef {
            key: b"/ghost".to_vec(),
            variant: b"v".to_vec(),
            blob: ghost
        }]
    );
    assert_eq!(report.corrupt_records.len(), 1);
    assert_eq!(report.corrupt_records[0].0, b"/garbage\0");
    assert_eq!(report.missing, vec![doomed]);
    let problems = report.index_problems.join("\n");
    for expected in [
        "no tag row",
        "tag row for \"/nothing\"",
        "blob-records row",
        "record count says 2, the index holds 4",
    ] {
        assert!(
            problems.contains(expected),
            "{expected:?} not in {problems}"
        );
    }
    // The ghost's own rows match it, so they are not reported, only removed.
    assert_eq!(report.index_problems.len(), 4, "{problems}");
    assert_eq!(report.records_removed, 0, "a dry run changes nothing");

    let report = fsck(path, true).unwrap();
    assert_eq!(report.records_removed, 3);
    let again = fsck(path, false).unwrap();
    assert!(again.is_clean(), "{again:?}");
    assert_eq!(again.records_checked, 1);

    let db = redb::Database::open(path.join("index.redb")).unwrap();
    let txn = db.begin_read().unwrap();
    let tag_rows: Vec<Vec<u8>> = txn
        .open_table(RECORD_TAGS)
        .unwrap()
        .iter()
        .unwrap()
        .map(|row| row.unwrap().0.value().to_vec())
        .collect();
    assert_eq!(
        tag_rows,
        vec![b"g\0/good\0".to_vec(), b"h\0/good\0".to_vec()]
    );
    let blob_rows = txn
        .open_table(BLOB_RECORDS)
        .unwrap()
        .iter()
        .unwrap()
        .count();
    assert_eq!(blob_rows, 1);
    drop((txn, db));

    let store = open(path);
    assert_eq!(store.stats().records, 1);
    assert_eq!(store.records(b"/good").unwrap()[0].blob, good);
    assert!(store.records(b"/doomed").unwrap().is_empty());
    assert_eq!(store.remove_records_by_tag(b"h").unwrap().len(), 1);
}

#[test]
fn a_store_from_before_records_opens_and_checks_clean() {
    let dir = tempfile::tempdir().unwrap();
    let hash = {
        let store = open(dir.path());
        let hash = put(&store, &pattern(20 * KIB, 12));
        store.close().unwrap();
        hash
    };
    // What an index written before records looked like.
    {
        let db = redb::Database::open(dir.path().join("index.redb")).unwrap();
        let txn = db.begin_write().unwrap();
        assert!(txn.delete_table(RECORDS).unwrap());
        assert!(txn.delete_table(RECORD_TAGS).unwrap());
        assert!(txn.delete_table(BLOB_RECORDS).unwrap());
        txn.open_table(META).unwrap().remove("records").unwrap();
        txn.commit().unwrap();
    }
    let report = fsck(dir.path(), false).unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(report.records_checked, 0);

    let store = open(dir.path());
    assert_eq!(store.stats().records, 0);
    assert_eq!(store.stats().objects, 1);
    put_one(&store, hash, "/new", &["t"]);
    store.close().unwrap();
    let store = open(dir.path());
    assert_eq!(store.stats().records, 1);
    assert_eq!(store.records(b"/new").unwrap()[0].blob, hash);
    store.close().unwrap();
    assert!(fsck(dir.path(), false).unwrap().is_clean());
}

#[test]
fn the_records_version_moves_with_every_record_write_and_only_then() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let blob = put(&store, &pattern(40 * KIB, 1));
    let other = put(&store, b"other");
    let mut seen = store.records_version();
    let mut moved = |store: &Store, what: &str| {
        let now = store.records_version();
        let moved = now != seen;
        seen = now;
        assert!(moved, "{what} did not move the version");
    };
    store
        .put_record(blob, new_record("k", "a", &["t"], "1"))
        .unwrap();
    moved(&store, "a new record");
    store
        .put_record(blob, new_record("k", "a", &["t"], "2"))
        .unwrap();
    moved(&store, "a replaced record");
    store
        .put_record(other, new_record("j", "", &["u"], "3"))
        .unwrap();
    moved(&store, "a record of another blob");

    // Reads, pins and writes that touch no record leave it alone.
    let unchanged = store.records_version();
    drop(store.get(&blob).unwrap());
    assert_eq!(store.records("k".as_bytes()).unwrap().len(), 1);
    store.set_pinned(&blob, true).unwrap();
    store.set_pinned(&blob, false).unwrap();
    put(&store, b"unrelated");
    assert!(store.remove_records(b"absent").unwrap().is_empty());
    store.flush().unwrap();
    assert_eq!(store.records_version(), unchanged);

    let mut seen = unchanged;
    let mut moved = |store: &Store, what: &str| {
        let now = store.records_version();
        assert_ne!(now, seen, "{what} did not move the version");
        seen = now;
    };
    assert_eq!(store.remove_records_by_tag(b"u").unwrap().len(), 1);
    moved(&store, "a removal by tag");
    assert!(store.delete(&blob).unwrap());
    moved(&store, "deleting a blob that had a record");
    assert!(store.records("k".as_bytes()).unwrap().is_empty());
}

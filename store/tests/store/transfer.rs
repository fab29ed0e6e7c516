//! Moving objects between nodes: the verified ingest that stores what a peer
//! sent without hashing it again (the encoding a node sends is in encoding.rs).

use std::fs;

use bao_tree::BaoTree;
use fleetcache_store::{Hash, IngestError};

use crate::support::{KIB, count_files, open, outboard_file, pattern, put, read_all};

const GROUP: usize = 16 * KIB;

/// Every item bao-tree's decoder yields for an encoding of `ranges`, each verified.
pub(crate) fn decoded(
    hash: &Hash,
    size: u64,
    ranges: &bao_tree::ChunkRanges,
    encoded: &[u8],
) -> Vec<bao_tree::io::BaoContentItem> {
    let tree = BaoTree::new(size, fleetcache_store::BLOCK_SIZE);
    let root = bao_tree::blake3::Hash::from_bytes(*hash.as_bytes());
    bao_tree::io::sync::DecodeResponseIter::new(root, tree, encoded, ranges)
        .map(Result::unwrap)
        .collect()
}

#[test]
fn an_ingest_reads_back_what_it_has_written() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let data = pattern(700 * KIB + 5, 4);
    let mut ingest = store.ingest(None).unwrap();
    for piece in data.chunks(50_000) {
        ingest.write(piece).unwrap();
        let written = ingest.bytes_written();
        for offset in [0, written / 3, written.saturating_sub(70_000), written] {
            let got = ingest.read_written(offset, 100_000).unwrap();
            let end = (offset as usize + 100_000).min(written as usize);
            assert_eq!(got[..], data[offset as usize..end]);
        }
    }
    assert!(ingest.read_written(data.len() as u64 + 1, 1).is_err());
    ingest.finish().unwrap();
}

/// Feeds a verified ingest what bao-tree's decoder yields for the whole object.
/// Leaves go in one `write` each, or (`leaves_per_write` > 1) in vectored writes
/// of that many, as a fill batches them.
fn feed_decoded(
    ingest: &mut fleetcache_store::Ingest,
    hash: &Hash,
    data: &[u8],
    encoded: &[u8],
    leaves_per_write: usize,
) {
    let all = bao_tree::ChunkRanges::all();
    let mut leaves = Vec::new();
    let write = |leaves: &mut Vec<bytes::Bytes>, ingest: &mut fleetcache_store::Ingest| {
        let run: Vec<&[u8]> = leaves.iter().map(|leaf| &leaf[..]).collect();
        ingest.write_vectored(&run).unwrap();
        leaves.clear();
    };
    for item in decoded(hash, data.len() as u64, &all, encoded) {
        match item {
            bao_tree::io::BaoContentItem::Parent(parent) => {
                ingest.save_pair(parent.node, &parent.pair).unwrap();
            }
            bao_tree::io::BaoContentItem::Leaf(leaf) if leaves_per_write == 1 => {
                ingest.write(&leaf.data).unwrap();
            }
            bao_tree::io::BaoContentItem::Leaf(leaf) => {
                leaves.push(leaf.data);
                if leaves.len() == leaves_per_write {
                    write(&mut leaves, ingest);
                }
            }
        }
    }
    write(&mut leaves, ingest);
}

#[test]
fn a_verified_ingest_stores_the_given_tree_without_rehashing() {
    let source_dir = tempfile::tempdir().unwrap();
    let source = open(source_dir.path());
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    // The last: 2,559 pairs, written in several batches, each sorted into runs.
    for (len, leaves_per_write) in [
        (0, 1),
        (5000, 1),
        (GROUP, 1),
        (GROUP + 1, 1),
        (300 * KIB + 7, 1),
        (3 << 20, 1),
        (2560 * GROUP - 100, 16),
    ] {
        let data = pattern(len, 40 + len as u64);
        let hash = put(&source, &data);
        let mut encoded = Vec::new();
        let blob = source.get(&hash).unwrap().unwrap();
        blob.encode_ranges(&bao_tree::ChunkRanges::all(), &mut encoded)
            .unwrap();
        let mut ingest = store.ingest_verified(hash, len as u64).unwrap();
        feed_decoded(&mut ingest, &hash, &data, &encoded, leaves_per_write);
        let outcome = ingest.finish().unwrap();
        assert_eq!(outcome.hash, hash);
        let stored = store.get(&hash).unwrap().unwrap();
        assert_eq!(read_all(&stored), data, "len {len}");
        if len > 16 * KIB {
            let given = fs::read(outboard_file(dir.path(), &hash)).unwrap();
            let hashed = fs::read(outboard_file(source_dir.path(), &hash)).unwrap();
            assert!(
                given == hashed,
                "len {len}: outboard differs from a hashing ingest"
            );
        }
    }
}

#[test]
fn a_verified_ingest_refuses_what_does_not_add_up() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let data = pattern(200 * KIB, 41);
    let hash = put(&open(tempfile::tempdir().unwrap().path()), &data);

    // All bytes, no pairs.
    let mut ingest = store.ingest_verified(hash, data.len() as u64).unwrap();
    ingest.write(&data).unwrap();
    let err = ingest.finish().unwrap_err();
    assert!(
        matches!(err, IngestError::Inconsistent(ref m) if m.contains("never arrived")),
        "{err}"
    );

    // More bytes than promised.
    let mut ingest = store.ingest_verified(hash, 10).unwrap();
    assert!(matches!(
        ingest.write(&data[..11]),
        Err(IngestError::Inconsistent(_))
    ));

    // A small object that hashes to something else.
    let mut ingest = store.ingest_verified(hash, 5).unwrap();
    ingest.write(b"hello").unwrap();
    assert!(matches!(ingest.finish(), Err(IngestError::Inconsistent(_))));

    // Fewer bytes than promised.
    let mut ingest = store.ingest_verified(hash, data.len() as u64 + 1).unwrap();
    ingest.write(&data).unwrap();
    assert!(matches!(ingest.finish(), Err(IngestError::Inconsistent(_))));
    assert_eq!(
        store.stats().objects,
        0,
        "nothing inconsistent was committed"
    );
    assert_eq!(
        count_files(&dir.path().join("tmp")),
        0,
        "temp files left behind"
    );
}

#[test]
fn vectored_writes_store_what_plain_writes_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    // Small enough to stay inline, past the gathering buffer, and with more parts
    // than one `writev` takes.
    for (len, part) in [(5000, 700), (3 << 20, 16 * KIB + 3), (2 << 20, 1000)] {
        let data = pattern(len, 60 + len as u64);
        let mut ingest = store.ingest(None).unwrap();
        let parts: Vec<&[u8]> = data
            .chunks(part)
            .flat_map(|chunk| [chunk, &[][..]])
            .collect();
        for run in parts.chunks(1500) {
            ingest.write_vectored(run).unwrap();
        }
        assert_eq!(ingest.bytes_written(), len as u64);
        let hash = ingest.finish().unwrap().hash;
        assert_eq!(hash, put(&open(tempfile::tempdir().unwrap().path()), &data));
        assert_eq!(read_all(&store.get(&hash).unwrap().unwrap()), data);
    }
}

//! The pre-order encoding a node sends to peers and `?format=bao` clients: it
//! must be bao-tree's encoding byte for byte (its decoder reads it on the other
//! side), verified as it is made, and honest about whose fault a failure is.

use bao_tree::io::outboard::PostOrderMemOutboard;
use bao_tree::{ChunkNum, ChunkRanges};
use bytes::Bytes;
use fleetcache_store::{Blob, ReadError};
use rand::{Rng, SeedableRng};

use crate::support::{KIB, data_file, flip_byte, open, outboard_file, pattern, put};
use crate::transfer::decoded;

const GROUP: usize = 16 * KIB;

/// bao-tree's own validated encoding of `ranges` of `data`.
fn reference(data: &[u8], ranges: &ChunkRanges) -> Vec<u8> {
    let outboard = PostOrderMemOutboard::create(data, fleetcache_store::BLOCK_SIZE);
    let mut encoded = Vec::new();
    bao_tree::io::sync::encode_ranges_validated(data, &outboard, ranges, &mut encoded).unwrap();
    encoded
}

fn pieces(blob: &Blob, ranges: &ChunkRanges) -> Vec<Bytes> {
    let mut pieces = Vec::new();
    blob.encode_ranges_with(ranges, |piece| {
        pieces.push(piece);
        Ok(())
    })
    .unwrap();
    pieces
}

/// Ranges of every shape the traversal treats differently: everything, open and
/// closed, past the end, one chunk, several ranges, ends on and off group
/// boundaries, plus random ones.
fn range_cases(chunks: u64, rng: &mut impl Rng) -> Vec<ChunkRanges> {
    let c = ChunkNum;
    let last = chunks.saturating_sub(1);
    let mut cases = vec![
        ChunkRanges::all(),
        ChunkRanges::empty(),
        ChunkRanges::from(c(u64::MAX)..),
        ChunkRanges::from(c(last)..),
        ChunkRanges::from(c(last + 5)..c(last + 9)),
        ChunkRanges::from(c(0)..c(1)),
        ChunkRanges::from(c(17)..c(40)),
        ChunkRanges::from(c(16)..c(32)),
        ChunkRanges::from(c(3)..c(chunks)),
        ChunkRanges::from(c(0)..c(last)),
        ChunkRanges::from(c(0)..c(3)) | ChunkRanges::from(c(20)..c(21)),
        ChunkRanges::from(c(5)..c(6)) | ChunkRanges::from(c(last + 1)..),
        ChunkRanges::from(c(1)..c(2)) | ChunkRanges::from(c(last)..c(last + 1)),
    ];
    for _ in 0..12 {
        let mut ranges = ChunkRanges::empty();
        for _ in 0..rng.random_range(1..4) {
            let start = rng.random_range(0..chunks + 3);
            let end = start + rng.random_range(1..40);
            ranges |= ChunkRanges::from(c(start)..c(end));
        }
        cases.push(ranges);
    }
    cases
}

#[test]
fn encoded_ranges_are_bao_trees_encoding_and_decode_against_the_hash() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    // Inline and file blobs; partial chunks and groups; a group across the 1 MiB
    // data slabs; more pairs than one 64 KiB outboard slab holds (past 16 MiB).
    for len in [
        0,
        1,
        1000,
        1024,
        1025,
        GROUP - 1,
        GROUP,
        GROUP + 1,
        5 * GROUP + 77,
        (1 << 20) + 3000,
        (17 << 20) + 5,
    ] {
        let data = pattern(len, len as u64);
        let hash = put(&store, &data);
        let blob = store.get(&hash).unwrap().unwrap();
        let chunks = (len as u64).div_ceil(1024).max(1);
        for ranges in range_cases(chunks, &mut rng) {
            let pieces = pieces(&blob, &ranges);
            let encoded: Vec<u8> = pieces.iter().flat_map(|p| p.iter().copied()).collect();
            assert!(
                encoded == reference(&data, &ranges),
                "len {len} ranges {ranges:?}: not bao-tree's encoding"
            );
            let mut written = Vec::new();
            blob.encode_ranges(&ranges, &mut written).unwrap();
            assert!(written == encoded, "len {len} ranges {ranges:?}: writer");
            if ranges.is_empty() {
                continue;
            }
            let mut leaves = 0;
            for item in decoded(&hash, len as u64, &ranges, &encoded) {
                if let bao_tree::io::BaoContentItem::Leaf(leaf) = item {
                    let at = leaf.offset as usize;
                    assert_eq!(leaf.data, data[at..at + leaf.data.len()], "len {len}");
                    leaves += 1;
                }
            }
            assert!(leaves > 0, "len {len} ranges {ranges:?}: nothing decoded");
        }
    }
}

#[test]
fn a_whole_object_is_handed_over_as_its_groups_and_pair_runs() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let data = pattern(40 * GROUP + 100, 5);
    let hash = put(&store, &data);
    let blob = store.get(&hash).unwrap().unwrap();
    let pieces = pieces(&blob, &ChunkRanges::all());
    let groups: Vec<&Bytes> = pieces
        .iter()
        .filter(|p| p.len() % 64 != 0 || p.len() == GROUP)
        .collect();
    assert_eq!(groups.len(), 41, "one piece per group");
    for (i, group) in groups.iter().enumerate() {
        let at = i * GROUP;
        assert!(
            group[..] == data[at..(at + GROUP).min(data.len())],
            "group {i}"
        );
    }
    let pairs: usize = pieces
        .iter()
        .filter(|p| p.len() % 64 == 0 && p.len() != GROUP)
        .map(|p| p.len())
        .sum();
    assert_eq!(pairs, 40 * 64, "every pair of the tree, once");
}

#[test]
fn encoding_a_corrupt_file_fails_and_quarantines() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let data = pattern(300 * KIB, 9);
    let hash = put(&store, &data);
    flip_byte(&data_file(dir.path(), &hash), 200 * KIB as u64);
    let blob = store.get(&hash).unwrap().unwrap();
    let mut encoded = Vec::new();
    let err = blob
        .encode_ranges(&ChunkRanges::all(), &mut encoded)
        .unwrap_err();
    assert!(
        matches!(err, ReadError::Corrupt { offset, .. } if offset == 192 * KIB as u64),
        "{err}"
    );
    assert!(encoded.len() < 200 * KIB, "bytes past the damage were sent");
    assert!(store.get(&hash).unwrap().is_none(), "not quarantined");
}

#[test]
fn encoding_with_a_corrupt_outboard_fails_and_quarantines() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let hash = put(&store, &pattern(300 * KIB, 10));
    // The outboard is post-order: its last pair is the root's.
    let outboard = outboard_file(dir.path(), &hash);
    let len = std::fs::metadata(&outboard).unwrap().len();
    flip_byte(&outboard, len - 1);
    let blob = store.get(&hash).unwrap().unwrap();
    let mut encoded = Vec::new();
    let err = blob
        .encode_ranges(&ChunkRanges::all(), &mut encoded)
        .unwrap_err();
    assert!(matches!(err, ReadError::Corrupt { .. }), "{err}");
    assert!(encoded.is_empty(), "sent bytes under a bad root pair");
    assert!(store.get(&hash).unwrap().is_none(), "not quarantined");
}

#[test]
fn encoding_reports_a_failing_output_as_output() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let hash = put(&store, &pattern(100 * KIB, 3));
    let blob = store.get(&hash).unwrap().unwrap();
    let err = blob
        .encode_ranges_with(&ChunkRanges::all(), |_| {
            Err(std::io::Error::other("peer went away"))
        })
        .unwrap_err();
    assert!(matches!(err, ReadError::Output(_)), "{err}");
    assert!(
        store.get(&hash).unwrap().is_some(),
        "a failing output must not quarantine"
    );
}

#[test]
fn batches_hold_the_pieces_in_order_and_the_verified_ones_before_a_failure() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let data = pattern(300 * KIB, 11);
    let hash = put(&store, &data);
    let blob = store.get(&hash).unwrap().unwrap();
    let batch = 100 * KIB;
    let mut batches = Vec::new();
    blob.encode_ranges_batched(&ChunkRanges::all(), batch, |pieces| {
        batches.push(pieces);
        Ok(())
    })
    .unwrap();
    let len = |pieces: &[Bytes]| pieces.iter().map(Bytes::len).sum::<usize>();
    let (last, full) = batches.split_last().unwrap();
    assert!(
        full.iter()
            .all(|b| len(b) >= batch && len(b) < batch + GROUP + 64 * 8)
    );
    assert!(!last.is_empty());
    let joined: Vec<u8> = batches.iter().flatten().flatten().copied().collect();
    assert!(joined == reference(&data, &ChunkRanges::all()));

    // A damaged group: everything before it is handed over, then the error.
    flip_byte(&data_file(dir.path(), &hash), 200 * KIB as u64);
    let blob = store.get(&hash).unwrap().unwrap();
    let mut handed = Vec::new();
    let err = blob
        .encode_ranges_batched(&ChunkRanges::all(), batch, |pieces| {
            handed.extend(pieces);
            Ok(())
        })
        .unwrap_err();
    assert!(matches!(err, ReadError::Corrupt { .. }), "{err}");
    let handed: Vec<u8> = handed.iter().flatten().copied().collect();
    let good = reference(&data, &ChunkRanges::all());
    // Up to the damaged group (192 KiB) with its pairs: more than one batch.
    assert!(handed.len() > batch && handed.len() < 200 * KIB + 64 * 16);
    assert!(handed[..] == good[..handed.len()], "a verified prefix");

    // A failing hand-over stops the encoder and is not retried.
    let other = tempfile::tempdir().unwrap();
    let store = open(other.path());
    let hash = put(&store, &data);
    let blob = store.get(&hash).unwrap().unwrap();
    let mut calls = 0;
    let err = blob
        .encode_ranges_batched(&ChunkRanges::all(), batch, |_| {
            calls += 1;
            Err(std::io::Error::other("went away"))
        })
        .unwrap_err();
    assert!(matches!(err, ReadError::Output(_)), "{err}");
    assert_eq!(calls, 1);
}

//! The shape of a verifiable response, from the tree geometry alone (sans-IO):
//! which chunk groups a byte range selects, how long their encoding is, and
//! the entity tag that names it. The server and `fleetcache get` share this,
//! so both sides agree on what a `Range` selects.

// Selections are lists of byte ranges, and a list of one range is the common
// case, not a mistaken `(a..b).collect()`.
#![allow(clippy::single_range_in_vec_init)]

use std::fmt::Write as _;
use std::ops::Range;

use bao_tree::io::sync::truncate_ranges;
use bao_tree::iter::BaoChunk;
use bao_tree::{BaoTree, ChunkNum, ChunkRanges};
use fleetcache_store::{BLOCK_SIZE, Hash};

/// Bytes in a chunk group: the unit that is verified, sent and resumed from.
const GROUP: u64 = 16 * 1024;

/// Bytes in a BLAKE3 chunk, the unit of bao-tree's `ChunkNum`.
const CHUNK: u64 = 1024;

/// Bytes of the size that prefixes every body (little-endian `u64`).
const SIZE_PREFIX: u64 = 8;

/// What a request selects of an object: the chunk groups covering its byte
/// ranges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Selection {
    /// The object's bytes the selected groups cover: ascending, disjoint,
    /// non-adjacent, each within the object.
    spans: Vec<Range<u64>>,
    /// The same groups as bao-tree chunk ranges, the last one open-ended when
    /// it reaches the end (the form bao-tree's encoder and decoder use).
    ranges: ChunkRanges,
    size: u64,
}

impl Selection {
    /// The whole object.
    pub(crate) fn whole(size: u64) -> Selection {
        Selection {
            spans: if size == 0 { Vec::new() } else { vec![0..size] },
            ranges: ChunkRanges::all(),
            size,
        }
    }

    /// The groups covering `byte_ranges` (each non-empty and within `size`),
    /// merged where they touch. `None` if no range selects a byte.
    pub(crate) fn covering(byte_ranges: &[Range<u64>], size: u64) -> Option<Selection> {
        let mut rounded: Vec<Range<u64>> = byte_ranges
            .iter()
            .filter(|r| r.start < r.end && r.start < size)
            .map(|r| {
                let start = r.start / GROUP * GROUP;
                let end = r.end.min(size).div_ceil(GROUP).saturating_mul(GROUP);
                start..end.min(size)
            })
            .collect();
        if rounded.is_empty() {
            return None;
        }
        rounded.sort_by_key(|r| r.start);
        let mut spans: Vec<Range<u64>> = Vec::with_capacity(rounded.len());
        for span in rounded {
            match spans.last_mut() {
                Some(last) if span.start <= last.end => last.end = last.end.max(span.end),
                _ => spans.push(span),
            }
        }
        if spans == [0..size] {
            return Some(Selection::whole(size));
        }
        let mut ranges = ChunkRanges::empty();
        for span in &spans {
            let start = ChunkNum(span.start / CHUNK);
            ranges |= if span.end == size {
                ChunkRanges::from(start..)
            } else {
                ChunkRanges::from(start..ChunkNum(span.end / CHUNK))
            };
        }
        Some(Selection {
            spans,
            ranges,
            size,
        })
    }

    /// Whether the selection is the whole object (the plain `?format=bao` body).
    pub(crate) fn is_whole(&self) -> bool {
        self.ranges == ChunkRanges::all()
    }

    /// The chunk ranges to encode and to decode with.
    pub(crate) fn ranges(&self) -> &ChunkRanges {
        &self.ranges
    }

    /// The object's bytes the selected groups cover.
    #[cfg(test)]
    pub(crate) fn spans(&self) -> &[Range<u64>] {
        &self.spans
    }

    /// Bytes of the encoding of the selected groups, without the size prefix:
    /// every hash pair on the way from the root to them (64 bytes each) and
    /// their data. `None` for chunk ranges that cut into a group, which a
    /// selection never has.
    pub(crate) fn encoded_len(&self) -> Option<u64> {
        encoded_len(self.size, &self.ranges)
    }

    /// `Content-Length` of the response body: the size prefix and the encoding.
    pub(crate) fn body_len(&self) -> Option<u64> {
        Some(SIZE_PREFIX + self.encoded_len()?)
    }

    /// The strong entity tag of the body: `"<hash>.bao"` for the whole object,
    /// else `"<hash>.bao.<first>-<last>"` with the inclusive byte span of the
    /// groups sent (spans joined by `_`). Requests whose ranges round to the
    /// same groups get the same body, so they share the tag.
    pub(crate) fn etag(&self, hash: &Hash) -> String {
        let mut tag = format!("\"{hash}.bao");
        if !self.is_whole() {
            tag.push('.');
            for (i, span) in self.spans.iter().enumerate() {
                if i > 0 {
                    tag.push('_');
                }
                let _ = write!(tag, "{}-{}", span.start, span.end - 1);
            }
        }
        tag.push('"');
        tag
    }

    /// The spans as a header value: `bytes 0-16383,32768-40000/40001`, the
    /// inclusive spans of the object the groups cover, and the size.
    pub(crate) fn header(&self) -> String {
        let mut value = String::from("bytes ");
        for (i, span) in self.spans.iter().enumerate() {
            if i > 0 {
                value.push(',');
            }
            let _ = write!(value, "{}-{}", span.start, span.end - 1);
        }
        let _ = write!(value, "/{}", self.size);
        value
    }
}

/// Bytes of bao-tree's pre-order encoding of `ranges` of an object of `size`
/// bytes in 16 KiB groups, counted from the tree geometry without any data:
/// 64 bytes per hash pair visited plus the data of each group. `None` if a
/// range cuts into a group (the encoder would then send the group's inner
/// tree, which this does not count).
pub(crate) fn encoded_len(size: u64, ranges: &ChunkRanges) -> Option<u64> {
    let tree = BaoTree::new(size, BLOCK_SIZE);
    let ranges = truncate_ranges(ranges, size);
    let mut len = 0u64;
    // With the highest `min_full_level`, a subtree the ranges cover entirely
    // comes as one leaf instead of all its nodes: the count costs the tree's
    // depth per range boundary, not a step per group of a large object.
    for chunk in tree.ranges_pre_order_chunks_iter_ref(ranges, u8::MAX) {
        len += match chunk {
            BaoChunk::Parent { .. } => 64,
            // A whole subtree: its data and every hash pair inside it (a
            // subtree of g groups has g − 1 parents, each with two children).
            BaoChunk::Leaf { size, ranges, .. } if ranges.is_all() => {
                let size = size as u64;
                size + 64 * (size.div_ceil(GROUP).max(1) - 1)
            }
            BaoChunk::Leaf { .. } => return None,
        };
    }
    Some(len)
}

/// The first byte of the group holding byte `offset`.
pub(crate) fn group_start(offset: u64) -> u64 {
    offset / GROUP * GROUP
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use bao_tree::io::outboard::PreOrderMemOutboard;
    use bao_tree::io::sync::encode_ranges_validated;

    use super::*;

    const SIZES: &[u64] = &[
        0,
        1,
        1023,
        1024,
        16383,
        16384,
        16385,
        32768,
        32769,
        49152 + 7,
        (1 << 20) - 1,
        1 << 20,
        (3 << 20) + 12345,
    ];

    fn data(size: u64) -> Vec<u8> {
        (0..size).map(|i| (i.wrapping_mul(31) >> 3) as u8).collect()
    }

    /// The real encoding, from bao-tree itself.
    fn encode(data: &[u8], ranges: &ChunkRanges) -> Vec<u8> {
        let outboard = PreOrderMemOutboard::create(data, BLOCK_SIZE);
        let mut out = Vec::new();
        encode_ranges_validated(data, &outboard, ranges, &mut out).unwrap();
        out
    }

    /// Byte ranges worth checking for an object of `size` bytes: edges of the
    /// object and of groups, single bytes, and several ranges at once.
    fn ranges_for(size: u64) -> Vec<Vec<Range<u64>>> {
        if size == 0 {
            return Vec::new();
        }
        let last = size - 1;
        let mut out = vec![
            vec![0..1],
            vec![last..size],
            vec![0..size],
            vec![size / 2..size],
            vec![size / 2..size / 2 + 1],
            vec![0..1, last..size],
        ];
        for edge in [GROUP - 1, GROUP, GROUP + 1, 2 * GROUP, 3 * GROUP - 1] {
            if edge < size {
                out.push(vec![edge..size]);
                out.push(vec![edge..edge + 1]);
                out.push(vec![0..edge + 1]);
            }
        }
        if size > 3 * GROUP {
            out.push(vec![1..2, 2 * GROUP..2 * GROUP + 5, last - 1..size]);
            out.push(vec![GROUP..2 * GROUP]);
        }
        out
    }

    #[test]
    fn whole_length_is_size_plus_64_bytes_per_pair() {
        for &size in SIZES {
            let data = data(size);
            let whole = Selection::whole(size);
            let encoded = encode(&data, whole.ranges());
            let groups = size.div_ceil(GROUP).max(1);
            assert_eq!(encoded.len() as u64, size + (groups - 1) * 64, "{size}");
            assert_eq!(whole.encoded_len(), Some(encoded.len() as u64), "{size}");
            assert_eq!(whole.body_len(), Some(encoded.len() as u64 + 8), "{size}");
        }
    }

    #[test]
    fn range_lengths_match_real_encodings() {
        for &size in SIZES {
            let data = data(size);
            for byte_ranges in ranges_for(size) {
                let selection = Selection::covering(&byte_ranges, size).unwrap();
                let encoded = encode(&data, selection.ranges());
                assert_eq!(
                    selection.encoded_len(),
                    Some(encoded.len() as u64),
                    "size {size}, ranges {byte_ranges:?}"
                );
            }
        }
    }

    #[test]
    fn selections_cover_whole_groups_and_every_asked_byte() {
        for &size in SIZES {
            for byte_ranges in ranges_for(size) {
                let selection = Selection::covering(&byte_ranges, size).unwrap();
                for span in selection.spans() {
                    assert_eq!(span.start % GROUP, 0, "{size} {byte_ranges:?}");
                    assert!(span.end % GROUP == 0 || span.end == size);
                    assert!(span.end <= size && span.start < span.end);
                }
                for range in &byte_ranges {
                    assert!(
                        selection
                            .spans()
                            .iter()
                            .any(|s| s.start <= range.start && range.end <= s.end),
                        "{size} {byte_ranges:?} -> {:?}",
                        selection.spans()
                    );
                }
            }
        }
    }

    #[test]
    fn a_selection_of_everything_is_the_whole_encoding() {
        let size = 100_000;
        let all = Selection::covering(&[5..size], size).unwrap();
        assert!(all.is_whole());
        assert_eq!(all, Selection::whole(size));
        let hash = Hash::from(blake3::hash(b"x"));
        assert_eq!(all.etag(&hash), format!("\"{hash}.bao\""));
    }

    #[test]
    fn tags_and_headers_name_the_groups_sent() {
        let hash = Hash::from(blake3::hash(b"x"));
        let size = 100_000;
        let one = Selection::covering(&[20_000..20_001], size).unwrap();
        assert_eq!(one.etag(&hash), format!("\"{hash}.bao.16384-32767\""));
        assert_eq!(one.header(), "bytes 16384-32767/100000");
        // Another range in the same group is the same body, so the same tag.
        let same = Selection::covering(&[17_000..30_000], size).unwrap();
        assert_eq!(same.etag(&hash), one.etag(&hash));
        let tail = Selection::covering(&[99_999..100_000], size).unwrap();
        assert_eq!(tail.etag(&hash), format!("\"{hash}.bao.98304-99999\""));
        let two = Selection::covering(&[0..1, 99_999..100_000], size).unwrap();
        assert_eq!(
            two.etag(&hash),
            format!("\"{hash}.bao.0-16383_98304-99999\"")
        );
        assert_eq!(two.header(), "bytes 0-16383,98304-99999/100000");
        // Adjacent groups merge into one span.
        let merged = Selection::covering(&[0..1, 16_384..16_385], size).unwrap();
        assert_eq!(merged.spans(), &[0..32_768]);
    }

    #[test]
    fn nothing_selected_is_none() {
        assert_eq!(Selection::covering(&[], 10), None);
        assert_eq!(Selection::covering(&[10..20], 10), None);
        assert_eq!(Selection::covering(&[0..1], 0), None);
    }

    #[test]
    fn lengths_of_huge_objects_come_from_the_geometry() {
        let size = (1u64 << 40) + 12_345;
        let groups = size.div_ceil(GROUP);
        let whole = Selection::whole(size);
        assert_eq!(whole.encoded_len(), Some(size + 64 * (groups - 1)));
        // The last group alone: its bytes and the pairs on its path. Trees
        // are left-complete: here it hangs off the root.
        let tail = Selection::covering(&[size - 1..size], size).unwrap();
        assert_eq!(tail.encoded_len(), Some(12_345 + 64));
        // In a full tree of 2^26 groups its path is 26 pairs long.
        let full = 1u64 << 40;
        let tail = Selection::covering(&[full - 1..full], full).unwrap();
        assert_eq!(tail.encoded_len(), Some(GROUP + 64 * 26));
    }

    #[test]
    fn ranges_cutting_into_a_group_are_not_counted() {
        let ranges = ChunkRanges::from(ChunkNum(1)..ChunkNum(2));
        assert_eq!(encoded_len(1 << 20, &ranges), None);
    }
}

//! The bao-tree pre-order encoding of a stored object's ranges, as peers and
//! `?format=bao` clients receive it, checked against the hash as it is made.
//!
//! bao-tree's own encoder copies every group into its buffer and then into
//! the writer, so each byte a node sent to a peer was copied twice in user
//! space before quinn copied it into a packet. Here a whole group is a slice
//! of the slab it was read in, and the hash pairs before it are gathered into
//! one piece: the caller gets `Bytes` to hand on as they are. The traversal
//! is bao-tree's own (`ranges_pre_order_chunks_iter_ref`), and so is the
//! rule for ranges past the end, so the pieces are exactly what its decoder
//! expects; tests compare them with bao-tree's encoder, byte for byte.

use std::io;

use bao_tree::io::sync::Outboard;
use bao_tree::iter::BaoChunk;
use bao_tree::{BaoTree, ChunkNum, ChunkRangesRef, TreeNode};
use bytes::{Bytes, BytesMut};

use crate::tree::{parent_hash, subtree_hash};

/// Why an encoding stopped.
#[derive(Debug)]
pub(crate) enum EncodeFailure {
    /// Reading the data failed.
    ReadData(io::Error),
    /// Reading the outboard failed.
    ReadOutboard(io::Error),
    /// Whoever takes the pieces failed.
    Output(io::Error),
    /// The pair of this node does not hash to the node (or is missing).
    BadPair(TreeNode),
    /// The data from this chunk does not hash to its place in the tree.
    BadData(ChunkNum),
}

/// Where the encoder takes a group's bytes from.
pub(crate) trait GroupSource {
    /// Exactly `len` bytes from `offset`.
    fn group(&self, offset: u64, len: usize) -> io::Result<Bytes>;
}

impl GroupSource for Bytes {
    fn group(&self, offset: u64, len: usize) -> io::Result<Bytes> {
        let start = usize::try_from(offset).unwrap_or(usize::MAX);
        match start.checked_add(len) {
            Some(end) if end <= self.len() => Ok(self.slice(start..end)),
            _ => Err(io::ErrorKind::UnexpectedEof.into()),
        }
    }
}

/// Hands the encoding of `ranges` to `emit`, piece by piece, each group only
/// after it hashed to its place under `root`: runs of hash pairs, then the
/// group they lead to.
pub(crate) fn encode(
    tree: BaoTree,
    root: blake3::Hash,
    ranges: &ChunkRangesRef,
    data: &impl GroupSource,
    outboard: &impl Outboard,
    emit: &mut impl FnMut(Bytes) -> io::Result<()>,
) -> Result<(), EncodeFailure> {
    let ranges = past_the_end(ranges, tree.size());
    let min_level = u32::from(tree.block_size().chunk_log());
    // The hashes the next nodes must have, the next one on top.
    let mut expected = vec![root];
    let mut pairs = BytesMut::new();
    for item in tree.ranges_pre_order_chunks_iter_ref(ranges, 0) {
        match item {
            BaoChunk::Parent {
                node,
                is_root,
                left,
                right,
                ..
            } => {
                let Some((l, r)) = outboard.load(node).map_err(EncodeFailure::ReadOutboard)? else {
                    return Err(EncodeFailure::BadPair(node));
                };
                if expected.pop() != Some(parent(&l, &r, is_root)) {
                    return Err(EncodeFailure::BadPair(node));
                }
                if right {
                    expected.push(r);
                }
                if left {
                    expected.push(l);
                }
                // Room for 64 pairs at a time: the pieces split off share the
                // allocation, so growing by what one pair needs would allocate
                // for nearly every pair.
                if pairs.capacity() - pairs.len() < 64 {
                    pairs.reserve(64 * 64);
                }
                pairs.extend_from_slice(l.as_bytes());
                pairs.extend_from_slice(r.as_bytes());
            }
            BaoChunk::Leaf {
                start_chunk,
                size,
                is_root,
                ranges,
            } => {
                let bytes = data
                    .group(start_chunk.to_bytes(), size)
                    .map_err(EncodeFailure::ReadData)?;
                let (hash, encoded) = if ranges.is_all() {
                    (subtree(start_chunk, &bytes, is_root), bytes)
                } else {
                    let mut part = Vec::new();
                    let hash =
                        encode_part(start_chunk, &bytes, is_root, ranges, min_level, &mut part);
                    (hash, Bytes::from(part))
                };
                if expected.pop() != Some(hash) {
                    return Err(EncodeFailure::BadData(start_chunk));
                }
                if !pairs.is_empty() {
                    emit(pairs.split().freeze()).map_err(EncodeFailure::Output)?;
                }
                emit(encoded).map_err(EncodeFailure::Output)?;
            }
        }
    }
    Ok(())
}

/// bao-tree's rule for ranges that reach past the last chunk: the last chunk
/// stands for everything after it, so asking for bytes past the end gets the
/// last chunk, which proves the size. Cut the boundaries there: a range that
/// covers or follows the last chunk is left open.
fn past_the_end(ranges: &ChunkRangesRef, size: u64) -> &ChunkRangesRef {
    let last = ChunkNum(ChunkNum::chunks(size).0.saturating_sub(1));
    let boundaries = ranges.boundaries();
    // Even positions start ranges, odd ones end them.
    let keep = match boundaries.binary_search(&last) {
        // A range starts at the last chunk: it runs on from there.
        Ok(i) if i % 2 == 0 => i + 1,
        // A range ends just before it and nothing follows.
        Ok(i) if i + 1 == boundaries.len() => i + 1,
        // A range ends just before it and more follow: that range runs on.
        Ok(i) => i,
        // Nothing at or after the last chunk.
        Err(i) if i == boundaries.len() => i,
        // Between ranges, more follow: the next one runs on from its start.
        Err(i) if i % 2 == 0 => i + 1,
        // Inside a range: it runs on.
        Err(i) => i,
    };
    ChunkRangesRef::new(&boundaries[..keep]).unwrap_or(ranges)
}

/// The encoding of the chunks `ranges` selects within one group, which they
/// do not cover as bao-tree counts covering: the pair of every subtree they
/// touch but do not cover, then the chunks. Returns the group's hash. Rare
/// (the last group of a closed range), so it is built in a buffer.
fn encode_part(
    start: ChunkNum,
    data: &[u8],
    is_root: bool,
    ranges: &ChunkRangesRef,
    min_level: u32,
    out: &mut Vec<u8>,
) -> blake3::Hash {
    const CHUNK: usize = blake3::CHUNK_LEN;
    if ranges.is_empty() {
        // Nothing of it is sent; only its hash is needed.
        return subtree(start, data, is_root);
    }
    // BLAKE3's left subtree: the largest power of two chunks below the total.
    let chunks = data.len().div_ceil(CHUNK).next_power_of_two();
    let level = chunks.trailing_zeros().saturating_sub(1);
    if data.len() <= CHUNK || (ranges.is_all() && level < min_level) {
        out.extend_from_slice(data);
        return subtree(start, data, is_root);
    }
    let left_chunks = chunks / 2;
    let mid = ChunkNum(start.0 + left_chunks as u64);
    let (left_ranges, right_ranges) = split(ranges, start, mid);
    let pair_at = out.len();
    out.extend_from_slice(&[0; 64]);
    let (left_data, right_data) = data.split_at(left_chunks * CHUNK);
    let left = encode_part(start, left_data, false, left_ranges, min_level, out);
    let right = encode_part(mid, right_data, false, right_ranges, min_level, out);
    out[pair_at..pair_at + 32].copy_from_slice(left.as_bytes());
    out[pair_at + 32..pair_at + 64].copy_from_slice(right.as_bytes());
    parent(&left, &right, is_root)
}

/// `ranges` below and from `mid`, for the subtrees starting at `start` and
/// `mid`. A side that is one range open to the right from at most its start
/// covers its subtree: it is written as "everything", as bao-tree's traversal
/// writes it, so `is_all` says so.
fn split<'a>(
    ranges: &'a ChunkRangesRef,
    start: ChunkNum,
    mid: ChunkNum,
) -> (&'a ChunkRangesRef, &'a ChunkRangesRef) {
    static ALL: [ChunkNum; 1] = [ChunkNum(0)];
    let canonical = |side: &'a ChunkRangesRef, from: ChunkNum| match side.boundaries() {
        [first] if *first <= from => ChunkRangesRef::new(&ALL).unwrap_or(side),
        _ => side,
    };
    let (left, right) = ranges.split(mid);
    (canonical(left, start), canonical(right, mid))
}

/// [`subtree_hash`] of the chunks from `start`, as the traversal's hash type.
fn subtree(start: ChunkNum, data: &[u8], is_root: bool) -> blake3::Hash {
    blake3::Hash::from_bytes(subtree_hash(start.to_bytes(), data, is_root))
}

/// [`parent_hash`], as the traversal's hash type.
fn parent(left: &blake3::Hash, right: &blake3::Hash, is_root: bool) -> blake3::Hash {
    blake3::Hash::from_bytes(parent_hash(left.as_bytes(), right.as_bytes(), is_root))
}

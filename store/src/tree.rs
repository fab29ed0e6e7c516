//! BLAKE3 tree geometry at the granularity of 16 KiB chunk groups, and a streaming builder
//! of the bao post-order outboard (bao-tree's `BlockSize::from_chunk_log(4)` layout).
//!
//! The tree over `n` groups is BLAKE3's: left-balanced, each left subtree holding the
//! largest power of two of groups strictly less than its parent's. The outboard stores,
//! for every parent node in post order, the 64-byte pair (left child hash, right child
//! hash); a blob of `n` groups has `n - 1` pairs and no size prefix.

use blake3::hazmat::{
    ChainingValue, HasherExt, Mode, merge_subtrees_non_root, merge_subtrees_root,
};

/// Bytes per chunk group: 16 BLAKE3 chunks.
pub(crate) const GROUP_SIZE: u64 = 16 * 1024;
/// The chunk groups of every hash tree the store keeps, as bao-tree names them: 16 KiB.
/// Peers encode and decode with the same size, so a received tree is the stored one.
pub const BLOCK_SIZE: bao_tree::BlockSize = bao_tree::BlockSize::from_chunk_log(4);
/// Bytes per outboard entry: two child hashes.
pub(crate) const PAIR_SIZE: u64 = 64;
const GROUP_USIZE: usize = 16 * 1024;

/// Chunk groups in a blob of `size` bytes (an empty blob still has one, empty, group).
pub(crate) fn groups(size: u64) -> u64 {
    size.div_ceil(GROUP_SIZE).max(1)
}

/// Length of the post-order outboard of a blob of `size` bytes.
pub(crate) fn outboard_size(size: u64) -> u64 {
    (groups(size) - 1) * PAIR_SIZE
}

/// A node of the tree: the chunk groups `start..end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Node {
    pub(crate) start: u64,
    pub(crate) end: u64,
}

impl Node {
    pub(crate) fn root(groups: u64) -> Self {
        Node {
            start: 0,
            end: groups,
        }
    }

    #[cfg(test)]
    pub(crate) fn is_leaf(self) -> bool {
        self.end - self.start == 1
    }

    /// Where the left child ends. Only meaningful for parents (two groups or more).
    pub(crate) fn split(self) -> u64 {
        let len = self.end - self.start;
        // Largest power of two strictly below `len`, as BLAKE3 splits.
        self.start + (1u64 << (63 - (len - 1).leading_zeros()))
    }

    pub(crate) fn children(self) -> (Node, Node) {
        let mid = self.split();
        (
            Node {
                start: self.start,
                end: mid,
            },
            Node {
                start: mid,
                end: self.end,
            },
        )
    }

    /// Index of this parent's pair in the post-order outboard of a tree of `groups` groups.
    ///
    /// `spine_depth` is `Some(d)` for the nodes on the right edge of the tree (the root is
    /// `Some(0)`, its right child `Some(1)`, ...). Those come last in post order, deepest
    /// first. Every other node covers a full, aligned power-of-two run of groups ending at
    /// `end`; the parents before it in post order are exactly the aligned power-of-two runs
    /// (of two or more groups) inside `0..end` that are not its ancestors.
    pub(crate) fn post_order_index(self, groups: u64, spine_depth: Option<u32>) -> u64 {
        match spine_depth {
            Some(depth) => groups - 2 - u64::from(depth),
            None => {
                let end = self.end;
                let level = (self.end - self.start).trailing_zeros();
                let runs_inside = end - u64::from(end.count_ones());
                let ancestors_ending_here = u64::from(end.trailing_zeros() - level);
                runs_inside - ancestors_ending_here - 1
            }
        }
    }
}

/// Builds the outboard and the root hash of a stream of bytes whose length is unknown
/// until [`finalize`](Self::finalize). Pure computation: the caller moves finished pairs
/// to storage with [`take_pairs`](Self::take_pairs), so memory stays bounded.
///
/// A full group is only hashed once a byte after it arrives: until then it might be the
/// whole blob, whose hash is computed with the root flag instead.
pub(crate) struct OutboardBuilder {
    group: blake3::Hasher,
    group_len: usize,
    groups_done: u64,
    /// Completed subtrees not yet merged: chaining value and size in groups, sizes
    /// strictly decreasing (the binary digits of `groups_done`).
    stack: Vec<(ChainingValue, u64)>,
    pairs: Vec<u8>,
    len: u64,
}

impl std::fmt::Debug for OutboardBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutboardBuilder")
            .field("len", &self.len)
            .field("pending_pairs", &(self.pairs.len() / 64))
            .finish()
    }
}

impl Default for OutboardBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl OutboardBuilder {
    pub(crate) fn new() -> Self {
        OutboardBuilder {
            group: blake3::Hasher::new(),
            group_len: 0,
            groups_done: 0,
            stack: Vec::new(),
            pairs: Vec::new(),
            len: 0,
        }
    }

    /// Bytes consumed so far.
    #[cfg(test)]
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// Feeds bytes. Whole 16 KiB groups per call let BLAKE3 hash all chunks of a group in
    /// parallel SIMD lanes, so callers should feed large, aligned buffers.
    pub(crate) fn update(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            if self.group_len == GROUP_USIZE {
                self.close_group();
            }
            let take = (GROUP_USIZE - self.group_len).min(data.len());
            self.group.update(&data[..take]);
            self.group_len += take;
            self.len += take as u64;
            data = &data[take..];
        }
    }

    /// Finished outboard pairs since the last call, in post order.
    pub(crate) fn take_pairs(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.pairs)
    }

    /// Bytes of finished pairs waiting in [`take_pairs`](Self::take_pairs).
    pub(crate) fn pending_pairs_len(&self) -> usize {
        self.pairs.len()
    }

    /// Ends the stream: returns the root hash and the last pairs of the outboard.
    pub(crate) fn finalize(mut self) -> (blake3::Hash, Vec<u8>) {
        if self.groups_done == 0 {
            return (self.group.finalize(), self.pairs);
        }
        let mut right = self.group.finalize_non_root();
        let root = loop {
            let Some((left, _)) = self.stack.pop() else {
                // groups_done > 0 means the stack holds at least one subtree, and every
                // iteration that empties it returns below.
                return (blake3::Hash::from_bytes(right), self.pairs);
            };
            self.pairs.extend_from_slice(&left);
            self.pairs.extend_from_slice(&right);
            if self.stack.is_empty() {
                break merge_subtrees_root(&left, &right, Mode::Hash);
            }
            right = merge_subtrees_non_root(&left, &right, Mode::Hash);
        };
        (root, self.pairs)
    }

    /// Hashes the full current group, knowing more data follows, and merges every pair
    /// of equal-sized subtrees: with data after them they can no longer be the root.
    fn close_group(&mut self) {
        let cv = self.group.finalize_non_root();
        self.groups_done += 1;
        self.group = blake3::Hasher::new();
        self.group.set_input_offset(self.groups_done * GROUP_SIZE);
        self.group_len = 0;
        let mut node = (cv, 1u64);
        while let Some(&(left, size)) = self.stack.last() {
            if size != node.1 {
                break;
            }
            self.stack.pop();
            self.pairs.extend_from_slice(&left);
            self.pairs.extend_from_slice(&node.0);
            node = (
                merge_subtrees_non_root(&left, &node.0, Mode::Hash),
                size * 2,
            );
        }
        self.stack.push(node);
    }
}

/// Hash of the subtree whose bytes are `data`, starting `offset` bytes into the
/// object: the object's hash if it is the root, else its chaining value.
pub(crate) fn subtree_hash(offset: u64, data: &[u8], is_root: bool) -> [u8; 32] {
    if is_root {
        return *blake3::hash(data).as_bytes();
    }
    let mut hasher = blake3::Hasher::new();
    hasher.set_input_offset(offset);
    hasher.update(data);
    hasher.finalize_non_root()
}

/// Hash of a parent from its pair, as the root or as an inner node.
pub(crate) fn parent_hash(left: &ChainingValue, right: &ChainingValue, is_root: bool) -> [u8; 32] {
    if is_root {
        *merge_subtrees_root(left, right, Mode::Hash).as_bytes()
    } else {
        merge_subtrees_non_root(left, right, Mode::Hash)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use bao_tree::{BaoTree, BlockSize};

    fn data(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 + i / 1000) as u8).collect()
    }

    fn bao_outboard(data: &[u8]) -> (blake3::Hash, Vec<u8>) {
        let tree = BaoTree::new(data.len() as u64, BlockSize::from_chunk_log(4));
        let mut outboard = Vec::new();
        let root = bao_tree::io::sync::outboard_post_order(data, tree, &mut outboard).unwrap();
        (root, outboard)
    }

    fn build(data: &[u8], write_size: usize) -> (blake3::Hash, Vec<u8>) {
        let mut builder = OutboardBuilder::new();
        let mut outboard = Vec::new();
        for piece in data.chunks(write_size.max(1)) {
            builder.update(piece);
            outboard.extend(builder.take_pairs());
        }
        assert_eq!(builder.len(), data.len() as u64);
        let (root, rest) = builder.finalize();
        outboard.extend(rest);
        (root, outboard)
    }

    const G: usize = GROUP_USIZE;

    fn interesting_sizes() -> Vec<usize> {
        let mut sizes = vec![0, 1, 1023, 1024, 1025, G - 1, G, G + 1];
        for groups in [2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 64, 100] {
            sizes.extend([groups * G - 1, groups * G, groups * G + 1]);
        }
        sizes
    }

    #[test]
    fn outboard_matches_bao_tree_and_root_matches_blake3() {
        for size in interesting_sizes() {
            let data = data(size);
            let (bao_root, bao) = bao_outboard(&data);
            for write_size in [1, 1000, G, 3 * G + 5, usize::MAX] {
                if write_size == 1 && size > 5 * G {
                    continue;
                }
                let (root, outboard) = build(&data, write_size);
                assert_eq!(root, blake3::hash(&data), "size {size} writes {write_size}");
                assert_eq!(root, bao_root, "size {size}");
                assert_eq!(
                    outboard.len() as u64,
                    outboard_size(size as u64),
                    "size {size}"
                );
                assert!(
                    outboard == bao,
                    "outboard differs for size {size} writes {write_size}"
                );
            }
        }
    }

    /// Reference post order by plain recursion.
    fn post_order(node: Node, out: &mut Vec<Node>) {
        if node.is_leaf() {
            return;
        }
        let (left, right) = node.children();
        post_order(left, out);
        post_order(right, out);
        out.push(node);
    }

    fn index_of(node: Node, groups: u64) -> u64 {
        // Find the spine depth by walking down the right edge.
        let mut spine = Node::root(groups);
        let mut depth = 0;
        while !spine.is_leaf() {
            if spine == node {
                return node.post_order_index(groups, Some(depth));
            }
            spine = spine.children().1;
            depth += 1;
        }
        node.post_order_index(groups, None)
    }

    #[test]
    fn post_order_index_matches_recursive_order() {
        for groups in 2..300u64 {
            let mut order = Vec::new();
            post_order(Node::root(groups), &mut order);
            assert_eq!(order.len() as u64, groups - 1);
            for (i, node) in order.iter().enumerate() {
                assert_eq!(index_of(*node, groups), i as u64, "{node:?} of {groups}");
            }
        }
    }

    #[test]
    fn pairs_hash_to_their_parents() {
        let size = 13 * G + 100;
        let data = data(size);
        let (root, outboard) = build(&data, 5000);
        let groups = groups(size as u64);
        let mut order = Vec::new();
        post_order(Node::root(groups), &mut order);
        for (i, node) in order.iter().enumerate() {
            let pair = &outboard[i * 64..i * 64 + 64];
            let left: [u8; 32] = pair[..32].try_into().unwrap();
            let right: [u8; 32] = pair[32..].try_into().unwrap();
            let is_root = *node == Node::root(groups);
            let bytes = &data[(node.start as usize) * G..((node.end as usize) * G).min(size)];
            let expected = if is_root {
                *root.as_bytes()
            } else {
                subtree_hash(node.start * GROUP_SIZE, bytes, false)
            };
            assert_eq!(parent_hash(&left, &right, is_root), expected, "{node:?}");
        }
    }
}

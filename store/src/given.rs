//! A hash tree handed to an ingest by a caller that has already verified the bytes
//! against it (a fill from peers, where bao-tree's decoder checked every group and
//! every pair). The ingest writes the pairs where the post-order outboard keeps them
//! instead of hashing the bytes a second time.

use bao_tree::{BaoTree, TreeNode};

use crate::hash::Hash;
use crate::tree::{BLOCK_SIZE, PAIR_SIZE, parent_hash};

/// The tree of one object as its pairs arrive.
#[derive(Debug)]
pub(crate) struct GivenTree {
    pub(crate) hash: Hash,
    pub(crate) size: u64,
    tree: BaoTree,
    /// One bit per outboard pair: saved yet?
    saved: Vec<u64>,
    missing: u64,
}

impl GivenTree {
    pub(crate) fn new(hash: Hash, size: u64) -> Self {
        let tree = BaoTree::new(size, BLOCK_SIZE);
        let pairs = tree.outboard_size() / PAIR_SIZE;
        GivenTree {
            hash,
            size,
            tree,
            saved: vec![0; pairs.div_ceil(64) as usize],
            missing: pairs,
        }
    }

    /// Where `node`'s pair goes in the outboard, marking it saved; `None` if the node
    /// is not a parent of this tree.
    pub(crate) fn place(&mut self, node: TreeNode) -> Option<u64> {
        let index = self.tree.post_order_offset(node)?.value();
        let word = self.saved.get_mut((index / 64) as usize)?;
        let bit = 1u64 << (index % 64);
        if *word & bit == 0 {
            *word |= bit;
            self.missing -= 1;
        }
        Some(index * PAIR_SIZE)
    }

    /// Why the tree is not complete, if it is not.
    pub(crate) fn incomplete(&self) -> Option<String> {
        (self.missing > 0).then(|| format!("{} hash pairs never arrived", self.missing))
    }

    /// Why the root pair (the outboard's last) cannot be this object's, if it cannot.
    pub(crate) fn root_problem(&self, root_pair: Option<&[u8; 64]>) -> Option<String> {
        let Some(pair) = root_pair else {
            // A single group has no pairs; its bytes were hashed directly.
            return None;
        };
        let (Some(left), Some(right)) = (pair.first_chunk::<32>(), pair.last_chunk::<32>()) else {
            return None;
        };
        (parent_hash(left, right, true) != *self.hash.as_bytes())
            .then(|| "the root pair does not hash to the object's hash".to_owned())
    }
}

//! The decoding example of README.md (*Verifiable downloads*), verbatim between
//! the markers: `readme_carries_the_decoding_example` fails if the two differ,
//! and the other tests decode with it, so the example cannot rot.

// README snippet start
use bao_tree::io::{BaoContentItem, DecodeError, sync::DecodeResponseIter};
use bao_tree::{BaoTree, BlockSize, ChunkNum, ChunkRanges};

/// The chunk groups a request selects: the 16 KiB groups holding bytes
/// `first..=last` of `Range: bytes=first-last`; `last: None` for
/// `bytes=first-`, and `groups(0, None)` for a request without `Range`.
pub fn groups(first: u64, last: Option<u64>) -> ChunkRanges {
    let start = ChunkNum(first / 16384 * 16);
    match last {
        Some(last) => ChunkRanges::from(start..ChunkNum((last / 16384 + 1) * 16)),
        None => ChunkRanges::from(start..),
    }
}

/// Checks a `?format=bao` body against the object's hash, 16 KiB group by
/// group, and returns the groups as (offset in the object, bytes); a byte that
/// does not verify, or a body that ends early, is an error. `body` can be any
/// `std::io::Read`, such as a response still arriving: to use each group as
/// soon as it verifies (as `fleetcache get` does), act on it inside the loop.
pub fn verify(
    hash: bao_tree::blake3::Hash,
    mut body: impl std::io::Read,
    groups: &ChunkRanges,
) -> Result<Vec<(u64, Vec<u8>)>, DecodeError> {
    let mut size = [0u8; 8];
    body.read_exact(&mut size)?;
    let tree = BaoTree::new(u64::from_le_bytes(size), BlockSize::from_chunk_log(4));
    let mut verified = Vec::new();
    for item in DecodeResponseIter::new(hash, tree, body, groups) {
        if let BaoContentItem::Leaf(leaf) = item? {
            verified.push((leaf.offset, leaf.data.to_vec()));
        }
    }
    Ok(verified)
}
// README snippet end

#[test]
fn readme_carries_the_decoding_example() {
    let source = include_str!("snippet.rs");
    let marker = "// README snippet start\n";
    let start = source.find(marker).unwrap() + marker.len();
    let end = source.find("// README snippet end").unwrap();
    let snippet = &source[start..end];
    let readme = include_str!("../../../../README.md");
    assert!(
        readme.contains(&format!("```rust\n{snippet}```")),
        "README.md must carry the example of gateway/tests/node/verifiable/snippet.rs verbatim"
    );
}

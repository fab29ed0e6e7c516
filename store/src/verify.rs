//! Verified ranged reads of a file blob: whole chunk groups are read with one `pread`,
//! hashed, and checked against the outboard up to the root hash before any byte is
//! returned.
//!
//! A read covering groups `g0..g1` walks down from the root. A node entirely inside the
//! range is hashed straight from the data (no outboard needed below it); a node only
//! partly inside needs its pair from the outboard, which is checked against the node's
//! hash before its children's hashes are trusted. Checked pairs are cached per blob
//! handle, and the outboard is read a page of 64 pairs at a time, so a sequential read
//! costs roughly one small outboard read per megabyte.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::Mutex;

use bytes::Bytes;

use crate::store::lock;
use crate::tree::{GROUP_SIZE, Node, PAIR_SIZE, groups, outboard_size, parent_hash, subtree_hash};

const PAGE_PAIRS: u64 = 64;
const MAX_PAGES: usize = 4;
const MAX_VERIFIED: usize = 4096;

/// Why a verified read failed.
#[derive(Debug)]
pub(crate) enum VerifyError {
    /// The data file could not be read.
    Data(io::Error),
    /// The outboard file could not be read.
    Outboard(io::Error),
    /// Bytes at this offset (of the data) do not match the tree.
    Corrupt { offset: u64 },
}

#[derive(Debug, Default)]
struct Cache {
    /// Post-order index → pair already checked against the root.
    verified: HashMap<u64, ([u8; 32], [u8; 32])>,
    /// Raw outboard pages by page number, oldest first.
    pages: Vec<(u64, Vec<u8>)>,
}

/// A blob file and its outboard, open for verified reads.
#[derive(Debug)]
pub(crate) struct VerifiedFile {
    data: File,
    outboard: File,
    size: u64,
    root: [u8; 32],
    cache: Mutex<Cache>,
}

impl VerifiedFile {
    pub(crate) fn new(data: File, outboard: File, size: u64, root: [u8; 32]) -> Self {
        VerifiedFile {
            data,
            outboard,
            size,
            root,
            cache: Mutex::new(Cache::default()),
        }
    }

    /// The data file, for encoders that verify as they go.
    pub(crate) fn data_file(&self) -> &File {
        &self.data
    }

    /// The post-order outboard file.
    pub(crate) fn outboard_file(&self) -> &File {
        &self.outboard
    }

    /// Reads and verifies `offset..offset + len`, which the caller has clamped to the blob.
    pub(crate) fn read(&self, offset: u64, len: usize) -> Result<Bytes, VerifyError> {
        let end = offset.saturating_add(len as u64).min(self.size);
        if offset >= end {
            return Ok(Bytes::new());
        }
        let want = offset / GROUP_SIZE..end.div_ceil(GROUP_SIZE);
        let first_byte = want.start * GROUP_SIZE;
        let last_byte = (want.end * GROUP_SIZE).min(self.size);
        let buf_len = usize::try_from(last_byte - first_byte)
            .map_err(|_| VerifyError::Data(io::Error::other("read too large for memory")))?;
        let mut buf = vec![0u8; buf_len];
        self.data
            .read_exact_at(&mut buf, first_byte)
            .map_err(|err| self.data_error(err, first_byte))?;

        let groups = groups(self.size);
        let walk = Walk {
            file: self,
            groups,
            want,
            buf: &buf,
        };
        walk.verify(Node::root(groups), self.root, true, Some(0))?;

        // Slicing keeps the aligned buffer without copying; the overhang is under 32 KiB.
        let skip = (offset - first_byte) as usize;
        Ok(Bytes::from(buf).slice(skip..skip + (end - offset) as usize))
    }

    /// A file shorter than the index says is corruption, not an I/O failure.
    fn data_error(&self, err: io::Error, at: u64) -> VerifyError {
        if err.kind() == io::ErrorKind::UnexpectedEof {
            VerifyError::Corrupt { offset: at }
        } else {
            VerifyError::Data(err)
        }
    }

    /// The pair of a parent, checked against the parent's hash.
    fn pair(
        &self,
        index: u64,
        node: Node,
        expected: &[u8; 32],
        is_root: bool,
    ) -> Result<([u8; 32], [u8; 32]), VerifyError> {
        if let Some(pair) = lock(&self.cache).verified.get(&index) {
            return Ok(*pair);
        }
        let raw = self.raw_pair(index, node)?;
        let mut left = [0u8; 32];
        let mut right = [0u8; 32];
        left.copy_from_slice(&raw[..32]);
        right.copy_from_slice(&raw[32..]);
        if parent_hash(&left, &right, is_root) != *expected {
            return Err(VerifyError::Corrupt {
                offset: node.start * GROUP_SIZE,
            });
        }
        let mut cache = lock(&self.cache);
        if cache.verified.len() >= MAX_VERIFIED {
            cache.verified.clear();
        }
        cache.verified.insert(index, (left, right));
        Ok((left, right))
    }

    /// The unverified bytes of one pair, through a small page cache.
    fn raw_pair(&self, index: u64, node: Node) -> Result<[u8; 64], VerifyError> {
        let page = index / PAGE_PAIRS;
        let at = ((index % PAGE_PAIRS) * PAIR_SIZE) as usize;
        let mut out = [0u8; 64];
        {
            let cache = lock(&self.cache);
            let cached = cache.pages.iter().find(|(p, _)| *p == page);
            if let Some(src) = cached.and_then(|(_, bytes)| bytes.get(at..at + 64)) {
                out.copy_from_slice(src);
                return Ok(out);
            }
        }
        let page_start = page * PAGE_PAIRS * PAIR_SIZE;
        let page_len = (PAGE_PAIRS * PAIR_SIZE).min(outboard_size(self.size) - page_start);
        let mut bytes = vec![0u8; page_len as usize];
        self.outboard
            .read_exact_at(&mut bytes, page_start)
            .map_err(|err| {
                if err.kind() == io::ErrorKind::UnexpectedEof {
                    VerifyError::Corrupt {
                        offset: node.start * GROUP_SIZE,
                    }
                } else {
                    VerifyError::Outboard(err)
                }
            })?;
        let src = bytes.get(at..at + 64).ok_or(VerifyError::Corrupt {
            offset: node.start * GROUP_SIZE,
        })?;
        out.copy_from_slice(src);
        let mut cache = lock(&self.cache);
        if cache.pages.len() >= MAX_PAGES {
            cache.pages.remove(0);
        }
        cache.pages.push((page, bytes));
        Ok(out)
    }
}

/// One verified read in progress.
struct Walk<'a> {
    file: &'a VerifiedFile,
    groups: u64,
    want: std::ops::Range<u64>,
    /// The bytes of groups `want`, read from the data file.
    buf: &'a [u8],
}

impl Walk<'_> {
    fn verify(
        &self,
        node: Node,
        expected: [u8; 32],
        is_root: bool,
        spine_depth: Option<u32>,
    ) -> Result<(), VerifyError> {
        let corrupt = || VerifyError::Corrupt {
            offset: node.start * GROUP_SIZE,
        };
        if self.want.start <= node.start && node.end <= self.want.end {
            let from = ((node.start - self.want.start) * GROUP_SIZE) as usize;
            let to = ((node.end - self.want.start) * GROUP_SIZE) as usize;
            let bytes = self
                .buf
                .get(from..to.min(self.buf.len()))
                .ok_or_else(corrupt)?;
            let actual = subtree_hash(node.start * GROUP_SIZE, bytes, is_root);
            if actual == expected {
                return Ok(());
            }
            if node.end - node.start == 1 {
                return Err(corrupt());
            }
            // Descend through the outboard to name the damaged group.
        }
        // A leaf is never partly wanted: reads cover whole groups.
        let index = node.post_order_index(self.groups, spine_depth);
        let (left_hash, right_hash) = self.file.pair(index, node, &expected, is_root)?;
        let (left, right) = node.children();
        if left.end > self.want.start {
            self.verify(left, left_hash, false, None)?;
        }
        if right.start < self.want.end {
            self.verify(right, right_hash, false, spine_depth.map(|d| d + 1))?;
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::tree::OutboardBuilder;
    use std::io::Write;

    fn data(len: usize) -> Vec<u8> {
        (0..len)
            .map(|i| (i % 251) as u8 ^ (i >> 13) as u8)
            .collect()
    }

    fn write_blob(dir: &std::path::Path, data: &[u8]) -> VerifiedFile {
        let mut builder = OutboardBuilder::new();
        builder.update(data);
        let (root, outboard) = builder.finalize();
        let data_path = dir.join("d");
        let ob_path = dir.join("o");
        std::fs::File::create(&data_path)
            .unwrap()
            .write_all(data)
            .unwrap();
        std::fs::File::create(&ob_path)
            .unwrap()
            .write_all(&outboard)
            .unwrap();
        VerifiedFile::new(
            File::open(data_path).unwrap(),
            File::open(ob_path).unwrap(),
            data.len() as u64,
            *root.as_bytes(),
        )
    }

    #[test]
    fn reads_match_the_source_for_many_ranges() {
        let dir = tempfile::tempdir().unwrap();
        let g = GROUP_SIZE as usize;
        for size in [g + 1, 2 * g, 3 * g - 1, 5 * g + 7, 16 * g, 33 * g + 100] {
            let data = data(size);
            let file = write_blob(dir.path(), &data);
            let mut offsets = vec![0, 1, g - 1, g, g + 1, size / 2, size - 1, size];
            offsets.extend((0..size).step_by(7919));
            for &offset in &offsets {
                for len in [0, 1, 100, g - 1, g, g + 1, 3 * g + 17, size] {
                    let got = file.read(offset as u64, len).unwrap();
                    let end = (offset + len).min(size);
                    assert!(
                        got[..] == data[offset.min(size)..end],
                        "size {size} at {offset}+{len}"
                    );
                }
            }
        }
    }

    #[test]
    fn sequential_reads_reuse_checked_pairs() {
        let dir = tempfile::tempdir().unwrap();
        let size = 300 * GROUP_SIZE as usize + 5;
        let data = data(size);
        let file = write_blob(dir.path(), &data);
        let mut offset = 0;
        while offset < size {
            let got = file.read(offset as u64, 256 * 1024).unwrap();
            assert!(got[..] == data[offset..(offset + 256 * 1024).min(size)]);
            offset += got.len();
        }
        // About one pair per 16-group read, not one per group: the cache held them.
        assert!(lock(&file.cache).verified.len() < 300);
    }

    #[test]
    fn flipped_bits_are_detected_anywhere() {
        let dir = tempfile::tempdir().unwrap();
        let g = GROUP_SIZE as usize;
        let size = 9 * g + 333;
        let clean = data(size);
        for flip in [0, g - 1, g, 4 * g + 5, size - 1] {
            let mut bad = clean.clone();
            bad[flip] ^= 1;
            // The outboard comes from the clean data; the data file is damaged.
            let file = write_blob(dir.path(), &clean);
            std::fs::write(dir.path().join("d"), &bad).unwrap();
            let group_start = (flip / g * g) as u64;
            match file.read(flip as u64, 1) {
                Err(VerifyError::Corrupt { offset }) => assert_eq!(offset, group_start),
                other => panic!("flip at {flip}: {other:?}"),
            }
            // Reads elsewhere still work: each group is checked on its own.
            let other = if flip < 5 * g { size - 10 } else { 0 };
            assert!(file.read(other as u64, 10).unwrap()[..] == clean[other..other + 10]);
        }
    }

    #[test]
    fn damaged_or_short_outboards_are_detected() {
        let dir = tempfile::tempdir().unwrap();
        let size = 70 * GROUP_SIZE as usize;
        let clean = data(size);
        let file = write_blob(dir.path(), &clean);
        let ob_path = dir.path().join("o");
        let mut outboard = std::fs::read(&ob_path).unwrap();
        outboard[64 * 40 + 3] ^= 0x10;
        std::fs::write(&ob_path, &outboard).unwrap();
        let hits: Vec<_> = (0..70)
            .map(|g| file.read(g * GROUP_SIZE + 1, 10))
            .filter(|r| matches!(r, Err(VerifyError::Corrupt { .. })))
            .collect();
        assert!(!hits.is_empty());

        let file = write_blob(dir.path(), &clean);
        std::fs::write(&ob_path, &outboard[..100]).unwrap();
        assert!(matches!(
            file.read(3 * GROUP_SIZE, 10),
            Err(VerifyError::Corrupt { .. })
        ));
        std::fs::write(dir.path().join("d"), &clean[..1000]).unwrap();
        assert!(matches!(
            file.read(GROUP_SIZE, 10),
            Err(VerifyError::Corrupt { .. })
        ));
    }
}

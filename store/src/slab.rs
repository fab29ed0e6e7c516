//! A file read for bao-tree's encoder in large slabs: the encoder reads one 16 KiB
//! group, and one 64-byte pair of the outboard, at a time, which is two system calls
//! per 16 KiB sent to a peer. Through a slab it is a few per megabyte, and the bytes
//! are copied from memory instead.

use std::cell::RefCell;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use bao_tree::io::sync::ReadAt;

/// One slab of a file, read at a time.
#[derive(Debug)]
pub(crate) struct SlabReader<'a> {
    file: &'a File,
    slab_size: usize,
    slab: RefCell<Slab>,
}

#[derive(Debug, Default)]
struct Slab {
    /// Where `bytes` starts in the file.
    start: u64,
    bytes: Vec<u8>,
}

impl<'a> SlabReader<'a> {
    pub(crate) fn new(file: &'a File, slab_size: usize) -> Self {
        SlabReader {
            file,
            slab_size,
            slab: RefCell::new(Slab::default()),
        }
    }
}

impl ReadAt for SlabReader<'_> {
    fn read_at(&self, pos: u64, buf: &mut [u8]) -> io::Result<usize> {
        if buf.len() >= self.slab_size {
            return FileExt::read_at(self.file, buf, pos);
        }
        let mut slab = self.slab.borrow_mut();
        let end = pos.saturating_add(buf.len() as u64);
        if pos < slab.start || end > slab.start + slab.bytes.len() as u64 {
            // Reads go forward: the slab starts where this one does.
            let slab = &mut *slab;
            slab.bytes.resize(self.slab_size, 0);
            let mut filled = 0;
            while filled < slab.bytes.len() {
                match FileExt::read_at(self.file, &mut slab.bytes[filled..], pos + filled as u64) {
                    Ok(0) => break,
                    Ok(n) => filled += n,
                    Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                    Err(err) => {
                        slab.bytes.clear();
                        return Err(err);
                    }
                }
            }
            slab.bytes.truncate(filled);
            slab.start = pos;
        }
        let from = (pos - slab.start) as usize;
        let n = buf.len().min(slab.bytes.len().saturating_sub(from));
        buf[..n].copy_from_slice(&slab.bytes[from..from + n]);
        Ok(n)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn reads_anywhere_return_the_files_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let data: Vec<u8> = (0..10_000u32).map(|i| (i * 7 % 251) as u8).collect();
        std::fs::write(&path, &data).unwrap();
        let file = File::open(&path).unwrap();
        let reader = SlabReader::new(&file, 1000);
        // Forward, backward, across a slab's end, past the file's end, and larger
        // than a slab.
        for (pos, len) in [
            (0, 10),
            (5, 100),
            (990, 20),
            (3, 5),
            (9_990, 20),
            (20_000, 4),
            (100, 3000),
        ] {
            let mut buf = vec![0u8; len];
            let n = reader.read_at(pos, &mut buf).unwrap();
            let start = (pos as usize).min(data.len());
            let expected = &data[start..(start + len).min(data.len())];
            assert!(n <= expected.len() && buf[..n] == expected[..n], "at {pos}");
            let mut exact = vec![0u8; expected.len()];
            reader.read_exact_at(pos, &mut exact).unwrap();
            assert_eq!(exact, expected, "exact at {pos}");
        }
    }
}

//! A file read for the encoder in large slabs: it takes one 16 KiB group, and
//! one 64-byte pair of the outboard, at a time, which would be two system calls
//! per 16 KiB sent to a peer. Through a slab it is a few per megabyte. Groups
//! are handed out as slices of the slab, not copied.

use std::cell::RefCell;
use std::fs::File;
use std::io;

use bao_tree::io::sync::ReadAt;
use bytes::Bytes;

use crate::encode::GroupSource;

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
    bytes: Bytes,
}

impl<'a> SlabReader<'a> {
    pub(crate) fn new(file: &'a File, slab_size: usize) -> Self {
        SlabReader {
            file,
            slab_size,
            slab: RefCell::new(Slab::default()),
        }
    }

    /// Calls `take` with a slab that holds `pos..pos + len` unless the file ends
    /// first, and where `pos` is in it. Reads go forward: a new slab starts at
    /// `pos`.
    fn with_slab<T>(
        &self,
        pos: u64,
        len: usize,
        take: impl FnOnce(&Bytes, usize) -> T,
    ) -> io::Result<T> {
        let mut slab = self.slab.borrow_mut();
        let end = pos.saturating_add(len as u64);
        if pos < slab.start || end > slab.start + slab.bytes.len() as u64 {
            slab.bytes = read_slab(self.file, pos, self.slab_size.max(len))?;
            slab.start = pos;
        }
        Ok(take(&slab.bytes, (pos - slab.start) as usize))
    }
}

/// Up to `len` bytes from `pos`, fewer only at the end of the file. Read into a
/// fresh buffer's spare capacity: no zeroing first, and the previous slab may
/// still be in use by the slices handed out of it.
fn read_slab(file: &File, pos: u64, len: usize) -> io::Result<Bytes> {
    let mut buf = Vec::with_capacity(len);
    while buf.len() < len {
        let offset = pos + buf.len() as u64;
        match rustix::io::pread(file, rustix::buffer::spare_capacity(&mut buf), offset) {
            Ok(0) => break,
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => {}
            Err(err) => return Err(err.into()),
        }
    }
    Ok(Bytes::from(buf))
}

impl ReadAt for SlabReader<'_> {
    fn read_at(&self, pos: u64, buf: &mut [u8]) -> io::Result<usize> {
        self.with_slab(pos, buf.len(), |bytes, from| {
            let n = buf.len().min(bytes.len().saturating_sub(from));
            buf[..n].copy_from_slice(&bytes[from..from + n]);
            n
        })
    }
}

impl GroupSource for SlabReader<'_> {
    fn group(&self, offset: u64, len: usize) -> io::Result<Bytes> {
        let part = self.with_slab(offset, len, |bytes, from| {
            bytes.slice(from.min(bytes.len())..(from + len).min(bytes.len()))
        })?;
        if part.len() < len {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the data file ends early",
            ));
        }
        Ok(part)
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

    #[test]
    fn groups_are_the_files_bytes_or_an_early_end() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let data: Vec<u8> = (0..10_000u32).map(|i| (i * 13 % 251) as u8).collect();
        std::fs::write(&path, &data).unwrap();
        let file = File::open(&path).unwrap();
        let reader = SlabReader::new(&file, 1000);
        // Within a slab, across its end, back, larger than a slab, to the end.
        for (pos, len) in [
            (0, 10),
            (10, 900),
            (950, 100),
            (0, 4),
            (1_000, 2_500),
            (9_000, 1_000),
        ] {
            let group = reader.group(pos, len).unwrap();
            assert_eq!(
                &group[..],
                &data[pos as usize..pos as usize + len],
                "at {pos}"
            );
        }
        let err = reader.group(9_990, 20).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        assert!(reader.group(20_000, 1).is_err());
    }
}

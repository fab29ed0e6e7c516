//! The newest bytes of a running fill, kept in memory for its waiters.
//!
//! A waiter at the live edge of a fill (typically the client that started it) takes
//! its next bytes from here as the buffers they arrived in: no read back from the
//! temp file, no blocking-pool hop, no copy, and no waiting on the ingest's mutex
//! while the fill writes. A waiter that falls further behind than the window reads
//! from the ingest as before: the window only drops bytes the ingest already holds.

use std::collections::VecDeque;

use bytes::Bytes;

/// Bytes kept beyond those still being written: a few write batches, so a waiter a
/// little behind the live edge still reads from memory.
pub(super) const RECENT_BYTES: usize = 2 << 20;

/// The window: consecutive buffers ending at the fill's newest byte.
#[derive(Debug, Default)]
pub(super) struct Recent {
    /// Buffers in order, each with its offset in the object.
    parts: VecDeque<(u64, Bytes)>,
    /// Bytes in `parts`.
    held: usize,
    /// Offset just past the newest byte.
    end: u64,
}

impl Recent {
    /// Appends the next bytes of the object.
    pub(super) fn push(&mut self, bytes: Bytes) {
        if bytes.is_empty() {
            return;
        }
        let len = bytes.len();
        self.parts.push_back((self.end, bytes));
        self.held += len;
        self.end += len as u64;
    }

    /// Drops the oldest buffers beyond the window's size, but none past `ingested`
    /// (bytes the ingest does not hold yet can only be read from here).
    pub(super) fn trim(&mut self, ingested: u64) {
        while self.held > RECENT_BYTES {
            match self.parts.front() {
                Some((start, bytes)) if start + bytes.len() as u64 <= ingested => {
                    self.held -= bytes.len();
                    self.parts.pop_front();
                }
                _ => break,
            }
        }
    }

    /// Where the window starts: bytes before it are in the ingest.
    pub(super) fn start(&self) -> u64 {
        self.parts.front().map_or(self.end, |(start, _)| *start)
    }

    /// Up to `len` bytes from `offset`, if the window has `offset`: a slice of one
    /// buffer (the caller asks again for the rest).
    pub(super) fn read(&self, offset: u64, len: usize) -> Option<Bytes> {
        if offset < self.start() || offset >= self.end {
            return None;
        }
        // The buffer holding `offset`: the last one starting at or before it.
        let index = self.parts.partition_point(|(start, _)| *start <= offset) - 1;
        let (start, bytes) = self.parts.get(index)?;
        let from = (offset - start) as usize;
        let to = bytes.len().min(from.saturating_add(len));
        Some(bytes.slice(from..to))
    }

    /// Frees the window (the fill has ended; waiters read the stored object).
    pub(super) fn clear(&mut self) {
        self.parts = VecDeque::new();
        self.held = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filled(parts: &[&[u8]]) -> Recent {
        let mut recent = Recent::default();
        for part in parts {
            recent.push(Bytes::copy_from_slice(part));
        }
        recent
    }

    #[test]
    fn reads_slices_of_the_buffer_holding_the_offset() {
        let recent = filled(&[b"abc", b"defg", b"h"]);
        assert_eq!(recent.read(0, 10).as_deref(), Some(&b"abc"[..]));
        assert_eq!(recent.read(1, 1).as_deref(), Some(&b"b"[..]));
        assert_eq!(recent.read(3, 10).as_deref(), Some(&b"defg"[..]));
        assert_eq!(recent.read(5, 10).as_deref(), Some(&b"fg"[..]));
        assert_eq!(recent.read(7, 10).as_deref(), Some(&b"h"[..]));
        assert_eq!(recent.read(8, 10), None, "past the newest byte");
    }

    #[test]
    fn trimming_keeps_bytes_the_ingest_lacks() {
        let part = vec![7u8; RECENT_BYTES / 2];
        let mut recent = filled(&[&part, &part, &part, &part]);
        // Nothing ingested yet: everything stays, whatever the size.
        recent.trim(0);
        assert_eq!(recent.start(), 0);
        assert!(recent.read(0, 1).is_some());
        // Three parts ingested: the window shrinks to its size, oldest first.
        recent.trim(3 * part.len() as u64);
        assert_eq!(recent.start(), 2 * part.len() as u64);
        assert_eq!(
            recent.read(0, 1),
            None,
            "before the window: read the ingest"
        );
        assert!(recent.read(2 * part.len() as u64, 1).is_some());
    }

    #[test]
    fn an_empty_window_answers_nothing() {
        let mut recent = filled(&[b"abc"]);
        recent.clear();
        assert_eq!(recent.read(0, 1), None);
        assert_eq!(Recent::default().read(0, 1), None);
    }
}

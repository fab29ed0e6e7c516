//! Hashes no peer held a moment ago. A stream of requests for unknown hashes
//! would otherwise make this node ask every peer for every request; for a
//! short while the answer is remembered and the next request is a 404 at once.
//! Time is passed in, so the rule is tested without a clock.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use fleetcache_store::Hash;

/// How long "no peer holds it" is believed.
pub(crate) const ABSENT_FOR: Duration = Duration::from_secs(2);
/// Most hashes remembered; past it the memory starts over (a flood of unknown
/// hashes costs one lookup each per `ABSENT_FOR`, never unbounded memory).
const MAX_REMEMBERED: usize = 65_536;

#[derive(Debug, Default)]
pub(crate) struct Absent {
    until: HashMap<Hash, Instant>,
}

impl Absent {
    /// Records that no peer held `hash` at `now`.
    pub(crate) fn insert(&mut self, hash: Hash, now: Instant) {
        if self.until.len() >= MAX_REMEMBERED {
            self.until.retain(|_, until| *until > now);
            if self.until.len() >= MAX_REMEMBERED {
                self.until.clear();
            }
        }
        self.until.insert(hash, now + ABSENT_FOR);
    }

    /// Whether `hash` is known to be absent at `now`.
    pub(crate) fn contains(&mut self, hash: &Hash, now: Instant) -> bool {
        match self.until.get(hash) {
            Some(until) if *until > now => true,
            Some(_) => {
                self.until.remove(hash);
                false
            }
            None => false,
        }
    }

    /// Forgets `hash` (it was just stored here or found after all).
    pub(crate) fn remove(&mut self, hash: &Hash) {
        self.until.remove(hash);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(n: u8) -> Hash {
        Hash::from_bytes([n; 32])
    }

    #[test]
    fn absence_is_believed_for_a_while_only() {
        let start = Instant::now();
        let mut absent = Absent::default();
        absent.insert(hash(1), start);
        assert!(absent.contains(&hash(1), start));
        assert!(absent.contains(&hash(1), start + ABSENT_FOR - Duration::from_millis(1)));
        assert!(!absent.contains(&hash(1), start + ABSENT_FOR));
        assert!(!absent.contains(&hash(2), start));
        absent.insert(hash(3), start);
        absent.remove(&hash(3));
        assert!(!absent.contains(&hash(3), start));
    }

    #[test]
    fn memory_is_bounded() {
        let start = Instant::now();
        let mut absent = Absent::default();
        for i in 0..(MAX_REMEMBERED as u32 + 10) {
            let mut bytes = [0u8; 32];
            bytes[..4].copy_from_slice(&i.to_le_bytes());
            absent.insert(Hash::from_bytes(bytes), start);
        }
        assert!(absent.until.len() <= MAX_REMEMBERED);
    }
}

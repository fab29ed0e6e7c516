//! Short memories of fill outcomes, so repeated misses do not repeat work:
//!
//! - hashes no peer held a moment ago (2 s): a stream of requests for unknown
//!   hashes would otherwise make this node ask every peer for every request;
//!   the next request is a 404 at once;
//! - URLs whose last answer was not for sharing (private, `no-store`, …; 120 s):
//!   their next misses go to the origin each on its own instead of queueing
//!   behind one another's fills (and, in a fleet, behind the URL's owner,
//!   which would only decline again). A storable answer among them is stored
//!   as usual and ends the memory (hit-for-miss, not hit-for-pass).
//!
//! Time is passed in, so the rules are tested without a clock.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

/// How long "no peer holds it" is believed.
pub(crate) const ABSENT_FOR: Duration = Duration::from_secs(2);
/// How long "its answer is not for sharing" is believed.
pub(crate) const UNSHARED_FOR: Duration = Duration::from_secs(120);
/// Most keys remembered; past it the memory starts over (a flood of distinct
/// keys costs one full miss each per period, never unbounded memory).
const MAX_REMEMBERED: usize = 65_536;

#[derive(Debug)]
pub(crate) struct Remembered<K> {
    until: HashMap<K, Instant>,
    period: Duration,
}

impl<K: Hash + Eq> Remembered<K> {
    pub(crate) fn new(period: Duration) -> Self {
        Remembered {
            until: HashMap::new(),
            period,
        }
    }

    /// Remembers `key` from `now` for the period.
    pub(crate) fn insert(&mut self, key: K, now: Instant) {
        if self.until.len() >= MAX_REMEMBERED {
            self.until.retain(|_, until| *until > now);
            if self.until.len() >= MAX_REMEMBERED {
                self.until.clear();
            }
        }
        self.until.insert(key, now + self.period);
    }

    /// Whether `key` is remembered at `now`.
    pub(crate) fn contains(&mut self, key: &K, now: Instant) -> bool {
        match self.until.get(key) {
            Some(until) if *until > now => true,
            Some(_) => {
                self.until.remove(key);
                false
            }
            None => false,
        }
    }

    /// Forgets `key` (the outcome changed).
    pub(crate) fn remove(&mut self, key: &K) {
        self.until.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_remembered_for_its_period_only() {
        let start = Instant::now();
        let mut memory = Remembered::new(ABSENT_FOR);
        memory.insert(1, start);
        assert!(memory.contains(&1, start));
        assert!(memory.contains(&1, start + ABSENT_FOR - Duration::from_millis(1)));
        assert!(!memory.contains(&1, start + ABSENT_FOR));
        assert!(!memory.contains(&2, start));
        memory.insert(3, start);
        memory.remove(&3);
        assert!(!memory.contains(&3, start));
    }

    #[test]
    fn memory_is_bounded() {
        let start = Instant::now();
        let mut memory = Remembered::new(UNSHARED_FOR);
        for i in 0..(MAX_REMEMBERED as u32 + 10) {
            memory.insert(i, start);
        }
        assert!(memory.until.len() <= MAX_REMEMBERED);
    }
}

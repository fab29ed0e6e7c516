//! A bounded map with CLOCK replacement: each entry read since the hand last
//! passed it gets a second chance; the others go, oldest first, until the
//! budget holds. It is what both in-memory caches of the store use (loaded
//! blobs, `hot.rs`; verified chunks, `memory.rs`); callers hold it under
//! their own lock.

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::Hash;

/// What a cache may hold, tracked as entries come and go.
pub(crate) trait Budget<V> {
    fn add(&mut self, value: &V);
    fn remove(&mut self, value: &V);
    /// Whether `entries` entries with what was added exceed the budget.
    fn over(&self, entries: usize) -> bool;
}

pub(crate) struct Clock<K, V, B> {
    map: HashMap<K, (V, bool)>,
    /// Every key in `map` at least once, the hand at the front; keys removed
    /// out of turn stay behind until the hand reaches them.
    ring: VecDeque<K>,
    budget: B,
}

impl<K: Hash + Eq + Clone, V: Clone, B: Budget<V>> Clock<K, V, B> {
    pub(crate) fn new(budget: B) -> Self {
        Clock {
            map: HashMap::new(),
            ring: VecDeque::new(),
            budget,
        }
    }

    pub(crate) fn get(&mut self, key: &K) -> Option<V> {
        let (value, referenced) = self.map.get_mut(key)?;
        *referenced = true;
        Some(value.clone())
    }

    /// Adds `value` unless `key` is there already, then makes room.
    pub(crate) fn insert(&mut self, key: K, value: V) {
        if self.map.contains_key(&key) {
            return;
        }
        self.budget.add(&value);
        self.map.insert(key.clone(), (value, false));
        self.ring.push_back(key);
        self.make_room();
    }

    /// Drops the entries of `keys`.
    pub(crate) fn remove_keys(&mut self, keys: &[K]) {
        let doomed: HashSet<&K> = keys.iter().collect();
        self.remove_where(|key| doomed.contains(key));
    }

    /// Drops every entry whose key `doomed` selects.
    pub(crate) fn remove_where(&mut self, mut doomed: impl FnMut(&K) -> bool) {
        let budget = &mut self.budget;
        self.map.retain(|key, (value, _)| {
            let keep = !doomed(key);
            if !keep {
                budget.remove(value);
            }
            keep
        });
        if self.ring.len() > 2 * self.map.len() + 64 {
            let map = &self.map;
            self.ring.retain(|key| map.contains_key(key));
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    pub(crate) fn budget(&self) -> &B {
        &self.budget
    }

    #[cfg(test)]
    pub(crate) fn ring_len(&self) -> usize {
        self.ring.len()
    }

    fn make_room(&mut self) {
        while self.budget.over(self.map.len()) {
            let Some(key) = self.ring.pop_front() else {
                return;
            };
            let Some((_, referenced)) = self.map.get_mut(&key) else {
                continue;
            };
            if std::mem::take(referenced) {
                self.ring.push_back(key);
                continue;
            }
            if let Some((value, _)) = self.map.remove(&key) {
                self.budget.remove(&value);
            }
        }
    }
}

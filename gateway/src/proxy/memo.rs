//! The decoded variants of recently looked-up URLs, so that a hit on a hot URL
//! needs no index transaction and no decoding.
//!
//! What is remembered is exactly what the store returned, decoded; it is used
//! only while the store's records version is the one read before that lookup.
//! Any committed record write (a fill storing a response, a purge, an
//! invalidation, a blob going) moves the version, and the first lookup to see
//! the new version forgets everything: the next lookups read the index again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use fleetcache_store::{Hash, ReadError, Store};

use crate::cache::stored::StoredResponse;
use crate::sync::lock;

/// URLs remembered at most; past that, the memo starts over.
const MAX_URLS: usize = 4096;

/// One URL's stored responses, each with the blob holding its body.
#[derive(Debug, Default)]
pub(crate) struct Variants {
    pub(crate) responses: Vec<Arc<StoredResponse>>,
    pub(crate) blobs: Vec<Hash>,
}

#[derive(Debug, Default)]
pub(crate) struct VariantMemo {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// The records version everything in `urls` was read at (or after).
    version: u64,
    urls: HashMap<String, Arc<Variants>>,
}

impl VariantMemo {
    /// The variants stored under `key`, remembered or read from `store`.
    pub(crate) fn lookup(&self, store: &Store, key: &str) -> Result<Arc<Variants>, ReadError> {
        let version = store.records_version();
        {
            let mut state = lock(&self.state);
            if state.version < version {
                state.urls.clear();
                state.version = version;
            }
            if state.version == version
                && let Some(found) = state.urls.get(key)
            {
                return Ok(Arc::clone(found));
            }
        }
        let mut variants = Variants::default();
        for record in store.records(key.as_bytes())? {
            match StoredResponse::decode(&record.value) {
                Ok(response) => {
                    variants.responses.push(Arc::new(response));
                    variants.blobs.push(record.blob);
                }
                Err(err) => tracing::warn!(key, "undecodable entry ignored: {err}"),
            }
        }
        let variants = Arc::new(variants);
        let mut state = lock(&self.state);
        // Read at `version` or later; kept only if nothing moved in between.
        if state.version == version {
            if state.urls.len() >= MAX_URLS {
                state.urls.clear();
            }
            state.urls.insert(key.to_owned(), Arc::clone(&variants));
        }
        Ok(variants)
    }
}

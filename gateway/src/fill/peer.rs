//! Fills from fleet members: locate the holders, prove the size, then stream the
//! verified bytes and tree pairs into a verified ingest. Also `DirectFetch`, the
//! cold-range path that fetches only what one response needs and stores nothing.

use std::sync::Arc;

use bytes::Bytes;
use fleetcache_swarm::{Fetch, FetchItem, Located};

use super::{FillFailure, FillHead, Fills, Flight, ItemSource, Outcome, blocking, lost};
use crate::fill::FillKey;
use crate::sync::lock;

impl ItemSource for Fetch {
    async fn next_item(&mut self) -> Result<Option<FetchItem>, FillFailure> {
        Ok(Fetch::next_item(self).await?)
    }
}

impl Fills {
    pub(super) async fn fill_from_peers(&self, flight: &Flight) -> Result<Outcome, FillFailure> {
        let FillKey::Hash(hash) = flight.key else {
            return Err(lost("hash"));
        };
        let swarm = self.swarm.as_ref().ok_or(FillFailure::NotFound)?;
        let located = swarm.locate(hash).await?.ok_or(FillFailure::NotFound)?;
        let size = located.size();
        let capacity = self.store.stats().capacity;
        if size > capacity {
            return Err(FillFailure::StorageFull(format!(
                "object of {size} bytes exceeds the store capacity of {capacity} bytes"
            )));
        }
        let store = self.store.clone();
        // The swarm verifies every group and pair; the store keeps the pairs instead
        // of hashing the bytes again.
        let ingest = blocking(move || Ok(store.ingest_verified(hash, size)?)).await?;
        *lock(&flight.ingest) = Some(ingest);
        let head = Arc::new(FillHead {
            size: Some(size),
            response: None,
            origin_status: None,
            source: "peer",
        });
        flight.progress.send_replace(super::Progress::Streaming {
            head: head.clone(),
            available: 0,
        });
        self.stream_into(flight, &head, located.fetch(0..size))
            .await?;
        let ingest = lock(&flight.ingest).take();
        let store = self.store.clone();
        let blob = blocking(move || {
            let outcome = ingest.ok_or_else(|| lost("ingest"))?.finish()?;
            if outcome.hash != hash {
                // Verified bytes cannot hash differently; this would be our bug.
                return Err(FillFailure::Store(format!(
                    "stored bytes hash to {}",
                    outcome.hash
                )));
            }
            store
                .get(&hash)?
                .ok_or_else(|| FillFailure::Store("evicted as soon as it was stored".into()))
        })
        .await?;
        Ok(Outcome::Stored { head, blob })
    }
}

/// A range fetched straight from peers for one response, not stored.
#[derive(Debug)]
pub(crate) struct DirectFetch {
    located: Located,
    fetch: tokio::sync::Mutex<Option<Fetch>>,
}

impl DirectFetch {
    pub(crate) fn new(located: Located) -> Self {
        DirectFetch {
            located,
            fetch: tokio::sync::Mutex::new(None),
        }
    }

    /// The next verified bytes of `start..end`; continues the running fetch when it
    /// is exactly there, else starts one.
    pub(crate) async fn read(self: Arc<Self>, start: u64, end: u64) -> Result<Bytes, String> {
        let mut guard = self.fetch.lock().await;
        let fetch = match guard.take() {
            Some(fetch) if fetch.remaining() == (start..end) => guard.insert(fetch),
            _ => guard.insert(self.located.fetch(start..end)),
        };
        match fetch.next().await {
            Ok(bytes) => Ok(bytes.unwrap_or_default()),
            Err(err) => Err(err.to_string()),
        }
    }
}

//! Fills from the URL's owner in the fleet: ask it (FETCH_URL) before the
//! origin, so the fleet fetches each URL from the origin once. Until the
//! owner's response head arrives, anything that goes wrong (the owner is down,
//! declines, is overloaded, or slower than the origin's first-byte timeout)
//! sends the fill to the origin instead, within the same flight. Once bytes
//! flow, a failure fails the fill: clients already have bytes, and nothing is
//! stored.

use std::sync::Arc;

use fleetcache_swarm::{FetchItem, OwnerFetch, PeerError, PeerHandle};

use super::origin::new_record;
use super::{FillFailure, FillHead, Fills, Flight, ItemSource, OriginJob, Outcome};
use crate::proxy::peer::{PeerHead, PeerRequest};

/// What to ask the URL's owner, and who it is.
#[derive(Debug)]
pub(crate) struct OwnerAsk {
    pub(crate) peer: PeerHandle,
    pub(crate) request: PeerRequest,
}

/// The owner's body: hashed by the swarm as it arrives and checked against the
/// owner's closing hash and size before the end is reported.
struct OwnerItems(OwnerFetch);

impl ItemSource for OwnerItems {
    async fn next_item(&mut self) -> Result<Option<FetchItem>, FillFailure> {
        match self.0.next().await {
            Ok(bytes) => Ok(bytes.map(FetchItem::Bytes)),
            Err(err) => Err(FillFailure::Owner {
                owner: self.0.owner().name().to_string(),
                timed_out: matches!(err, PeerError::Stalled(_)),
                reason: err.to_string(),
            }),
        }
    }
}

impl Fills {
    /// Fills from the owner; `Ok(None)` when the fill should go to the origin.
    pub(super) async fn fill_from_owner(
        &self,
        flight: &Flight,
        job: &OriginJob,
        ask: OwnerAsk,
    ) -> Result<Option<Outcome>, FillFailure> {
        let Some(swarm) = &self.swarm else {
            return Ok(None);
        };
        let owner = ask.peer.name().to_string();
        let mut request = ask.request;
        request.validator = job.stale.as_ref().map(|entry| entry.blob.hash());
        let settings = &job.origin.settings;
        let asked = self.ask(swarm, flight, &ask.peer, request, settings).await;
        let mut fetch = match asked {
            Ok(fetch) => fetch,
            Err(err) => {
                tracing::info!(%owner, "the URL's owner did not answer ({err}); going to the origin");
                self.count_owner(err.reason());
                return Ok(None);
            }
        };
        let head = match PeerHead::decode(fetch.head()) {
            Ok(head) => head,
            Err(err) => {
                tracing::warn!(%owner, "malformed answer head from the URL's owner: {err}");
                self.count_owner("malformed");
                return Ok(None);
            }
        };
        if head.unchanged {
            let (Some(entry), Ok(None)) = (&job.stale, fetch.next().await) else {
                tracing::warn!(%owner, "the URL's owner confirmed a body this node does not hold");
                self.count_owner("malformed");
                return Ok(None);
            };
            self.count_owner("unchanged");
            let outcome = self
                .keep_revalidated(job, entry, head.response, true, head.origin_status, "owner")
                .await?;
            return Ok(Some(outcome));
        }
        let record = new_record(&job.key, &head.response);
        if let Err(err) = record.validate() {
            tracing::warn!(%owner, "unusable entry from the URL's owner: {err}");
            self.count_owner("malformed");
            return Ok(None);
        }
        self.count_owner("ok");
        let fill_head = FillHead {
            size: head.size,
            response: Some(Arc::new(head.response)),
            origin_status: Some(head.origin_status),
            source: "owner",
        };
        let outcome = self
            .store_streaming(
                flight,
                fill_head,
                record,
                settings.max_object_size,
                OwnerItems(fetch),
            )
            .await;
        if outcome.is_err() {
            self.count_owner("aborted");
        }
        outcome.map(Some)
    }

    /// Sends the request and waits for the head; the flight stops counting as
    /// waiting on an owner either way.
    async fn ask(
        &self,
        swarm: &fleetcache_swarm::Swarm,
        flight: &Flight,
        owner: &PeerHandle,
        request: PeerRequest,
        settings: &crate::origin::OriginSettings,
    ) -> Result<OwnerFetch, PeerError> {
        let asked = swarm
            .fetch_url(
                owner,
                request.encode(),
                settings.first_byte_timeout,
                settings.idle_timeout,
            )
            .await;
        flight
            .asking_owner
            .store(false, std::sync::atomic::Ordering::Release);
        asked
    }

    fn count_owner(&self, result: &str) {
        self.metrics
            .origin
            .owner_requests
            .with_label_values(&[result])
            .inc();
    }
}

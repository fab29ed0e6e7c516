//! Fills from the origin: send the request (with validators when revalidating),
//! judge the answer with the RFC 9111 policy, and either store it (teed to the
//! waiters as it arrives, the entry committed with the body in one transaction),
//! merge a 304 into the stored entry, or decline it: the request that started
//! the fill takes the answer, the others fetch for themselves.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use fleetcache_store::{Blob, NewRecord, Store};
use fleetcache_swarm::FetchItem;
use http::header::{CONTENT_TYPE, HeaderName};
use http::{HeaderMap, Method, Request, Response, StatusCode};

use super::{
    Declined, FillFailure, FillHead, Fills, Flight, ItemSource, Outcome, Progress, blocking, lost,
};
use crate::cache::storable::{Exchange, storable};
use crate::cache::stored::StoredResponse;
use crate::cache::validation::{self, Freshened};
use crate::origin::{Origin, OriginBody, empty_body};
use crate::proxy::key::UrlKey;
use crate::sync::lock;

pub(crate) use super::owner::OwnerAsk;

const SURROGATE_KEY: HeaderName = HeaderName::from_static("surrogate-key");

/// An origin answer not shared with waiters, for the request that started the
/// fill.
pub(crate) type Handoff = Response<OriginBody>;

/// What an origin fill needs.
#[derive(Debug)]
pub(crate) struct OriginJob {
    pub(crate) origin: Arc<Origin>,
    pub(crate) key: UrlKey,
    /// Path and query.
    pub(crate) target: String,
    /// The request header fields to send (already prepared for forwarding).
    pub(crate) headers: HeaderMap,
    /// The stored entry being revalidated, if any.
    pub(crate) stale: Option<StaleEntry>,
    /// The URL's owner in the fleet, asked before the origin.
    pub(crate) owner: Option<OwnerAsk>,
}

/// A stored entry and its body.
#[derive(Debug, Clone)]
pub(crate) struct StaleEntry {
    pub(crate) response: Arc<StoredResponse>,
    pub(crate) blob: Blob,
}

/// Body bytes from the origin, counted into the origin's metrics.
struct OriginItems<'a> {
    body: OriginBody,
    fills: &'a Fills,
    origin: &'a str,
}

impl ItemSource for OriginItems<'_> {
    async fn next_item(&mut self) -> Result<Option<FetchItem>, FillFailure> {
        match self.body.next_bytes().await {
            None => Ok(None),
            Some(Ok(bytes)) => {
                self.fills
                    .metrics
                    .origin
                    .bytes
                    .with_label_values(&[self.origin])
                    .inc_by(bytes.len() as u64);
                Ok(Some(FetchItem::Bytes(bytes)))
            }
            Some(Err(err)) => Err(FillFailure::Origin(err)),
        }
    }
}

/// Statuses that let a stale entry be served under `stale-if-error` (RFC 5861 §4).
fn is_stale_if_error_status(status: StatusCode) -> bool {
    matches!(status.as_u16(), 500 | 502 | 503 | 504)
}

impl Fills {
    pub(super) async fn fill_from_origin(
        &self,
        flight: &Flight,
        mut job: OriginJob,
    ) -> Result<Outcome, FillFailure> {
        if let Some(ask) = job.owner.take()
            && let Some(outcome) = self.fill_from_owner(flight, &job, ask).await?
        {
            return Ok(outcome);
        }
        let mut stale = job.stale.clone();
        loop {
            let request_time = SystemTime::now();
            let mut headers = job.headers.clone();
            if let Some(stale) = &stale {
                headers.extend(validation::revalidation_headers(&stale.response));
            }
            let response = self.send(&job, headers.clone(), stale.is_some()).await?;
            let response_time = SystemTime::now();
            let status = response.status();
            if status == StatusCode::NOT_MODIFIED {
                let Some(entry) = &stale else {
                    // Nothing conditional was asked: a 304 out of the blue is the
                    // origin's to explain to the client, not ours to store.
                    *lock(&flight.handoff) = Some(response);
                    return Ok(Outcome::Declined(Declined::NotShared("unexpected-304")));
                };
                match validation::freshen(
                    &entry.response,
                    response.headers(),
                    request_time,
                    response_time,
                ) {
                    Freshened::Updated {
                        response: updated,
                        keep,
                    } => {
                        self.metrics
                            .origin
                            .revalidations
                            .with_label_values(&["304"])
                            .inc();
                        return self
                            .keep_revalidated(&job, entry, *updated, keep.is_ok(), 304, "origin")
                            .await;
                    }
                    Freshened::Refetch => {
                        // The 304 is for some other representation (§4.3.4):
                        // ask again, unconditionally.
                        stale = None;
                        continue;
                    }
                }
            }
            if stale.is_some() {
                let outcome = if is_stale_if_error_status(status) {
                    "error"
                } else {
                    "200"
                };
                self.metrics
                    .origin
                    .revalidations
                    .with_label_values(&[outcome])
                    .inc();
                if is_stale_if_error_status(status) {
                    // Waiters holding the stale entry may serve it (stale-if-error);
                    // the rest get the origin's answer.
                    *lock(&flight.handoff) = Some(response);
                    return Ok(Outcome::Declined(Declined::OriginError(status.as_u16())));
                }
            }
            return self
                .store_answer(
                    flight,
                    &job,
                    &headers,
                    response,
                    request_time,
                    response_time,
                )
                .await;
        }
    }

    /// Sends the fill's request, recording the origin's metrics.
    async fn send(
        &self,
        job: &OriginJob,
        headers: HeaderMap,
        revalidating: bool,
    ) -> Result<Response<OriginBody>, FillFailure> {
        let mut request = Request::new(empty_body());
        *request.method_mut() = Method::GET;
        *request.uri_mut() = job.target.parse().map_err(|_| lost("request target"))?;
        *request.headers_mut() = headers;
        let sent = Instant::now();
        let result = job.origin.send(request).await;
        let metrics = &self.metrics.origin;
        metrics.exchange(job.origin.name(), sent, &result);
        if result.is_err() && revalidating {
            metrics.revalidations.with_label_values(&["error"]).inc();
        }
        Ok(result?)
    }

    /// A 304 (from the origin, or the owner saying its body is ours) confirmed
    /// the stored body: save the merged header fields and times (or, if the new
    /// fields forbid storing, drop the entry; the answer still holds for the
    /// clients waiting now).
    pub(super) async fn keep_revalidated(
        &self,
        job: &OriginJob,
        entry: &StaleEntry,
        updated: StoredResponse,
        keep: bool,
        origin_status: u16,
        source: &'static str,
    ) -> Result<Outcome, FillFailure> {
        let record = new_record(&job.key, &updated);
        let store = self.store.clone();
        let hash = entry.blob.hash();
        let saved = blocking(move || {
            if keep {
                store.put_record(hash, record)?;
            } else {
                store.remove_record(&record.key, &record.variant)?;
            }
            Ok(())
        })
        .await;
        if let Err(err) = saved {
            // The body was evicted or deleted meanwhile: the answer still holds
            // for the clients waiting now, with the blob they hold open.
            tracing::debug!("keeping the revalidated entry: {err}");
        }
        Ok(Outcome::Stored {
            head: Arc::new(FillHead {
                size: Some(entry.blob.size()),
                response: Some(Arc::new(updated)),
                origin_status: Some(origin_status),
                source,
            }),
            blob: entry.blob.clone(),
        })
    }

    /// A full answer: store it while streaming it to the waiters, or decline it.
    async fn store_answer(
        &self,
        flight: &Flight,
        job: &OriginJob,
        request_headers: &HeaderMap,
        response: Response<OriginBody>,
        request_time: SystemTime,
        response_time: SystemTime,
    ) -> Result<Outcome, FillFailure> {
        let settings = &job.origin.settings;
        let exchange = Exchange {
            method: &Method::GET,
            request_headers,
            status: response.status().as_u16(),
            response_headers: response.headers(),
            request_time,
            response_time,
        };
        let stored = match storable(&exchange, settings.defaults) {
            Ok(stored) => stored,
            Err(reason) => return Ok(self.decline(flight, response, reason.as_str())),
        };
        let declared = response.body().declared_len();
        if declared.is_some_and(|len| len > settings.max_object_size) {
            return Ok(self.decline(flight, response, "too-large"));
        }
        let record = new_record(&job.key, &stored);
        if let Err(err) = record.validate() {
            tracing::debug!("not storing: {err}");
            return Ok(self.decline(flight, response, "entry-too-large"));
        }
        let head = FillHead {
            size: declared,
            origin_status: Some(stored.status),
            response: Some(Arc::new(stored)),
            source: "origin",
        };
        let items = OriginItems {
            body: response.into_body(),
            fills: self,
            origin: job.origin.name(),
        };
        self.store_streaming(flight, head, record, settings.max_object_size, items)
            .await
    }

    /// Stores a URL response while streaming it to the waiters: its entry is
    /// committed with the body, in one transaction, once every byte arrived
    /// (unless it outgrew `max_object_size`: then it is only streamed).
    pub(super) async fn store_streaming<S: ItemSource>(
        &self,
        flight: &Flight,
        head: FillHead,
        record: NewRecord,
        max_object_size: u64,
        items: S,
    ) -> Result<Outcome, FillFailure> {
        let content_type = head
            .response
            .as_ref()
            .and_then(|r| r.headers.get(CONTENT_TYPE))
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let store = self.store.clone();
        let ingest = blocking(move || {
            make_room_for_variant(&store, &record)?;
            let mut ingest = store.ingest(content_type.as_deref())?;
            ingest.attach_record(record)?;
            Ok(ingest)
        })
        .await?;
        *lock(&flight.ingest) = Some(ingest);
        let head = Arc::new(head);
        flight.progress.send_replace(Progress::Streaming {
            head: head.clone(),
            available: 0,
        });
        let written = self.stream_into(flight, &head, items).await?;
        if written > max_object_size {
            // A chunked answer that outgrew the limit: the waiters read it back
            // from the fill, and it is not kept.
            return Ok(Outcome::Unstored {
                head,
                size: written,
            });
        }
        let ingest = lock(&flight.ingest).take();
        let store = self.store.clone();
        let blob = blocking(move || {
            let outcome = ingest.ok_or_else(|| lost("ingest"))?.finish()?;
            store
                .get(&outcome.hash)?
                .ok_or_else(|| FillFailure::Store("evicted as soon as it was stored".into()))
        })
        .await?;
        self.metrics.origin.stored.inc();
        Ok(Outcome::Stored { head, blob })
    }

    fn decline(&self, flight: &Flight, response: Handoff, reason: &'static str) -> Outcome {
        self.metrics
            .origin
            .not_stored
            .with_label_values(&[reason])
            .inc();
        *lock(&flight.handoff) = Some(response);
        Outcome::Declined(Declined::NotShared(reason))
    }
}

/// The store record of a URL response: its variant, surrogate keys and
/// encoded header section.
pub(super) fn new_record(key: &UrlKey, stored: &StoredResponse) -> NewRecord {
    NewRecord {
        key: key.as_str().as_bytes().to_vec(),
        variant: stored.variant(),
        tags: surrogate_keys(&stored.headers),
        value: stored.encode(),
    }
}

/// Most variants kept per URL. Every distinct value of a `Vary` field is a
/// variant, so a client sending random values could otherwise grow one URL's
/// entries (and the cost of looking it up) without end.
const MAX_VARIANTS: usize = 32;

/// Before a new variant of a URL is stored, drops the oldest ones beyond
/// [`MAX_VARIANTS`] (a record for the same variant is replaced anyway).
fn make_room_for_variant(store: &Store, record: &NewRecord) -> Result<(), FillFailure> {
    let mut existing = store.records(&record.key)?;
    if existing.len() < MAX_VARIANTS || existing.iter().any(|r| r.variant == record.variant) {
        return Ok(());
    }
    // Oldest first by the time each response was received.
    existing.sort_by_key(|r| {
        StoredResponse::decode(&r.value).map_or(0, |response| response.response_time)
    });
    for old in &existing[..=existing.len() - MAX_VARIANTS] {
        store.remove_record(&old.key, &old.variant)?;
    }
    Ok(())
}

/// `Surrogate-Key` values: space-separated keys across every line.
fn surrogate_keys(headers: &HeaderMap) -> Vec<Vec<u8>> {
    let mut keys: Vec<Vec<u8>> = headers
        .get_all(SURROGATE_KEY)
        .iter()
        .flat_map(|value| value.as_bytes().split(u8::is_ascii_whitespace))
        .filter(|key| !key.is_empty())
        .map(<[u8]>::to_vec)
        .collect();
    keys.sort();
    keys.dedup();
    keys.truncate(NewRecord::TAGS_MAX);
    keys
}

//! The URL route: fleetcache as an RFC 9111 shared cache in front of origins.
//!
//! GET and HEAD look up the URL's stored variants, and serve, revalidate or fill
//! through the one single-flight (`fill`); everything else passes through to the
//! origin with its body streamed, and a successful unsafe request invalidates
//! what it names (§4.4). Every answer says what happened in `Cache-Status`.

pub(crate) mod key;
pub(crate) mod memo;
pub(crate) mod peer;
pub(crate) mod purge;
mod request;
mod respond;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;

use bytes::Bytes;
use fleetcache_store::Blob;
use http::uri::Scheme;
use http::{Method, Request, Response};
use http_body::Body;
use http_body_util::BodyExt;

use crate::cache::date::unix_seconds;
use crate::cache::directives::RequestCacheControl;
use crate::cache::evaluate::{Decision, evaluate};
use crate::cache::freshness::age_at;
use crate::cache::invalidation::{RequestTarget, invalidations};
use crate::cache::status::{CacheStatus, ForwardReason};
use crate::cache::stored::StoredResponse;
use crate::cache::vary::{VaryKey, select_variant, vary_matches};
use crate::error::RequestError;
use crate::fill::{
    Declined, FillKey, FillSource, Flight, HeadState, Joined, OriginJob, OwnerAsk, StaleEntry,
};
use crate::http::body::{ResponseBody, Source};
use crate::http::error_response;
use crate::node::NodeState;
use crate::origin::{ForwardBody, Origin, empty_body};
use fleetcache_swarm::Owner;
use key::UrlKey;
use memo::Variants;
use peer::PeerRequest;
use request::{Purpose, Target, forward_headers, target_of};
use respond::EntryParts;

/// How a URL request was answered, for the request metrics.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Served {
    /// `hit`, `stale`, `miss` or `pass`.
    pub(crate) cache: &'static str,
    /// Where the body came from: `local` or `origin`.
    pub(crate) source: &'static str,
}

/// One request on the URL route.
struct Exchange<'a> {
    state: &'a Arc<NodeState>,
    origin: Arc<Origin>,
    target: Target,
    key: UrlKey,
    peer: SocketAddr,
    now: SystemTime,
    head: bool,
    /// A URL request from a fleet peer (this node is the URL's owner): never
    /// forwarded to another peer.
    from_peer: bool,
}

/// A stored entry that matches the request.
struct Found {
    response: Arc<StoredResponse>,
    blob: Blob,
}

/// Serves a request for anything but `/blake3/`.
pub(crate) async fn handle<B>(
    state: &Arc<NodeState>,
    req: Request<B>,
    peer: SocketAddr,
) -> Result<(Response<ResponseBody>, Served), RequestError>
where
    B: Body<Data = Bytes> + Send + Sync + Unpin + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let target = target_of(&req, Scheme::HTTP)?;
    let origin = state
        .origins
        .for_host(&target.host)
        .ok_or(RequestError::NotFound)?
        .clone();
    let exchange = Exchange {
        state,
        key: target.key(),
        origin,
        target,
        peer,
        now: SystemTime::now(),
        head: req.method() == Method::HEAD,
        from_peer: false,
    };
    match *req.method() {
        Method::GET | Method::HEAD => exchange.cached(&req).await,
        _ => exchange.pass_unsafe(req).await,
    }
}

impl Exchange<'_> {
    /// GET and HEAD: from the store, after revalidation, or through a fill.
    async fn cached<B>(
        &self,
        req: &Request<B>,
    ) -> Result<(Response<ResponseBody>, Served), RequestError> {
        let request_cc = RequestCacheControl::from_headers(req.headers());
        let (variants, found) = self.lookup(req)?;
        let defaults = self.origin.settings.defaults;
        if let Some(found) = found {
            let evaluation = evaluate(&request_cc, &found.response, self.now, defaults);
            let strip = &evaluation.strip_fields;
            let age = evaluation.current_age;
            let (reason, serve_stale_on_error) = match evaluation.decision {
                Decision::Serve if evaluation.fresh => {
                    let status = CacheStatus::hit().with_ttl(evaluation.ttl);
                    return Ok((self.stored(req, &found, strip, status, age), HIT));
                }
                Decision::Serve => {
                    self.count_stale("max-stale");
                    let status = CacheStatus::hit()
                        .with_ttl(evaluation.ttl)
                        .with_detail("max-stale");
                    return Ok((self.stored(req, &found, strip, status, age), STALE));
                }
                Decision::ServeStaleWhileRevalidate => {
                    self.refresh_in_background(req, &found);
                    self.count_stale("stale-while-revalidate");
                    let status = CacheStatus::hit()
                        .with_ttl(evaluation.ttl)
                        .with_detail("stale-while-revalidate");
                    return Ok((self.stored(req, &found, strip, status, age), STALE));
                }
                Decision::Revalidate {
                    reason,
                    serve_stale_on_error,
                } => (reason, serve_stale_on_error),
            };
            if request_cc.only_if_cached {
                return Err(RequestError::NotCached);
            }
            let fwd = reason.forward_reason();
            return self
                .revalidate(req, &found, fwd, serve_stale_on_error, evaluation.ttl)
                .await;
        }
        if request_cc.only_if_cached {
            return Err(RequestError::NotCached);
        }
        let variants = &variants.responses;
        let fwd = if variants.is_empty() {
            ForwardReason::UriMiss
        } else {
            ForwardReason::VaryMiss
        };
        if self.head {
            return self.head_miss(req, variants, fwd).await;
        }
        let variant = variant_for(variants, req);
        self.fill(req, variant, None, fwd, true, false).await
    }

    /// The URL's stored variants (their Vary keys), and the newest that matches
    /// the request with its body, if any.
    fn lookup<B>(&self, req: &Request<B>) -> Result<(Arc<Variants>, Option<Found>), RequestError> {
        let store = &self.state.store;
        let variants = self.state.variants.lookup(store, self.key.as_str())?;
        let chosen = select_variant(variants.responses.iter().map(Arc::as_ref), req.headers())
            .and_then(|chosen| {
                variants
                    .responses
                    .iter()
                    .position(|v| std::ptr::eq(v.as_ref(), chosen))
            });
        let found = match chosen {
            Some(index) => store.get(&variants.blobs[index])?.map(|blob| Found {
                response: variants.responses[index].clone(),
                blob,
            }),
            None => None,
        };
        Ok((variants, found))
    }

    /// Revalidates a stale entry through the single-flight, then serves the
    /// answer; on an origin failure serves the stale entry if allowed.
    async fn revalidate<B>(
        &self,
        req: &Request<B>,
        found: &Found,
        fwd: ForwardReason,
        stale_if_error: bool,
        ttl: i64,
    ) -> Result<(Response<ResponseBody>, Served), RequestError> {
        let stale = StaleEntry {
            response: found.response.clone(),
            blob: found.blob.clone(),
        };
        let variant = found.response.variant();
        let result = self
            .fill(req, variant, Some(stale), fwd, true, stale_if_error)
            .await;
        match result {
            Err(err) if stale_if_error && err.is_upstream() => {
                self.count_stale("stale-if-error");
                let status = CacheStatus::hit()
                    .with_ttl(ttl)
                    .with_detail("stale-if-error");
                let age = age_at(&found.response, self.now).current_age;
                Ok((self.stored(req, found, &[], status, age), STALE))
            }
            Err(err) if err.is_upstream() => {
                // Say that a stored response existed but could not be used.
                err.log();
                let mut response = error_response(&err);
                let status = CacheStatus::forward(fwd).with_detail(err.detail());
                respond::decorate(response.headers_mut(), &status, None);
                Ok((response, PASS))
            }
            other => other,
        }
    }

    /// Starts a revalidation nobody waits for (stale-while-revalidate); one per
    /// key, as any fill.
    fn refresh_in_background<B>(&self, req: &Request<B>, found: &Found) {
        let key = FillKey::Url {
            key: self.key.as_str().to_owned(),
            variant: found.response.variant(),
        };
        let job = self.job(
            req,
            Some(StaleEntry {
                response: found.response.clone(),
                blob: found.blob.clone(),
            }),
        );
        if let Err(err) = self
            .state
            .fills
            .join(key, FillSource::Origin(Box::new(job)))
        {
            tracing::warn!("starting a background revalidation: {err}");
        }
    }

    fn job<B>(&self, req: &Request<B>, stale: Option<StaleEntry>) -> OriginJob {
        OriginJob {
            owner: self.owner_ask(req),
            origin: self.origin.clone(),
            key: self.key.clone(),
            target: self.target.target.clone(),
            headers: forward_headers(
                req.headers(),
                &self.target,
                self.peer,
                self.origin.settings.forwarded,
                Purpose::Fill,
            ),
            stale,
        }
    }

    /// The URL's owner in the fleet and what to ask it, when that is another
    /// node and this request did not come from a peer (forward at most once).
    fn owner_ask<B>(&self, req: &Request<B>) -> Option<OwnerAsk> {
        if self.from_peer {
            return None;
        }
        let swarm = self.state.fills.swarm()?;
        let Owner::Peer(peer) = swarm.owner(self.key.as_str().as_bytes()) else {
            return None;
        };
        let request = PeerRequest {
            target: self.target.clone(),
            client: self.peer,
            validator: None,
            headers: forward_headers(
                req.headers(),
                &self.target,
                self.peer,
                false,
                Purpose::Owner,
            ),
        };
        Some(OwnerAsk { peer, request })
    }

    /// Joins (or starts) the fill of this URL and variant and answers from it.
    /// `again` allows one more round when the answer turns out to be for
    /// another variant; `stale_ok` says the caller holds a stale entry it may
    /// serve if the origin fails (it then gets the failure as an error).
    async fn fill<B>(
        &self,
        req: &Request<B>,
        variant: Vec<u8>,
        stale: Option<StaleEntry>,
        fwd: ForwardReason,
        again: bool,
        stale_ok: bool,
    ) -> Result<(Response<ResponseBody>, Served), RequestError> {
        let fills = &self.state.fills;
        let mut key = FillKey::Url {
            key: self.key.as_str().to_owned(),
            variant,
        };
        let mut job = self.job(req, stale);
        if fills.unshared(&key) {
            // Its last answer was not for sharing: go to the origin alone, not
            // behind other requests' fills or the URL's owner (which would
            // decline again). A storable answer is stored as usual.
            key = fills.alone(key);
            job.owner = None;
        }
        let joined = fills.join(key, FillSource::Origin(Box::new(job)))?;
        let (flight, started) = match joined {
            Joined::Started(flight) => (flight, true),
            Joined::Waiting(flight) => (flight, false),
            // Only hash fills answer these ways.
            Joined::Stored(_) | Joined::Absent => {
                return Err(RequestError::Internal(
                    "a URL fill answered like a hash fill".into(),
                ));
            }
        };
        self.answer_from(req, flight, started, fwd, again, stale_ok)
            .await
    }

    /// Answers from a fill once its source has answered: streaming or stored,
    /// declined, or (for another variant) through this request's own fill.
    async fn answer_from<B>(
        &self,
        req: &Request<B>,
        flight: Arc<Flight>,
        started: bool,
        fwd: ForwardReason,
        again: bool,
        stale_ok: bool,
    ) -> Result<(Response<ResponseBody>, Served), RequestError> {
        // A request that joins after the origin answered reads that answer
        // like a stored response (RFC 9111 §4); earlier ones were forwarded
        // with it and take it as it is.
        let late = !started && flight.head_known();
        let state = match flight.head().await {
            Ok(state) => state,
            Err(failure) => return Err(failure.into()),
        };
        let (fill_head, blob) = match state {
            HeadState::Streaming(head) => (head, None),
            HeadState::Stored(head, blob) => (head, Some(blob)),
            HeadState::Declined(reason) => {
                return self
                    .declined(req, &flight, started, reason, fwd, stale_ok)
                    .await;
            }
        };
        let Some(response) = fill_head.response.clone() else {
            return Err(RequestError::Internal("URL fill without a response".into()));
        };
        if !vary_matches(&response, req.headers()) {
            // Answered for another variant: fetch ours, in its own fill.
            let Some(ours) = VaryKey::for_request(&response.headers, req.headers()) else {
                return self.pass(req, ForwardReason::Bypass).await;
            };
            if !again {
                return self.pass(req, ForwardReason::VaryMiss).await;
            }
            let ours = ours.to_variant();
            return Box::pin(self.fill(req, ours, None, ForwardReason::VaryMiss, false, false))
                .await;
        }
        let origin_status = fill_head.origin_status.unwrap_or(response.status);
        let mut status = CacheStatus::forward(fwd)
            .with_fwd_status(origin_status)
            .with_stored()
            // Where the bytes come from: the URL's owner, or the origin.
            .with_detail(fill_head.source);
        if !started {
            status = status.with_collapsed();
        }
        let (size, hash, source) = match blob {
            Some(blob) => (Some(blob.size()), Some(blob.hash()), Source::Stored(blob)),
            None => (fill_head.size, None, Source::Filling(flight.clone())),
        };
        let served = Served {
            cache: if fwd == ForwardReason::Stale {
                "stale"
            } else {
                "miss"
            },
            source: fill_head.source,
        };
        // As the answer stands for any request: its remaining lifetime and age.
        let fresh = evaluate(
            &RequestCacheControl::default(),
            &response,
            self.now,
            self.origin.settings.defaults,
        );
        if late && matches!(fresh.decision, Decision::Revalidate { .. }) {
            // Stale on arrival, or to be validated on every use.
            return self.pass(req, fwd).await;
        }
        let status = status.with_ttl(fresh.ttl);
        if req.headers().contains_key(http::header::RANGE) && size.is_none() {
            // A range of a chunked answer needs its length: wait for the end.
            if let HeadState::Stored(_, blob) = flight.finished().await? {
                let found = Found { response, blob };
                return Ok((
                    self.stored(req, &found, &[], status, fresh.current_age),
                    served,
                ));
            }
        }
        let parts = EntryParts {
            response: &response,
            size,
            source,
            hash,
            age: fresh.current_age,
            strip: &[],
        };
        let reply = respond::entry(
            parts,
            req.headers(),
            self.head,
            unix_seconds(self.now),
            &status,
        );
        Ok((reply, served))
    }

    /// The answer is not shared: the request that started the fill takes it;
    /// waiters fetch for themselves (or serve their stale entry if the origin
    /// erred and stale-if-error allows).
    async fn declined<B>(
        &self,
        req: &Request<B>,
        flight: &Arc<Flight>,
        started: bool,
        reason: Declined,
        fwd: ForwardReason,
        stale_ok: bool,
    ) -> Result<(Response<ResponseBody>, Served), RequestError> {
        if stale_ok && matches!(reason, Declined::OriginError(_)) {
            return Err(RequestError::OriginStatus(reason.to_string()));
        }
        if started && let Some(response) = flight.take_handoff() {
            let status = CacheStatus::forward(fwd)
                .with_fwd_status(response.status().as_u16())
                .with_detail(reason.to_string());
            return Ok((respond::passed(response, &status), PASS));
        }
        self.pass(req, fwd).await
    }

    /// A HEAD miss: answer from a running fill's head, else ask the origin for
    /// the head alone (never a body only to throw it away).
    async fn head_miss<B>(
        &self,
        req: &Request<B>,
        variants: &[Arc<StoredResponse>],
        fwd: ForwardReason,
    ) -> Result<(Response<ResponseBody>, Served), RequestError> {
        let key = FillKey::Url {
            key: self.key.as_str().to_owned(),
            variant: variant_for(variants, req),
        };
        if let Some(flight) = self.state.fills.join_running(&key) {
            return self.answer_from(req, flight, false, fwd, true, false).await;
        }
        self.pass(req, fwd).await
    }

    /// Sends the request to the origin as it is and streams the answer back,
    /// storing nothing.
    async fn pass<B>(
        &self,
        req: &Request<B>,
        fwd: ForwardReason,
    ) -> Result<(Response<ResponseBody>, Served), RequestError> {
        let forward = self.passing(req.method(), req.headers(), empty_body())?;
        let response = self.send(forward).await?;
        let status = CacheStatus::forward(fwd).with_fwd_status(response.status().as_u16());
        Ok((respond::passed(response, &status), PASS))
    }

    /// Unsafe and unknown methods: through to the origin with the body
    /// streamed; a non-error answer invalidates the URLs it concerns.
    async fn pass_unsafe<B>(
        &self,
        req: Request<B>,
    ) -> Result<(Response<ResponseBody>, Served), RequestError>
    where
        B: Body<Data = Bytes> + Send + Sync + Unpin + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let (parts, body) = req.into_parts();
        // A body the client breaks (an invalid chunk, a cut connection) fails
        // the origin request too; remember whose fault it was.
        let broken = Arc::new(AtomicBool::new(false));
        let flag = broken.clone();
        let body: ForwardBody = body
            .map_err(move |err| {
                flag.store(true, Ordering::Relaxed);
                err.into()
            })
            .boxed();
        let method = parts.method;
        let forward = self.passing(&method, &parts.headers, body)?;
        let response = match self.send(forward).await {
            Ok(response) => response,
            Err(_) if broken.load(Ordering::Relaxed) => {
                return Err(RequestError::BadRequest(
                    "the request body is malformed or was cut off".into(),
                ));
            }
            Err(err) => return Err(err),
        };
        let request_target = RequestTarget {
            scheme: self.target.scheme.as_str(),
            authority: &self.target.host,
            path_and_query: &self.target.target,
        };
        let targets = invalidations(
            &method,
            response.status().as_u16(),
            &request_target,
            response.headers(),
        );
        let keys = targets
            .iter()
            .map(|target| self.target.with_path(target).key())
            .collect();
        purge::invalidate(&self.state.store, &self.state.metrics, keys).await;
        let status =
            CacheStatus::forward(ForwardReason::Method).with_fwd_status(response.status().as_u16());
        Ok((respond::passed(response, &status), PASS))
    }

    /// The request as it goes to the origin when passed through.
    fn passing(
        &self,
        method: &Method,
        headers: &http::HeaderMap,
        body: ForwardBody,
    ) -> Result<Request<ForwardBody>, RequestError> {
        let mut forward = Request::new(body);
        *forward.method_mut() = method.clone();
        *forward.uri_mut() = self.target_uri()?;
        *forward.headers_mut() = forward_headers(
            headers,
            &self.target,
            self.peer,
            self.origin.settings.forwarded,
            Purpose::Pass,
        );
        Ok(forward)
    }

    async fn send(
        &self,
        forward: Request<ForwardBody>,
    ) -> Result<Response<crate::origin::OriginBody>, RequestError> {
        let sent = std::time::Instant::now();
        let result = self.origin.send(forward).await;
        let metrics = &self.state.metrics.origin;
        metrics.exchange(self.origin.name(), sent, &result);
        Ok(result?)
    }

    fn target_uri(&self) -> Result<http::Uri, RequestError> {
        self.target
            .target
            .parse()
            .map_err(|_| RequestError::BadRequest("invalid request target".into()))
    }

    /// An answer from a stored entry whose current age is `age`.
    fn stored<B>(
        &self,
        req: &Request<B>,
        found: &Found,
        strip: &[http::HeaderName],
        status: CacheStatus,
        age: u64,
    ) -> Response<ResponseBody> {
        let parts = EntryParts {
            response: &found.response,
            size: Some(found.blob.size()),
            source: Source::Stored(found.blob.clone()),
            hash: Some(found.blob.hash()),
            age,
            strip,
        };
        respond::entry(
            parts,
            req.headers(),
            self.head,
            unix_seconds(self.now),
            &status,
        )
    }

    fn count_stale(&self, reason: &str) {
        self.state
            .metrics
            .origin
            .stale
            .with_label_values(&[reason])
            .inc();
    }
}

const HIT: Served = Served {
    cache: "hit",
    source: "local",
};
const STALE: Served = Served {
    cache: "stale",
    source: "local",
};
const PASS: Served = Served {
    cache: "pass",
    source: "origin",
};

/// The variant a request belongs to, as the newest stored variant's `Vary`
/// sees it (empty when nothing is stored: the first answer says what varies).
fn variant_for<B>(variants: &[Arc<StoredResponse>], req: &Request<B>) -> Vec<u8> {
    variants
        .iter()
        .max_by_key(|stored| stored.response_time)
        .and_then(|stored| VaryKey::for_request(&stored.headers, req.headers()))
        .map(|key| key.to_variant())
        .unwrap_or_default()
}

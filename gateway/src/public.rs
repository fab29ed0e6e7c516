//! The public listener: `GET|HEAD /blake3/<hash>` served from the local store
//! with ranges and conditional requests (`?format=bao`: the verifiable
//! encoding, in `verifiable/`). Any other path goes to the URL route when
//! origins are configured, else 404.

use std::net::SocketAddr;
use std::sync::Arc;

use fleetcache_store::{Blob, Hash};
use http::header::{CACHE_CONTROL, CONTENT_TYPE, ETAG, HeaderName, HeaderValue, RANGE};
use http::{Method, Request, Response, StatusCode};

use tracing::Instrument;

use crate::cache::status::{CacheStatus, ForwardReason};
use crate::error::RequestError;
use crate::fill::{DirectFetch, FillFailure, FillKey, FillSource, Flight, HeadState, Joined};
use crate::http::body::{ResponseBody, Source};
use crate::http::range::{RangeRequest, parse_range};
use crate::http::representation::{self, Representation, hash_value, header_value};
use crate::http::{error_response, observed};
use crate::node::NodeState;
use crate::verifiable::Format;

const CACHE_STATUS: HeaderName = HeaderName::from_static("cache-status");
const HIT: HeaderValue = HeaderValue::from_static("fleetcache; hit");
const PEER_STORED: HeaderValue =
    HeaderValue::from_static("fleetcache; fwd=miss; stored; detail=peer");
const PEER: HeaderValue = HeaderValue::from_static("fleetcache; fwd=miss; detail=peer");
const IMMUTABLE: HeaderValue = HeaderValue::from_static("public, max-age=31536000, immutable");
const DEFAULT_CONTENT_TYPE: &str = "application/octet-stream";
const HASH_PREFIX: &str = "/blake3/";

/// Serves one request on the public listener.
pub(crate) async fn handle<B>(
    state: Arc<NodeState>,
    req: Request<B>,
    peer: SocketAddr,
) -> Response<ResponseBody>
where
    B: http_body::Body<Data = bytes::Bytes> + Send + Sync + Unpin + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let path = req.uri().path();
    let route = if path == "/blake3" || path.starts_with(HASH_PREFIX) {
        "blob"
    } else if state.origins.is_empty() {
        "other"
    } else {
        "url"
    };
    let observer = state.metrics.observer(route, req.version());
    let span = tracing::info_span!("request", method = %req.method(), path = %path);
    let result = match route {
        "blob" => serve_blob(&state, &req).instrument(span.clone()).await,
        // Boxed: the URL route's future is large, and hyper moves the whole
        // request future into place for every request, hash hits included.
        "url" => Box::pin(crate::proxy::handle(&state, req, peer).instrument(span.clone()))
            .await
            .map(|(response, served)| (response, Served::Url(served))),
        _ => Err(RequestError::NotFound),
    };
    let (response, cache, source) = match result {
        Ok((mut response, Served::Hit)) => {
            response.headers_mut().insert(CACHE_STATUS, HIT);
            (response, "hit", "local")
        }
        Ok((mut response, Served::Peer { stored })) => {
            let status = if stored { PEER_STORED } else { PEER };
            response.headers_mut().insert(CACHE_STATUS, status);
            (response, "miss", "peer")
        }
        Ok((response, Served::Url(served))) => (response, served.cache, served.source),
        Err(err) => {
            err.log();
            let mut response = error_response(&err);
            let status = CacheStatus::forward(ForwardReason::Miss).with_detail(err.detail());
            response
                .headers_mut()
                .insert(CACHE_STATUS, status.to_header_value());
            (response, "miss", "local")
        }
    };
    tracing::debug!(parent: &span, status = response.status().as_u16(), "response");
    observed(response, observer, cache, source)
}

/// How a successful response was produced, for `Cache-Status`.
pub(crate) enum Served {
    /// From the local store.
    Hit,
    /// From peers; `stored` once the object is (being) written to the store.
    Peer { stored: bool },
    /// The URL route, which sets its own `Cache-Status`.
    Url(crate::proxy::Served),
}

async fn serve_blob<B>(
    state: &NodeState,
    req: &Request<B>,
) -> Result<(Response<ResponseBody>, Served), RequestError> {
    let head = match *req.method() {
        Method::GET => false,
        Method::HEAD => true,
        _ => return Err(RequestError::MethodNotAllowed { allow: "GET, HEAD" }),
    };
    let hash = parse_hash_path(req.uri().path())?;
    if Format::from_query(req.uri().query())? == Format::Bao {
        return crate::verifiable::serve(state, req, hash, head).await;
    }
    let ranged = req.headers().contains_key(RANGE) && !head;
    // Every miss warms the cache: ranges included, the whole object is filled
    // once, and a range is read from the fill...
    let found = match find(state, hash).await? {
        Ok(found) => found,
        // Too large for the store: a range is still served from the holders.
        Err(FillFailure::StorageFull(_)) if ranged => return direct(state, hash, req).await,
        Err(failure) => return Err(failure.into()),
    };
    let served = found.served();
    let (flight, size) = match found {
        Found::Stored { blob, .. } => {
            return Ok((object_response(&Object::stored(blob), req, head), served));
        }
        Found::Filling { flight, size } => (flight, size),
    };
    // ...unless the fill is far from the range's first byte: then only the
    // groups the range needs are fetched for this response, while the fill
    // carries on.
    let far = ranged
        && range_start(req, size)
            .is_some_and(|start| start > flight.available().saturating_add(DIRECT_AHEAD));
    if far {
        return direct(state, hash, req).await;
    }
    let object = Object {
        hash,
        size,
        source: Source::Filling(flight),
    };
    Ok((object_response(&object, req, head), served))
}

/// Where a hash's bytes are.
pub(crate) enum Found {
    /// In the store: a hit, or (`hit` false) a fill that has just committed.
    Stored { blob: Blob, hit: bool },
    /// Arriving through a fill (joined or started) whose size is proven.
    Filling { flight: Arc<Flight>, size: u64 },
}

impl Found {
    /// How the response was produced, for `Cache-Status`.
    pub(crate) fn served(&self) -> Served {
        match self {
            Found::Stored { hit: true, .. } => Served::Hit,
            Found::Stored { hit: false, .. } | Found::Filling { .. } => {
                Served::Peer { stored: true }
            }
        }
    }

    /// The object's size, known either way.
    pub(crate) fn size(&self) -> u64 {
        match self {
            Found::Stored { blob, .. } => blob.size(),
            Found::Filling { size, .. } => *size,
        }
    }
}

/// Looks `hash` up in the store, else joins or starts its fill from peers and
/// waits for the fill's head: the one lookup both hash routes (raw and
/// `?format=bao`) share. `Ok(Err(failure))` is a fill that failed, for the
/// route to answer in its own way.
pub(crate) async fn find(
    state: &NodeState,
    hash: Hash,
) -> Result<Result<Found, FillFailure>, RequestError> {
    // An index lookup is a read transaction on page-cached data: cheaper on
    // the runtime thread than a hop to the blocking pool.
    if let Some(blob) = state.store.get(&hash)? {
        return Ok(Ok(Found::Stored { blob, hit: true }));
    }
    let fills = &state.fills;
    if fills.swarm().is_none() {
        return Err(RequestError::NotFound);
    }
    let flight = match fills.join(FillKey::Hash(hash), FillSource::Peers)? {
        Joined::Started(flight) | Joined::Waiting(flight) => flight,
        Joined::Absent => return Err(RequestError::NotFound),
        Joined::Stored(blob) => return Ok(Ok(Found::Stored { blob, hit: true })),
    };
    Ok(match flight.head().await {
        Ok(HeadState::Stored(_, blob)) => Ok(Found::Stored { blob, hit: false }),
        Ok(HeadState::Streaming(head)) => {
            let size = head
                .size
                .ok_or_else(|| RequestError::Internal("a fill by hash without a size".into()))?;
            Ok(Found::Filling { flight, size })
        }
        Ok(HeadState::Declined(reason)) => return Err(RequestError::Internal(reason.to_string())),
        Err(failure) => Err(failure),
    })
}

/// How far ahead of a running fill a range may start before it is fetched
/// directly: further than a few seconds of transfer away.
const DIRECT_AHEAD: u64 = 8 << 20;

/// The first byte a `Range` request needs, if it asks for a satisfiable range.
fn range_start<B>(req: &Request<B>, size: u64) -> Option<u64> {
    match parse_range(req.headers().get(RANGE)?.as_bytes(), size) {
        RangeRequest::Partial(ranges) => ranges.iter().map(|r| r.start).min(),
        RangeRequest::Full | RangeRequest::Unsatisfiable => None,
    }
}

/// A range answered straight from a holder: only the groups it needs, not stored.
async fn direct<B>(
    state: &NodeState,
    hash: Hash,
    req: &Request<B>,
) -> Result<(Response<ResponseBody>, Served), RequestError> {
    let swarm = state.fills.swarm().ok_or(RequestError::NotFound)?;
    let located = swarm
        .locate(hash)
        .await
        .map_err(FillFailure::from)?
        .ok_or(RequestError::NotFound)?;
    let object = Object {
        hash,
        size: located.size(),
        source: Source::Direct(Arc::new(DirectFetch::new(located))),
    };
    Ok((
        object_response(&object, req, false),
        Served::Peer { stored: false },
    ))
}

/// What a response serves: the object's identity and where its bytes come from.
struct Object {
    hash: Hash,
    size: u64,
    source: Source,
}

impl Object {
    fn stored(blob: Blob) -> Self {
        Object {
            hash: blob.hash(),
            size: blob.size(),
            source: Source::Stored(blob),
        }
    }

    /// The type given at ingest; peers do not carry it, so fills have none.
    fn content_type(&self) -> &str {
        match &self.source {
            Source::Stored(blob) => blob.content_type(),
            Source::Filling(_) | Source::Direct(_) => None,
        }
        .unwrap_or(DEFAULT_CONTENT_TYPE)
    }
}

/// `/blake3/<64 hex>` → the hash, or a 400 that says what is wrong.
fn parse_hash_path(path: &str) -> Result<Hash, RequestError> {
    parse_hash(path.strip_prefix(HASH_PREFIX).unwrap_or(""))
}

/// 64 hex characters → the hash, or a 400 that says what is wrong.
pub(crate) fn parse_hash(text: &str) -> Result<Hash, RequestError> {
    text.parse::<Hash>().map_err(|err| {
        RequestError::BadRequest(format!(
            "malformed hash in path: {err}; expected /blake3/ followed by 64 hex characters"
        ))
    })
}

/// The response for an object by hash: immutable, its hash the strong entity tag.
fn object_response<B>(object: &Object, req: &Request<B>, head: bool) -> Response<ResponseBody> {
    let mut headers = http::HeaderMap::new();
    headers.insert(ETAG, hash_value("\"", &object.hash, "\""));
    headers.insert(CACHE_CONTROL, IMMUTABLE);
    headers.insert(CONTENT_TYPE, header_value(object.content_type()));
    let rep = Representation {
        status: StatusCode::OK,
        headers,
        size: Some(object.size),
        generated: None,
        source: object.source.clone(),
    };
    representation::respond(rep, req.headers(), head, unix_now())
}

pub(crate) fn unix_now() -> u64 {
    crate::cache::date::unix_seconds(std::time::SystemTime::now())
}

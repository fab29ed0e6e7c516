//! The public listener: `GET|HEAD /blake3/<hash>` served from the local store
//! with ranges and conditional requests. Any other path is 404 until origin
//! mode lands.

use std::fmt::Write as _;
use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use fleetcache_store::{Blob, Hash};
use http::header::{
    ACCEPT_RANGES, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, ETAG, HeaderName,
    HeaderValue, RANGE,
};
use http::{Method, Request, Response, StatusCode};

use tracing::Instrument;

use crate::error::RequestError;
use crate::fill::{DirectFetch, FillFailure, FlightSize, Joined};
use crate::http::body::{ResponseBody, Segment, Source};
use crate::http::conditional::{self, Precondition};
use crate::http::range::{RangeRequest, parse_range};
use crate::http::{error_response, observed, text_response};
use crate::node::NodeState;

const CACHE_STATUS: HeaderName = HeaderName::from_static("cache-status");
const HIT: HeaderValue = HeaderValue::from_static("fleetcache; hit");
const PEER_STORED: HeaderValue =
    HeaderValue::from_static("fleetcache; fwd=miss; stored; detail=peer");
const PEER: HeaderValue = HeaderValue::from_static("fleetcache; fwd=miss; detail=peer");
const IMMUTABLE: HeaderValue = HeaderValue::from_static("public, max-age=31536000, immutable");
const DEFAULT_CONTENT_TYPE: &str = "application/octet-stream";
const HASH_PREFIX: &str = "/blake3/";

/// Serves one request on the public listener.
pub(crate) async fn handle<B>(state: Arc<NodeState>, req: Request<B>) -> Response<ResponseBody> {
    let path = req.uri().path();
    let route = if path == "/blake3" || path.starts_with(HASH_PREFIX) {
        "blob"
    } else {
        "other"
    };
    let observer = state.metrics.observer(route);
    let span = tracing::info_span!("request", method = %req.method(), path = %path);
    let result = match route {
        "blob" => serve_blob(&state, &req).instrument(span.clone()).await,
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
        Err(err) => {
            err.log();
            let mut response = error_response(&err);
            let status = format!("fleetcache; fwd=miss; detail={}", err.detail());
            if let Ok(value) = HeaderValue::from_str(&status) {
                response.headers_mut().insert(CACHE_STATUS, value);
            }
            (response, "miss", "local")
        }
    };
    tracing::debug!(parent: &span, status = response.status().as_u16(), "response");
    observed(response, observer, cache, source)
}

/// How a successful response was produced, for `Cache-Status`.
enum Served {
    /// From the local store.
    Hit,
    /// From peers; `stored` once the object is (being) written to the store.
    Peer { stored: bool },
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
    // An index lookup is a read transaction on page-cached data: cheaper on
    // the runtime thread than a hop to the blocking pool.
    if let Some(blob) = state.store.get(&hash)? {
        return Ok((
            object_response(&Object::stored(blob), req, head),
            Served::Hit,
        ));
    }
    let fills = state.fills.as_ref().ok_or(RequestError::NotFound)?;
    let flight = if req.headers().contains_key(RANGE) && !head {
        match fills.running(&hash) {
            Some(flight) => flight,
            None => {
                // Only the groups the range needs, straight from a holder; nothing stored.
                let located = fills
                    .swarm()
                    .locate(hash)
                    .await
                    .map_err(FillFailure::from)?
                    .ok_or(RequestError::NotFound)?;
                let object = Object {
                    hash,
                    size: located.size(),
                    source: Source::Direct(Arc::new(DirectFetch::new(located))),
                };
                return Ok((
                    object_response(&object, req, head),
                    Served::Peer { stored: false },
                ));
            }
        }
    } else {
        match fills.join(hash)? {
            Joined::Flight(flight) => flight,
            Joined::Stored(blob) => {
                return Ok((
                    object_response(&Object::stored(blob), req, head),
                    Served::Hit,
                ));
            }
        }
    };
    let object = match flight.size().await? {
        FlightSize::Stored(blob) => Object::stored(blob),
        FlightSize::Streaming(size) => Object {
            hash,
            size,
            source: Source::Filling(flight),
        },
    };
    Ok((
        object_response(&object, req, head),
        Served::Peer { stored: true },
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

/// Builds the response for an object: preconditions, then ranges.
fn object_response<B>(object: &Object, req: &Request<B>, head: bool) -> Response<ResponseBody> {
    let size = object.size;
    let etag = format!("\"{}\"", object.hash);
    let content_type = object.content_type();

    let mut builder = Response::builder()
        .header(ETAG, &etag)
        .header(CACHE_CONTROL, IMMUTABLE)
        .header(ACCEPT_RANGES, "bytes");

    match conditional::evaluate(req.headers(), &etag) {
        Precondition::Proceed => {}
        Precondition::NotModified => {
            return finish(
                builder.status(StatusCode::NOT_MODIFIED),
                ResponseBody::empty(),
            );
        }
        Precondition::Failed => {
            let mut response =
                text_response(StatusCode::PRECONDITION_FAILED, "precondition failed");
            response.headers_mut().insert(ETAG, header_value(&etag));
            return response;
        }
    }

    // Range handling is defined for GET only (RFC 9110 §14.2).
    let range_request = match req.headers().get(RANGE) {
        Some(value) if !head && conditional::if_range_allows(req.headers(), &etag) => {
            parse_range(value.as_bytes(), size)
        }
        _ => RangeRequest::Full,
    };

    let (status, length, segments) = match range_request {
        RangeRequest::Full => {
            builder = builder.header(CONTENT_TYPE, content_type);
            (StatusCode::OK, size, vec![Segment::Blob(0..size)])
        }
        RangeRequest::Unsatisfiable => {
            let mut response =
                text_response(StatusCode::RANGE_NOT_SATISFIABLE, "range not satisfiable");
            let headers = response.headers_mut();
            headers.insert(CONTENT_RANGE, header_value(&format!("bytes */{size}")));
            headers.insert(ETAG, header_value(&etag));
            headers.insert(ACCEPT_RANGES, HeaderValue::from_static("bytes"));
            return response;
        }
        RangeRequest::Partial(ranges) if ranges.len() == 1 => {
            let range = ranges[0].clone();
            builder = builder
                .header(CONTENT_TYPE, content_type)
                .header(CONTENT_RANGE, content_range(&range, size));
            (
                StatusCode::PARTIAL_CONTENT,
                range.end - range.start,
                vec![Segment::Blob(range)],
            )
        }
        RangeRequest::Partial(ranges) => {
            let boundary = format!("fleetcache-{:016x}", rand::random::<u64>());
            let segments = multipart_segments(&ranges, size, content_type, &boundary);
            let length = segments.iter().map(segment_len).sum();
            builder = builder.header(
                CONTENT_TYPE,
                format!("multipart/byteranges; boundary={boundary}"),
            );
            (StatusCode::PARTIAL_CONTENT, length, segments)
        }
    };

    builder = builder.status(status).header(CONTENT_LENGTH, length);
    let body = if head {
        ResponseBody::empty()
    } else {
        ResponseBody::blob(object.source.clone(), segments)
    };
    finish(builder, body)
}

fn finish(builder: http::response::Builder, body: ResponseBody) -> Response<ResponseBody> {
    builder.body(body).unwrap_or_else(|err| {
        // Only reachable if a header value we built is invalid.
        tracing::error!("building response: {err}");
        text_response(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
    })
}

/// `multipart/byteranges` (RFC 9110 §14.6): a part header before each range
/// and a closing delimiter.
fn multipart_segments(
    ranges: &[Range<u64>],
    size: u64,
    content_type: &str,
    boundary: &str,
) -> Vec<Segment> {
    let mut segments = Vec::with_capacity(ranges.len() * 2 + 1);
    for (i, range) in ranges.iter().enumerate() {
        let mut head = String::new();
        if i > 0 {
            head.push_str("\r\n");
        }
        let _ = write!(
            head,
            "--{boundary}\r\nContent-Type: {content_type}\r\nContent-Range: {}\r\n\r\n",
            content_range(range, size)
        );
        segments.push(Segment::Literal(Bytes::from(head)));
        segments.push(Segment::Blob(range.clone()));
    }
    segments.push(Segment::Literal(Bytes::from(format!(
        "\r\n--{boundary}--\r\n"
    ))));
    segments
}

fn segment_len(segment: &Segment) -> u64 {
    match segment {
        Segment::Literal(bytes) => bytes.len() as u64,
        Segment::Blob(range) => range.end - range.start,
    }
}

fn content_range(range: &Range<u64>, size: u64) -> String {
    format!("bytes {}-{}/{size}", range.start, range.end - 1)
}

fn header_value(text: &str) -> HeaderValue {
    HeaderValue::from_str(text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

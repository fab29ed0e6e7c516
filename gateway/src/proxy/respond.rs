//! Client responses on the URL route: from a stored or arriving entry (through
//! the shared representation logic: preconditions, ranges), or an origin
//! answer passed through. Each carries `Via`, `Cache-Status`, and for a stored
//! body the `Link` to the same bytes by hash (RFC 6249).

use fleetcache_store::Hash;
use http::header::{HeaderName, LINK};
use http::{HeaderMap, Response, StatusCode, Version};

use crate::cache::evaluate::serving_headers;
use crate::cache::status::{CacheStatus, append_via};
use crate::cache::storable::strip_hop_by_hop;
use crate::cache::stored::StoredResponse;
use crate::cache::surrogate::SURROGATE_CONTROL;
use crate::http::body::{ResponseBody, Source};
use crate::http::representation::{self, Representation, hash_value};
use crate::origin::OriginBody;

const CACHE_STATUS: HeaderName = HeaderName::from_static("cache-status");

/// What a response from an entry is made of.
pub(super) struct EntryParts<'a> {
    pub(super) response: &'a StoredResponse,
    /// Body bytes in all, when known.
    pub(super) size: Option<u64>,
    pub(super) source: Source,
    /// The body's hash, once stored.
    pub(super) hash: Option<Hash>,
    /// The entry's current age (§4.2.3).
    pub(super) age: u64,
    /// Fields not to send without revalidation (qualified `no-cache`).
    pub(super) strip: &'a [HeaderName],
}

/// The answer from a stored entry, or one arriving through a fill.
pub(super) fn entry(
    parts: EntryParts<'_>,
    request_headers: &HeaderMap,
    head: bool,
    now: u64,
    status: &CacheStatus,
) -> Response<ResponseBody> {
    let headers = serving_headers(parts.response, parts.age, parts.strip);
    let rep = Representation {
        status: StatusCode::from_u16(parts.response.status).unwrap_or(StatusCode::OK),
        headers,
        size: parts.size,
        generated: Some(
            parts
                .response
                .date()
                .unwrap_or(parts.response.response_time),
        ),
        source: parts.source,
    };
    let mut reply = representation::respond(rep, request_headers, head, now);
    decorate(reply.headers_mut(), status, parts.hash);
    reply
}

/// An origin answer streamed to the client as it is (nothing stored).
pub(super) fn passed(
    response: Response<OriginBody>,
    status: &CacheStatus,
) -> Response<ResponseBody> {
    let (mut parts, body) = response.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    parts.headers.remove(SURROGATE_CONTROL);
    decorate(&mut parts.headers, status, None);
    Response::from_parts(parts, ResponseBody::origin(body))
}

/// Adds this node's `Via`, its `Cache-Status` member (after any upstream
/// cache's, RFC 9211 §2), and the `Link` to the body by hash.
pub(super) fn decorate(headers: &mut HeaderMap, status: &CacheStatus, hash: Option<Hash>) {
    append_via(headers, Version::HTTP_11);
    headers.append(CACHE_STATUS, status.to_header_value());
    if let Some(hash) = hash {
        headers.append(LINK, hash_value("</blake3/", &hash, ">; rel=\"duplicate\""));
    }
}

//! The one response builder for stored and arriving objects, on both routes:
//! preconditions (304 / 412), then ranges (206, multipart, 416), then the body
//! streamed from its source.

use std::fmt::Write as _;
use std::ops::Range;

use bytes::Bytes;
use http::header::{
    ACCEPT_RANGES, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_LOCATION, CONTENT_RANGE, CONTENT_TYPE,
    DATE, ETAG, EXPIRES, HeaderValue, LAST_MODIFIED, RANGE, VARY,
};
use http::{HeaderMap, Response, StatusCode};

use super::body::{ResponseBody, Segment, Source};
use super::conditional::{self, Precondition, Validators};
use super::range::{RangeRequest, parse_range};
use super::text_response;
use crate::cache::date::parse_http_date;
use fleetcache_store::Hash;

const DEFAULT_CONTENT_TYPE: &str = "application/octet-stream";

/// A representation to answer with.
#[derive(Debug)]
pub(crate) struct Representation {
    /// The status a plain GET gets (200 for objects by hash; a URL entry's own).
    pub(crate) status: StatusCode,
    /// Header fields to send (validators and content type among them), without
    /// framing fields.
    pub(crate) headers: HeaderMap,
    /// Bytes in all; `None` while a chunked origin response is still arriving.
    pub(crate) size: Option<u64>,
    /// When a stored response was generated, for `If-Modified-Since` without
    /// `Last-Modified` (see `Validators::generated`).
    pub(crate) generated: Option<u64>,
    pub(crate) source: Source,
}

/// Builds the response to `request_headers` (a GET, or a HEAD when `head`) at
/// `now` (Unix seconds).
pub(crate) fn respond(
    rep: Representation,
    request_headers: &HeaderMap,
    head: bool,
    now: u64,
) -> Response<ResponseBody> {
    let Representation {
        status,
        mut headers,
        size,
        generated,
        source,
    } = rep;
    // Framing is ours to set. A stored Content-Range on a 200 is the origin's
    // field and is kept (RFC 9111 §3.1); a 206 gets its own below.
    for name in [CONTENT_LENGTH, http::header::TRANSFER_ENCODING] {
        headers.remove(name);
    }
    // Preconditions apply to what would otherwise be a 2xx (RFC 9110 §13.2.1).
    if status.is_success() {
        let etag_value = headers.get(ETAG).cloned();
        let etag = etag_value.as_ref().and_then(|v| v.to_str().ok());
        let last_modified = headers
            .get(LAST_MODIFIED)
            .and_then(|v| parse_http_date(v.as_bytes(), now));
        let validators = Validators {
            etag,
            last_modified,
            generated,
        };
        match conditional::evaluate(request_headers, &validators, now) {
            Precondition::Proceed => {}
            Precondition::NotModified => return not_modified(&headers),
            Precondition::Failed => {
                let mut response =
                    text_response(StatusCode::PRECONDITION_FAILED, "precondition failed");
                copy(&headers, response.headers_mut(), &[ETAG, LAST_MODIFIED]);
                return response;
            }
        }
        // Range handling is defined for GET of a 200 (RFC 9110 §14.2) and needs
        // the size; a chunked response still arriving is sent whole.
        if status == StatusCode::OK
            && let Some(size) = size
        {
            headers.insert(ACCEPT_RANGES, HeaderValue::from_static("bytes"));
            let ranges = match request_headers.get(RANGE) {
                Some(value)
                    if !head && conditional::if_range_allows(request_headers, &validators) =>
                {
                    parse_range(value.as_bytes(), size)
                }
                _ => RangeRequest::Full,
            };
            return ranged(status, headers, size, source, ranges, head);
        }
    }
    let segments = match size {
        Some(size) => {
            headers.insert(CONTENT_LENGTH, HeaderValue::from(size));
            vec![Segment::Blob(0..size)]
        }
        None => vec![Segment::Rest(0)],
    };
    let body = if head {
        ResponseBody::empty()
    } else {
        ResponseBody::blob(source, segments)
    };
    finish(status, headers, body)
}

fn ranged(
    status: StatusCode,
    mut headers: HeaderMap,
    size: u64,
    source: Source,
    ranges: RangeRequest,
    head: bool,
) -> Response<ResponseBody> {
    let (status, length, segments) = match ranges {
        RangeRequest::Full => (status, size, vec![Segment::Blob(0..size)]),
        RangeRequest::Unsatisfiable => {
            let mut response =
                text_response(StatusCode::RANGE_NOT_SATISFIABLE, "range not satisfiable");
            let out = response.headers_mut();
            out.insert(CONTENT_RANGE, header_value(&format!("bytes */{size}")));
            out.insert(ACCEPT_RANGES, HeaderValue::from_static("bytes"));
            copy(&headers, out, &[ETAG, LAST_MODIFIED]);
            return response;
        }
        RangeRequest::Partial(ranges) if ranges.len() == 1 => {
            let range = ranges[0].clone();
            headers.insert(CONTENT_RANGE, header_value(&content_range(&range, size)));
            (
                StatusCode::PARTIAL_CONTENT,
                range.end - range.start,
                vec![Segment::Blob(range)],
            )
        }
        RangeRequest::Partial(ranges) => {
            let boundary = format!("fleetcache-{:016x}", rand::random::<u64>());
            let content_type = headers
                .get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or(DEFAULT_CONTENT_TYPE)
                .to_owned();
            let segments = multipart_segments(&ranges, size, &content_type, &boundary);
            headers.remove(CONTENT_RANGE);
            // Multipart parts are literals and ranges: every length is known.
            let length = segments.iter().filter_map(Segment::len).sum();
            headers.insert(
                CONTENT_TYPE,
                header_value(&format!("multipart/byteranges; boundary={boundary}")),
            );
            (StatusCode::PARTIAL_CONTENT, length, segments)
        }
    };
    headers.insert(CONTENT_LENGTH, HeaderValue::from(length));
    let body = if head {
        ResponseBody::empty()
    } else {
        ResponseBody::blob(source, segments)
    };
    finish(status, headers, body)
}

/// A 304 carries the fields a 200 would have that let the client update its
/// cache, and no representation metadata (RFC 9110 §15.4.5).
fn not_modified(headers: &HeaderMap) -> Response<ResponseBody> {
    let mut out = HeaderMap::new();
    copy(
        headers,
        &mut out,
        &[
            CACHE_CONTROL,
            CONTENT_LOCATION,
            DATE,
            ETAG,
            EXPIRES,
            VARY,
            LAST_MODIFIED,
        ],
    );
    finish(StatusCode::NOT_MODIFIED, out, ResponseBody::empty())
}

fn copy(from: &HeaderMap, to: &mut HeaderMap, names: &[http::header::HeaderName]) {
    for name in names {
        for value in from.get_all(name) {
            to.append(name.clone(), value.clone());
        }
    }
}

fn finish(status: StatusCode, headers: HeaderMap, body: ResponseBody) -> Response<ResponseBody> {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
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

fn content_range(range: &Range<u64>, size: u64) -> String {
    format!("bytes {}-{}/{size}", range.start, range.end - 1)
}

pub(crate) fn header_value(text: &str) -> HeaderValue {
    HeaderValue::from_str(text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// `before`, the hash's hex digits, `after`, as one field value built in a
/// single allocation (an `ETag` or `Link` goes out with every hit).
pub(crate) fn hash_value(before: &str, hash: &Hash, after: &str) -> HeaderValue {
    let digits = hash.hex();
    let mut line = Vec::with_capacity(before.len() + 64 + after.len());
    line.extend_from_slice(before.as_bytes());
    line.extend_from_slice(digits.as_str().as_bytes());
    line.extend_from_slice(after.as_bytes());
    HeaderValue::from_maybe_shared(Bytes::from(line))
        .unwrap_or_else(|_| HeaderValue::from_static(""))
}

//! Answering `?format=bao`: find the object (the store, else the hash's fill),
//! choose the chunk groups a `Range` selects, evaluate preconditions against
//! the body's own tag, then stream the encoding from the stored blob.
//!
//! The encoding is written by `Blob::encode_ranges` on the blocking pool, each
//! group checked against the hash before it is written, and handed to the
//! response through a bounded channel: memory per response is a few pieces,
//! whatever the object's size. Damage found on disk ends the body with an
//! error (the client sees a cut transfer, never a clean end) and the store
//! quarantines the object.

use std::io;

use bytes::Bytes;
use fleetcache_store::{Blob, Hash, ReadError};
use http::header::{
    ACCEPT_RANGES, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, ETAG, HeaderName,
    HeaderValue, RANGE, VARY,
};
use http::{HeaderMap, Request, Response, StatusCode};
use tokio::sync::{Semaphore, SemaphorePermit, mpsc};

use super::geometry::Selection;
use super::{GROUPS_HEADER, MEDIA_TYPE, SIZE_HEADER};
use crate::error::RequestError;
use crate::fill::{FillFailure, Flight, HeadState};
use crate::http::body::{BodyError, ResponseBody};
use crate::http::conditional::{self, Precondition, Validators};
use crate::http::range::{RangeRequest, parse_range};
use crate::http::representation::header_value;
use crate::http::text_response;
use crate::node::NodeState;
use crate::public::{Found, Served, find, unix_now};

const IMMUTABLE: HeaderValue = HeaderValue::from_static("public, max-age=31536000, immutable");

/// Bytes of the encoding's pieces gathered before one hand-over to the
/// response: large enough to keep channel traffic low. The pieces are slices
/// of the store's 1 MiB reads, not copies, so what is queued keeps its reads
/// alive: with [`QUEUE`] batches of this size (and what hyper has buffered) a
/// slow reader's response holds about two of them, three at worst.
const PIECE: usize = 64 * 1024;

/// Batches queued between the encoder and the socket.
const QUEUE: usize = 4;

/// Encoders running at once, across the process. Each holds a blocking-pool
/// thread for as long as its client reads, so without a bound, slow readers
/// could take every thread the store's reads need; past the bound a request
/// gets a 503 and `fleetcache get` tries its next node.
const MAX_ENCODERS: usize = 128;
static ENCODERS: Semaphore = Semaphore::const_new(MAX_ENCODERS);

/// Answers `GET|HEAD /blake3/<hash>?format=bao` (`head` for HEAD).
pub(crate) async fn serve<B>(
    state: &NodeState,
    req: &Request<B>,
    hash: Hash,
    head: bool,
) -> Result<(Response<ResponseBody>, Served), RequestError> {
    let located = find(state, hash).await?.map_err(unstored)?;
    let served = located.served();
    let size = located.size();
    let (selection, headers, len) = match plan(hash, size, req.headers()) {
        Plan::Answer(response) => return Ok((response, served)),
        Plan::Body {
            selection,
            headers,
            len,
        } => (selection, headers, len),
    };
    if head {
        return Ok((
            finish(StatusCode::OK, headers, ResponseBody::empty()),
            served,
        ));
    }
    let blob = match located {
        Found::Stored { blob, .. } => blob,
        // The encoding is made from the stored object (it carries the tree), so
        // a miss waits for its fill to commit; that fill is the one every other
        // request for the hash shares.
        Found::Filling { flight, .. } => stored(&flight).await?,
    };
    let permit = ENCODERS.try_acquire().map_err(|_| {
        RequestError::Unavailable("too many verifiable streams in progress; retry shortly".into())
    })?;
    let rx = spawn_encoder(blob, selection.ranges().clone(), permit);
    Ok((
        finish(StatusCode::OK, headers, ResponseBody::channel(rx, len)),
        served,
    ))
}

/// Waits for the fill to commit the object.
async fn stored(flight: &Flight) -> Result<Blob, RequestError> {
    match flight.finished().await {
        Ok(HeadState::Stored(_, blob)) => Ok(blob),
        // Every byte arrived but the store would not keep it.
        Ok(HeadState::Streaming(_)) => Err(unstored(FillFailure::StorageFull(
            "the object is larger than this node stores".into(),
        ))),
        Ok(HeadState::Declined(reason)) => Err(RequestError::Internal(reason.to_string())),
        Err(failure) => Err(unstored(failure)),
    }
}

/// A fill failure as the request's error; one the store refused says what
/// still works, since the raw route can stream such an object from peers.
fn unstored(failure: FillFailure) -> RequestError {
    match failure {
        FillFailure::StorageFull(reason) => RequestError::StorageFull(format!(
            "{reason}; a verifiable stream is encoded from a stored object, \
             ask without ?format=bao for the raw bytes"
        )),
        other => other.into(),
    }
}

/// What to answer once the object's size is known.
enum Plan {
    /// 304, 412 or 416: no body to encode.
    Answer(Response<ResponseBody>),
    /// 200 with the encoding of `selection`, `len` bytes with the prefix;
    /// `headers` are complete.
    Body {
        selection: Selection,
        headers: HeaderMap,
        len: u64,
    },
}

/// Chooses the groups (`Range`, unless `If-Range` names another
/// representation), then evaluates preconditions against that body's tag.
fn plan(hash: Hash, size: u64, request: &HeaderMap) -> Plan {
    let whole = Selection::whole(size);
    let whole_tag = whole.etag(&hash);
    let whole_validators = Validators {
        etag: Some(&whole_tag),
        ..Validators::default()
    };
    let selection = match request.get(RANGE) {
        Some(value) if conditional::if_range_allows(request, &whole_validators) => {
            match parse_range(value.as_bytes(), size) {
                RangeRequest::Full => whole,
                RangeRequest::Partial(ranges) => match Selection::covering(&ranges, size) {
                    Some(selection) => selection,
                    None => return Plan::Answer(unsatisfiable(size)),
                },
                RangeRequest::Unsatisfiable => return Plan::Answer(unsatisfiable(size)),
            }
        }
        _ => whole,
    };
    let tag = selection.etag(&hash);
    let mut headers = HeaderMap::new();
    headers.insert(ETAG, header_value(&tag));
    headers.insert(CACHE_CONTROL, IMMUTABLE);
    // The body depends on `Range` but is not a byte range of anything: caches
    // must key on the header and never slice a stored body for a range.
    headers.insert(VARY, HeaderValue::from_static("range"));
    let validators = Validators {
        etag: Some(&tag),
        ..Validators::default()
    };
    match conditional::evaluate(request, &validators, unix_now()) {
        Precondition::Proceed => {}
        Precondition::NotModified => {
            return Plan::Answer(finish(
                StatusCode::NOT_MODIFIED,
                headers,
                ResponseBody::empty(),
            ));
        }
        Precondition::Failed => {
            let mut response =
                text_response(StatusCode::PRECONDITION_FAILED, "precondition failed");
            response.headers_mut().insert(ETAG, header_value(&tag));
            return Plan::Answer(response);
        }
    }
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(MEDIA_TYPE));
    // Byte ranges of this body are not served: `Range` selects chunk groups.
    headers.insert(ACCEPT_RANGES, HeaderValue::from_static("none"));
    headers.insert(
        HeaderName::from_static(SIZE_HEADER),
        HeaderValue::from(size),
    );
    if !selection.is_whole() {
        headers.insert(
            HeaderName::from_static(GROUPS_HEADER),
            header_value(&selection.header()),
        );
    }
    // Selections are whole groups, which always have a length.
    let Some(len) = selection.body_len() else {
        return Plan::Answer(text_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal error: a selection that cuts into a chunk group",
        ));
    };
    headers.insert(CONTENT_LENGTH, HeaderValue::from(len));
    Plan::Body {
        selection,
        headers,
        len,
    }
}

fn unsatisfiable(size: u64) -> Response<ResponseBody> {
    let mut response = text_response(StatusCode::RANGE_NOT_SATISFIABLE, "range not satisfiable");
    let headers = response.headers_mut();
    headers.insert(CONTENT_RANGE, header_value(&format!("bytes */{size}")));
    headers.insert(VARY, HeaderValue::from_static("range"));
    response
}

fn finish(status: StatusCode, headers: HeaderMap, body: ResponseBody) -> Response<ResponseBody> {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

/// Starts encoding `ranges` of `blob` on the blocking pool: the size prefix,
/// then the encoding, in batches of pieces through a bounded channel. A
/// damaged group ends the stream with an error after the verified pieces
/// before it.
fn spawn_encoder(
    blob: Blob,
    ranges: bao_tree::ChunkRanges,
    permit: SemaphorePermit<'static>,
) -> mpsc::Receiver<Result<Vec<Bytes>, BodyError>> {
    let (tx, rx) = mpsc::channel(QUEUE);
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let _entered = span.enter();
        // A closed channel (the response was dropped) stops the encoder.
        let send = |pieces| {
            tx.blocking_send(Ok(pieces))
                .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the client went away"))
        };
        let prefix = vec![Bytes::copy_from_slice(&blob.size().to_le_bytes())];
        let result = send(prefix)
            .map_err(ReadError::Output)
            .and_then(|()| blob.encode_ranges_batched(&ranges, PIECE, send));
        match result {
            // The client went away: nobody to tell.
            Ok(()) | Err(ReadError::Output(_)) => {}
            Err(err) => {
                if matches!(err, ReadError::Corrupt { .. }) {
                    tracing::error!("stopped a verifiable response: {err}");
                }
                // The verified pieces before the failure have been sent, so a
                // client that resumes elsewhere keeps them; now cut the response.
                let _ = tx.blocking_send(Err(BodyError::Read(err)));
            }
        }
    });
    rx
}

//! One request of `fleetcache get` to one node: `?format=bao` from the first
//! byte not yet verified, decoded by bao-tree so each 16 KiB group is checked
//! against the hash before its bytes are written.

use std::io;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bao_tree::BaoTree;
use bao_tree::io::fsm::{ResponseDecoder, ResponseDecoderNext};
use bao_tree::io::{BaoContentItem, DecodeError};
use bytes::{Bytes, BytesMut};
use fleetcache_store::{BLOCK_SIZE, Hash};
use http::header::{CONTENT_RANGE, CONTENT_TYPE, RANGE};
use http::{Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use iroh_io::AsyncStreamReader;

use super::get::Sink;
use super::progress::Counters;
use crate::sync::lock;
use crate::verifiable::{GROUPS_HEADER, MEDIA_TYPE, Selection, group_start};

/// HTTP, or HTTPS (HTTP/2 or HTTP/1.1 by ALPN) for `https://` URLs.
pub(super) type HttpClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Empty<Bytes>>;

/// Why a request to a node did not finish the download.
#[derive(Debug)]
pub(super) enum Failure {
    /// Worth asking this node again later: the connection failed or broke
    /// off, the node went silent, or it answered with a server error.
    Transient(String),
    /// Not to be asked again in this run: it does not hold the object,
    /// refused the request, does not serve `?format=bao`, or sent bytes that
    /// fail verification.
    Refused(String),
    /// Nothing a node can fix: the output cannot be written.
    Local(String),
}

/// A download in progress, across requests and nodes.
pub(super) struct Download {
    pub(super) hash: Hash,
    /// The size the latest answer claimed; proven when its last group verifies.
    pub(super) size: Option<u64>,
    /// Bytes verified and written, in order: a multiple of 16 KiB until the end.
    pub(super) verified: u64,
    pub(super) sink: Sink,
    pub(super) limiter: Option<Arc<Limiter>>,
    /// How long a node may stay silent.
    pub(super) stall: Duration,
    pub(super) counters: Arc<Counters>,
}

impl Download {
    /// Where the next request starts: the first byte not verified. When a
    /// node's size claim puts the end at or before that, the last group is
    /// asked for again, since only the end of the object proves its size.
    pub(super) fn resume_point(&self) -> u64 {
        match self.size {
            Some(size) if size > 0 && self.verified >= size => group_start(size - 1),
            _ => self.verified,
        }
    }

    /// Writes the part of a verified group not written yet.
    fn accept(&mut self, offset: u64, data: &[u8]) -> Result<(), Failure> {
        let end = offset + data.len() as u64;
        if offset > self.verified {
            // The decoder yields groups in order from the request's start,
            // which is never past what is verified.
            return Err(Failure::Refused(format!(
                "sent the group at byte {offset} before byte {}",
                self.verified
            )));
        }
        if end > self.verified {
            let skip = usize::try_from(self.verified - offset).unwrap_or(usize::MAX);
            self.sink
                .write(data.get(skip..).unwrap_or_default())
                .map_err(|e| Failure::Local(format!("writing the output: {e}")))?;
            self.verified = end;
            self.counters.done.store(end, Ordering::Relaxed);
        }
        Ok(())
    }
}

/// Paces reads to a number of bytes per second (`--limit-rate`), across
/// requests: time spent waiting for a node is not saved up as a burst.
#[derive(Debug)]
pub(super) struct Limiter {
    per_second: u64,
    /// When the bytes read so far are paid for.
    next: Mutex<Instant>,
}

impl Limiter {
    pub(super) fn new(per_second: u64) -> Arc<Limiter> {
        Arc::new(Limiter {
            per_second: per_second.max(1),
            next: Mutex::new(Instant::now()),
        })
    }

    /// Waits until `n` more bytes fit the rate.
    async fn pace(&self, n: usize) {
        let until = {
            let mut next = lock(&self.next);
            let now = Instant::now();
            if *next < now {
                *next = now;
            }
            *next += Duration::from_secs_f64(n as f64 / self.per_second as f64);
            *next
        };
        tokio::time::sleep_until(until.into()).await;
    }
}

/// Asks the node at `base` for the rest of the object and writes what
/// verifies; `Ok` once the whole object is verified (its size proven by the
/// last group).
pub(super) async fn attempt(
    client: &HttpClient,
    base: &str,
    download: &mut Download,
) -> Result<(), Failure> {
    let mut start = download.resume_point();
    // A 416 tells the object's size; one more request then starts at its last
    // group.
    for _ in 0..2 {
        let response = request(client, base, download, start).await?;
        match response.status() {
            StatusCode::OK => return receive(response, start, download).await,
            StatusCode::RANGE_NOT_SATISFIABLE => {
                let size = unsatisfied_size(&response).ok_or_else(|| {
                    Failure::Refused("416 without Content-Range: bytes */SIZE".into())
                })?;
                if size < download.verified {
                    return Err(Failure::Refused(format!(
                        "says the object has {size} bytes, but {} are verified",
                        download.verified
                    )));
                }
                download.size = Some(size);
                let next = download.resume_point();
                if next >= start {
                    return Err(Failure::Refused(format!(
                        "416 for bytes={start}- of an object of {size} bytes"
                    )));
                }
                start = next;
            }
            status => return Err(refusal(status, response, download.stall).await),
        }
    }
    Err(Failure::Transient(
        "416 again after the size it gave".into(),
    ))
}

async fn request(
    client: &HttpClient,
    base: &str,
    download: &Download,
    start: u64,
) -> Result<Response<Incoming>, Failure> {
    let target = format!("{base}/blake3/{}?format=bao", download.hash);
    let uri: Uri = target
        .parse()
        .map_err(|e| Failure::Refused(format!("invalid URL {target:?}: {e}")))?;
    let mut builder = Request::get(uri);
    if start > 0 {
        builder = builder.header(RANGE, format!("bytes={start}-"));
    }
    let request = builder
        .body(Empty::new())
        .map_err(|e| Failure::Refused(format!("invalid request: {e}")))?;
    match tokio::time::timeout(download.stall, client.request(request)).await {
        Err(_) => Err(Failure::Transient(format!(
            "no answer within {}s",
            download.stall.as_secs()
        ))),
        Ok(Err(err)) => Err(Failure::Transient(chain(&err))),
        Ok(Ok(response)) => Ok(response),
    }
}

/// `Content-Range: bytes */SIZE` → SIZE.
fn unsatisfied_size(response: &Response<Incoming>) -> Option<u64> {
    let value = response.headers().get(CONTENT_RANGE)?.to_str().ok()?;
    value.trim().strip_prefix("bytes */")?.parse().ok()
}

/// A status other than 200 or 416, with the start of the node's explanation.
async fn refusal(status: StatusCode, response: Response<Incoming>, stall: Duration) -> Failure {
    let body = match tokio::time::timeout(stall, response.into_body().collect()).await {
        Ok(Ok(body)) => body.to_bytes(),
        _ => Bytes::new(),
    };
    let text = String::from_utf8_lossy(&body[..body.len().min(300)])
        .trim()
        .to_owned();
    let message = if text.is_empty() {
        status.to_string()
    } else {
        format!("{status}: {text}")
    };
    if status.is_server_error() {
        Failure::Transient(message)
    } else if status.is_success() {
        Failure::Refused(format!(
            "{message} (not an answer to ?format=bao: does the node serve it?)"
        ))
    } else {
        Failure::Refused(message)
    }
}

/// Reads a 200: the size prefix, then groups verified one by one.
async fn receive(
    response: Response<Incoming>,
    start: u64,
    download: &mut Download,
) -> Result<(), Failure> {
    let media_type = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase());
    if media_type.as_deref() != Some(MEDIA_TYPE) {
        return Err(Failure::Refused(format!(
            "answered with Content-Type {media_type:?}, not {MEDIA_TYPE}: does the node serve ?format=bao?"
        )));
    }
    let groups = response
        .headers()
        .get(GROUPS_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let mut reader = BodyReader {
        body: response.into_body(),
        pending: Bytes::new(),
        limiter: download.limiter.clone(),
        stall: download.stall,
    };
    let prefix = reader
        .read::<8>()
        .await
        .map_err(|e| Failure::Transient(format!("the answer broke off before its size: {e}")))?;
    let size = u64::from_le_bytes(prefix);
    if size < download.verified {
        return Err(Failure::Refused(format!(
            "says the object has {size} bytes, but {} are verified",
            download.verified
        )));
    }
    let selection = if start == 0 {
        Selection::whole(size)
    } else {
        let selection = Selection::covering(std::slice::from_ref(&(start..size)), size)
            .ok_or_else(|| {
                Failure::Refused(format!(
                    "answered bytes={start}- of an object of {size} bytes with 200"
                ))
            })?;
        // What the node says it sent must be what the decoder expects, or
        // every group would fail for a reason that is not the data's.
        if groups.as_deref() != Some(selection.header().as_str()) {
            return Err(Failure::Refused(format!(
                "sent groups {groups:?} for bytes={start}-, expected {:?}",
                selection.header()
            )));
        }
        selection
    };
    download.size = Some(size);
    download.counters.total.store(size, Ordering::Relaxed);
    let root = blake3::Hash::from_bytes(*download.hash.as_bytes());
    let tree = BaoTree::new(size, BLOCK_SIZE);
    let mut decoder = ResponseDecoder::new(root, selection.ranges().clone(), tree, reader);
    loop {
        let (next, item) = match decoder.next().await {
            ResponseDecoderNext::Done(_) => break,
            ResponseDecoderNext::More(more) => more,
        };
        decoder = next;
        match item {
            Ok(BaoContentItem::Parent(_)) => {}
            Ok(BaoContentItem::Leaf(leaf)) => download.accept(leaf.offset, &leaf.data)?,
            Err(err) => return Err(decode_failure(err, size, download.stall)),
        }
    }
    if download.verified != size {
        return Err(Failure::Refused(format!(
            "the answer ended at byte {} of {size}",
            download.verified
        )));
    }
    Ok(())
}

/// Why decoding an answer claiming `size` bytes stopped.
fn decode_failure(err: DecodeError, size: u64, stall: Duration) -> Failure {
    match err {
        // A wrong size makes a wrong tree: its first pair fails.
        DecodeError::ParentHashMismatch(node) => Failure::Refused(format!(
            "sent bytes that fail verification (the hash pair above byte {} \
             of the {size} bytes it claims)",
            node.mid().to_bytes().min(size)
        )),
        DecodeError::LeafHashMismatch(chunk) => Failure::Refused(format!(
            "sent bytes that fail verification (the chunk group at byte {})",
            chunk.to_bytes()
        )),
        DecodeError::ParentNotFound(_) | DecodeError::LeafNotFound(_) => {
            Failure::Transient("the answer ended early".into())
        }
        DecodeError::Io(err) if err.kind() == io::ErrorKind::TimedOut => {
            Failure::Transient(format!("silent for {}s", stall.as_secs()))
        }
        DecodeError::Io(err) => Failure::Transient(format!("the answer broke off: {err}")),
    }
}

/// An error and its causes on one line (hyper's own text is terse).
fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// A response body as bao-tree's decoder reads it: frames sliced without
/// copying where one holds a whole read, each wait bounded by the stall
/// timeout, paced by the rate limit.
struct BodyReader {
    body: Incoming,
    pending: Bytes,
    limiter: Option<Arc<Limiter>>,
    stall: Duration,
}

impl BodyReader {
    /// The next bytes, at most `max`; `None` at the body's clean end.
    async fn next_chunk(&mut self, max: usize) -> io::Result<Option<Bytes>> {
        loop {
            if !self.pending.is_empty() {
                let n = max.min(self.pending.len());
                return Ok(Some(self.pending.split_to(n)));
            }
            let frame = match tokio::time::timeout(self.stall, self.body.frame()).await {
                Err(_) => return Err(io::ErrorKind::TimedOut.into()),
                Ok(None) => return Ok(None),
                Ok(Some(Err(err))) => return Err(io::Error::other(chain(&err))),
                Ok(Some(Ok(frame))) => frame,
            };
            if let Ok(data) = frame.into_data() {
                if let Some(limiter) = &self.limiter {
                    limiter.pace(data.len()).await;
                }
                self.pending = data;
            }
        }
    }
}

impl AsyncStreamReader for BodyReader {
    async fn read_bytes(&mut self, len: usize) -> io::Result<Bytes> {
        let Some(first) = self.next_chunk(len).await? else {
            return Ok(Bytes::new());
        };
        if first.len() == len {
            return Ok(first);
        }
        let mut out = BytesMut::with_capacity(len);
        out.extend_from_slice(&first);
        while out.len() < len {
            match self.next_chunk(len - out.len()).await? {
                Some(chunk) => out.extend_from_slice(&chunk),
                None => break,
            }
        }
        Ok(out.freeze())
    }

    async fn read<const L: usize>(&mut self) -> io::Result<[u8; L]> {
        let bytes = self.read_bytes(L).await?;
        <[u8; L]>::try_from(&bytes[..]).map_err(|_| io::ErrorKind::UnexpectedEof.into())
    }
}

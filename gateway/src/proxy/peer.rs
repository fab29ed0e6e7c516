//! URL requests between fleet members: what a node sends a URL's owner, and how
//! the owner answers one (see `swarm/PROTOCOL.md`, *URL requests*).
//!
//! The owner answers like a client request that may be served from the cache or
//! a fill, except that it never forwards to another peer (forward at most once:
//! membership views that differ for a moment cause no loops), and that what it
//! sends is the stored entry itself (status, header fields, times, Vary key),
//! so the asking node stores exactly what the owner stores.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use fleetcache_store::Hash;
use fleetcache_swarm::{BodyChunk, NodeName, UrlReply};
use http::header::{HeaderName, HeaderValue};
use http::uri::Scheme;
use http::{HeaderMap, Request};
use tokio::sync::mpsc;
use tracing::Instrument;

use super::key::normalise_host;
use super::request::Target;
use super::{Exchange, Found, variant_for};
use crate::cache::directives::RequestCacheControl;
use crate::cache::evaluate::{Decision, evaluate};
use crate::cache::stored::{DecodeError, Reader, StoredResponse, put_bytes, put_varint};
use crate::cache::vary::vary_matches;
use crate::fill::{FillKey, FillSource, HeadState, Joined, StaleEntry};
use crate::http::body::Source;
use crate::node::NodeState;

/// The format byte of both messages.
const FORMAT: u8 = 1;
/// Body chunks queued between the reader and the swarm's sender.
const BODY_QUEUE: usize = 4;

/// A URL request as a node sends it to the URL's owner.
#[derive(Debug, Clone)]
pub(crate) struct PeerRequest {
    pub(crate) target: Target,
    /// The client that asked the sending node (for `X-Forwarded-For`).
    pub(crate) client: SocketAddr,
    /// The hash of the body the sender holds for this URL (a stale entry): if
    /// the owner's answer has the same body, it is not sent again.
    pub(crate) validator: Option<Hash>,
    /// The client's end-to-end request fields, prepared for a fill.
    pub(crate) headers: HeaderMap,
}

impl PeerRequest {
    pub(crate) fn encode(&self) -> Bytes {
        let mut out = vec![FORMAT];
        put_bytes(&mut out, self.target.scheme.as_str().as_bytes());
        put_bytes(&mut out, self.target.host.as_bytes());
        put_bytes(&mut out, self.target.target.as_bytes());
        put_bytes(&mut out, self.client.to_string().as_bytes());
        put_bytes(
            &mut out,
            self.validator.as_ref().map_or(&[][..], |h| h.as_bytes()),
        );
        put_varint(&mut out, self.headers.len() as u64);
        for (name, value) in &self.headers {
            put_bytes(&mut out, name.as_str().as_bytes());
            put_bytes(&mut out, value.as_bytes());
        }
        Bytes::from(out)
    }

    /// Reads a request from a peer; anything malformed is an error, never a panic.
    pub(crate) fn decode(bytes: &[u8]) -> Result<PeerRequest, DecodeError> {
        let mut reader = Reader::new(bytes);
        let format = reader.u8()?;
        if format != FORMAT {
            return Err(DecodeError::UnsupportedVersion(format));
        }
        let scheme = match reader.bytes()? {
            b"http" => Scheme::HTTP,
            b"https" => Scheme::HTTPS,
            _ => return Err(DecodeError::InvalidHeaderValue),
        };
        let raw_host = text(reader.bytes()?)?;
        let host = if raw_host.is_empty() {
            String::new()
        } else {
            // The same normal form a client request gets, so the key is the same.
            normalise_host(raw_host, &scheme).ok_or(DecodeError::InvalidHeaderValue)?
        };
        let target = text(reader.bytes()?)?.to_owned();
        if !target.starts_with('/') || target.parse::<http::Uri>().is_err() {
            return Err(DecodeError::InvalidHeaderValue);
        }
        let client = text(reader.bytes()?)?
            .parse()
            .unwrap_or((Ipv4Addr::UNSPECIFIED, 0).into());
        let validator = match reader.bytes()? {
            [] => None,
            bytes => Some(Hash::from_bytes(
                bytes.try_into().map_err(|_| DecodeError::BadLength)?,
            )),
        };
        let count = reader.count(3)?;
        let mut headers = HeaderMap::new();
        for _ in 0..count {
            let name = HeaderName::from_bytes(reader.bytes()?)
                .map_err(|_| DecodeError::InvalidHeaderName)?;
            let value = HeaderValue::from_bytes(reader.bytes()?)
                .map_err(|_| DecodeError::InvalidHeaderValue)?;
            headers
                .try_append(name, value)
                .map_err(|_| DecodeError::TooManyFields)?;
        }
        if reader.remaining() != 0 {
            return Err(DecodeError::TrailingBytes(reader.remaining()));
        }
        Ok(PeerRequest {
            target: Target {
                scheme,
                host,
                target,
            },
            client,
            validator,
            headers,
        })
    }
}

/// The head of an owner's answer.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PeerHead {
    /// The asker's validator names the owner's body: no body follows, and the
    /// asker keeps its own with the new header fields (like a 304).
    pub(crate) unchanged: bool,
    /// What the origin answered the owner (304 after a revalidation).
    pub(crate) origin_status: u16,
    /// The body's length when known before the end.
    pub(crate) size: Option<u64>,
    /// The entry as the owner stores it.
    pub(crate) response: StoredResponse,
}

impl PeerHead {
    pub(crate) fn encode(&self) -> Bytes {
        let mut out = vec![FORMAT, u8::from(self.unchanged)];
        out.extend_from_slice(&self.origin_status.to_be_bytes());
        out.extend_from_slice(&self.size.unwrap_or(u64::MAX).to_be_bytes());
        out.extend_from_slice(&self.response.encode());
        Bytes::from(out)
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<PeerHead, DecodeError> {
        let mut reader = Reader::new(bytes);
        let format = reader.u8()?;
        if format != FORMAT {
            return Err(DecodeError::UnsupportedVersion(format));
        }
        let unchanged = match reader.u8()? {
            0 => false,
            1 => true,
            flag => return Err(DecodeError::InvalidFlag(flag)),
        };
        let origin_status = u16::from_be_bytes(reader.array()?);
        if http::StatusCode::from_u16(origin_status).is_err() {
            return Err(DecodeError::InvalidStatus(origin_status));
        }
        let size = Some(u64::from_be_bytes(reader.array()?)).filter(|&s| s != u64::MAX);
        let response = StoredResponse::decode(bytes.get(12..).unwrap_or_default())?;
        Ok(PeerHead {
            unchanged,
            origin_status,
            size,
            response,
        })
    }
}

fn text(bytes: &[u8]) -> Result<&str, DecodeError> {
    std::str::from_utf8(bytes).map_err(|_| DecodeError::BadLength)
}

/// Answers a peer's URL request as the URL's owner: from the cache when the
/// entry may be served, else through this node's own single-flight fill from
/// the origin, streamed as it arrives.
pub(crate) async fn answer(state: &Arc<NodeState>, from: &NodeName, request: Bytes) -> UrlReply {
    let span = tracing::info_span!("owner_answer", peer = %from);
    answer_request(state, from, request).instrument(span).await
}

async fn answer_request(state: &Arc<NodeState>, from: &NodeName, request: Bytes) -> UrlReply {
    let request = match PeerRequest::decode(&request) {
        Ok(request) => request,
        Err(err) => {
            tracing::warn!(peer = %from, "malformed URL request from a peer: {err}");
            return declined(state, "malformed");
        }
    };
    let Some(origin) = state.origins.for_host(&request.target.host).cloned() else {
        return declined(state, "no-origin");
    };
    let mut req = Request::new(());
    *req.headers_mut() = request.headers.clone();
    let exchange = Exchange {
        state,
        key: request.target.key(),
        origin,
        target: request.target.clone(),
        peer: request.client,
        now: SystemTime::now(),
        head: false,
        from_peer: true,
    };
    tracing::debug!(key = exchange.key.as_str(), "URL request from a peer");
    let (variants, found) = match exchange.lookup(&req) {
        Ok(lookup) => lookup,
        Err(err) => {
            tracing::warn!("lookup for a peer failed: {err}");
            return declined(state, "error");
        }
    };
    let stale = match found {
        Some(found) => {
            let request_cc = RequestCacheControl::from_headers(req.headers());
            let defaults = exchange.origin.settings.defaults;
            let evaluation = evaluate(&request_cc, &found.response, exchange.now, defaults);
            match evaluation.decision {
                Decision::Serve => return stored(state, &found, request.validator, "hit"),
                Decision::ServeStaleWhileRevalidate => {
                    exchange.refresh_in_background(&req, &found);
                    return stored(state, &found, request.validator, "hit");
                }
                Decision::Revalidate { .. } => Some(StaleEntry {
                    response: found.response.clone(),
                    blob: found.blob.clone(),
                }),
            }
        }
        None => None,
    };
    let variant = match &stale {
        Some(entry) => entry.response.variant(),
        None => variant_for(&variants.responses, &req),
    };
    filled(&exchange, &req, variant, stale, request.validator).await
}

/// Answers from this node's fill of the URL (joined or started).
async fn filled(
    exchange: &Exchange<'_>,
    req: &Request<()>,
    variant: Vec<u8>,
    stale: Option<StaleEntry>,
    validator: Option<Hash>,
) -> UrlReply {
    let state = exchange.state;
    let key = FillKey::Url {
        key: exchange.key.as_str().to_owned(),
        variant,
    };
    if state.fills.unshared(&key) {
        return declined(state, "not-shared");
    }
    let job = exchange.job(req, stale);
    let flight = match state.fills.join(key, FillSource::Origin(Box::new(job))) {
        Ok(Joined::Waiting(flight)) if flight.asking_owner() => {
            // This node is asking another node it thinks owns the URL: waiting
            // would forward the peer's request a second time.
            return declined(state, "forwarding");
        }
        Ok(Joined::Started(flight) | Joined::Waiting(flight)) => flight,
        Ok(Joined::Stored(_) | Joined::Absent) | Err(_) => return declined(state, "error"),
    };
    let (head, blob) = match flight.head().await {
        Ok(HeadState::Streaming(head)) => (head, None),
        Ok(HeadState::Stored(head, blob)) => (head, Some(blob)),
        Ok(HeadState::Declined(_)) => {
            // The request that started the fill owns a declined answer; a
            // peer's request has no client to hand it to.
            drop(flight.take_handoff());
            return declined(state, "not-shared");
        }
        Err(err) => {
            tracing::debug!("fill for a peer failed: {err}");
            return declined(state, "origin-failed");
        }
    };
    let Some(response) = head.response.clone() else {
        return declined(state, "error");
    };
    if !vary_matches(&response, req.headers()) {
        return declined(state, "vary");
    }
    let status = head.origin_status.unwrap_or(response.status);
    let body = match blob {
        Some(blob) => Body::stored(&blob),
        None => Body {
            source: Source::Filling(flight),
            size: head.size,
            hash: None,
        },
    };
    reply(state, &response, status, body, validator, "filled")
}

/// Where an answer's body comes from: its bytes, length and hash when known.
struct Body {
    source: Source,
    size: Option<u64>,
    hash: Option<Hash>,
}

impl Body {
    fn stored(blob: &fleetcache_store::Blob) -> Body {
        Body {
            source: Source::Stored(blob.clone()),
            size: Some(blob.size()),
            hash: Some(blob.hash()),
        }
    }
}

/// Answers from a stored entry.
fn stored(
    state: &NodeState,
    found: &Found,
    validator: Option<Hash>,
    result: &'static str,
) -> UrlReply {
    let body = Body::stored(&found.blob);
    reply(
        state,
        &found.response,
        found.response.status,
        body,
        validator,
        result,
    )
}

fn reply(
    state: &NodeState,
    response: &StoredResponse,
    origin_status: u16,
    body: Body,
    validator: Option<Hash>,
    result: &'static str,
) -> UrlReply {
    let unchanged = body.hash.is_some() && body.hash == validator;
    let head = PeerHead {
        unchanged,
        origin_status,
        size: body.size,
        response: response.clone(),
    };
    let (tx, rx) = mpsc::channel(BODY_QUEUE);
    if unchanged {
        let _ = tx.try_send(BodyChunk::End);
    } else {
        tokio::spawn(pump(body.source, body.size, tx));
    }
    state
        .metrics
        .origin
        .owner_answers
        .with_label_values(&[if unchanged { "unchanged" } else { result }])
        .inc();
    UrlReply::Response {
        head: head.encode(),
        body: rx,
    }
}

/// Reads the body from the store or the running fill into the swarm's queue.
async fn pump(source: Source, size: Option<u64>, tx: mpsc::Sender<BodyChunk>) {
    let end = size.unwrap_or(u64::MAX);
    let mut pos = 0;
    while pos < end {
        match source.read(pos, end).await {
            Ok(bytes) if bytes.is_empty() => break,
            Ok(bytes) => {
                pos += bytes.len() as u64;
                if tx.send(BodyChunk::Data(bytes)).await.is_err() {
                    // The asker went away.
                    return;
                }
            }
            Err(err) => {
                let _ = tx.send(BodyChunk::Failed(err.to_string())).await;
                return;
            }
        }
    }
    if size.is_some_and(|size| pos < size) {
        let _ = tx
            .send(BodyChunk::Failed(format!("the body ended at byte {pos}")))
            .await;
        return;
    }
    let _ = tx.send(BodyChunk::End).await;
}

fn declined(state: &NodeState, reason: &'static str) -> UrlReply {
    state
        .metrics
        .origin
        .owner_answers
        .with_label_values(&[reason])
        .inc();
    UrlReply::Declined
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn request() -> PeerRequest {
        let mut headers = HeaderMap::new();
        headers.insert("accept-encoding", HeaderValue::from_static("gzip"));
        headers.append("x-tag", HeaderValue::from_static("a"));
        headers.append("x-tag", HeaderValue::from_static("b"));
        PeerRequest {
            target: Target {
                scheme: Scheme::HTTPS,
                host: "cdn.example".into(),
                target: "/a/b?c=d".into(),
            },
            client: "192.0.2.7:5000".parse().unwrap(),
            validator: Some(Hash::from_bytes([7; 32])),
            headers,
        }
    }

    fn head() -> PeerHead {
        let mut headers = HeaderMap::new();
        headers.insert("cache-control", HeaderValue::from_static("max-age=60"));
        PeerHead {
            unchanged: false,
            origin_status: 304,
            size: Some(12345),
            response: StoredResponse::new(
                200,
                headers,
                1_700_000_000,
                1_700_000_001,
                Default::default(),
                None,
            ),
        }
    }

    #[test]
    fn requests_round_trip() {
        let original = request();
        let decoded = PeerRequest::decode(&original.encode()).unwrap();
        assert_eq!(decoded.target.key(), original.target.key());
        assert_eq!(decoded.client, original.client);
        assert_eq!(decoded.validator, original.validator);
        assert_eq!(decoded.headers, original.headers);
        let without = PeerRequest {
            validator: None,
            ..request()
        };
        assert_eq!(
            PeerRequest::decode(&without.encode()).unwrap().validator,
            None
        );
    }

    #[test]
    fn a_peer_cannot_name_another_key_by_spelling_the_host_differently() {
        let mut shouting = request();
        shouting.target.host = "CDN.Example:443".into();
        let decoded = PeerRequest::decode(&shouting.encode()).unwrap();
        assert_eq!(decoded.target.key(), request().target.key());
    }

    #[test]
    fn heads_round_trip() {
        let original = head();
        assert_eq!(PeerHead::decode(&original.encode()).unwrap(), original);
        let unknown = PeerHead {
            size: None,
            unchanged: true,
            ..head()
        };
        assert_eq!(PeerHead::decode(&unknown.encode()).unwrap(), unknown);
    }

    #[test]
    fn bad_messages_are_errors() {
        let good = request().encode();
        for end in 0..good.len() {
            assert!(PeerRequest::decode(&good[..end]).is_err(), "prefix {end}");
        }
        let mut trailing = good.to_vec();
        trailing.push(0);
        assert!(PeerRequest::decode(&trailing).is_err());
        let mut relative = request();
        relative.target.target = "a/b".into();
        assert!(PeerRequest::decode(&relative.encode()).is_err());

        let good = head().encode();
        for end in 0..good.len() {
            assert!(PeerHead::decode(&good[..end]).is_err(), "prefix {end}");
        }
        let mut bad_status = good.to_vec();
        bad_status[2..4].copy_from_slice(&1000u16.to_be_bytes());
        assert!(PeerHead::decode(&bad_status).is_err());
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(0x0e1);
        let (request, head) = (request().encode(), head().encode());
        for _ in 0..20_000 {
            let base = if rng.random_bool(0.5) {
                &request
            } else {
                &head
            };
            let mut bytes = base.to_vec();
            for _ in 0..rng.random_range(1..4) {
                let i = rng.random_range(0..bytes.len());
                bytes[i] = rng.random();
            }
            let _ = PeerRequest::decode(&bytes);
            let _ = PeerHead::decode(&bytes);
        }
    }
}

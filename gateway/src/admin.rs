//! The admin listener: ingest, delete, pin, stats, health and metrics.
//!
//! Every route but the health probes requires the bearer token when one is
//! configured (and one must be whenever this listener is not on loopback).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use fleetcache_store::{IngestError, IngestOutcome};
use http::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, HeaderValue, LOCATION};
use http::{Method, Request, Response, StatusCode};
use http_body::Body;
use http_body_util::BodyExt;
use serde::Serialize;
use tokio::sync::mpsc;

use crate::error::RequestError;
use crate::http::body::ResponseBody;
use crate::http::{error_response, json_response, observed, text_response};
use crate::node::NodeState;
use crate::proxy::purge::PurgeRequest;
use crate::public::parse_hash;
use crate::sync::blocking;

/// Upload chunks queued between the socket and the store writer: enough to
/// keep both busy, few enough to keep memory flat.
const INGEST_QUEUE: usize = 8;

/// Serves one request on the admin listener.
pub(crate) async fn handle<B>(state: Arc<NodeState>, req: Request<B>) -> Response<ResponseBody>
where
    B: Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: std::fmt::Display,
{
    let route = route_label(req.uri().path());
    let observer = state.metrics.observer(route, req.version());
    let span = tracing::info_span!("admin", method = %req.method(), path = %req.uri().path());
    let result = {
        let _entered = span.enter();
        authorize(&state, &req, route)
    };
    let result = match result {
        Ok(()) => tracing::Instrument::instrument(route_request(&state, req), span.clone()).await,
        Err(err) => Err(err),
    };
    let response = result.unwrap_or_else(|err| {
        let _entered = span.enter();
        err.log();
        error_response(&err)
    });
    observed(response, observer, "none", "local")
}

fn route_label(path: &str) -> &'static str {
    match path {
        "/metrics" => "admin_metrics",
        "/healthz" | "/readyz" => "admin_health",
        "/stats" => "admin_stats",
        "/peers" => "admin_peers",
        "/purge" => "admin_purge",
        p if p == "/blobs" || p.starts_with("/blobs/") => "admin_blobs",
        _ => "admin_other",
    }
}

fn authorize<B>(state: &NodeState, req: &Request<B>, route: &str) -> Result<(), RequestError> {
    let Some(token) = &state.admin_token else {
        return Ok(());
    };
    if route == "admin_health" {
        // Orchestrator probes carry no credentials.
        return Ok(());
    }
    let presented = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match presented {
        Some(presented) if constant_time_eq(presented.as_bytes(), token.as_bytes()) => Ok(()),
        _ => Err(RequestError::Unauthorized),
    }
}

/// Compares without an early exit, so response timing does not reveal how
/// much of a guessed token was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn route_request<B>(
    state: &Arc<NodeState>,
    req: Request<B>,
) -> Result<Response<ResponseBody>, RequestError>
where
    B: Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: std::fmt::Display,
{
    let path = req.uri().path().to_owned();
    let method = req.method().clone();
    match (path.as_str(), &method) {
        ("/healthz", &Method::GET | &Method::HEAD) => Ok(text_response(StatusCode::OK, "ok")),
        ("/readyz", &Method::GET | &Method::HEAD) => Ok(if state.ready.load(Ordering::Acquire) {
            text_response(StatusCode::OK, "ready")
        } else {
            text_response(StatusCode::SERVICE_UNAVAILABLE, "shutting down")
        }),
        ("/metrics", &Method::GET) => {
            let mut response = text_response(StatusCode::OK, "");
            *response.body_mut() = ResponseBody::full(state.metrics.render());
            response.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            Ok(response)
        }
        ("/stats", &Method::GET) => Ok(json_response(StatusCode::OK, &stats(state))),
        ("/peers", &Method::GET) => Ok(json_response(StatusCode::OK, &peers(state))),
        ("/blobs", &Method::POST) => ingest(state, req).await,
        ("/purge", &Method::POST) => purge(state, req).await,
        ("/purge", _) => Err(RequestError::MethodNotAllowed { allow: "POST" }),
        ("/healthz" | "/readyz" | "/metrics" | "/stats" | "/peers", _) => {
            Err(RequestError::MethodNotAllowed { allow: "GET" })
        }
        ("/blobs", _) => Err(RequestError::MethodNotAllowed { allow: "POST" }),
        (p, m) if p.starts_with("/blobs/") => blob_action(state, p, m).await,
        _ => Err(RequestError::NotFound),
    }
}

/// `DELETE /blobs/<hash>`, `POST /blobs/<hash>/pin`, `POST /blobs/<hash>/unpin`.
async fn blob_action(
    state: &Arc<NodeState>,
    path: &str,
    method: &Method,
) -> Result<Response<ResponseBody>, RequestError> {
    let rest = path.trim_start_matches("/blobs/");
    let (hash_text, action) = match rest.split_once('/') {
        Some((hash, action)) => (hash, Some(action)),
        None => (rest, None),
    };
    let hash = parse_hash(hash_text)?;
    let store = state.store.clone();
    let found = match (action, method) {
        (None, &Method::DELETE) => blocking(move || store.delete(&hash)).await??,
        (Some("pin"), &Method::POST) => blocking(move || store.set_pinned(&hash, true)).await??,
        (Some("unpin"), &Method::POST) => {
            blocking(move || store.set_pinned(&hash, false)).await??
        }
        (None, _) => return Err(RequestError::MethodNotAllowed { allow: "DELETE" }),
        (Some("pin" | "unpin"), _) => return Err(RequestError::MethodNotAllowed { allow: "POST" }),
        (Some(_), _) => return Err(RequestError::NotFound),
    };
    if !found {
        return Err(RequestError::NotFound);
    }
    let mut response = Response::new(ResponseBody::empty());
    *response.status_mut() = StatusCode::NO_CONTENT;
    Ok(response)
}

/// Largest purge body accepted.
const MAX_PURGE_BODY: usize = 1 << 20;

/// `POST /purge`: removes URL entries by URL, prefix or surrogate key, on
/// every node of the fleet.
async fn purge<B>(
    state: &Arc<NodeState>,
    req: Request<B>,
) -> Result<Response<ResponseBody>, RequestError>
where
    B: Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: std::fmt::Display,
{
    let mut body = req.into_body();
    let mut collected = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|err| RequestError::ClientAborted(err.to_string()))?;
        if let Ok(data) = frame.into_data() {
            if collected.len() + data.len() > MAX_PURGE_BODY {
                return Err(RequestError::PayloadTooLarge {
                    limit: MAX_PURGE_BODY as u64,
                });
            }
            collected.extend_from_slice(&data);
        }
    }
    let body = collected;
    let request = PurgeRequest::parse(&body)?;
    let answer = crate::purges::purge(state, request).await?;
    Ok(json_response(StatusCode::OK, &answer))
}

#[derive(Debug, Serialize)]
struct IngestResponse {
    hash: String,
    size: u64,
}

/// Message from the socket side of an upload to the store writer.
enum Chunk {
    Data(Bytes),
    /// The body ended cleanly; anything else (a dropped sender) aborts.
    End,
}

/// `POST /blobs`: streams the body into the store. The socket reader and the
/// store writer run concurrently with a short queue between them, so memory
/// stays flat whatever the upload size; an aborted upload leaves nothing.
async fn ingest<B>(
    state: &Arc<NodeState>,
    req: Request<B>,
) -> Result<Response<ResponseBody>, RequestError>
where
    B: Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: std::fmt::Display,
{
    let limit = state.max_upload_size;
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit) {
        return Err(RequestError::PayloadTooLarge { limit });
    }
    let content_type = match req.headers().get(CONTENT_TYPE) {
        None => None,
        Some(value) => Some(
            value
                .to_str()
                .map_err(|_| RequestError::BadRequest("content-type is not visible ASCII".into()))?
                .to_owned(),
        ),
    };

    let (tx, mut rx) = mpsc::channel::<Chunk>(INGEST_QUEUE);
    let store = state.store.clone();
    // `Ok(None)`: the upload was abandoned; dropping the unfinished ingest
    // removes its temp file.
    let writer =
        tokio::task::spawn_blocking(move || -> Result<Option<IngestOutcome>, IngestError> {
            let mut ingest = store.ingest(content_type.as_deref())?;
            while let Some(chunk) = rx.blocking_recv() {
                match chunk {
                    Chunk::Data(bytes) => ingest.write(&bytes)?,
                    Chunk::End => return ingest.finish().map(Some),
                }
            }
            Ok(None)
        });

    let mut body = req.into_body();
    let mut received: u64 = 0;
    let read_error = loop {
        match body.frame().await {
            None => {
                let _ = tx.send(Chunk::End).await;
                break None;
            }
            Some(Err(err)) => break Some(RequestError::ClientAborted(err.to_string())),
            Some(Ok(frame)) => {
                let Ok(data) = frame.into_data() else {
                    continue;
                };
                received += data.len() as u64;
                if received > limit {
                    break Some(RequestError::PayloadTooLarge { limit });
                }
                if tx.send(Chunk::Data(data)).await.is_err() {
                    // The writer stopped early; its result says why.
                    break None;
                }
            }
        }
    };
    drop(tx);
    let outcome = writer
        .await
        .map_err(|err| RequestError::Internal(format!("ingest task failed: {err}")))?;
    if let Some(err) = read_error {
        return Err(err);
    }
    let outcome = outcome?
        .ok_or_else(|| RequestError::Internal("upload ended without its end marker".into()))?;
    tracing::info!(hash = %outcome.hash, size = outcome.size, existed = outcome.already_present, "ingested");
    let status = if outcome.already_present {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    let mut response = json_response(
        status,
        &IngestResponse {
            hash: outcome.hash.to_string(),
            size: outcome.size,
        },
    );
    if let Ok(location) = HeaderValue::from_str(&format!("/blake3/{}", outcome.hash)) {
        response.headers_mut().insert(LOCATION, location);
    }
    Ok(response)
}

#[derive(Debug, Serialize)]
struct Stats {
    version: &'static str,
    uptime_seconds: u64,
    store: StoreStatsJson,
}

#[derive(Debug, Serialize)]
struct StoreStatsJson {
    bytes: u64,
    objects: u64,
    capacity: u64,
    pinned_objects: u64,
    evictions: u64,
    evicted_bytes: u64,
    ingests: u64,
    ingested_bytes: u64,
    corrupt_detected: u64,
    /// Cached URL responses (records pointing at stored objects).
    url_entries: u64,
}

fn stats(state: &NodeState) -> Stats {
    let s = state.store.stats();
    Stats {
        version: env!("CARGO_PKG_VERSION"),
        uptime_seconds: state.started.elapsed().as_secs(),
        store: StoreStatsJson {
            bytes: s.bytes,
            objects: s.objects,
            capacity: s.capacity,
            pinned_objects: s.pinned_objects,
            evictions: s.evictions,
            evicted_bytes: s.evicted_bytes,
            ingests: s.ingests,
            ingested_bytes: s.ingested_bytes,
            corrupt_detected: s.corrupt_detected,
            url_entries: s.records,
        },
    }
}

#[derive(Debug, Serialize)]
struct Peers {
    /// False on a node without fleet certificates: it has no swarm at all.
    swarm: bool,
    listen: Option<String>,
    /// This node's name in the fleet (from its certificate).
    name: Option<String>,
    peers: Vec<PeerJson>,
}

#[derive(Debug, Serialize)]
struct PeerJson {
    addr: String,
    source: String,
    /// The node name in its certificate; null until a handshake succeeds.
    name: Option<String>,
    state: &'static str,
    rtt_ms: Option<f64>,
    /// Smoothed time from a GET to its first verified group.
    latency_ms: Option<f64>,
    /// How long a transfer waits on it before asking another holder as well.
    hedge_delay_ms: f64,
    /// Hedges started because it was slower than that.
    hedges: u64,
    last_error: Option<String>,
    bytes_received: u64,
    transfers: u64,
    failures: u64,
    verification_failures: u64,
}

fn peers(state: &NodeState) -> Peers {
    let Some(swarm) = state.fills.swarm() else {
        return Peers {
            swarm: false,
            listen: None,
            name: None,
            peers: Vec::new(),
        };
    };
    Peers {
        swarm: true,
        listen: swarm.local_addr().map(|a| a.to_string()),
        name: Some(swarm.name().to_string()),
        peers: swarm
            .peers()
            .into_iter()
            .map(|p| PeerJson {
                addr: p.addr.to_string(),
                source: p.source,
                name: p.name.map(|n| n.to_string()),
                state: p.state.as_str(),
                rtt_ms: p.rtt.map(|rtt| rtt.as_secs_f64() * 1e3),
                latency_ms: p.latency.map(|latency| latency.as_secs_f64() * 1e3),
                hedge_delay_ms: p.hedge_delay.as_secs_f64() * 1e3,
                hedges: p.hedges,
                last_error: p.last_error,
                bytes_received: p.bytes_received,
                transfers: p.transfers,
                failures: p.failures,
                verification_failures: p.verification_failures,
            })
            .collect(),
    }
}

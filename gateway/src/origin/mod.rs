//! Origin servers: a pooled keep-alive HTTP/1.1 client per origin (rustls for
//! https), with bounded concurrency, connect / first-byte / idle timeouts, and
//! response bodies that fail loudly when they end early or stall.
//!
//! This module only moves requests and bytes. What to ask the origin and what
//! to do with its answer (RFC 9111) is decided by `cache`, `fill` and `proxy`.

mod body;
mod connect;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::HOST;
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderValue, Request, Response, Uri};
use http_body_util::BodyExt;
use http_body_util::combinators::BoxBody;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::sync::Semaphore;

pub(crate) use body::OriginBody;
use connect::OriginConnector;
pub(crate) use connect::{TlsSetupError, client_config as tls_client_config};

/// Request bodies sent to an origin: empty for cache fills, the client's
/// streamed body for pass-through requests.
pub(crate) type ForwardBody = BoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

/// The body of a request that has none.
pub(crate) fn empty_body() -> ForwardBody {
    http_body_util::Empty::<Bytes>::new()
        .map_err(|never| match never {})
        .boxed()
}

/// Largest response head accepted from an origin; beyond it the answer is a
/// 502, never a partial parse.
const MAX_RESPONSE_HEAD: usize = 64 * 1024;
/// Most header fields accepted in an origin response.
const MAX_RESPONSE_HEADERS: usize = 200;

/// The configured origins, and which one serves a request's host.
#[derive(Debug)]
pub(crate) struct Origins {
    /// The configuration's origin entries, which `OriginConfig::route` picks from.
    entries: Vec<fleetcache_config::OriginConfig>,
    /// One client per entry, in the same order.
    origins: Vec<Arc<Origin>>,
}

/// An origin's TLS settings are unusable: a configuration error naming the field.
#[derive(Debug, thiserror::Error)]
#[error("invalid config: {field}: {source}")]
pub(crate) struct OriginSetupError {
    /// The key at fault, e.g. `origin[0].ca_file`.
    pub(crate) field: String,
    pub(crate) source: TlsSetupError,
}

impl Origins {
    /// Builds one client per configured origin (no connection is made yet).
    pub(crate) fn new(
        entries: &[fleetcache_config::OriginConfig],
    ) -> Result<Origins, OriginSetupError> {
        let mut origins = Vec::with_capacity(entries.len());
        for (i, entry) in entries.iter().enumerate() {
            let origin =
                Origin::new(crate::settings::origin_settings(entry)).map_err(|source| {
                    let key = match source {
                        TlsSetupError::CaFile { .. } | TlsSetupError::NoRoots => "ca_file",
                        TlsSetupError::ServerName(_) => "url",
                    };
                    OriginSetupError {
                        field: format!("origin[{i}].{key}"),
                        source,
                    }
                })?;
            origins.push(Arc::new(origin));
        }
        Ok(Origins {
            entries: entries.to_vec(),
            origins,
        })
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.origins.is_empty()
    }

    /// The origin for a request's (normalised) host: the entry for that host,
    /// else the default origin, else none (the request is a 404).
    pub(crate) fn for_host(&self, host: &str) -> Option<&Arc<Origin>> {
        let index = fleetcache_config::OriginConfig::route(&self.entries, host)?;
        self.origins.get(index)
    }
}

/// How one origin is reached and bounded; built from the configuration.
#[derive(Debug, Clone)]
pub(crate) struct OriginSettings {
    /// The URL as configured, used in logs and as the metrics label.
    pub(crate) name: String,
    pub(crate) https: bool,
    /// Host name or address to connect to (IPv6 without brackets).
    pub(crate) host: String,
    pub(crate) port: u16,
    /// `host[:port]` as the `Host` header and request URIs write it.
    pub(crate) authority: String,
    pub(crate) ca_file: Option<std::path::PathBuf>,
    pub(crate) connect_timeout: Duration,
    pub(crate) first_byte_timeout: Duration,
    pub(crate) idle_timeout: Duration,
    pub(crate) queue_timeout: Duration,
    pub(crate) max_fetches: usize,
    /// Responses larger than this are streamed through and not stored.
    pub(crate) max_object_size: u64,
    /// The operator's defaults for the cache policy: freshness for answers
    /// without any, and how long stale entries may cover origin errors.
    pub(crate) defaults: crate::cache::effective::Defaults,
    /// Whether to add `X-Forwarded-For` and `Forwarded`.
    pub(crate) forwarded: bool,
}

/// Why an origin exchange failed. Each maps to a clean 502, 503 or 504; none is
/// ever cached.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum OriginError {
    /// All `max_fetches` slots stayed busy for `queue_timeout`.
    #[error("origin busy: {0} fetches already running")]
    Overloaded(usize),
    /// Connecting (TCP or TLS) failed.
    #[error("cannot connect to the origin: {0}")]
    Connect(String),
    /// Connecting, or the response head, took too long.
    #[error("origin timed out: {0}")]
    Timeout(String),
    /// The origin's answer is not valid HTTP (garbage status line, bad or
    /// oversized headers, invalid framing).
    #[error("invalid response from the origin: {0}")]
    Protocol(String),
    /// The body stopped before its end: connection closed or reset, or a
    /// framing error mid-body.
    #[error("origin response body cut off: {0}")]
    Body(String),
    /// No body bytes for `idle_timeout`.
    #[error("origin response body stalled for {0:?}")]
    BodyStalled(Duration),
    /// The body's length disagrees with its `Content-Length`.
    #[error("origin response body is {received} bytes, its Content-Length says {expected}")]
    Length {
        /// Bytes received.
        received: u64,
        /// The declared length.
        expected: u64,
    },
}

impl OriginError {
    /// Whether the failure is a timeout (504) rather than a bad answer (502).
    pub(crate) fn is_timeout(&self) -> bool {
        matches!(self, OriginError::Timeout(_) | OriginError::BodyStalled(_))
    }

    /// A short token for `Cache-Status` details and metric labels.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            OriginError::Overloaded(_) => "overloaded",
            OriginError::Connect(_) => "connect",
            OriginError::Timeout(_) => "timeout",
            OriginError::Protocol(_) => "protocol",
            OriginError::Body(_) => "body",
            OriginError::BodyStalled(_) => "body-stalled",
            OriginError::Length { .. } => "length",
        }
    }
}

/// One configured origin.
#[derive(Debug)]
pub(crate) struct Origin {
    pub(crate) settings: OriginSettings,
    scheme: Scheme,
    authority: Authority,
    host_header: HeaderValue,
    client: Client<OriginConnector, ForwardBody>,
    slots: Arc<Semaphore>,
}

impl Origin {
    pub(crate) fn new(settings: OriginSettings) -> Result<Origin, TlsSetupError> {
        let connector = OriginConnector::new(
            &settings.host,
            settings.port,
            settings.https,
            settings.ca_file.as_deref(),
            settings.connect_timeout,
        )?;
        let bad_name = || TlsSetupError::ServerName(settings.host.clone());
        let authority = Authority::try_from(settings.authority.as_str()).map_err(|_| bad_name())?;
        let host_header = HeaderValue::from_str(&settings.authority).map_err(|_| bad_name())?;
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .http1_max_buf_size(MAX_RESPONSE_HEAD)
            .http1_max_headers(MAX_RESPONSE_HEADERS)
            // We set Host ourselves: the origin's name, never one a client chose.
            .set_host(false)
            .build(connector);
        Ok(Origin {
            scheme: if settings.https {
                Scheme::HTTPS
            } else {
                Scheme::HTTP
            },
            authority,
            host_header,
            client,
            slots: Arc::new(Semaphore::new(settings.max_fetches.max(1))),
            settings,
        })
    }

    /// The label used for this origin in metrics and logs.
    pub(crate) fn name(&self) -> &str {
        &self.settings.name
    }

    /// Sends `req` (its URI's path and query, its method, headers and body) to
    /// this origin and waits for the response head. The body holds one of the
    /// origin's fetch slots until it is finished or dropped.
    pub(crate) async fn send(
        &self,
        mut req: Request<ForwardBody>,
    ) -> Result<Response<OriginBody>, OriginError> {
        let settings = &self.settings;
        let permit = tokio::time::timeout(
            settings.queue_timeout,
            Arc::clone(&self.slots).acquire_owned(),
        )
        .await
        .map_err(|_| OriginError::Overloaded(settings.max_fetches))?
        .map_err(|_| OriginError::Overloaded(settings.max_fetches))?;

        let path = req
            .uri()
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        *req.uri_mut() = Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(path)
            .build()
            .map_err(|e| OriginError::Protocol(format!("building the request URI: {e}")))?;
        req.headers_mut().insert(HOST, self.host_header.clone());
        *req.version_mut() = http::Version::HTTP_11;

        let response = tokio::time::timeout(settings.first_byte_timeout, self.client.request(req))
            .await
            .map_err(|_| {
                OriginError::Timeout(format!(
                    "no response head within {:?}",
                    settings.first_byte_timeout
                ))
            })?
            .map_err(classify)?;
        if response.status().as_u16() > 599 {
            // RFC 9110 §15: not a status code; never stored, never relayed.
            return Err(OriginError::Protocol(format!(
                "invalid status code {}",
                response.status().as_u16()
            )));
        }
        if response.status().is_informational() {
            // hyper consumes 100/103; anything else (101) would hand us a raw
            // connection, which a cache cannot store or relay.
            return Err(OriginError::Protocol(format!(
                "unexpected interim status {}",
                response.status()
            )));
        }
        let (parts, incoming) = response.into_parts();
        let body = OriginBody::new(incoming, &parts.headers, settings.idle_timeout, permit);
        Ok(Response::from_parts(parts, body))
    }
}

/// Sorts a client error into connect / timeout / protocol.
fn classify(err: hyper_util::client::legacy::Error) -> OriginError {
    let text = error_chain(&err);
    if err.is_connect() {
        let timed_out = text.contains("timed out") || text.contains("timeout");
        return if timed_out {
            OriginError::Timeout(text)
        } else {
            OriginError::Connect(text)
        };
    }
    OriginError::Protocol(text)
}

/// An error and its sources on one line ("a: b: c").
pub(crate) fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(inner) = source {
        let next = inner.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = inner.source();
    }
    text
}

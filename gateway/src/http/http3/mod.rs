//! HTTP/3: the public routes over QUIC, on UDP at the HTTPS listener's address
//! and port.
//!
//! Its own quinn endpoint, apart from the swarm's: the public certificates,
//! ALPN `h3` only, no client certificates. A public client cannot reach the
//! swarm protocol here, and a fleet peer's `fleetcache/2` handshake fails
//! here, as an `h3` one fails at the swarm's port.
//!
//! Bounds match the TCP listeners': `http.max_connections` connections (more
//! are refused), `http.max_concurrent_streams` requests at once per connection
//! (QUIC stream credit: a client waits for a stream to end before opening
//! another), no unidirectional streams beyond the few HTTP/3 itself needs,
//! `http.idle_timeout` as the QUIC idle timeout and as the longest a response
//! write may wait for a client that stopped reading, `http.header_read_timeout`
//! for the handshake and for each request head, `http.max_header_bytes` for a
//! head (431). Handshakes from addresses QUIC has not validated are counted;
//! beyond `http.tls.http3_unvalidated_handshakes` at once, new clients must
//! first echo a Retry token, so a flood of spoofed source addresses costs the
//! node one stateless packet each instead of a handshake.
//!
//! Shutdown: stop accepting (new connections are refused), send GOAWAY on each
//! connection, let its in-flight requests finish and the client acknowledge
//! their last bytes, then close it; at the end of the grace period close
//! everything.

mod quic;
mod request;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http::header::{ALT_SVC, HeaderValue};
use http::{Request, Response};
use quinn::VarInt;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use super::body::ResponseBody;
use super::server::{Limits, Shutdown};
use super::tls::Certificates;
use crate::metrics::{Listener, Metrics};
use quic::QuicConnection;
pub(crate) use request::RequestBody;
use request::RequestLimits;

/// The one ALPN protocol of the endpoint.
const ALPN: &[u8] = b"h3";

/// Unidirectional streams a client may have open at once: its control stream
/// and two QPACK streams, plus one for a reserved (grease) stream type that
/// clients send to exercise extensibility. Nothing else of ours uses them.
const MAX_UNI_STREAMS: u8 = 4;

/// Per request stream: room for a request body in flight (only passed-through
/// requests have one), as the HTTP/2 stream window.
const STREAM_RECEIVE_WINDOW: u32 = 256 * 1024;
/// Per connection, across its streams.
const RECEIVE_WINDOW: u32 = 1024 * 1024;
/// Response bytes sent and not yet acknowledged, per connection: what the node
/// buffers for a client (quinn's default is about 10 MB). 2 MiB keeps about
/// 20 MB/s going at 100 ms round trips.
const SEND_WINDOW: u64 = 2 * 1024 * 1024;

/// How long the closing packets get to leave when the endpoint shuts down.
const CLOSE_FLUSH: Duration = Duration::from_secs(1);

/// Why the HTTP/3 endpoint could not start.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Http3Error {
    /// The certificates do not make a QUIC TLS configuration.
    #[error("building the HTTP/3 TLS configuration: {0}")]
    Tls(String),
    /// `http.idle_timeout` is beyond what QUIC can carry.
    #[error("invalid config: http.idle_timeout: too long for QUIC")]
    IdleTimeout,
    /// The UDP socket could not be bound.
    #[error("binding UDP: {0}")]
    Bind(#[from] std::io::Error),
}

/// The `Alt-Svc` value that tells HTTPS clients HTTP/3 is on UDP `port`.
pub(crate) fn alt_svc(port: u16) -> HeaderValue {
    HeaderValue::from_str(&format!("h3=\":{port}\"; ma=86400"))
        // Always valid; "clear" (no alternatives) would be the harmless fallback.
        .unwrap_or_else(|_| HeaderValue::from_static("clear"))
}

/// Adds `alt_svc` (when HTTP/3 is on) to a response of the HTTPS listener.
pub(crate) fn advertise(
    mut response: Response<ResponseBody>,
    alt_svc: Option<&HeaderValue>,
) -> Response<ResponseBody> {
    if let Some(value) = alt_svc {
        response.headers_mut().insert(ALT_SVC, value.clone());
    }
    response
}

/// Binds the endpoint on UDP `addr` (the HTTPS listener's address and bound
/// port) with the public certificates.
pub(crate) fn bind(
    addr: SocketAddr,
    certificates: &Arc<Certificates>,
    limits: &Limits,
) -> Result<quinn::Endpoint, Http3Error> {
    let tls = certificates
        .server_config(&[ALPN], true)
        .map_err(|err| Http3Error::Tls(err.to_string()))?;
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(tls)
        .map_err(|err| Http3Error::Tls(err.to_string()))?;
    let mut transport = quinn::TransportConfig::default();
    transport
        .max_concurrent_bidi_streams(limits.max_concurrent_streams.into())
        .max_concurrent_uni_streams(MAX_UNI_STREAMS.into())
        .max_idle_timeout(Some(
            // QUIC counts whole milliseconds and reads 0 as "never".
            quinn::IdleTimeout::try_from(limits.idle_timeout.max(Duration::from_millis(1)))
                .map_err(|_| Http3Error::IdleTimeout)?,
        ))
        .stream_receive_window(STREAM_RECEIVE_WINDOW.into())
        .receive_window(RECEIVE_WINDOW.into())
        .send_window(SEND_WINDOW)
        .datagram_receive_buffer_size(None);
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    config.transport_config(Arc::new(transport));
    // Buffers larger than the kernel's default: under load the node does not
    // always drain the socket before a burst of requests and ACKs fills it.
    fleetcache_swarm::quic_server_endpoint(config, addr, "http3").map_err(Http3Error::Bind)
}

/// What the endpoint's connections share.
struct Server<H> {
    limits: Limits,
    requests: RequestLimits,
    metrics: Arc<Metrics>,
    shutdown: Shutdown,
    h3: h3::server::Builder,
    handler: H,
}

/// Accepts connections on `endpoint` until shutdown, serving each request
/// with `handler`. `unvalidated_handshakes` is the Retry threshold.
pub(crate) async fn serve<H, F>(
    endpoint: quinn::Endpoint,
    limits: Limits,
    unvalidated_handshakes: usize,
    metrics: Arc<Metrics>,
    shutdown: Shutdown,
    handler: H,
) where
    H: Fn(Request<RequestBody>, SocketAddr) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<ResponseBody>> + Send + 'static,
{
    let mut h3 = h3::server::builder();
    h3.max_field_section_size(u64::try_from(limits.max_header_bytes).unwrap_or(u64::MAX));
    let server = Arc::new(Server {
        requests: RequestLimits {
            header_read_timeout: limits.header_read_timeout,
            max_headers: limits.max_headers,
            idle_timeout: limits.idle_timeout,
        },
        limits,
        metrics,
        shutdown,
        h3,
        handler,
    });
    let slots = Arc::new(Semaphore::new(server.limits.max_connections));
    let unvalidated = Arc::new(AtomicUsize::new(0));
    let connections = TaskTracker::new();
    let mut draining = false;
    let stop = server.shutdown.clone();
    loop {
        let incoming = tokio::select! {
            incoming = endpoint.accept() => match incoming {
                Some(incoming) => incoming,
                None => break,
            },
            () = stop.graceful.cancelled(), if !draining => {
                draining = true;
                connections.close();
                continue;
            }
            () = connections.wait(), if draining => break,
            () = stop.abort.cancelled() => break,
        };
        if draining {
            incoming.refuse();
            continue;
        }
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            server.metrics.connection_refused(Listener::Http3);
            incoming.refuse();
            continue;
        };
        let validated = incoming.remote_address_validated();
        if !validated && unvalidated.load(Ordering::Relaxed) >= unvalidated_handshakes {
            match incoming.retry() {
                Ok(()) => server.metrics.http3_retry(),
                // Only an Incoming that already answered a Retry cannot be
                // asked again, and its token did not validate it.
                Err(err) => err.into_incoming().refuse(),
            }
            continue;
        }
        let pending = (!validated).then(|| Unvalidated::enter(&unvalidated));
        let guard = server.metrics.connection_opened(Listener::Http3);
        let span = tracing::debug_span!(
            "conn",
            listener = Listener::Http3.as_str(),
            peer = %incoming.remote_address()
        );
        let server = Arc::clone(&server);
        let task = async move {
            server.connection(incoming, pending).await;
            drop((slot, guard));
        };
        stop.tracker
            .spawn(connections.track_future(task.instrument(span)));
    }
    // After a drain nothing is left; after the grace period this cuts what is.
    endpoint.close(VarInt::from_u32(0x100), b"shutting down");
    let _ = tokio::time::timeout(CLOSE_FLUSH, endpoint.wait_idle()).await;
}

/// One handshake from an address not yet validated, counted while it runs.
struct Unvalidated(Arc<AtomicUsize>);

impl Unvalidated {
    fn enter(count: &Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, Ordering::Relaxed);
        Unvalidated(Arc::clone(count))
    }
}

impl Drop for Unvalidated {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl<H, F> Server<H>
where
    H: Fn(Request<RequestBody>, SocketAddr) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<ResponseBody>> + Send + 'static,
{
    /// Completes the handshake (bounded like a request head: a client that
    /// starts one and stalls is a slowloris too), then serves the connection.
    async fn connection(&self, incoming: quinn::Incoming, pending: Option<Unvalidated>) {
        let connecting = match incoming.accept() {
            Ok(connecting) => connecting,
            // quinn reads the client's first flight here: a TLS refusal (no
            // common ALPN, a broken ClientHello) ends the attempt at once.
            Err(err) => {
                self.metrics.tls_handshake_failed(Listener::Http3);
                tracing::debug!("QUIC handshake failed: {err}");
                return;
            }
        };
        let handshake = tokio::time::timeout(self.limits.header_read_timeout, connecting);
        let result = tokio::select! {
            result = handshake => result,
            () = self.shutdown.graceful.cancelled() => return,
        };
        drop(pending);
        let conn = match result {
            Ok(Ok(conn)) => conn,
            Ok(Err(err)) => {
                self.metrics.tls_handshake_failed(Listener::Http3);
                tracing::debug!("QUIC handshake failed: {err}");
                return;
            }
            Err(_) => {
                self.metrics.tls_handshake_failed(Listener::Http3);
                tracing::debug!("QUIC handshake timed out");
                return;
            }
        };
        // rustls refuses any other ALPN; this makes that a checked fact.
        let alpn = conn
            .handshake_data()
            .and_then(|data| data.downcast::<quinn::crypto::rustls::HandshakeData>().ok())
            .and_then(|data| data.protocol);
        if alpn.as_deref() != Some(ALPN) {
            self.metrics.tls_handshake_failed(Listener::Http3);
            conn.close(VarInt::from_u32(0x100), b"h3 only");
            return;
        }
        self.serve_connection(conn).await;
    }

    async fn serve_connection(&self, conn: quinn::Connection) {
        let peer = conn.remote_address();
        let unacked = TaskTracker::new();
        let quic = QuicConnection::new(conn, unacked.clone());
        let built = tokio::select! {
            built = self.h3.build(quic) => built,
            () = self.shutdown.abort.cancelled() => return,
        };
        let mut h3 = match built {
            Ok(h3) => h3,
            Err(err) => {
                tracing::debug!("HTTP/3 connection setup failed: {err}");
                return;
            }
        };
        let stop = &self.shutdown;
        // Request tasks die with the connection (a JoinSet aborts them on drop).
        let mut requests = JoinSet::new();
        let mut accepting = true;
        let mut draining = false;
        loop {
            tokio::select! {
                accepted = h3.accept(), if accepting => match accepted {
                    Ok(Some(resolver)) => {
                        let span = tracing::debug_span!("stream");
                        let serve = request::serve(resolver, self.requests, peer, self.handler.clone());
                        requests.spawn(serve.instrument(span));
                    }
                    // The client said GOAWAY, or a stream arrived after ours:
                    // no more requests on this connection.
                    Ok(None) => {
                        accepting = false;
                        draining = true;
                        unacked.close();
                    }
                    Err(err) => {
                        if !err.is_h3_no_error() {
                            tracing::debug!("connection ended: {err}");
                        }
                        break;
                    }
                },
                Some(_) = requests.join_next(), if !requests.is_empty() => {}
                () = stop.graceful.cancelled(), if !draining => {
                    draining = true;
                    unacked.close();
                    // GOAWAY naming the stream after the last one accepted:
                    // requests already accepted finish, later ones the client
                    // retries elsewhere.
                    let sent = tokio::select! {
                        sent = h3.shutdown(1) => sent,
                        () = stop.abort.cancelled() => break,
                    };
                    if let Err(err) = sent {
                        tracing::debug!("sending GOAWAY: {err}");
                        break;
                    }
                }
                () = unacked.wait(), if draining && requests.is_empty() => break,
                () = stop.abort.cancelled() => break,
            }
        }
        // Dropping `h3` closes the connection with H3_NO_ERROR.
    }
}

//! The node's place in the fleet: one quinn endpoint that accepts peers' requests and
//! dials peers, the liveness loops (which learn each peer's node name from its
//! certificate), key ownership, and locating an object's holders (the verified,
//! hedged multi-source fetch from them is `fetch.rs`).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use fleetcache_store::{Hash, Store};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::certs::{ALPN, CertError, FLEET_SERVER_NAME, NodeIdentity};
use crate::client::{self, PeerError};
use crate::fetch::{FetchError, Located};
use crate::identity::NodeName;
use crate::latency::Bounds;
use crate::peers::{Peer, PeerHandle, PeerInfo, PeerTable};
use crate::prove;
use crate::rendezvous::{self, Owner};
use crate::serve::{Responder, serve_connection};
use crate::service::FleetService;

/// HAVE lookups answered at once (see `Responder::lookups`).
const MAX_LOOKUPS: usize = 256;
/// The longest a shutdown waits for its close packets to reach the peers.
const CLOSE_FLUSH: Duration = Duration::from_secs(1);

/// How a node joins the fleet.
#[derive(Debug)]
pub struct SwarmOptions {
    /// UDP address to listen on.
    pub listen: SocketAddr,
    /// This node's fleet certificate, key and the fleet CA.
    pub identity: NodeIdentity,
    /// Peers as `host:port`: addresses, or DNS names re-resolved every
    /// `resolve_interval` (a headless Service name returns every member).
    pub peers: Vec<String>,
    /// The local store: answers peers, and nothing else here writes to it.
    pub store: Store,
    /// A peer that sends nothing for this long is abandoned for the request; also the
    /// limit for connecting and for a ping's answer.
    pub peer_timeout: Duration,
    /// How often each peer is pinged.
    pub ping_interval: Duration,
    /// How often peer names are resolved again.
    pub resolve_interval: Duration,
    /// GET streams answered at once; more are told OVERLOADED.
    pub max_uploads: usize,
}

/// Why the swarm could not start.
#[derive(Debug, thiserror::Error)]
pub enum SwarmError {
    /// The TLS configuration could not be built from the node's identity.
    #[error("fleet TLS configuration: {0}")]
    Tls(#[from] CertError),
    /// The UDP socket could not be bound.
    #[error("binding the swarm listener on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
}

/// Node-wide swarm counters.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) handshake_refusals: AtomicU64,
    pub(crate) bytes_sent: AtomicU64,
    pub(crate) uploads: AtomicU64,
    pub(crate) overloaded: AtomicU64,
    pub(crate) url_answers: AtomicU64,
    pub(crate) hedges: AtomicU64,
    pub(crate) hedges_won: AtomicU64,
}

/// A snapshot of the node-wide swarm counters.
#[derive(Debug, Clone, Copy, Default)]
pub struct SwarmStats {
    /// Handshakes refused, either way: no certificate, another CA, wrong ALPN, an
    /// unreachable address, or a certificate without exactly one node name (or, from a
    /// peer this node dials, with this node's own name).
    pub handshake_refusals: u64,
    /// Encoded bytes sent to peers.
    pub bytes_sent: u64,
    /// GET requests answered completely.
    pub uploads: u64,
    /// GET and FETCH_URL requests refused as OVERLOADED.
    pub overloaded: u64,
    /// URL requests answered completely, as the URL's owner.
    pub url_answers: u64,
    /// Hedges: a second holder asked because the first was slower than its hedge
    /// delay (for a size proof, a first group, or the next group of a transfer).
    pub hedges: u64,
    /// Hedges whose holder delivered the awaited bytes first.
    pub hedges_won: u64,
}

/// The node's QUIC endpoint and its view of the fleet. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Swarm {
    inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    endpoint: quinn::Endpoint,
    table: PeerTable,
    pub(crate) counters: Arc<Counters>,
    own_cert: Vec<u8>,
    name: NodeName,
    pub(crate) peer_timeout: Duration,
    pub(crate) ping_interval: Duration,
    /// The range of hedge delays, from the peer timeout.
    pub(crate) hedging: Bounds,
    pub(crate) cancel: CancellationToken,
    /// Shared with the responder.
    service: Arc<OnceLock<Arc<dyn FleetService>>>,
}

impl Inner {
    fn count_refusal(&self) {
        self.counters
            .handshake_refusals
            .fetch_add(1, Ordering::Relaxed);
    }
}

impl Swarm {
    /// Binds the endpoint and starts accepting peers and watching the configured ones.
    /// Must run inside a tokio runtime.
    pub fn start(options: SwarmOptions) -> Result<Swarm, SwarmError> {
        let transport = Arc::new(transport_config(options.peer_timeout));
        let mut server = options.identity.quic_server_config()?;
        server.transport_config(transport.clone());
        let mut client = options.identity.quic_client_config()?;
        client.transport_config(transport);
        let mut endpoint = crate::udp::quic_server_endpoint(server, options.listen, "swarm")
            .map_err(|source| SwarmError::Bind {
                addr: options.listen,
                source,
            })?;
        endpoint.set_default_client_config(client);
        let counters = Arc::new(Counters::default());
        let service = Arc::new(OnceLock::new());
        let inner = Arc::new(Inner {
            endpoint: endpoint.clone(),
            table: PeerTable::default(),
            counters: counters.clone(),
            own_cert: options.identity.cert_der().to_vec(),
            name: options.identity.name().clone(),
            peer_timeout: options.peer_timeout,
            ping_interval: options.ping_interval,
            hedging: Bounds::for_peer_timeout(options.peer_timeout),
            cancel: CancellationToken::new(),
            service: service.clone(),
        });
        let responder = Arc::new(Responder {
            store: options.store,
            counters,
            uploads: Arc::new(Semaphore::new(options.max_uploads.max(1))),
            lookups: Arc::new(Semaphore::new(MAX_LOOKUPS)),
            request_timeout: options.peer_timeout,
            service,
        });
        tokio::spawn(accept_loop(inner.clone(), responder));
        tokio::spawn(membership_loop(
            inner.clone(),
            options.peers,
            options.resolve_interval,
        ));
        Ok(Swarm { inner })
    }

    /// Installs the gateway's answers to URL requests and purges (once; later
    /// calls are ignored and return false).
    pub fn set_service(&self, service: Arc<dyn FleetService>) -> bool {
        self.inner.service.set(service).is_ok()
    }

    /// The bound UDP address.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.inner.endpoint.local_addr().ok()
    }

    /// Every known peer.
    pub fn peers(&self) -> Vec<PeerInfo> {
        let hedging = self.inner.hedging;
        self.inner
            .table
            .all()
            .iter()
            .map(|p| p.info(hedging))
            .collect()
    }

    /// This node's name in the fleet (from its certificate).
    pub fn name(&self) -> &NodeName {
        &self.inner.name
    }

    /// The owner of `key` (any bytes: a hash's 32 bytes, a URL cache key) among the live
    /// members, this node included: the highest rendezvous score over node names (see
    /// [`crate::rendezvous_rank`]). Every node that sees the same live members names the
    /// same owner, whatever addresses it reaches them by. A peer in the answer may go
    /// down at any moment; callers treat a failure to reach it like any peer failure.
    pub fn owner(&self, key: &[u8]) -> Owner {
        rendezvous::owner(key, &self.inner.name, self.inner.table.live())
    }

    /// Every live member, this node included and each node once, in rendezvous order for
    /// `key`: the owner first, then the member that would own it if the owner left, and
    /// so on.
    pub fn owners(&self, key: &[u8]) -> Vec<Owner> {
        rendezvous::owners(key, &self.inner.name, self.inner.table.live())
    }

    /// Node-wide counters.
    pub fn stats(&self) -> SwarmStats {
        let c = &self.inner.counters;
        SwarmStats {
            handshake_refusals: c.handshake_refusals.load(Ordering::Relaxed),
            bytes_sent: c.bytes_sent.load(Ordering::Relaxed),
            uploads: c.uploads.load(Ordering::Relaxed),
            overloaded: c.overloaded.load(Ordering::Relaxed),
            url_answers: c.url_answers.load(Ordering::Relaxed),
            hedges: c.hedges.load(Ordering::Relaxed),
            hedges_won: c.hedges_won.load(Ordering::Relaxed),
        }
    }

    /// Finds the live peers holding `hash`, best first (rendezvous order of their node
    /// names for the hash's bytes, as [`Swarm::owners`] ranks them), and proves the
    /// object's size from the first that can, hedged: a holder slower than its hedge
    /// delay gets the next one asked as well, and the first proof wins. Each node is
    /// asked once, however many of its addresses are up. `Ok(None)` if every live peer
    /// answered that it does not hold it (or none is live).
    pub async fn locate(&self, hash: Hash) -> Result<Option<Located>, FetchError> {
        let inner = &self.inner;
        let mut asks = JoinSet::new();
        for peer in inner.table.live() {
            let Some(connection) = peer.peer().connection() else {
                continue;
            };
            let stall = inner.peer_timeout;
            asks.spawn(
                async move {
                    let answer = client::have(&connection, hash, stall).await;
                    (peer, answer)
                }
                .in_current_span(),
            );
        }
        let mut holders = Vec::new();
        while let Some(joined) = asks.join_next().await {
            let Ok((peer, answer)) = joined else { continue };
            match answer {
                Ok(true) => holders.push(peer),
                Ok(false) => {}
                // A peer that cannot answer HAVE is not live for this request
                // (typically one that just died and is not yet marked down):
                // it counts against the peer, but "nobody live holds it" is
                // still a 404, not a failure.
                Err(err) => record_failure(peer.peer(), &err),
            }
        }
        rendezvous::sort_by_rank(hash.as_bytes(), &mut holders, PeerHandle::name);
        let holders: Vec<Arc<Peer>> = holders.iter().map(|h| h.peer().clone()).collect();
        prove::prove(&self.inner, hash, holders).await
    }

    /// Stops accepting and closes every connection.
    pub fn shutdown(&self) {
        self.inner.cancel.cancel();
        self.inner.endpoint.close(0u32.into(), b"shutting down");
    }

    /// [`Swarm::shutdown`], then waits (briefly) until the peers have been told: a
    /// process that exits right after closing would take the close packets with it,
    /// and its peers would think it up until their peer timeout, also after a quick
    /// restart.
    pub async fn shutdown_and_flush(&self) {
        self.shutdown();
        let flushed = tokio::time::timeout(CLOSE_FLUSH, self.inner.endpoint.wait_idle()).await;
        if flushed.is_err() {
            tracing::debug!("peers not all told of the close within {CLOSE_FLUSH:?}");
        }
    }
}

pub(crate) fn record_failure(peer: &Peer, err: &PeerError) {
    let counters = &peer.counters;
    match err {
        PeerError::Lied(reason) => {
            tracing::warn!(peer = %peer.addr, "peer failed verification: {reason}");
            counters
                .verification_failures
                .fetch_add(1, Ordering::Relaxed);
        }
        PeerError::NotFound | PeerError::Overloaded => {}
        _ => {
            counters.failures.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn transport_config(peer_timeout: Duration) -> quinn::TransportConfig {
    let mut transport = quinn::TransportConfig::default();
    // A dead peer is noticed by the pings; the idle timeout only reclaims connections.
    let idle = Duration::from_secs(30).max(peer_timeout * 4);
    if let Ok(idle) = quinn::IdleTimeout::try_from(idle) {
        transport.max_idle_timeout(Some(idle));
    }
    transport.keep_alive_interval(Some(Duration::from_secs(5)));
    transport.max_concurrent_uni_streams(0u8.into());
    transport.datagram_receive_buffer_size(None);
    transport.max_concurrent_bidi_streams(256u32.into());
    // Room for a few milliseconds of a fast link per stream.
    transport.stream_receive_window((8u32 << 20).into());
    transport.receive_window((32u32 << 20).into());
    transport.send_window(32 << 20);
    transport
}

async fn accept_loop(inner: Arc<Inner>, responder: Arc<Responder>) {
    loop {
        let incoming = tokio::select! {
            () = inner.cancel.cancelled() => return,
            incoming = inner.endpoint.accept() => match incoming {
                Some(incoming) => incoming,
                None => return,
            },
        };
        let inner = inner.clone();
        let responder = responder.clone();
        let remote = incoming.remote_address();
        let span =
            tracing::info_span!("peer_connection", peer = %remote, node = tracing::field::Empty);
        tokio::spawn(
            async move {
                let connection = match incoming.await {
                    Ok(connection) => connection,
                    Err(err) => {
                        inner.count_refusal();
                        tracing::warn!("refused a peer's handshake: {err}");
                        return;
                    }
                };
                let alpn = connection
                    .handshake_data()
                    .and_then(|d| d.downcast::<quinn::crypto::rustls::HandshakeData>().ok())
                    .and_then(|d| d.protocol);
                if alpn.as_deref() != Some(ALPN) {
                    inner.count_refusal();
                    connection.close(0u32.into(), b"unsupported protocol");
                    return;
                }
                // A member is a fleet certificate that names a node; one that names none
                // (or several) could be no one's owner and is refused on both sides.
                match NodeName::of_peer(&connection) {
                    Ok(name) => {
                        tracing::Span::current().record("node", name.as_str());
                        // A node's endpoint dials from the address it listens on, so
                        // the remote address reaches it back.
                        if let Some(peer) = inner.table.learn(remote, &inner.cancel) {
                            tracing::info!("learned a peer from its connection");
                            let span = tracing::info_span!("peer", peer = %peer.addr);
                            tokio::spawn(liveness_loop(inner.clone(), peer).instrument(span));
                        }
                        serve_connection(connection, name, responder).await;
                    }
                    Err(err) => {
                        inner.count_refusal();
                        tracing::warn!("refused a peer: {err}");
                        connection.close(0u32.into(), b"certificate names no node");
                    }
                }
            }
            .instrument(span),
        );
    }
}

/// Resolves the configured peers every `interval` and keeps one liveness task per address.
async fn membership_loop(inner: Arc<Inner>, peers: Vec<String>, interval: Duration) {
    loop {
        for entry in &peers {
            let resolved =
                tokio::time::timeout(inner.peer_timeout, tokio::net::lookup_host(entry.as_str()))
                    .await;
            let addrs: Vec<SocketAddr> = match resolved {
                Ok(Ok(addrs)) => {
                    let local = inner.endpoint.local_addr().ok();
                    addrs.filter(|a| reachable_family(local, a)).collect()
                }
                Ok(Err(err)) => {
                    // Keep what it resolved to before: DNS hiccups must not empty the fleet.
                    tracing::warn!(peer = %entry, "resolving peer: {err}");
                    continue;
                }
                Err(_) => {
                    tracing::warn!(peer = %entry, "resolving peer timed out");
                    continue;
                }
            };
            for peer in inner.table.update(entry, &addrs, &inner.cancel) {
                let span = tracing::info_span!("peer", peer = %peer.addr);
                tokio::spawn(liveness_loop(inner.clone(), peer).instrument(span));
            }
        }
        tokio::select! {
            () = inner.cancel.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
        }
    }
}

/// Connects to one peer and pings it every interval until it leaves the table.
async fn liveness_loop(inner: Arc<Inner>, peer: Arc<Peer>) {
    loop {
        let round = Instant::now();
        if let Err(reason) = check_peer(&inner, &peer).await {
            peer.mark_down(reason);
        }
        if peer.state() == crate::peers::PeerState::Myself {
            return;
        }
        tokio::select! {
            () = peer.cancel.cancelled() => {
                peer.mark_down("removed".into());
                return;
            }
            () = tokio::time::sleep(inner.ping_interval.saturating_sub(round.elapsed())) => {}
        }
    }
}

async fn check_peer(inner: &Inner, peer: &Arc<Peer>) -> Result<(), String> {
    // The name of a peer reached over a new connection, told to the service once
    // the connection is usable.
    let mut fresh = None;
    let connection = match peer.current_connection() {
        Some(connection) => connection,
        None => {
            let connecting = inner
                .endpoint
                .connect(peer.addr, FLEET_SERVER_NAME)
                .map_err(|e| format!("connect: {e}"))?;
            let connection = match tokio::time::timeout(inner.peer_timeout, connecting).await {
                Err(_) => return Err("connect: timed out".into()),
                Ok(Err(err)) => {
                    if matches!(
                        err,
                        quinn::ConnectionError::TransportError(_)
                            | quinn::ConnectionError::ConnectionClosed(_)
                    ) {
                        inner.count_refusal();
                    }
                    return Err(format!("handshake: {err}"));
                }
                Ok(Ok(connection)) => connection,
            };
            if is_own_certificate(&connection, &inner.own_cert) {
                tracing::info!("peer address is this node; not using it");
                peer.mark_myself();
                return Ok(());
            }
            let name = match NodeName::of_peer(&connection) {
                Ok(name) => name,
                Err(err) => {
                    inner.count_refusal();
                    connection.close(0u32.into(), b"certificate names no node");
                    return Err(format!("refused: {err}"));
                }
            };
            // Another certificate with this node's name: two nodes would both think they
            // own the same keys. Keep it out of routing until the names are fixed.
            if name == inner.name {
                inner.count_refusal();
                // Shown on `/peers`, so the operator sees which name is doubled.
                peer.set_name(name.clone());
                connection.close(0u32.into(), b"duplicate node name");
                return Err(format!(
                    "refused: it presents this node's own name {name} with another certificate"
                ));
            }
            peer.set_connection(connection.clone(), name.clone());
            fresh = Some(name);
            connection
        }
    };
    let start = Instant::now();
    match tokio::time::timeout(
        inner.peer_timeout,
        client::ping(&connection, inner.peer_timeout),
    )
    .await
    {
        Ok(Ok(())) => {
            peer.mark_up(start.elapsed());
            if let (Some(name), Some(service)) = (fresh, inner.service.get()) {
                service.peer_connected(PeerHandle::new(Arc::clone(peer), name));
            }
            Ok(())
        }
        Ok(Err(err)) => Err(format!("ping: {err}")),
        Err(_) => Err("ping: timed out".into()),
    }
}

/// Whether the endpoint's socket can send to `addr`: an IPv4 socket cannot reach IPv6
/// addresses (a name such as `localhost` resolves to both); an IPv6 socket is dual-stack.
fn reachable_family(local: Option<SocketAddr>, addr: &SocketAddr) -> bool {
    match local {
        Some(local) if local.is_ipv4() => addr.is_ipv4(),
        _ => true,
    }
}

fn is_own_certificate(connection: &quinn::Connection, own: &[u8]) -> bool {
    connection
        .peer_identity()
        .and_then(|id| {
            id.downcast::<Vec<rustls::pki_types::CertificateDer<'static>>>()
                .ok()
        })
        .and_then(|certs| certs.first().map(|c| c.as_ref() == own))
        .unwrap_or(false)
}

#[cfg(test)]
#[path = "refusal_tests.rs"]
mod refusal_tests;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn an_ipv4_socket_skips_ipv6_peers_and_an_ipv6_socket_takes_both() {
        let v4: SocketAddr = "127.0.0.1:7070".parse().unwrap();
        let v6: SocketAddr = "[::1]:7070".parse().unwrap();
        let any6: SocketAddr = "[::]:7070".parse().unwrap();
        assert!(reachable_family(Some(v4), &v4));
        assert!(!reachable_family(Some(v4), &v6));
        assert!(reachable_family(Some(any6), &v4));
        assert!(reachable_family(Some(any6), &v6));
        assert!(reachable_family(None, &v6));
    }
}

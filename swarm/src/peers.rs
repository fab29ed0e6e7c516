//! Membership: which peers exist (static addresses and DNS names re-resolved), which are
//! alive (a QUIC connection plus a PING every interval), the node name each one's
//! certificate carries, their RTT, counters and latency estimate (`latency.rs`). The
//! live set hands out one handle per node name, which is what rendezvous ranking
//! (`rendezvous.rs`) works on.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::identity::NodeName;
use crate::latency::{Bounds, Latency};

/// Where a peer stands, as `GET /peers` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerState {
    /// Not yet connected since it was discovered.
    Connecting,
    /// Connected and answering pings: in the routing set (once per node name, however
    /// many of its addresses are up).
    Up,
    /// Unreachable, refusing the handshake, presenting a certificate without a usable
    /// node name (or with this node's own name), or not answering pings: out of the
    /// routing set until it answers again.
    Down,
    /// The address is this node's own (a DNS name that returns every member): never asked.
    Myself,
}

impl PeerState {
    /// Lower-case name, for JSON and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            PeerState::Connecting => "connecting",
            PeerState::Up => "up",
            PeerState::Down => "down",
            PeerState::Myself => "self",
        }
    }
}

/// A snapshot of one peer.
#[derive(Debug, Clone)]
pub struct PeerInfo {
    /// The peer's QUIC address.
    pub addr: SocketAddr,
    /// The configured entry (address or DNS name) it was found through.
    pub source: String,
    /// The node name in its certificate: its identity in the fleet, the same for every
    /// address it is reached by. `None` until a handshake has succeeded; the last name
    /// seen while it is down.
    pub name: Option<NodeName>,
    /// Its state.
    pub state: PeerState,
    /// Round-trip time of the last answered ping.
    pub rtt: Option<Duration>,
    /// Its smoothed first-group latency: from sending a GET to the first verified
    /// group, fed by every outcome (a failure or timeout counts as the hedge ceiling).
    /// Starts from the first ping's round trip.
    pub latency: Option<Duration>,
    /// How long a transfer waits on it for a verified group before asking another
    /// holder as well (see `swarm/PROTOCOL.md`, *Timeouts*).
    pub hedge_delay: Duration,
    /// Hedges started because it was slower than its hedge delay.
    pub hedges: u64,
    /// Why it is down, if it is.
    pub last_error: Option<String>,
    /// Verified payload bytes received from it.
    pub bytes_received: u64,
    /// Requests it completed: size proofs, and pieces of ranges (a fetch from several
    /// holders counts one per piece each delivered in full).
    pub transfers: u64,
    /// Requests to it that failed without a lie: timeouts, stalls, resets, lost connections.
    pub failures: u64,
    /// Times it sent bytes that failed verification, a truncated stream or a wrong size.
    pub verification_failures: u64,
}

#[derive(Debug, Default)]
pub(crate) struct PeerCounters {
    pub(crate) bytes_received: AtomicU64,
    pub(crate) transfers: AtomicU64,
    pub(crate) failures: AtomicU64,
    pub(crate) verification_failures: AtomicU64,
    pub(crate) hedges: AtomicU64,
}

#[derive(Debug)]
struct Status {
    state: PeerState,
    rtt: Option<Duration>,
    last_error: Option<String>,
    name: Option<NodeName>,
}

/// One peer address and its connection.
#[derive(Debug)]
pub(crate) struct Peer {
    pub(crate) addr: SocketAddr,
    source: String,
    connection: Mutex<Option<quinn::Connection>>,
    status: Mutex<Status>,
    latency: Mutex<Latency>,
    pub(crate) counters: PeerCounters,
    /// Stops the peer's liveness task when it leaves the table.
    pub(crate) cancel: CancellationToken,
}

impl Peer {
    pub(crate) fn new(addr: SocketAddr, source: String, cancel: CancellationToken) -> Self {
        Peer {
            addr,
            source,
            connection: Mutex::new(None),
            status: Mutex::new(Status {
                state: PeerState::Connecting,
                rtt: None,
                last_error: None,
                name: None,
            }),
            latency: Mutex::new(Latency::default()),
            counters: PeerCounters::default(),
            cancel,
        }
    }

    /// The live connection, if the peer is up.
    pub(crate) fn connection(&self) -> Option<quinn::Connection> {
        if self.state() != PeerState::Up {
            return None;
        }
        self.current_connection()
    }

    /// The connection to ping, whatever the state.
    pub(crate) fn current_connection(&self) -> Option<quinn::Connection> {
        lock(&self.connection)
            .clone()
            .filter(|c| c.close_reason().is_none())
    }

    /// Keeps a fresh connection and the node name its certificate carries (an address
    /// can change hands, so the name is learned again on every connection).
    pub(crate) fn set_connection(&self, connection: quinn::Connection, name: NodeName) {
        self.set_name(name);
        *lock(&self.connection) = Some(connection);
    }

    pub(crate) fn set_name(&self, name: NodeName) {
        lock(&self.status).name = Some(name);
    }

    /// The peer's name and RTT while it is up: what the routing set is built from.
    fn live_name(&self) -> Option<(NodeName, Option<Duration>)> {
        let status = lock(&self.status);
        match (&status.state, &status.name) {
            (PeerState::Up, Some(name)) => Some((name.clone(), status.rtt)),
            _ => None,
        }
    }

    pub(crate) fn state(&self) -> PeerState {
        lock(&self.status).state
    }

    pub(crate) fn mark_up(&self, rtt: Duration) {
        let mut status = lock(&self.status);
        if status.state != PeerState::Up {
            let name = status.name.as_ref().map(NodeName::as_str).unwrap_or("");
            tracing::info!(peer = %self.addr, %name, rtt_ms = rtt.as_secs_f64() * 1e3, "peer up");
        }
        status.state = PeerState::Up;
        status.rtt = Some(rtt);
        status.last_error = None;
        drop(status);
        lock(&self.latency).seed(rtt);
    }

    /// Updates the latency estimate (see `latency.rs`).
    pub(crate) fn latency(&self, update: impl FnOnce(&mut Latency)) {
        update(&mut lock(&self.latency));
    }

    pub(crate) fn hedge_delay(&self, bounds: Bounds) -> Duration {
        lock(&self.latency).hedge_delay(bounds)
    }

    /// Its smoothed first-group latency (`None` before any sample) and hedge delay.
    pub(crate) fn latency_and_delay(&self, bounds: Bounds) -> (Option<Duration>, Duration) {
        let latency = lock(&self.latency);
        (latency.estimate(), latency.hedge_delay(bounds))
    }

    pub(crate) fn mark_down(&self, reason: String) {
        let mut status = lock(&self.status);
        if status.state == PeerState::Up {
            tracing::warn!(peer = %self.addr, %reason, "peer down");
        } else {
            tracing::debug!(peer = %self.addr, %reason, "peer still down");
        }
        status.state = PeerState::Down;
        status.last_error = Some(reason);
        self.close_connection(b"down");
    }

    pub(crate) fn mark_myself(&self) {
        lock(&self.status).state = PeerState::Myself;
        self.close_connection(b"self");
    }

    fn close_connection(&self, reason: &[u8]) {
        if let Some(connection) = lock(&self.connection).take() {
            connection.close(0u32.into(), reason);
        }
    }

    pub(crate) fn info(&self, bounds: Bounds) -> PeerInfo {
        let latency = *lock(&self.latency);
        let status = lock(&self.status);
        let c = &self.counters;
        PeerInfo {
            addr: self.addr,
            source: self.source.clone(),
            name: status.name.clone(),
            state: status.state,
            rtt: status.rtt,
            latency: latency.estimate(),
            hedge_delay: latency.hedge_delay(bounds),
            hedges: c.hedges.load(Ordering::Relaxed),
            last_error: status.last_error.clone(),
            bytes_received: c.bytes_received.load(Ordering::Relaxed),
            transfers: c.transfers.load(Ordering::Relaxed),
            failures: c.failures.load(Ordering::Relaxed),
            verification_failures: c.verification_failures.load(Ordering::Relaxed),
        }
    }
}

/// The source of peers learned from their connecting to this node.
pub(crate) const INBOUND: &str = "inbound";

/// Every known peer address, keyed by address; each configured entry owns the
/// addresses it last resolved to.
#[derive(Debug, Default)]
pub(crate) struct PeerTable {
    peers: Mutex<BTreeMap<SocketAddr, Arc<Peer>>>,
}

impl PeerTable {
    /// Replaces the addresses found through `source`; returns the peers that are new.
    /// An address belongs to the entry that found it first: when that entry no longer
    /// resolves to it, it leaves the table (another entry that also resolves to it adds
    /// it back on its own next round).
    pub(crate) fn update(
        &self,
        source: &str,
        addrs: &[SocketAddr],
        parent: &CancellationToken,
    ) -> Vec<Arc<Peer>> {
        let mut peers = lock(&self.peers);
        peers.retain(|addr, peer| {
            let keep = peer.source != source || addrs.contains(addr);
            if !keep {
                tracing::info!(peer = %addr, %source, "peer no longer resolved; removed");
                peer.cancel.cancel();
            }
            keep
        });
        let mut added = Vec::new();
        for &addr in addrs {
            peers.entry(addr).or_insert_with(|| {
                let peer = Arc::new(Peer::new(addr, source.to_owned(), parent.child_token()));
                added.push(peer.clone());
                peer
            });
        }
        added
    }

    /// Adds a member that connected to this node without being configured here
    /// (membership is learned both ways, so two nodes see each other even when
    /// only one lists the other); `None` if the address is known already. Its
    /// source is [`INBOUND`].
    pub(crate) fn learn(&self, addr: SocketAddr, parent: &CancellationToken) -> Option<Arc<Peer>> {
        let mut peers = lock(&self.peers);
        if peers.contains_key(&addr) {
            return None;
        }
        let peer = Arc::new(Peer::new(addr, INBOUND.to_owned(), parent.child_token()));
        peers.insert(addr, peer.clone());
        Some(peer)
    }

    pub(crate) fn all(&self) -> Vec<Arc<Peer>> {
        lock(&self.peers).values().cloned().collect()
    }

    /// The routing set: one handle per node name among the peers that are up, sorted by
    /// name. A node reachable by several addresses (a DNS name and an IP, two
    /// interfaces) is one member; its fastest address (lowest RTT, then lowest address)
    /// carries the requests.
    pub(crate) fn live(&self) -> Vec<PeerHandle> {
        let peers = lock(&self.peers);
        let mut by_name: BTreeMap<NodeName, (Option<Duration>, &Arc<Peer>)> = BTreeMap::new();
        for peer in peers.values() {
            let Some((name, rtt)) = peer.live_name() else {
                continue;
            };
            match by_name.entry(name) {
                Entry::Vacant(slot) => {
                    slot.insert((rtt, peer));
                }
                Entry::Occupied(mut slot) => {
                    if rtt < slot.get().0 {
                        slot.insert((rtt, peer));
                    }
                }
            }
        }
        by_name
            .into_iter()
            .map(|(name, (_, peer))| PeerHandle::new(peer.clone(), name))
            .collect()
    }
}

/// A live fleet member as this node sees it: the node name its certificate carries and
/// the peer entry (address and connection) requests to it go through. Cheap to clone.
#[derive(Debug, Clone)]
pub struct PeerHandle {
    peer: Arc<Peer>,
    name: NodeName,
}

impl PeerHandle {
    pub(crate) fn new(peer: Arc<Peer>, name: NodeName) -> Self {
        PeerHandle { peer, name }
    }

    /// The member's node name: the same on every node of the fleet.
    pub fn name(&self) -> &NodeName {
        &self.name
    }

    /// The address this node reaches it by (other nodes may use another).
    pub fn addr(&self) -> SocketAddr {
        self.peer.addr
    }

    pub(crate) fn peer(&self) -> &Arc<Peer> {
        &self.peer
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these locks leaves plain data behind; keep going.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(i: u16) -> SocketAddr {
        SocketAddr::from(([10, 0, 0, 1], 7000 + i))
    }

    #[test]
    fn update_adds_and_removes_per_source() {
        let table = PeerTable::default();
        let token = CancellationToken::new();
        assert_eq!(table.update("dns", &[addr(1), addr(2)], &token).len(), 2);
        assert_eq!(table.update("static", &[addr(3)], &token).len(), 1);
        let removed = table.all().into_iter().find(|p| p.addr == addr(2));
        assert!(table.update("dns", &[addr(1)], &token).is_empty());
        let left: Vec<_> = table.all().iter().map(|p| p.addr).collect();
        assert_eq!(left, [addr(1), addr(3)]);
        assert!(removed.is_some_and(|p| p.cancel.is_cancelled()));
    }
}

//! Membership: which peers exist (static addresses and DNS names re-resolved), which are
//! alive (a QUIC connection plus a PING every interval), their RTT and counters, and the
//! rendezvous order in which they are asked for a hash.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use fleetcache_store::Hash;
use tokio_util::sync::CancellationToken;

/// Where a peer stands, as `GET /peers` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerState {
    /// Not yet connected since it was discovered.
    Connecting,
    /// Connected and answering pings: in the routing set.
    Up,
    /// Unreachable, refusing the handshake, or not answering pings: out of the routing set
    /// until it answers again.
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
    /// Its state.
    pub state: PeerState,
    /// Round-trip time of the last answered ping.
    pub rtt: Option<Duration>,
    /// Why it is down, if it is.
    pub last_error: Option<String>,
    /// Verified payload bytes received from it.
    pub bytes_received: u64,
    /// Transfers it completed (a size proof or a range fully delivered).
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
}

#[derive(Debug)]
struct Status {
    state: PeerState,
    rtt: Option<Duration>,
    last_error: Option<String>,
}

/// One peer address and its connection.
#[derive(Debug)]
pub(crate) struct Peer {
    pub(crate) addr: SocketAddr,
    source: String,
    connection: Mutex<Option<quinn::Connection>>,
    status: Mutex<Status>,
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
            }),
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

    pub(crate) fn set_connection(&self, connection: quinn::Connection) {
        *lock(&self.connection) = Some(connection);
    }

    pub(crate) fn state(&self) -> PeerState {
        lock(&self.status).state
    }

    pub(crate) fn mark_up(&self, rtt: Duration) {
        let mut status = lock(&self.status);
        if status.state != PeerState::Up {
            tracing::info!(peer = %self.addr, rtt_ms = rtt.as_secs_f64() * 1e3, "peer up");
        }
        *status = Status {
            state: PeerState::Up,
            rtt: Some(rtt),
            last_error: None,
        };
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

    pub(crate) fn info(&self) -> PeerInfo {
        let status = lock(&self.status);
        let c = &self.counters;
        PeerInfo {
            addr: self.addr,
            source: self.source.clone(),
            state: status.state,
            rtt: status.rtt,
            last_error: status.last_error.clone(),
            bytes_received: c.bytes_received.load(Ordering::Relaxed),
            transfers: c.transfers.load(Ordering::Relaxed),
            failures: c.failures.load(Ordering::Relaxed),
            verification_failures: c.verification_failures.load(Ordering::Relaxed),
        }
    }
}

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

    pub(crate) fn all(&self) -> Vec<Arc<Peer>> {
        lock(&self.peers).values().cloned().collect()
    }

    /// Peers in the routing set.
    pub(crate) fn live(&self) -> Vec<Arc<Peer>> {
        lock(&self.peers)
            .values()
            .filter(|p| p.state() == PeerState::Up)
            .cloned()
            .collect()
    }
}

/// Sorts peers by their rendezvous score for `hash`, best first: every node that sees
/// the same live set picks the same owner for a hash, and losing one peer moves only
/// the hashes it owned.
pub(crate) fn rendezvous_order(hash: &Hash, peers: &mut [Arc<Peer>]) {
    peers.sort_by_cached_key(|peer| std::cmp::Reverse(rendezvous_score(hash, peer.addr)));
}

/// The order in which a node asks the peers at `addrs` for `hash`, best first (the
/// hash's owner first). The same for every node that sees the same peers.
pub fn rendezvous_rank(hash: &Hash, addrs: &mut [SocketAddr]) {
    addrs.sort_by_cached_key(|&addr| std::cmp::Reverse(rendezvous_score(hash, addr)));
}

fn rendezvous_score(hash: &Hash, addr: SocketAddr) -> u64 {
    let mut hasher = blake3::Hasher::new();
    hasher.update(hash.as_bytes());
    hasher.update(addr.to_string().as_bytes());
    let digest = hasher.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest.as_bytes()[..8]);
    u64::from_le_bytes(first)
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
    fn rendezvous_owner_moves_only_for_the_removed_peer() {
        let token = CancellationToken::new();
        let peers: Vec<_> = (0..5)
            .map(|i| Arc::new(Peer::new(addr(i), "x".into(), token.clone())))
            .collect();
        let mut moved = 0;
        let mut owners = [0usize; 5];
        for n in 0..1000u32 {
            let hash = Hash::from(blake3::hash(&n.to_le_bytes()));
            let mut all = peers.clone();
            rendezvous_order(&hash, &mut all);
            let owner = all[0].addr;
            owners[peers.iter().position(|p| p.addr == owner).unwrap_or(0)] += 1;
            let mut without: Vec<_> = peers
                .iter()
                .filter(|p| p.addr != addr(2))
                .cloned()
                .collect();
            rendezvous_order(&hash, &mut without);
            if owner != addr(2) {
                assert_eq!(without[0].addr, owner, "a hash moved off a surviving owner");
            } else {
                moved += 1;
            }
        }
        assert!((100..300).contains(&moved), "peer 2 owned {moved} of 1000");
        assert!(owners.iter().all(|&n| n > 100), "uneven owners {owners:?}");
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

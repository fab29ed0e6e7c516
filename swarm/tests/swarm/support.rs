//! Nodes for the swarm tests: a store in a temp dir and a swarm on loopback.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use fleetcache_store::{Hash, Store, StoreOptions};
use fleetcache_swarm::{FleetCa, NodeIdentity, PeerState, Swarm, SwarmOptions};
use tempfile::TempDir;

pub struct TestSwarm {
    pub swarm: Swarm,
    pub store: Store,
    pub addr: SocketAddr,
    _dir: TempDir,
}

pub fn identity(ca: &FleetCa, name: &str) -> NodeIdentity {
    ca.issue_node(name).unwrap().identity().unwrap()
}

/// Starts a node with a name of its own (`node-1`, `node-2`, ...): nodes are told apart
/// by the names in their certificates.
pub fn start(ca: &FleetCa, listen: SocketAddr, peers: &[String], max_uploads: usize) -> TestSwarm {
    static STARTED: AtomicUsize = AtomicUsize::new(0);
    let n = STARTED.fetch_add(1, Ordering::Relaxed) + 1;
    start_named(ca, &format!("node-{n}"), listen, peers, max_uploads)
}

pub fn start_named(
    ca: &FleetCa,
    name: &str,
    listen: SocketAddr,
    peers: &[String],
    max_uploads: usize,
) -> TestSwarm {
    let dir = TempDir::new().unwrap();
    let store = Store::open(StoreOptions {
        data_dir: dir.path().to_owned(),
        capacity: 1 << 30,
        high_watermark: 0.9,
        low_watermark: 0.8,
        memory_cache: 0,
    })
    .unwrap();
    let swarm = Swarm::start(SwarmOptions {
        listen,
        identity: identity(ca, name),
        peers: peers.to_vec(),
        store: store.clone(),
        peer_timeout: Duration::from_secs(2),
        ping_interval: Duration::from_millis(100),
        resolve_interval: Duration::from_millis(200),
        max_uploads,
    })
    .unwrap();
    let addr = swarm.local_addr().unwrap();
    TestSwarm {
        swarm,
        store,
        addr,
        _dir: dir,
    }
}

pub fn put(store: &Store, data: &[u8]) -> Hash {
    let mut ingest = store.ingest(None).unwrap();
    ingest.write(data).unwrap();
    ingest.finish().unwrap().hash
}

pub fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 + i / 4096) as u8).collect()
}

/// Polls until the swarm's peer at `addr` is in `state`.
pub async fn wait_state(swarm: &Swarm, addr: SocketAddr, state: PeerState) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if swarm
            .peers()
            .iter()
            .any(|p| p.addr == addr && p.state == state)
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "peer {addr} never {state:?}: {:?}",
            swarm.peers()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A free UDP port on loopback, for a node that must know its address before it starts.
pub fn free_udp_addr() -> SocketAddr {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

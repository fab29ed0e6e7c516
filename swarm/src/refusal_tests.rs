//! Identity over real QUIC: a fleet certificate that names no node is refused by the node
//! that dials it and by the node it dials, and stays out of every ranking. These need a
//! certificate `FleetCa::issue_node` refuses to make, so they live inside the crate.

#![allow(clippy::unwrap_used)]

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use fleetcache_store::{Store, StoreOptions};
use tempfile::TempDir;

use super::*;
use crate::certs::{FLEET_SERVER_NAME, FleetCa};
use crate::peers::PeerState;

struct Node {
    swarm: Swarm,
    _dir: TempDir,
}

fn start(identity: NodeIdentity, peers: &[SocketAddr]) -> Node {
    let dir = TempDir::new().unwrap();
    let store = Store::open(StoreOptions {
        data_dir: dir.path().to_owned(),
        capacity: 1 << 20,
        high_watermark: 0.9,
        low_watermark: 0.8,
        memory_cache: 0,
    })
    .unwrap();
    let swarm = Swarm::start(SwarmOptions {
        listen: (Ipv4Addr::LOCALHOST, 0).into(),
        identity,
        peers: peers.iter().map(ToString::to_string).collect(),
        store,
        peer_timeout: Duration::from_secs(2),
        ping_interval: Duration::from_millis(50),
        resolve_interval: Duration::from_secs(60),
        max_uploads: 4,
    })
    .unwrap();
    Node { swarm, _dir: dir }
}

fn addr(node: &Node) -> SocketAddr {
    node.swarm.local_addr().unwrap()
}

fn peer(node: &Node, at: SocketAddr) -> Option<PeerInfo> {
    node.swarm.peers().into_iter().find(|p| p.addr == at)
}

/// Polls `done` until it holds, failing after a generous deadline.
async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !done() {
        assert!(Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_certificate_without_a_node_name_is_refused_both_ways() {
    let ca = FleetCa::generate("fleet").unwrap();
    let a = start(ca.issue_node("a").unwrap().identity().unwrap(), &[]);
    // Signed by the fleet CA, but its only name is the shared one. It believes it is
    // called "nameless"; nobody else can know that.
    let cert = ca.issue_test_cert(&[FLEET_SERVER_NAME]).unwrap();
    let nameless = NodeIdentity::from_test_cert(&ca, &cert, "nameless".parse().unwrap()).unwrap();
    let nameless = start(nameless, &[addr(&a)]);
    let b = start(
        ca.issue_node("b").unwrap().identity().unwrap(),
        &[addr(&nameless), addr(&a)],
    );

    // b dials it: the handshake succeeds (the CA signed it), then b refuses it.
    until("b refuses the nameless peer", || {
        peer(&b, addr(&nameless)).is_some_and(|p| {
            p.state == PeerState::Down
                && p.last_error
                    .as_deref()
                    .is_some_and(|e| e.contains("names no node"))
        })
    })
    .await;
    until("b sees a", || {
        peer(&b, addr(&a)).is_some_and(|p| p.state == PeerState::Up)
    })
    .await;
    assert!(b.swarm.stats().handshake_refusals >= 1);
    let refused = peer(&b, addr(&nameless)).unwrap();
    assert_eq!(refused.name, None);

    // It dials a: a closes the connection after the handshake, so it never comes up.
    until("a refuses the nameless dialler", || {
        a.swarm.stats().handshake_refusals >= 1
    })
    .await;
    until("the nameless node sees a down", || {
        peer(&nameless, addr(&a)).is_some_and(|p| p.state == PeerState::Down)
    })
    .await;

    // Rankings on b count only the named members.
    for n in 0..100u32 {
        let names: Vec<String> = b
            .swarm
            .owners(&n.to_le_bytes())
            .iter()
            .map(|o| match o {
                Owner::Local => b.swarm.name().to_string(),
                Owner::Peer(p) => p.name().to_string(),
            })
            .collect();
        assert!(names == ["a", "b"] || names == ["b", "a"], "{names:?}");
    }
    for node in [&a, &nameless, &b] {
        node.swarm.shutdown();
    }
}

//! Membership: peers found by name, dead peers leaving the routing set and coming back,
//! a node that finds its own address among its peers.

use std::net::Ipv4Addr;

use fleetcache_swarm::{FleetCa, Owner, PeerState};

use crate::support::*;

#[tokio::test]
async fn a_dead_peer_leaves_the_routing_set_and_comes_back() {
    let ca = FleetCa::generate("fleet").unwrap();
    let addr = free_udp_addr();
    let a = start(&ca, addr, &[], 8);
    let hash = put(&a.store, &pattern(5000));
    // Found through a name, as a DNS entry would give it.
    let b = start(
        &ca,
        (Ipv4Addr::LOCALHOST, 0).into(),
        &[format!("localhost:{}", addr.port())],
        8,
    );
    wait_state(&b.swarm, addr, PeerState::Up).await;
    // `localhost` may also resolve to ::1, which an IPv4 endpoint cannot reach.
    assert_eq!(b.swarm.peers().len(), 1, "{:?}", b.swarm.peers());
    assert!(b.swarm.locate(hash).await.unwrap().is_some());

    a.swarm.shutdown();
    drop(a);
    wait_state(&b.swarm, addr, PeerState::Down).await;
    assert!(
        b.swarm.locate(hash).await.unwrap().is_none(),
        "a dead peer was asked"
    );
    let info = b
        .swarm
        .peers()
        .into_iter()
        .find(|p| p.addr == addr)
        .unwrap();
    assert!(info.last_error.is_some());

    // The same address answers again.
    let again = start(&ca, addr, &[], 8);
    put(&again.store, &pattern(5000));
    wait_state(&b.swarm, addr, PeerState::Up).await;
    let located = b
        .swarm
        .locate(hash)
        .await
        .unwrap()
        .expect("back in the routing set");
    assert_eq!(located.size(), 5000);
}

#[tokio::test]
async fn a_node_among_its_own_peers_skips_itself() {
    let ca = FleetCa::generate("fleet").unwrap();
    let own = free_udp_addr();
    let other = start(&ca, (Ipv4Addr::LOCALHOST, 0).into(), &[], 8);
    let node = start(&ca, own, &[own.to_string(), other.addr.to_string()], 8);
    wait_state(&node.swarm, own, PeerState::Myself).await;
    wait_state(&node.swarm, other.addr, PeerState::Up).await;
}

#[tokio::test]
async fn a_peer_with_this_nodes_name_is_kept_out_of_routing() {
    let ca = FleetCa::generate("fleet").unwrap();
    // Two certificates issued for the same name: a misconfiguration that would make both
    // nodes claim the same keys.
    let twin = start_named(&ca, "dup", (Ipv4Addr::LOCALHOST, 0).into(), &[], 8);
    let node = start_named(
        &ca,
        "dup",
        (Ipv4Addr::LOCALHOST, 0).into(),
        &[twin.addr.to_string()],
        8,
    );
    wait_state(&node.swarm, twin.addr, PeerState::Down).await;
    let info = node.swarm.peers().into_iter().next().unwrap();
    assert!(
        info.last_error
            .as_deref()
            .is_some_and(|e| e.contains("own name")),
        "{info:?}"
    );
    assert_eq!(info.name.unwrap().as_str(), "dup");
    assert!(node.swarm.stats().handshake_refusals >= 1);
    assert!(matches!(node.swarm.owners(b"key")[..], [Owner::Local]));
}

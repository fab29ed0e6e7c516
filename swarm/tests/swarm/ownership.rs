//! Key ownership across real nodes: every node ranks the live members, itself included,
//! by node name, so all agree on owners whatever addresses they reach each other by.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use fleetcache_swarm::{FleetCa, Owner, PeerState, Swarm};
use rand::{Rng, SeedableRng};

use crate::support::*;

/// The owners of `key` on `swarm`, as node names.
fn owner_names(swarm: &Swarm, key: &[u8]) -> Vec<String> {
    swarm
        .owners(key)
        .iter()
        .map(|owner| match owner {
            Owner::Local => swarm.name().to_string(),
            Owner::Peer(peer) => peer.name().to_string(),
        })
        .collect()
}

/// Polls until `done` holds.
async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !done() {
        assert!(Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn up_as(swarm: &Swarm, addr: SocketAddr, name: &str) -> bool {
    swarm.peers().iter().any(|p| {
        p.addr == addr
            && p.state == PeerState::Up
            && p.name.as_ref().map(|n| n.as_str()) == Some(name)
    })
}

/// Three nodes. `a` listens on every interface: `b` dials it as 127.0.0.1, `c` as
/// 127.0.0.2 *and* as 127.0.0.1 (two entries, one node). Ranking by address would give
/// `b` and `c` different owners; ranking by name gives the same everywhere.
#[tokio::test]
async fn three_nodes_agree_on_every_keys_owner() {
    let ca = FleetCa::generate("fleet").unwrap();
    let (b_addr, c_addr) = (free_udp_addr(), free_udp_addr());
    let a = start_named(
        &ca,
        "a",
        (Ipv4Addr::UNSPECIFIED, 0).into(),
        &[b_addr.to_string(), c_addr.to_string()],
        8,
    );
    let port = a.addr.port();
    let a_by_b: SocketAddr = (Ipv4Addr::LOCALHOST, port).into();
    let a_by_c: SocketAddr = (Ipv4Addr::new(127, 0, 0, 2), port).into();
    let b = start_named(
        &ca,
        "b",
        b_addr,
        &[a_by_b.to_string(), c_addr.to_string()],
        8,
    );
    let c = start_named(
        &ca,
        "c",
        c_addr,
        &[a_by_c.to_string(), b_addr.to_string(), a_by_b.to_string()],
        8,
    );

    until("every node sees the other two up, by name", || {
        up_as(&a.swarm, b_addr, "b")
            && up_as(&a.swarm, c_addr, "c")
            && up_as(&b.swarm, a_by_b, "a")
            && up_as(&b.swarm, c_addr, "c")
            && up_as(&c.swarm, a_by_c, "a")
            && up_as(&c.swarm, a_by_b, "a")
            && up_as(&c.swarm, b_addr, "b")
    })
    .await;
    // `c` has three peer entries up, but two of them are the same node.
    assert_eq!(c.swarm.peers().len(), 3, "{:?}", c.swarm.peers());

    let nodes = [&a.swarm, &b.swarm, &c.swarm];
    let mut rng = rand::rngs::StdRng::seed_from_u64(8);
    let mut owned_by = BTreeSet::new();
    for _ in 0..200 {
        let len = rng.random_range(1..=64);
        let key: Vec<u8> = (0..len).map(|_| rng.random()).collect();
        let orders: Vec<Vec<String>> = nodes.iter().map(|s| owner_names(s, &key)).collect();
        let members: BTreeSet<&String> = orders[0].iter().collect();
        assert_eq!(members.len(), 3, "each node counted once: {:?}", orders[0]);
        assert_eq!(orders[0], orders[1], "a and b disagree on {key:?}");
        assert_eq!(orders[0], orders[2], "a and c disagree on {key:?}");
        let owner = &orders[0][0];
        owned_by.insert(owner.clone());
        for swarm in nodes {
            let local = swarm.owner(&key).is_local();
            assert_eq!(
                local,
                swarm.name().as_str() == owner,
                "{} on {key:?}",
                swarm.name()
            );
        }
    }
    assert_eq!(
        owned_by.into_iter().collect::<Vec<_>>(),
        ["a", "b", "c"],
        "every node, the asker included, owns some keys"
    );

    // The owner that `c` names for a key `a` owns is reached by one of its addresses.
    let key = (0u32..)
        .map(|n| n.to_le_bytes())
        .find(|k| a.swarm.owner(k).is_local())
        .unwrap();
    match c.swarm.owner(&key) {
        Owner::Peer(peer) => {
            assert_eq!(peer.name().as_str(), "a");
            assert!([a_by_b, a_by_c].contains(&peer.addr()), "{}", peer.addr());
        }
        Owner::Local => panic!("c claims a key a owns"),
    }
}

/// A node losing a peer recomputes: the keys the lost node owned move, nothing else does.
#[tokio::test]
async fn a_node_going_down_hands_over_only_its_keys() {
    let ca = FleetCa::generate("fleet").unwrap();
    let gone = start_named(&ca, "gone", (Ipv4Addr::LOCALHOST, 0).into(), &[], 8);
    let stays = start_named(&ca, "stays", (Ipv4Addr::LOCALHOST, 0).into(), &[], 8);
    let asker = start_named(
        &ca,
        "asker",
        (Ipv4Addr::LOCALHOST, 0).into(),
        &[gone.addr.to_string(), stays.addr.to_string()],
        8,
    );
    wait_state(&asker.swarm, gone.addr, PeerState::Up).await;
    wait_state(&asker.swarm, stays.addr, PeerState::Up).await;
    let keys: Vec<[u8; 4]> = (0u32..300).map(u32::to_be_bytes).collect();
    let before: Vec<Vec<String>> = keys.iter().map(|k| owner_names(&asker.swarm, k)).collect();

    gone.swarm.shutdown();
    wait_state(&asker.swarm, gone.addr, PeerState::Down).await;
    let mut moved = 0;
    for (key, before) in keys.iter().zip(&before) {
        let after = owner_names(&asker.swarm, key);
        let expected: Vec<String> = before.iter().filter(|n| *n != "gone").cloned().collect();
        assert_eq!(after, expected, "{key:?}");
        moved += usize::from(before[0] == "gone");
    }
    assert!(moved > 0, "the lost node owned nothing");
}

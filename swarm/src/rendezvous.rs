//! Who owns a key: rendezvous (highest random weight) hashing over the live members'
//! node names, this node included.
//!
//! Every member scores every (key, member) pair the same way and the highest score owns
//! the key, so two nodes that see the same live members agree on every key's owner
//! without talking to each other. When a member leaves, only the keys it owned move (to
//! the member ranked second for each), and the order of the others is unchanged; when
//! one joins, it takes only the keys it now ranks first for.

use std::cmp::Reverse;

use crate::identity::NodeName;
use crate::peers::PeerHandle;

/// Where a key lives in the fleet, as this node sees the live members.
#[derive(Debug, Clone)]
pub enum Owner {
    /// This node.
    Local,
    /// Another live member, reached through the handle's connection.
    Peer(PeerHandle),
}

impl Owner {
    /// Whether this node owns the key.
    pub fn is_local(&self) -> bool {
        matches!(self, Owner::Local)
    }
}

/// A member's score for `key`: the first 8 bytes, little-endian, of
/// `BLAKE3(key ‖ 0x00 ‖ name)`. A node name never contains a zero byte, so the byte
/// string hashed is different for every (key, name) pair.
pub(crate) fn score(key: &[u8], name: &NodeName) -> u64 {
    let mut hasher = blake3::Hasher::new();
    hasher.update(key);
    hasher.update(&[0]);
    hasher.update(name.as_str().as_bytes());
    let digest = hasher.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest.as_bytes()[..8]);
    u64::from_le_bytes(first)
}

/// What members are sorted by, smallest first: the highest score, then (for the
/// vanishingly rare tie) the smaller name, so the order is total and the same everywhere.
fn rank_key(key: &[u8], name: &NodeName) -> (Reverse<u64>, NodeName) {
    (Reverse(score(key, name)), name.clone())
}

/// Sorts `items` by rendezvous rank for `key`, best first.
pub(crate) fn sort_by_rank<T>(key: &[u8], items: &mut [T], name: impl Fn(&T) -> &NodeName) {
    items.sort_by_cached_key(|item| rank_key(key, name(item)));
}

/// Sorts node names by rendezvous rank for `key`, best first: `names[0]` owns the key
/// among them. `key` is any byte string (the 32 bytes of a BLAKE3 hash for hash fills).
/// Every node computes the same order from the same names; this is the order
/// `Swarm::owners` and `Swarm::locate` use, offered so tools and tests can predict them.
pub fn rendezvous_rank(key: &[u8], names: &mut [NodeName]) {
    sort_by_rank(key, names, |name| name);
}

/// The members in rank order for `key`: this node (`own`) and the live peers, each name
/// once. A peer claiming this node's own name is left out (the peer table keeps such a
/// peer down; this is the last line).
pub(crate) fn owners(key: &[u8], own: &NodeName, live: Vec<PeerHandle>) -> Vec<Owner> {
    let mut members: Vec<(NodeName, Owner)> = Vec::with_capacity(live.len() + 1);
    members.push((own.clone(), Owner::Local));
    for peer in live {
        if members.iter().all(|(name, _)| name != peer.name()) {
            members.push((peer.name().clone(), Owner::Peer(peer)));
        }
    }
    sort_by_rank(key, &mut members, |(name, _)| name);
    members.into_iter().map(|(_, owner)| owner).collect()
}

/// The first of [`owners`], without sorting everyone.
pub(crate) fn owner(key: &[u8], own: &NodeName, live: Vec<PeerHandle>) -> Owner {
    let mut best = (rank_key(key, own), Owner::Local);
    for peer in live {
        let rank = rank_key(key, peer.name());
        if rank < best.0 {
            best = (rank, Owner::Peer(peer));
        }
    }
    best.1
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::BTreeSet;
    use std::net::SocketAddr;
    use std::sync::Arc;
    use std::time::Duration;

    use rand::{Rng, SeedableRng};
    use tokio_util::sync::CancellationToken;

    use super::*;
    use crate::peers::{Peer, PeerTable};

    fn name(s: &str) -> NodeName {
        s.parse().unwrap()
    }

    fn names(n: usize) -> Vec<NodeName> {
        (0..n).map(|i| name(&format!("node-{i}"))).collect()
    }

    /// A live peer named `name` at `addr`, as the peer table hands it out.
    fn live_peer(name: &NodeName, addr: &str, rtt_ms: u64) -> Arc<Peer> {
        let peer = Arc::new(Peer::new(
            addr.parse().unwrap(),
            "test".into(),
            CancellationToken::new(),
        ));
        peer.set_name(name.clone());
        peer.mark_up(Duration::from_millis(rtt_ms));
        peer
    }

    fn owner_names(own: &NodeName, owners: &[Owner]) -> Vec<NodeName> {
        owners
            .iter()
            .map(|o| match o {
                Owner::Local => own.clone(),
                Owner::Peer(p) => p.name().clone(),
            })
            .collect()
    }

    #[test]
    fn the_score_is_pinned() {
        // The score is part of the protocol: nodes of different versions must agree on
        // owners during a rolling upgrade, so it may never change silently.
        assert_eq!(score(b"", &name("a")), 0x0e89_3034_ee21_f61f);
        assert_eq!(
            score(&[7u8; 32], &name("node-1")),
            score(&[7u8; 32], &name("NODE-1."))
        );
        let mut expected = [0u8; 8];
        let digest = blake3::hash(b"key\0node-2");
        expected.copy_from_slice(&digest.as_bytes()[..8]);
        assert_eq!(score(b"key", &name("node-2")), u64::from_le_bytes(expected));
    }

    #[test]
    fn ranking_is_deterministic_and_independent_of_input_order() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        for _ in 0..200 {
            let key: [u8; 20] = rng.random();
            let mut a = names(7);
            let mut b = a.clone();
            b.reverse();
            b.rotate_left(3);
            rendezvous_rank(&key, &mut a);
            rendezvous_rank(&key, &mut b);
            assert_eq!(a, b);
        }
    }

    #[test]
    fn ties_go_to_the_smaller_name() {
        // Equal scores cannot be found on purpose; check the sort key directly.
        assert!((Reverse(5u64), name("a")) < (Reverse(5u64), name("b")));
        assert!((Reverse(6u64), name("z")) < (Reverse(5u64), name("a")));
        let key = b"k";
        assert!(rank_key(key, &name("a")) != rank_key(key, &name("b")));
    }

    /// Three nodes, each seeing the other two at addresses of its own (a name, an IP, an
    /// IPv4-mapped IPv6 address, a second address for the same node): all agree.
    #[test]
    fn every_view_of_the_same_members_agrees_whatever_the_addresses() {
        let [a, b, c] = [name("a"), name("b"), name("c")];
        let view_of_a = vec![
            PeerHandle::new(live_peer(&b, "10.0.0.2:7070", 1), b.clone()),
            PeerHandle::new(live_peer(&c, "10.0.0.3:7070", 1), c.clone()),
        ];
        let view_of_b = vec![
            PeerHandle::new(live_peer(&a, "[::ffff:10.0.0.1]:7070", 1), a.clone()),
            PeerHandle::new(live_peer(&c, "192.168.9.3:17070", 1), c.clone()),
        ];
        let view_of_c = vec![
            PeerHandle::new(live_peer(&a, "[fd00::1]:7070", 1), a.clone()),
            PeerHandle::new(live_peer(&a, "10.0.0.1:7070", 1), a.clone()),
            PeerHandle::new(live_peer(&b, "10.0.0.2:7070", 1), b.clone()),
        ];
        let mut owned = BTreeSet::new();
        for n in 0..500u32 {
            let key = n.to_be_bytes();
            let orders = [
                owner_names(&a, &owners(&key, &a, view_of_a.clone())),
                owner_names(&b, &owners(&key, &b, view_of_b.clone())),
                owner_names(&c, &owners(&key, &c, view_of_c.clone())),
            ];
            assert_eq!(
                orders[0].len(),
                3,
                "a member counted twice: {:?}",
                orders[0]
            );
            assert_eq!(orders[0], orders[1]);
            assert_eq!(orders[0], orders[2]);
            owned.insert(orders[0][0].clone());
            // `owner` agrees with the head of `owners`, and says Local on the owner.
            for (own, view) in [(&a, &view_of_a), (&b, &view_of_b), (&c, &view_of_c)] {
                let first = owner(&key, own, view.clone());
                assert_eq!(
                    owner_names(own, std::slice::from_ref(&first)),
                    orders[0][..1]
                );
                assert_eq!(first.is_local(), *own == orders[0][0]);
            }
        }
        assert_eq!(owned.len(), 3, "each member, this node included, owns keys");
    }

    #[test]
    fn a_peer_claiming_this_nodes_name_is_not_a_second_member() {
        let own = name("a");
        let impostor = PeerHandle::new(live_peer(&own, "10.0.0.9:7070", 1), own.clone());
        for n in 0..50u32 {
            let all = owners(&n.to_be_bytes(), &own, vec![impostor.clone()]);
            assert!(matches!(all[..], [Owner::Local]));
        }
    }

    /// When one of five members leaves, the keys it did not own keep their owner, the
    /// keys it owned spread over the others, and the survivors' order is unchanged.
    #[test]
    fn a_member_leaving_moves_only_its_own_keys() {
        let all = names(5);
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        let keys: Vec<Vec<u8>> = (0..4000)
            .map(|i| {
                // Hash-sized keys and URL-like keys of any length.
                if i % 2 == 0 {
                    rng.random::<[u8; 32]>().to_vec()
                } else {
                    format!("/path/{}?q={} example.org https", rng.random::<u32>(), i).into_bytes()
                }
            })
            .collect();
        let mut owned = vec![0usize; all.len()];
        for (leaver_index, leaver) in all.iter().enumerate() {
            let survivors: Vec<NodeName> = all.iter().filter(|n| *n != leaver).cloned().collect();
            let mut moved_to = vec![0usize; all.len()];
            for key in &keys {
                let mut before = all.clone();
                rendezvous_rank(key, &mut before);
                let mut after = survivors.clone();
                rendezvous_rank(key, &mut after);
                let before_without: Vec<_> =
                    before.iter().filter(|n| *n != leaver).cloned().collect();
                assert_eq!(after, before_without, "survivors reordered");
                if before[0] == *leaver {
                    assert_eq!(after[0], before[1], "an orphan goes to the runner-up");
                    moved_to[all.iter().position(|n| *n == after[0]).unwrap()] += 1;
                } else {
                    assert_eq!(after[0], before[0], "a key moved off a surviving owner");
                }
                if leaver_index == 0 {
                    owned[all.iter().position(|n| *n == before[0]).unwrap()] += 1;
                }
            }
            // Its keys spread over every survivor rather than landing on one.
            for (i, n) in moved_to.iter().enumerate() {
                assert_eq!(*n == 0, i == leaver_index, "moved to {moved_to:?}");
            }
        }
        // 4000 keys over 5 members: about 800 each.
        assert!(owned.iter().all(|&n| (600..1000).contains(&n)), "{owned:?}");
    }

    #[test]
    fn duplicate_addresses_of_one_node_count_once_in_the_table() {
        let table = PeerTable::default();
        let token = CancellationToken::new();
        let addrs: Vec<SocketAddr> = ["10.0.0.1:7070", "10.0.0.2:7070", "10.0.0.3:7070"]
            .iter()
            .map(|a| a.parse().unwrap())
            .collect();
        let peers = table.update("dns", &addrs, &token);
        let (a, b) = (name("a"), name("b"));
        // Two addresses of node a (the second faster), one of node b.
        for (peer, name, rtt) in [(&peers[0], &a, 5), (&peers[1], &a, 2), (&peers[2], &b, 3)] {
            peer.set_name(name.clone());
            peer.mark_up(Duration::from_millis(rtt));
        }
        let live = table.live();
        let seen: Vec<(String, SocketAddr)> = live
            .iter()
            .map(|p| (p.name().to_string(), p.addr()))
            .collect();
        assert_eq!(
            seen,
            [("a".into(), addrs[1]), ("b".into(), addrs[2])],
            "one handle per name, the faster address"
        );
        // A peer whose connection is down no longer counts; its twin still does.
        peers[1].mark_down("gone".into());
        let live: Vec<SocketAddr> = table.live().iter().map(PeerHandle::addr).collect();
        assert_eq!(live, [addrs[0], addrs[2]]);
    }
}

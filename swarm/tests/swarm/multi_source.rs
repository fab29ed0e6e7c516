//! One object fetched from several holders at once, over real QUIC: pieces from
//! different holders, bytes in order and intact, every hash pair the store needs, and
//! a holder that dies, lies or is shut down mid-fetch replaced by the others. With one
//! holder, one GET as before.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use fleetcache_store::Hash;
use fleetcache_swarm::{Fetch, FetchItem, FleetCa, PeerInfo, PeerState, Swarm};

use crate::fake::{FakeHolder, Misbehaviour};
use crate::support::*;

const MIB: usize = 1 << 20;

fn loopback() -> SocketAddr {
    (Ipv4Addr::LOCALHOST, 0).into()
}

/// Holders of `data` (each a node of its own) and a requester that lists them all
/// (plus `extra` peers), with every peer up.
async fn fleet(
    ca: &FleetCa,
    holders: usize,
    data: &[u8],
    extra: &[SocketAddr],
) -> (Vec<TestSwarm>, TestSwarm) {
    let holders: Vec<TestSwarm> = (0..holders)
        .map(|_| {
            let node = start(ca, loopback(), &[], 16);
            put(&node.store, data);
            node
        })
        .collect();
    let mut peers: Vec<SocketAddr> = holders.iter().map(|h| h.addr).collect();
    peers.extend_from_slice(extra);
    let names: Vec<String> = peers.iter().map(ToString::to_string).collect();
    let requester = start(ca, loopback(), &names, 16);
    for peer in peers {
        wait_state(&requester.swarm, peer, PeerState::Up).await;
    }
    (holders, requester)
}

fn info(swarm: &Swarm, addr: SocketAddr) -> PeerInfo {
    swarm
        .peers()
        .into_iter()
        .find(|p| p.addr == addr)
        .expect("a configured peer")
}

fn received(swarm: &Swarm, addr: SocketAddr) -> u64 {
    info(swarm, addr).bytes_received
}

/// Verified bytes the requester took from each holder, in order.
fn received_from_each(requester: &TestSwarm, holders: &[TestSwarm]) -> Vec<u64> {
    holders
        .iter()
        .map(|h| received(&requester.swarm, h.addr))
        .collect()
}

/// Runs a whole-object fetch into a verified ingest, as a fill does: the bytes in
/// order, the pairs where they go. The store commits only with every pair present
/// and the root matching, so a commit proves the pieces carried the whole tree.
async fn fill(requester: &TestSwarm, hash: Hash, mut fetch: Fetch, size: u64) -> Vec<u8> {
    let mut ingest = requester.store.ingest_verified(hash, size).unwrap();
    let mut bytes = Vec::new();
    while let Some(item) = fetch.next_item().await.unwrap() {
        match item {
            FetchItem::Bytes(data) => {
                ingest.write(&data).unwrap();
                bytes.extend_from_slice(&data);
            }
            FetchItem::Pair(parent) => ingest.save_pair(parent.node, &parent.pair).unwrap(),
        }
    }
    let outcome = ingest.finish().expect("every pair arrived");
    assert_eq!(outcome.hash, hash);
    bytes
}

/// Locates `data` from the requester and fills the whole object.
async fn fill_whole(requester: &TestSwarm, data: &[u8]) -> Vec<u8> {
    let hash = Hash::from(blake3::hash(data));
    let located = requester.swarm.locate(hash).await.unwrap().expect("held");
    assert_eq!(located.size(), data.len() as u64);
    fill(
        requester,
        hash,
        located.fetch(0..located.size()),
        located.size(),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_holders_each_send_part_of_one_object() {
    let ca = FleetCa::generate("fleet").unwrap();
    let data = pattern(24 * MIB + 4321);
    let (holders, requester) = fleet(&ca, 3, &data, &[]).await;
    let got = fill_whole(&requester, &data).await;
    assert!(got == data, "bytes differ");

    let from = received_from_each(&requester, &holders);
    assert_eq!(
        from.iter().sum::<u64>(),
        data.len() as u64,
        "a byte counted twice or not at all: {from:?}"
    );
    let contributed = from.iter().filter(|&&n| n > 0).count();
    assert!(contributed >= 2, "one holder sent everything: {from:?}");
    // The committed object reads back verified.
    let hash = Hash::from(blake3::hash(&data));
    let blob = requester.store.get(&hash).unwrap().expect("committed");
    assert_eq!(blob.size(), data.len() as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_range_in_the_middle_comes_from_several_holders() {
    let ca = FleetCa::generate("fleet").unwrap();
    let data = pattern(20 * MIB);
    let (holders, requester) = fleet(&ca, 3, &data, &[]).await;
    let hash = Hash::from(blake3::hash(&data));
    let located = requester.swarm.locate(hash).await.unwrap().expect("held");
    let range = 3 * MIB as u64 + 7..17 * MIB as u64 + 5;
    let mut fetch = located.fetch(range.clone());
    let mut got = Vec::new();
    while let Some(bytes) = fetch.next().await.unwrap() {
        got.extend_from_slice(&bytes);
    }
    assert!(got[..] == data[range.start as usize..range.end as usize]);
    let from = received_from_each(&requester, &holders);
    assert_eq!(
        from.iter().sum::<u64>(),
        range.end - range.start,
        "{from:?}"
    );
    assert!(from.iter().filter(|&&n| n > 0).count() >= 2, "{from:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_shut_down_mid_fetch_leaves_its_pieces_to_the_others() {
    let ca = FleetCa::generate("fleet").unwrap();
    let data = pattern(48 * MIB);
    let (holders, requester) = fleet(&ca, 3, &data, &[]).await;
    let hash = Hash::from(blake3::hash(&data));
    let located = requester.swarm.locate(hash).await.unwrap().expect("held");
    let mut fetch = located.fetch(0..located.size());
    let mut got = Vec::new();
    let mut victim = None;
    while let Some(bytes) = fetch.next().await.unwrap() {
        got.extend_from_slice(&bytes);
        // Kill the first holder seen sending, as soon as it has sent something.
        if victim.is_none()
            && let Some(first) = holders
                .iter()
                .position(|h| received(&requester.swarm, h.addr) > 0)
        {
            holders[first].swarm.shutdown();
            victim = Some(first);
        }
    }
    assert!(got == data, "bytes differ across the failover");
    let victim = victim.expect("somebody sent bytes");
    let from = received_from_each(&requester, &holders);
    assert_eq!(from.iter().sum::<u64>(), data.len() as u64, "{from:?}");
    assert!(from[victim] < data.len() as u64, "{from:?}");
    let others: u64 = (0..3).filter(|&i| i != victim).map(|i| from[i]).sum();
    assert!(others > 0, "nobody took over: {from:?}");
}

/// What one fill with a misbehaving third holder left behind.
struct Misbehaved {
    fake: PeerInfo,
    data_gets: u64,
}

/// Fills `data` from two honest holders and a fake one that misbehaves as `how`,
/// until the requester has read the fake's misbehaviour. Every attempt must end
/// intact, with every byte counted once and no honest holder blamed. An attempt can
/// pass without the fake's data ever being read (its only request lost a hedge race
/// and was cancelled before the bad bytes arrived); a fresh fleet tries again.
async fn fill_with_a_misbehaving_holder(
    how: Misbehaviour,
    data: &[u8],
    read: impl Fn(&PeerInfo) -> bool,
) -> Misbehaved {
    const ATTEMPTS: usize = 5;
    let ca = FleetCa::generate("fleet").unwrap();
    let mut last = None;
    for _ in 0..ATTEMPTS {
        let fake = FakeHolder::start(&identity(&ca, "fake-holder"), data.to_vec(), how);
        let (holders, requester) = fleet(&ca, 2, data, &[fake.addr]).await;
        let got = fill_whole(&requester, data).await;
        assert!(got == data, "bytes differ");
        let honest: Vec<PeerInfo> = holders
            .iter()
            .map(|h| info(&requester.swarm, h.addr))
            .collect();
        for holder in &honest {
            assert_eq!(holder.verification_failures, 0, "honest blamed: {holder:?}");
            assert_eq!(holder.failures, 0, "honest blamed: {holder:?}");
        }
        let fake_info = info(&requester.swarm, fake.addr);
        let sent: u64 = honest.iter().map(|h| h.bytes_received).sum();
        assert_eq!(
            sent + fake_info.bytes_received,
            data.len() as u64,
            "a byte counted twice or not at all"
        );
        let outcome = Misbehaved {
            data_gets: fake.data_gets.load(std::sync::atomic::Ordering::Relaxed),
            fake: fake_info,
        };
        if read(&outcome.fake) {
            return outcome;
        }
        last = Some(outcome.fake);
    }
    panic!("in {ATTEMPTS} fills the fake's misbehaviour was never read: {last:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_dying_in_the_middle_of_a_piece_is_resumed_by_the_others() {
    let data = pattern(16 * MIB + 99);
    let died =
        fill_with_a_misbehaving_holder(Misbehaviour::DieMidway, &data, |fake| fake.failures >= 1)
            .await;
    assert!(died.data_gets >= 1, "never asked");
    assert_eq!(died.fake.verification_failures, 0, "dying is not lying");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lying_holders_pieces_are_fetched_from_the_others() {
    let data = pattern(16 * MIB + 5);
    let lied = fill_with_a_misbehaving_holder(Misbehaviour::FlipBit, &data, |fake| {
        fake.verification_failures >= 1
    })
    .await;
    // Caught, never asked again in this fetch (a second GET may have gone out with a
    // hedged size proof, before anything was known).
    assert!(
        lied.data_gets <= 2,
        "asked again after lying: {}",
        lied.data_gets
    );
    // The verified bytes before the flipped bit were kept, and only those.
    assert!(
        lied.fake.bytes_received < data.len() as u64,
        "{:?}",
        lied.fake
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_holder_is_one_request_for_the_whole_object() {
    let ca = FleetCa::generate("fleet").unwrap();
    let data = pattern(12 * MIB + 1);
    let (holders, requester) = fleet(&ca, 1, &data, &[]).await;
    let got = fill_whole(&requester, &data).await;
    assert!(got == data);
    // The size proof and one GET of the whole object (the one sent with the proof).
    let holder = &holders[0].swarm;
    let deadline = Instant::now() + Duration::from_secs(10);
    while holder.stats().uploads < 2 {
        assert!(Instant::now() < deadline, "uploads: {:?}", holder.stats());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(holder.stats().uploads, 2, "{:?}", holder.stats());
    assert_eq!(
        received(&requester.swarm, holders[0].addr),
        data.len() as u64
    );
    assert_eq!(info(&requester.swarm, holders[0].addr).transfers, 2);
}

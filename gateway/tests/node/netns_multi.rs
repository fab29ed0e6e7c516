//! One cold object fetched from two holders at once across hosts: each holder in its
//! own network namespace with its egress capped at 100 Mbit/s by `tbf`, so a single
//! holder's link is the limit and only fetching from both at once beats it. The test
//! counts who sent what (per-peer byte counters) and never times anything; the rate is
//! printed for the record (the comparison with one holder is `benches/`'s
//! `multi-source`).
//!
//! Needs what `netns.rs` needs (root, `ip`, `nft`, `tc`; `FLEETCACHE_SKIP_NETNS=1`
//! skips).

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, StatusCode};

use crate::netns::{Member, Net, can_run, start_member};
use crate::support::*;

const SIZE: usize = 64 << 20;

/// Stores `data` on both holders; returns its hash.
async fn put_on(holders: [&Member; 2], data: &Bytes) -> String {
    let mut hashes = Vec::new();
    for holder in holders {
        let reply = holder.admin(Method::POST, "/blobs", data.clone()).await;
        assert_eq!(reply.status, StatusCode::CREATED);
        hashes.push(reply.json()["hash"].as_str().unwrap().to_owned());
    }
    assert_eq!(hashes[0], hashes[1]);
    hashes.remove(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cold_object_comes_from_both_capped_holders_at_once() {
    if !can_run() {
        return;
    }
    let pid = std::process::id();
    let net = Net::build("fm", (250 + pid % 5) as u8, 3);
    let mut fleet = Fleet::new();
    net.set_hosts(3, &[1, 2]);
    let one = start_member(&net, &mut fleet, 1, "");
    let two = start_member(&net, &mut fleet, 2, "");
    let requester = start_member(&net, &mut fleet, 3, "fleet.test:7070");
    let holders = [net.swarm_addr(1), net.swarm_addr(2)];
    eventually("both holders up", Duration::from_secs(30), async || {
        requester.peer_state(holders[0]).await.as_deref() == Some("up")
            && requester.peer_state(holders[1]).await.as_deref() == Some("up")
    })
    .await;
    for i in [1, 2] {
        net.cap(i, "100mbit", "64kb", "20ms");
    }

    // 1. Both holders alive: each carries a fair share of one cold fetch.
    let data = Bytes::from(pattern(SIZE, 41));
    let hash = put_on([&one, &two], &data).await;
    let before = requester.received_from(&holders).await;
    let started = Instant::now();
    let reply = request(
        &client(),
        Method::GET,
        &format!("{}/blake3/{hash}", requester.http),
        &[],
        Bytes::new(),
    )
    .await;
    let elapsed = started.elapsed();
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.body == data, "bytes differ");
    let after = requester.received_from(&holders).await;
    let from = [after[0] - before[0], after[1] - before[1]];
    eprintln!(
        "64 MiB from two holders capped at 100 Mbit/s: {:.1} MB/s ({} + {} bytes)",
        SIZE as f64 / elapsed.as_secs_f64() / 1e6,
        from[0],
        from[1]
    );
    assert_eq!(
        from[0] + from[1],
        SIZE as f64,
        "a byte counted twice: {from:?}"
    );
    for (i, sent) in from.iter().enumerate() {
        assert!(
            *sent >= 0.25 * SIZE as f64,
            "holder {} sent only {sent} of {SIZE} bytes: {from:?}",
            i + 1
        );
    }

    // The fill committed: the pieces brought every hash pair the store checks.
    eventually("the fill stored", Duration::from_secs(30), async || {
        let again = request(
            &client(),
            Method::HEAD,
            &format!("{}/blake3/{hash}", requester.http),
            &[],
            Bytes::new(),
        )
        .await;
        again.header("cache-status") == Some("fleetcache; hit")
    })
    .await;

    // 2. One holder killed midway: the other finishes, the object intact.
    let data = Bytes::from(pattern(SIZE, 42));
    let hash = put_on([&one, &two], &data).await;
    let before = requester.received_from(&holders).await;
    let url = format!("{}/blake3/{hash}", requester.http);
    let download =
        tokio::spawn(async move { request(&client(), Method::GET, &url, &[], Bytes::new()).await });
    eventually(
        "both holders sending",
        Duration::from_secs(60),
        async || {
            let now = requester.received_from(&holders).await;
            now[0] > before[0] && now[1] > before[1]
        },
    )
    .await;
    one.proc.kill9();
    let reply = download.await.unwrap();
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.body == data, "bytes differ across the failover");
    let after = requester.received_from(&holders).await;
    let from = [after[0] - before[0], after[1] - before[1]];
    assert_eq!(from[0] + from[1], SIZE as f64, "{from:?}");
    assert!(from[0] > 0.0, "the killed holder sent nothing: {from:?}");
    assert!(
        from[1] > 0.0 && from[1] < SIZE as f64,
        "the survivor should take over the rest, not restart: {from:?}"
    );
    let failures = requester
        .metric(&format!(
            "fleetcache_peer_failures_total{{peer=\"{}\"}}",
            holders[0]
        ))
        .await;
    let hedges = requester
        .metric(&format!(
            "fleetcache_peer_hedges_total{{peer=\"{}\"}}",
            holders[0]
        ))
        .await;
    assert!(
        failures + hedges >= 1.0,
        "the dead holder's piece was neither failed nor raced away"
    );
    drop(two);
}

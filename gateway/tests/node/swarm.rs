//! Fleets on loopback: real nodes with real certificates talking real QUIC. Misses fill
//! from peers with every group verified; liars, stalls, corrupt files, dead peers and
//! strangers are survived or refused.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use fleetcache_swarm::NodeName;
use http::{Method, StatusCode};
use http_body_util::{BodyExt, Full};

use crate::liar::{Liar, Lie};
use crate::support::*;

const STORED_FROM_PEER: &str = "fleetcache; fwd=miss; stored; detail=peer";

/// Test data whose hash `owner` owns among the node names `all` (the rendezvous order
/// puts it first), so the requester tries `owner` before anyone else.
fn data_owned_by(owner: &str, all: &[&str], len: usize) -> Vec<u8> {
    let names: Vec<NodeName> = all.iter().map(|n| n.parse().unwrap()).collect();
    (0..=255u8)
        .map(|seed| pattern(len, seed))
        .find(|data| {
            let hash = blake3::hash(data);
            let mut order = names.clone();
            fleetcache_swarm::rendezvous_rank(hash.as_bytes(), &mut order);
            order[0].as_str() == owner
        })
        .expect("some seed makes the owner rank first")
}

fn peer_label(metric: &str, peer: SocketAddr) -> String {
    format!("{metric}{{peer=\"{peer}\"}}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn misses_fill_from_the_peer_that_holds_the_object() {
    let mut fleet = Fleet::new();
    let a = TestNode::start_in_fleet(&mut fleet, &[]).await;
    let b = TestNode::start_in_fleet(&mut fleet, &[]).await;
    let c = TestNode::start_in_fleet(&mut fleet, &[a.swarm.unwrap(), b.swarm.unwrap()]).await;
    c.wait_peers_up(2).await;

    let whole = pattern(3 * 1024 * 1024 + 5, 1);
    let hash = a.put(whole.clone()).await;
    let reply = c.get(&format!("/blake3/{hash}")).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.header("content-length"), Some("3145733"));
    assert_eq!(reply.header("cache-status"), Some(STORED_FROM_PEER));
    assert!(reply.body == whole, "filled bytes differ");
    // Now local.
    eventually("fill committed", Duration::from_secs(5), async || {
        c.get(&format!("/blake3/{hash}"))
            .await
            .header("cache-status")
            == Some("fleetcache; hit")
    })
    .await;
    assert_eq!(c.stats().await["store"]["objects"], 1);

    // HEAD on a cold object proves the size before answering.
    let small = pattern(40_000, 2);
    let small_hash = b.put(small.clone()).await;
    let head = c
        .request(
            Method::HEAD,
            &c.url(&format!("/blake3/{small_hash}")),
            &[],
            Bytes::new(),
        )
        .await;
    assert_eq!(head.status, StatusCode::OK);
    assert_eq!(head.header("content-length"), Some("40000"));
    assert!(head.body.is_empty());

    // A conditional request on a cold object.
    let tiny = pattern(100, 3);
    let tiny_hash = a.put(tiny.clone()).await;
    let etag = format!("\"{tiny_hash}\"");
    let not_modified = c
        .get_with(&format!("/blake3/{tiny_hash}"), &[("if-none-match", &etag)])
        .await;
    assert_eq!(not_modified.status, StatusCode::NOT_MODIFIED);
    let tiny_reply = c.get(&format!("/blake3/{tiny_hash}")).await;
    assert!(tiny_reply.body == tiny);

    // The empty object.
    let empty_hash = b.put(Vec::new()).await;
    let empty = c.get(&format!("/blake3/{empty_hash}")).await;
    assert_eq!(empty.status, StatusCode::OK);
    assert!(empty.body.is_empty());

    // Nobody has it: 404 from the peers' answers, not from a timeout (which
    // would count as a peer failure).
    let missing = c
        .get(&format!("/blake3/{}", blake3_hex(b"nobody has this")))
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    let failures: f64 = c
        .metrics()
        .await
        .lines()
        .filter(|line| line.starts_with("fleetcache_peer_failures_total{"))
        .filter_map(|line| line.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum();
    assert_eq!(failures, 0.0, "the 404 waited for a peer to time out");
    // Asked again at once, the node remembers nobody had it instead of asking
    // every peer again: still 404, no second lookup.
    for _ in 0..5 {
        let again = c
            .get(&format!("/blake3/{}", blake3_hex(b"nobody has this")))
            .await;
        assert_eq!(again.status, StatusCode::NOT_FOUND);
    }

    // HEAD and 304 answer once the size is proven; their fills finish behind them.
    eventually("fills finish", Duration::from_secs(10), async || {
        c.metric("fleetcache_fills_active").await == 0.0
    })
    .await;
    let metrics = c.metrics().await;
    let fills = |result: &str| {
        metric_value(
            &metrics,
            &format!("fleetcache_fills_total{{result=\"{result}\",source=\"peer\"}}"),
        )
    };
    assert_eq!(fills("ok"), Some(4.0), "{metrics}");
    assert_eq!(fills("not_found"), Some(1.0), "{metrics}");
    let peer_bytes = metric_value(
        &metrics,
        "fleetcache_http_response_bytes_total{source=\"peer\"}",
    );
    assert!(peer_bytes.unwrap_or(0.0) >= whole.len() as f64, "{metrics}");
    assert!(
        metric_value(
            &metrics,
            &peer_label("fleetcache_peer_bytes_received_total", a.swarm.unwrap())
        )
        .unwrap()
            >= whole.len() as f64
    );
    assert_eq!(
        metric_value(
            &metrics,
            &peer_label("fleetcache_peer_up", b.swarm.unwrap())
        ),
        Some(1.0)
    );
    let peers = c.admin(Method::GET, "/peers").await.json();
    assert_eq!(peers["swarm"], true);
    assert_eq!(peers["peers"].as_array().unwrap().len(), 2);
    assert!(peers["peers"][0]["rtt_ms"].as_f64().is_some(), "{peers}");
    // A live peer has a latency estimate (seeded by its first ping) and a hedge delay.
    assert!(
        peers["peers"][0]["latency_ms"].as_f64().is_some(),
        "{peers}"
    );
    assert!(
        peers["peers"][0]["hedge_delay_ms"].as_f64() >= Some(30.0),
        "{peers}"
    );
    // Node names come from the certificates the fleet issued, in start order.
    assert_eq!(peers["name"], "node-3", "{peers}");
    let mut names: Vec<&str> = peers["peers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["node-1", "node-2"], "{peers}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cold_ranges_warm_the_cache_and_far_ones_are_fetched_directly() {
    let mut fleet = Fleet::new();
    let a = TestNode::start_in_fleet(&mut fleet, &[]).await;
    let c = TestNode::start_in_fleet(&mut fleet, &[a.swarm.unwrap()]).await;
    c.wait_peers_up(1).await;
    let data = pattern(24 * 1024 * 1024, 4);
    let hash = a.put(data.clone()).await;
    let path = format!("/blake3/{hash}");

    // Far beyond what the fill has: only the needed groups, straight from the
    // holder, while the whole object fills behind it.
    let far = c
        .get_with(&path, &[("range", "bytes=20000000-20000099")])
        .await;
    assert_eq!(far.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        far.header("content-range"),
        Some("bytes 20000000-20000099/25165824")
    );
    assert!(far.body[..] == data[20_000_000..20_000_100]);
    assert_eq!(
        far.header("cache-status"),
        Some("fleetcache; fwd=miss; detail=peer")
    );
    // Near the start: from the fill.
    let near = c.get_with(&path, &[("range", "bytes=1000-1099")]).await;
    assert_eq!(near.status, StatusCode::PARTIAL_CONTENT);
    assert!(near.body[..] == data[1000..1100]);
    // A suffix range needs the size first, then only the tail; an unsatisfiable
    // one is a 416 with the proven size.
    let tail = c.get_with(&path, &[("range", "bytes=-10")]).await;
    assert_eq!(tail.status, StatusCode::PARTIAL_CONTENT);
    assert!(tail.body[..] == data[data.len() - 10..]);
    let bad = c.get_with(&path, &[("range", "bytes=90000000-")]).await;
    assert_eq!(bad.status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(bad.header("content-range"), Some("bytes */25165824"));

    // The ranges warmed the cache: the object was filled once and is stored.
    c.settle().await;
    assert_eq!(c.stats().await["store"]["objects"], 1);
    assert_eq!(
        c.metric("fleetcache_fills_total{result=\"ok\",source=\"peer\"}")
            .await,
        1.0
    );
    let hit = c
        .get_with(&path, &[("range", "bytes=20000000-20000099")])
        .await;
    assert_eq!(hit.header("cache-status"), Some("fleetcache; hit"));
    assert!(hit.body[..] == data[20_000_000..20_000_100]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_misses_share_one_fill() {
    let mut fleet = Fleet::new();
    let a = TestNode::start_in_fleet(&mut fleet, &[]).await;
    let c = TestNode::start_in_fleet(&mut fleet, &[a.swarm.unwrap()]).await;
    c.wait_peers_up(1).await;
    let data = Bytes::from(pattern(8 * 1024 * 1024, 5));
    let hash = a.put(data.clone()).await;

    let url = c.url(&format!("/blake3/{hash}"));
    let mut requests = tokio::task::JoinSet::new();
    for _ in 0..200 {
        let client = client();
        let url = url.clone();
        requests.spawn(async move { request(&client, Method::GET, &url, &[], Bytes::new()).await });
    }
    let mut from_fill = 0;
    while let Some(reply) = requests.join_next().await {
        let reply = reply.unwrap();
        assert_eq!(reply.status, StatusCode::OK);
        assert!(reply.body == data, "a waiter got different bytes");
        if reply.header("cache-status") == Some(STORED_FROM_PEER) {
            from_fill += 1;
        }
    }
    let metrics = c.metrics().await;
    assert_eq!(
        metric_value(
            &metrics,
            "fleetcache_fills_total{result=\"ok\",source=\"peer\"}"
        ),
        Some(1.0),
        "one fill for every waiter"
    );
    let waiters = metric_value(&metrics, "fleetcache_fill_waiters_total").unwrap();
    assert_eq!(
        waiters as usize + 1,
        from_fill,
        "every request served by the fill but the first joined it"
    );
    assert!(from_fill > 1, "no request joined the running fill");
    // The holder answered one size proof and one data stream.
    assert_eq!(a.metric("fleetcache_swarm_uploads_total").await, 2.0);
}

/// One lie at a time: the requester detects it, counts it against the liar, and still
/// serves the right bytes from the honest holder. A liar that goes quiet (before the
/// size proof, or halfway through the data) is hedged around long before the peer
/// timeout: the honest holder is asked as well and wins, and the quiet one is
/// cancelled, not waited out (no failure is counted against it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lying_peers_are_caught_and_the_honest_one_serves() {
    for lie in [
        Lie::FlipBit,
        Lie::Truncate,
        Lie::WrongSize,
        Lie::Stall,
        Lie::Silent,
    ] {
        let mut fleet = Fleet::new();
        let honest = TestNode::start_in_fleet(&mut fleet, &[]).await;
        let liar_identity = fleet.identity();
        let liar = Liar::start(&liar_identity, lie);
        let honest_addr = honest.swarm.unwrap();
        // The liar must be asked first: pick data whose hash it owns.
        let (liar_name, honest_name) = (liar_identity.name().as_str(), name_at(honest.admin).await);
        let data = data_owned_by(liar_name, &[liar_name, &honest_name], 2 * 1024 * 1024 + 3);
        let hash = liar.hold(data.clone());
        honest.put(data.clone()).await;
        let requester = TestNode::start_in_fleet(&mut fleet, &[liar.addr, honest_addr]).await;
        requester.wait_peers_up(2).await;

        let reply = requester.get(&format!("/blake3/{hash}")).await;
        assert_eq!(reply.status, StatusCode::OK, "{lie:?}");
        assert!(reply.body[..] == data[..], "{lie:?}: wrong bytes served");
        let metrics = requester.metrics().await;
        let quiet = matches!(lie, Lie::Stall | Lie::Silent);
        let counter = if quiet {
            "fleetcache_peer_hedges_total"
        } else {
            "fleetcache_peer_verification_failures_total"
        };
        let caught = metric_value(&metrics, &peer_label(counter, liar.addr)).unwrap_or(0.0);
        assert!(caught >= 1.0, "{lie:?} not counted: {metrics}");
        if quiet {
            let waited_out = metric_value(
                &metrics,
                &peer_label("fleetcache_peer_failures_total", liar.addr),
            );
            assert_eq!(
                waited_out,
                Some(0.0),
                "{lie:?}: timed out instead of hedged"
            );
            let won = metric_value(&metrics, "fleetcache_swarm_hedges_won_total");
            assert!(
                won >= Some(1.0),
                "{lie:?}: the hedge did not win: {metrics}"
            );
        }
        assert!(
            liar.gets.load(std::sync::atomic::Ordering::Relaxed) >= 1,
            "{lie:?}: liar never asked"
        );
        let honest_failures = metric_value(
            &metrics,
            &peer_label("fleetcache_peer_verification_failures_total", honest_addr),
        );
        assert_eq!(honest_failures, Some(0.0), "{lie:?}: honest peer blamed");
        // The object is stored and verified on the requester (the client may
        // have read the last bytes before the fill committed them).
        let path = format!("/blake3/{hash}");
        eventually(
            "the filled object stored",
            Duration::from_secs(10),
            async || {
                let again = requester.get(&path).await;
                assert!(again.body[..] == data[..], "{lie:?}");
                again.header("cache-status") == Some("fleetcache; hit")
            },
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_every_holder_fails_the_client_gets_502_or_504() {
    for (lie, status) in [
        (Lie::WrongSize, StatusCode::BAD_GATEWAY),
        (Lie::HugeSize, StatusCode::BAD_GATEWAY),
        (Lie::Silent, StatusCode::GATEWAY_TIMEOUT),
    ] {
        let mut fleet = Fleet::new();
        let liar = Liar::start(&fleet.identity(), lie);
        let hash = liar.hold(pattern(100_000, 8));
        let requester = TestNode::start_in_fleet(&mut fleet, &[liar.addr]).await;
        requester.wait_peers_up(1).await;
        let reply = requester.get(&format!("/blake3/{hash}")).await;
        assert_eq!(reply.status, status, "{lie:?}");
        let text = String::from_utf8_lossy(&reply.body);
        assert!(text.contains("no peer could serve"), "{lie:?}: {text}");
        assert_eq!(requester.stats().await["store"]["objects"], 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_larger_than_the_store_is_507_and_its_ranges_still_serve() {
    let mut fleet = Fleet::new();
    let a = TestNode::start_in_fleet(&mut fleet, &[]).await;
    let small = TestNode::start_in_fleet_with(
        &mut fleet,
        &[a.swarm.unwrap()],
        &[("FLEETCACHE_STORE_CAPACITY", "1MiB")],
    )
    .await;
    small.wait_peers_up(1).await;
    let data = pattern(3 << 20, 12);
    let hash = a.put(data.clone()).await;
    let reply = small.get(&format!("/blake3/{hash}")).await;
    assert_eq!(reply.status, StatusCode::INSUFFICIENT_STORAGE);
    assert!(String::from_utf8_lossy(&reply.body).contains("exceeds the store capacity"));
    let range = small
        .get_with(
            &format!("/blake3/{hash}"),
            &[("range", "bytes=2000000-2000009")],
        )
        .await;
    assert_eq!(range.status, StatusCode::PARTIAL_CONTENT);
    assert!(range.body[..] == data[2_000_000..2_000_010]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_file_on_the_holder_is_never_stored_or_served() {
    let mut fleet = Fleet::new();
    let a = TestNode::start_in_fleet(&mut fleet, &[]).await;
    let c = TestNode::start_in_fleet(&mut fleet, &[a.swarm.unwrap()]).await;
    c.wait_peers_up(1).await;
    let data = pattern(1024 * 1024, 6);
    let hash = a.put(data.clone()).await;
    flip_byte(
        &a.data.path().join(format!("blobs/{hash}.data")),
        512 * 1024,
    );

    // The holder finds the damage while encoding and resets the stream; the response
    // has begun, so the client sees it cut short rather than wrong bytes.
    let response = c
        .client
        .request(
            http::Request::get(c.url(&format!("/blake3/{hash}")))
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await
        .unwrap();
    let body = response.into_body().collect().await;
    assert!(body.is_err(), "a body fed by a corrupt holder completed");

    // Nothing stored on the requester, and the holder quarantined its copy.
    eventually("holder quarantines", Duration::from_secs(5), async || {
        a.metric("fleetcache_store_corrupt_detected_total").await >= 1.0
    })
    .await;
    assert_eq!(c.stats().await["store"]["objects"], 0);
    let after = c.get(&format!("/blake3/{hash}")).await;
    assert_eq!(after.status, StatusCode::NOT_FOUND);
    // A reset for corruption is honest: not counted as a lie.
    let lies = c
        .metric(&peer_label(
            "fleetcache_peer_verification_failures_total",
            a.swarm.unwrap(),
        ))
        .await;
    assert_eq!(lies, 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_killed_mid_transfer_is_replaced() {
    let mut fleet = Fleet::new();
    let backup = TestNode::start_in_fleet(&mut fleet, &[]).await;
    let victim_data = tempfile::TempDir::new().unwrap();
    let env = fleet.env(&[]);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let victim = Proc::serve(victim_data.path(), &env);
    let victim_addr = victim.swarm.expect("victim has a swarm address");
    let backup_addr = backup.swarm.unwrap();

    let (victim_name, backup_name) = (name_at(victim.admin).await, name_at(backup.admin).await);
    let data = Bytes::from(data_owned_by(
        &victim_name,
        &[&victim_name, &backup_name],
        128 << 20,
    ));
    let hash = backup.put(data.clone()).await;
    let put = request(
        &client(),
        Method::POST,
        &format!("http://{}/blobs", victim.admin),
        &[],
        data.clone(),
    )
    .await;
    assert_eq!(put.status, StatusCode::CREATED);

    let requester = TestNode::start_in_fleet(&mut fleet, &[victim_addr, backup_addr]).await;
    requester.wait_peers_up(2).await;
    let url = requester.url(&format!("/blake3/{hash}"));
    let download =
        tokio::spawn(async move { request(&client(), Method::GET, &url, &[], Bytes::new()).await });
    // Freeze the victim as soon as bytes flow from it, then kill it.
    let from_victim = peer_label("fleetcache_peer_bytes_received_total", victim_addr);
    eventually(
        "bytes from the victim",
        Duration::from_secs(20),
        async || requester.metric(&from_victim).await > 0.0,
    )
    .await;
    let pid = victim.pid().to_string();
    std::process::Command::new("kill")
        .args(["-STOP", &pid])
        .status()
        .unwrap();
    victim.kill9();

    let reply = download.await.unwrap();
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.body == data, "download corrupted across the failover");
    let metrics = requester.metrics().await;
    let from_backup = metric_value(
        &metrics,
        &peer_label("fleetcache_peer_bytes_received_total", backup_addr),
    )
    .unwrap();
    assert!(
        from_backup > 0.0,
        "the backup never sent anything: {metrics}"
    );
    assert!(
        from_backup < data.len() as f64,
        "the fill restarted from zero"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strangers_cannot_fetch() {
    let mut fleet = Fleet::new();
    let a = TestNode::start_in_fleet(&mut fleet, &[]).await;
    let hash = a.put(pattern(50_000, 7)).await;
    let a_addr = a.swarm.unwrap();

    // A node whose certificate comes from another CA.
    let mut other = Fleet::new();
    let stranger = TestNode::start_in_fleet(&mut other, &[a_addr]).await;
    eventually("handshake refused", Duration::from_secs(10), async || {
        a.metric("fleetcache_swarm_handshake_refusals_total").await >= 1.0
    })
    .await;
    assert_eq!(
        stranger.get(&format!("/blake3/{hash}")).await.status,
        StatusCode::NOT_FOUND
    );
    let peers = stranger.admin(Method::GET, "/peers").await.json();
    assert_eq!(peers["peers"][0]["state"], "down", "{peers}");

    // A client with no certificate at all, trusting the fleet CA.
    let refusals = a.metric("fleetcache_swarm_handshake_refusals_total").await;
    let ca_pem = std::fs::read(fleet.dir.path().join("ca/ca.pem")).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile_certs(&ca_pem) {
        roots.add(cert).unwrap();
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![fleetcache_swarm::ALPN.to_vec()];
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls).unwrap();
    let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    endpoint.set_default_client_config(quinn::ClientConfig::new(std::sync::Arc::new(crypto)));
    let connected = async {
        let connection = endpoint
            .connect(a_addr, fleetcache_swarm::FLEET_SERVER_NAME)?
            .await?;
        // TLS 1.3 clients learn of a refused certificate only on their first read.
        let (mut send, mut recv) = connection.open_bi().await?;
        send.write_all(&fleetcache_swarm::Request::Ping.encode()?)
            .await?;
        send.finish()?;
        anyhow::Ok(recv.read_to_end(64).await?)
    };
    let result = tokio::time::timeout(Duration::from_secs(10), connected)
        .await
        .unwrap();
    assert!(
        result.is_err(),
        "a client without a certificate got an answer"
    );
    eventually("second refusal", Duration::from_secs(5), async || {
        a.metric("fleetcache_swarm_handshake_refusals_total").await > refusals
    })
    .await;
}

fn rustls_pemfile_certs(pem: &[u8]) -> Vec<rustls::pki_types::CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_hashes_are_404_right_after_a_peer_is_killed() {
    let mut fleet = Fleet::new();
    let survivor = TestNode::start_in_fleet(&mut fleet, &[]).await;
    let victim_data = tempfile::TempDir::new().unwrap();
    let env = fleet.env(&[]);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let victim = Proc::serve(victim_data.path(), &env);
    let victim_addr = victim.swarm.expect("victim has a swarm address");
    let data = pattern(100_000, 21);
    let hash = survivor.put(data.clone()).await;
    let requester =
        TestNode::start_in_fleet(&mut fleet, &[victim_addr, survivor.swarm.unwrap()]).await;
    requester.wait_peers_up(2).await;
    victim.kill9();
    // Before liveness notices: the dead peer cannot answer, the live one says
    // no, so the answer is 404, never 502.
    for i in 0..3u8 {
        let unknown = requester
            .get(&format!("/blake3/{}", blake3_hex(&[i; 9])))
            .await;
        assert_eq!(unknown.status, StatusCode::NOT_FOUND, "{unknown:?}");
    }
    let known = requester.get(&format!("/blake3/{hash}")).await;
    assert_eq!(known.status, StatusCode::OK);
    assert!(known.body[..] == data[..]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_restarted_mid_transfer_finishes_it() {
    let mut fleet = Fleet::new();
    // The only holder, on a port it gets back when restarted.
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let holder_data = tempfile::TempDir::new().unwrap();
    let mut env = fleet.env(&[]);
    env.push(("FLEETCACHE_SWARM_LISTEN".into(), listen.clone()));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let holder = Proc::serve(holder_data.path(), &env);
    let holder_addr = holder.swarm.expect("holder has a swarm address");
    let data = Bytes::from(pattern(128 << 20, 22));
    let put = request(
        &client(),
        Method::POST,
        &format!("http://{}/blobs", holder.admin),
        &[],
        data.clone(),
    )
    .await;
    assert_eq!(put.status, StatusCode::CREATED);
    let hash = blake3_hex(&data);

    let requester = TestNode::start_in_fleet(&mut fleet, &[holder_addr]).await;
    requester.wait_peers_up(1).await;
    let url = requester.url(&format!("/blake3/{hash}"));
    let download =
        tokio::spawn(async move { request(&client(), Method::GET, &url, &[], Bytes::new()).await });
    let from_holder = peer_label("fleetcache_peer_bytes_received_total", holder_addr);
    eventually(
        "bytes from the holder",
        Duration::from_secs(20),
        async || requester.metric(&from_holder).await > 0.0,
    )
    .await;
    // Crash it mid-transfer, then bring it back on the same address.
    let pid = holder.pid().to_string();
    std::process::Command::new("kill")
        .args(["-STOP", &pid])
        .status()
        .unwrap();
    holder.kill9();
    let restarted = Proc::serve(holder_data.path(), &env);
    assert_eq!(restarted.swarm, Some(holder_addr));

    let reply = download.await.unwrap();
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    assert!(reply.body == data, "download corrupted across the restart");
    requester.settle().await;
    let stored = requester.get(&format!("/blake3/{hash}")).await;
    assert_eq!(stored.header("cache-status"), Some("fleetcache; hit"));
}

/// One HAVE round, then one more round trip before the first byte: the holder
/// is asked for the data on the same round trip as the size proof, not after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_data_is_asked_for_with_the_size_proof() {
    let mut fleet = Fleet::new();
    let holder = Liar::start(&fleet.identity(), Lie::ProofAfterData);
    let data = pattern(1 << 20, 31);
    let hash = holder.hold(data.clone());
    let node = TestNode::start_in_fleet(&mut fleet, &[holder.addr]).await;
    node.wait_peers_up(1).await;
    let reply = node.get(&format!("/blake3/{hash}")).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.body == data);
    assert_eq!(
        holder.proofs_unpaired(),
        0,
        "the size proof came first, alone"
    );
    // The GET sent with the proof is the one that carried the data.
    assert_eq!(holder.gets.load(std::sync::atomic::Ordering::Relaxed), 2);
}

//! A fleet in front of an origin: each URL has an owner node (rendezvous over
//! node names), the others ask it instead of the origin, so the fleet fetches a
//! URL once; an owner that lies, stalls or dies never makes a client receive
//! wrong bytes, and never makes a request wait longer than the origin would.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};

use crate::liar::{Liar, Lie};
use crate::origin_server::{Scripted, TestOrigin};
use crate::support::*;

/// Every client of the fleet names the same site, as real clients of a CDN do.
const HOST: &str = "cdn.test";

/// A path whose URL `owner` owns among the node names `all`.
fn path_owned_by(owner: &str, all: &[&str], prefix: &str) -> String {
    paths_where(prefix, |path| rank(path, all)[0] == owner)
}

fn rank(path: &str, names: &[&str]) -> Vec<String> {
    url_owners(path, HOST, names)
}

fn paths_where(prefix: &str, wanted: impl Fn(&str) -> bool) -> String {
    (0..100_000)
        .map(|i| format!("{prefix}{i}"))
        .find(|path| wanted(path))
        .expect("some path has the wanted owners")
}

async fn member(fleet: &mut Fleet, origin: &str, peers: &[std::net::SocketAddr]) -> TestNode {
    TestNode::start_in_fleet_with(fleet, peers, &[("FLEETCACHE_ORIGIN", origin)]).await
}

async fn get(node: &TestNode, path: &str) -> Reply {
    node.get_with(path, &[("host", HOST)]).await
}

fn cache_status(reply: &Reply) -> &str {
    reply.header("cache-status").unwrap_or_default()
}

/// A GET read frame by frame: counts the client in `first` when its first
/// body bytes arrive; an aborted body is an error.
async fn streaming_get(
    client: HttpClient,
    url: String,
    first: Arc<AtomicUsize>,
) -> Result<(StatusCode, String, Vec<u8>), String> {
    let request = Request::get(url)
        .header("host", HOST)
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = client.request(request).await.map_err(|e| e.to_string())?;
    let status = response.status();
    let cache_status = response
        .headers()
        .get("cache-status")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let mut body = response.into_body();
    let mut out = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| format!("body aborted after {} bytes: {e}", out.len()))?;
        if let Ok(data) = frame.into_data() {
            if out.is_empty() && !data.is_empty() {
                first.fetch_add(1, Ordering::SeqCst);
            }
            out.extend_from_slice(&data);
        }
    }
    Ok((status, cache_status, out))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_clients_over_three_nodes_cost_one_origin_fetch() {
    let origin = TestOrigin::start().await;
    let body = Bytes::from(pattern(4 << 20, 5));
    let gate = origin.route_gated("/stampede", body.clone(), 1 << 20);
    let url = origin.url();
    let mut fleet = Fleet::new();
    let a = member(&mut fleet, &url, &[]).await;
    let b = member(&mut fleet, &url, &[a.swarm.unwrap()]).await;
    let c = member(&mut fleet, &url, &[a.swarm.unwrap(), b.swarm.unwrap()]).await;
    for node in [&a, &b, &c] {
        node.wait_peers_up(2).await;
    }

    let first_bytes = Arc::new(AtomicUsize::new(0));
    let http = client();
    let mut clients = tokio::task::JoinSet::new();
    for i in 0..500 {
        let node = [&a, &b, &c][i % 3];
        clients.spawn(streaming_get(
            http.clone(),
            node.url("/stampede"),
            first_bytes.clone(),
        ));
    }
    // The origin has sent a quarter of the body and holds the rest back: every
    // client, on every node, already has bytes.
    eventually(
        "every client has its first bytes before the origin sent half",
        Duration::from_secs(60),
        async || first_bytes.load(Ordering::SeqCst) == 500,
    )
    .await;
    assert_eq!(origin.hits("/stampede"), 1);
    gate.notify_one();

    let (mut from_owner, mut from_origin) = (0, 0);
    let all = tokio::time::timeout(Duration::from_secs(120), clients.join_all())
        .await
        .expect("every client finished");
    for result in all {
        let (status, cache_status, bytes) = result.expect("complete response");
        assert_eq!(status, StatusCode::OK);
        assert!(bytes == body, "a client got wrong bytes");
        from_owner += usize::from(cache_status.contains("detail=owner"));
        from_origin += usize::from(cache_status.contains("detail=origin"));
    }
    assert_eq!(
        origin.hits("/stampede"),
        1,
        "one origin fetch for the fleet"
    );
    // The owner's clients saw the origin; the two other nodes' saw the owner.
    assert!(
        from_owner >= 300,
        "{from_owner} answers came from the owner"
    );
    assert!(
        from_origin >= 150,
        "{from_origin} answers came from the origin"
    );

    // Every node stored it: the next request anywhere is a hit.
    for node in [&a, &b, &c] {
        node.settle().await;
        let again = get(node, "/stampede").await;
        assert!(
            cache_status(&again).starts_with("fleetcache; hit"),
            "{again:?}"
        );
    }
    assert_eq!(origin.hits("/stampede"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_from_a_peer_is_never_forwarded_again() {
    let origin = TestOrigin::start().await;
    let url = origin.url();
    let mut fleet = Fleet::new();
    // A knows B, B knows C: A sees {A, B}, B sees {A, B, C}, C sees {B, C}.
    let c = member(&mut fleet, &url, &[]).await;
    let b = member(&mut fleet, &url, &[c.swarm.unwrap()]).await;
    let a = member(&mut fleet, &url, &[b.swarm.unwrap()]).await;
    a.wait_peers_up(1).await;
    b.wait_peers_up(2).await;
    c.wait_peers_up(1).await;
    let (na, nb, nc) = (
        name_at(a.admin).await,
        name_at(b.admin).await,
        name_at(c.admin).await,
    );
    // A thinks B owns the URL; B thinks C does.
    let path = paths_where("/chain/", |path| {
        rank(path, &[&na, &nb])[0] == nb && rank(path, &[&na, &nb, &nc])[0] == nc
    });
    origin.route(&path, |_| {
        Scripted::ok("chained").header("cache-control", "max-age=300")
    });

    let reply = get(&a, &path).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(&reply.body[..], b"chained");
    assert!(cache_status(&reply).contains("detail=owner"), "{reply:?}");
    assert_eq!(origin.hits(&path), 1);
    let from_owner = r#"fleetcache_http_requests_total{cache="miss",protocol="http/1.1",route="url",source="owner",status="200"}"#;
    assert_eq!(a.metric(from_owner).await, 1.0);
    // B answered A from its own origin fetch and asked no one; C heard nothing.
    let filled = "fleetcache_owner_answers_total{result=\"filled\"}";
    assert_eq!(b.metric(filled).await, 1.0);
    assert_eq!(
        b.metric("fleetcache_owner_requests_total{result=\"ok\"}")
            .await,
        0.0
    );
    assert!(
        !c.metrics()
            .await
            .contains("fleetcache_owner_answers_total{")
    );

    // B kept what it fetched for A.
    b.settle().await;
    assert!(cache_status(&get(&b, &path).await).starts_with("fleetcache; hit"));
    assert_eq!(origin.hits(&path), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lying_owner_aborts_the_response_and_nothing_is_stored() {
    let origin = TestOrigin::start().await;
    let url = origin.url();
    for lie in [Lie::UrlWrongHash, Lie::UrlWrongSize, Lie::UrlCut] {
        let mut fleet = Fleet::new();
        let identity = fleet.identity();
        let liar_name = identity.name().to_string();
        let liar = Liar::start(&identity, lie);
        liar.hold(pattern(300_000, 9));
        let node = member(&mut fleet, &url, &[liar.addr]).await;
        node.wait_peers_up(1).await;
        let own = name_at(node.admin).await;
        let path = path_owned_by(&liar_name, &[&own, &liar_name], "/lie/");
        origin.route(&path, |_| {
            Scripted::ok(pattern(300_000, 10)).header("cache-control", "max-age=300")
        });

        // Aborted mid-body, or a 502 if the lie was caught before the head
        // went out; never a complete 200.
        match streaming_get(client(), node.url(&path), Arc::default()).await {
            Err(_) => {}
            Ok((status, _, _)) => assert_eq!(status, StatusCode::BAD_GATEWAY, "{lie:?}"),
        }
        node.settle().await;
        assert_eq!(node.stats().await["store"]["url_entries"], 0, "{lie:?}");
        assert_eq!(node.stats().await["store"]["objects"], 0, "{lie:?}");
        let lies = node
            .metric(&format!(
                "fleetcache_peer_verification_failures_total{{peer=\"{}\"}}",
                liar.addr
            ))
            .await;
        assert_eq!(lies, 1.0, "{lie:?}");
        assert_eq!(
            node.metric("fleetcache_owner_requests_total{result=\"aborted\"}")
                .await,
            1.0
        );
        assert_eq!(origin.hits(&path), 0, "{lie:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_owner_costs_no_more_than_the_first_byte_timeout() {
    let origin = TestOrigin::start().await;
    let mut fleet = Fleet::new();
    let identity = fleet.identity();
    let liar_name = identity.name().to_string();
    let liar = Liar::start(&identity, Lie::UrlSilent);
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        file.path(),
        format!(
            "[[origin]]\nurl = \"{}\"\nfirst_byte_timeout = \"1s\"\n",
            origin.url()
        ),
    )
    .unwrap();
    let env = fleet.env(&[liar.addr]);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let node = TestNode::start_with_file(file.path(), &env).await;
    node.wait_peers_up(1).await;
    let own = name_at(node.admin).await;
    let path = path_owned_by(&liar_name, &[&own, &liar_name], "/silent/");
    origin.route(&path, |_| {
        Scripted::ok("from the origin").header("cache-control", "max-age=300")
    });

    let reply = get(&node, &path).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(&reply.body[..], b"from the origin");
    assert!(cache_status(&reply).contains("detail=origin"), "{reply:?}");
    assert_eq!(
        node.metric("fleetcache_owner_requests_total{result=\"timeout\"}")
            .await,
        1.0
    );
    assert_eq!(origin.hits(&path), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_killed_mid_stream_never_yields_wrong_bytes() {
    let origin = TestOrigin::start().await;
    let body = Bytes::from(pattern(4 << 20, 11));
    let url = origin.url();
    let mut fleet = Fleet::new();
    let owner_data = tempfile::TempDir::new().unwrap();
    let env = fleet.env(&[]);
    let mut env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    env.push(("FLEETCACHE_ORIGIN", &url));
    let owner = Proc::serve(owner_data.path(), &env);
    let node = member(&mut fleet, &url, &[owner.swarm.unwrap()]).await;
    node.wait_peers_up(1).await;
    let (owner_name, own) = (name_at(owner.admin).await, name_at(node.admin).await);
    let path = path_owned_by(&owner_name, &[&owner_name, &own], "/killed/");
    // The first fetch (the owner's) sends a quarter, then waits.
    let gate = origin.route_gated(&path, body.clone(), 1 << 20);

    let first = Arc::new(AtomicUsize::new(0));
    let download = tokio::spawn(streaming_get(client(), node.url(&path), first.clone()));
    eventually(
        "the client has bytes from the owner",
        Duration::from_secs(20),
        async || first.load(Ordering::SeqCst) == 1,
    )
    .await;
    owner.kill9();
    gate.notify_one();
    match download.await.unwrap() {
        Err(_) => {}
        Ok((status, _, bytes)) => {
            assert_eq!(status, StatusCode::OK);
            assert!(bytes == body, "a client got wrong bytes");
        }
    }
    node.settle().await;
    assert_eq!(node.stats().await["store"]["url_entries"], 0);

    // The next request goes to the origin and succeeds.
    let reply = get(&node, &path).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.body == body, "wrong bytes after the owner died");
    assert!(cache_status(&reply).contains("detail=origin"), "{reply:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_url_not_for_sharing_costs_one_origin_request_per_request_once_known() {
    let origin = TestOrigin::start().await;
    let url = origin.url();
    let mut fleet = Fleet::new();
    let owner = member(&mut fleet, &url, &[]).await;
    let asker = member(&mut fleet, &url, &[owner.swarm.unwrap()]).await;
    asker.wait_peers_up(1).await;
    owner.wait_peers_up(1).await;
    let (owner_name, asker_name) = (name_at(owner.admin).await, name_at(asker.admin).await);
    let path = path_owned_by(&owner_name, &[&owner_name, &asker_name], "/private/");
    origin.route(&path, |seen| {
        Scripted::ok(format!("for you {}", seen.n)).header("cache-control", "private")
    });

    // The first time, the owner tries and declines, then the asker asks itself.
    let first = get(&asker, &path).await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(origin.hits(&path), 2);
    // From then on the asker knows: one origin request per client request.
    for n in 0..3 {
        let reply = get(&asker, &path).await;
        assert_eq!(reply.body, format!("for you {}", n + 2));
        assert!(cache_status(&reply).contains("detail=private"), "{reply:?}");
    }
    assert_eq!(origin.hits(&path), 5);
    let declined = "fleetcache_owner_requests_total{result=\"declined\"}";
    assert_eq!(asker.metric(declined).await, 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overloaded_owner_sends_the_asker_to_the_origin() {
    let origin = TestOrigin::start().await;
    let url = origin.url();
    let mut fleet = Fleet::new();
    let owner = TestNode::start_in_fleet_with(
        &mut fleet,
        &[],
        &[
            ("FLEETCACHE_ORIGIN", url.as_str()),
            ("FLEETCACHE_SWARM_MAX_UPLOADS", "1"),
        ],
    )
    .await;
    let asker = member(&mut fleet, &url, &[owner.swarm.unwrap()]).await;
    asker.wait_peers_up(1).await;
    let (owner_name, asker_name) = (name_at(owner.admin).await, name_at(asker.admin).await);
    let names = [owner_name.as_str(), asker_name.as_str()];
    let busy = path_owned_by(&owner_name, &names, "/busy/");
    let other = path_owned_by(&owner_name, &names, "/other/");
    let body = Bytes::from(pattern(1 << 20, 41));
    let gate = origin.route_gated(&busy, body.clone(), 1000);
    origin.route(&other, |_| {
        Scripted::ok("other").header("cache-control", "max-age=300")
    });

    // The owner's one upload slot streams the gated answer to the asker...
    let first = Arc::new(AtomicUsize::new(0));
    let download = tokio::spawn(streaming_get(client(), asker.url(&busy), first.clone()));
    eventually(
        "bytes from the owner",
        Duration::from_secs(10),
        async || first.load(Ordering::SeqCst) == 1,
    )
    .await;
    // ...so the next URL it owns is refused, and the asker goes to the origin.
    let reply = get(&asker, &other).await;
    assert_eq!(&reply.body[..], b"other");
    assert!(cache_status(&reply).contains("detail=origin"), "{reply:?}");
    assert_eq!(
        asker
            .metric("fleetcache_owner_requests_total{result=\"overloaded\"}")
            .await,
        1.0
    );
    assert_eq!(origin.hits(&other), 1);
    gate.notify_one();
    let (status, _, bytes) = download.await.unwrap().expect("complete");
    assert_eq!(status, StatusCode::OK);
    assert!(bytes == body);
}

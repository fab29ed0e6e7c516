//! Requests that meet a running origin fill: purges that race it, requests that
//! join it early or late, and answers that are not for sharing.

use std::time::Duration;

use bytes::Bytes;
use http::{Method, StatusCode};

use crate::origin::{cache_status, node_for};
use crate::origin_server::{Scripted, TestOrigin};
use crate::support::{eventually, pattern, request};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purge_during_a_fill_wins_over_the_fill() {
    let origin = TestOrigin::start().await;
    let body = Bytes::from(pattern(1 << 20, 21));
    let gate = origin.route_gated("/long", body.clone(), 1000);
    let node = node_for(&origin, &[]).await;
    // The response head goes out once the fill has its entry attached to the
    // ingest: from then on the body is still coming.
    let request = http::Request::get(node.url("/long"))
        .body(http_body_util::Full::new(Bytes::new()))
        .unwrap();
    let response = node.client.request(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    // The purge arrives while the body is still coming.
    let reply = node
        .request(
            Method::POST,
            &node.admin_url("/purge"),
            &[("content-type", "application/json")],
            Bytes::from_static(b"{\"urls\": [\"/long\"]}"),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    gate.notify_one();
    let first = http_body_util::BodyExt::collect(response.into_body())
        .await
        .unwrap()
        .to_bytes();
    assert!(first == body, "the running download is served whole");
    node.settle().await;
    // The entry the fill was writing was withdrawn: the next request misses.
    let next = node.get("/long").await;
    assert!(next.body == body);
    assert!(!cache_status(&next).contains("hit"), "{next:?}");
    assert_eq!(origin.hits("/long"), 2);
}

/// A request that arrives while the origin's answer is still streaming in reads
/// that answer like a stored one: it shares it while fresh, and asks the origin
/// itself when the answer was stale on arrival.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_joining_a_fill_late_takes_the_answer_only_while_fresh() {
    let origin = TestOrigin::start().await;
    let body = Bytes::from(pattern(1 << 20, 22));
    let gates = [("/aged", "150"), ("/young", "30")].map(|(path, age)| {
        origin.route_gated_with(
            path,
            body.clone(),
            1000,
            &[("cache-control", "max-age=100"), ("age", age)],
        )
    });
    let node = node_for(&origin, &[]).await;
    let started = |path: &str| {
        let request = http::Request::get(node.url(path))
            .body(http_body_util::Full::new(Bytes::new()))
            .unwrap();
        node.client.request(request)
    };

    // Stale on arrival: the late request goes to the origin while the first
    // answer is still held at the gate.
    let first = started("/aged").await.unwrap();
    let late = node.get("/aged").await;
    assert!(late.body == body);
    assert_eq!(origin.hits("/aged"), 2);
    gates[0].notify_one();
    let first = http_body_util::BodyExt::collect(first.into_body()).await;
    assert!(first.unwrap().to_bytes() == body);

    // Fresh: the late request waits for the running answer and shares it.
    let first = started("/young").await.unwrap();
    let waiters = node.metric("fleetcache_fill_waiters_total").await;
    let late = tokio::spawn({
        let (client, url) = (node.client.clone(), node.url("/young"));
        async move { request(&client, Method::GET, &url, &[], Bytes::new()).await }
    });
    eventually(
        "the late request joins",
        Duration::from_secs(10),
        async || node.metric("fleetcache_fill_waiters_total").await > waiters,
    )
    .await;
    gates[1].notify_one();
    let first = http_body_util::BodyExt::collect(first.into_body()).await;
    assert!(first.unwrap().to_bytes() == body);
    assert!(late.await.unwrap().body == body);
    assert_eq!(origin.hits("/young"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_url_not_for_sharing_is_remembered_until_an_answer_is() {
    let origin = TestOrigin::start().await;
    let cacheable = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = cacheable.clone();
    origin.route("/flip", move |seen| {
        let control = if flag.load(std::sync::atomic::Ordering::SeqCst) {
            "max-age=300"
        } else {
            "private"
        };
        Scripted::ok(format!("answer {}", seen.n))
            .header("cache-control", control)
            .delay(Duration::from_millis(200))
    });
    let node = node_for(&origin, &[]).await;
    let first = node.get("/flip").await;
    assert_eq!(&first.body[..], b"answer 0");
    assert!(cache_status(&first).contains("detail=private"), "{first:?}");

    // Remembered: concurrent misses go to the origin each on its own, none
    // waits behind another's fill.
    let waiters = node.metric("fleetcache_fill_waiters_total").await;
    let (a, b, c) = tokio::join!(node.get("/flip"), node.get("/flip"), node.get("/flip"));
    let mut bodies = vec![a.body, b.body, c.body];
    bodies.sort();
    assert_eq!(bodies, ["answer 1", "answer 2", "answer 3"]);
    assert_eq!(node.metric("fleetcache_fill_waiters_total").await, waiters);
    assert_eq!(origin.hits("/flip"), 4);

    // A storable answer is stored as usual and ends the memory.
    cacheable.store(true, std::sync::atomic::Ordering::SeqCst);
    let stored = node.get("/flip").await;
    assert!(cache_status(&stored).contains("stored"), "{stored:?}");
    node.settle().await;
    let hit = node.get("/flip").await;
    assert!(cache_status(&hit).starts_with("fleetcache; hit"), "{hit:?}");
    assert_eq!(origin.hits("/flip"), 5);
}

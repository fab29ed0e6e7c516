//! Origin mode when things go wrong or get busy: origins that die, lie or
//! stall; hostile requests; ranges and HEAD on cold URLs; many clients at
//! once; limits; restarts.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, StatusCode};
use http_body_util::BodyExt;
use tokio::sync::Notify;

use crate::origin::node_for;
use crate::origin_server::{RawOrigin, ScriptBody, Scripted, TestOrigin};
use crate::support::{TestNode, eventually, pattern, raw_exchange};

fn cache_status(reply: &crate::support::Reply) -> String {
    reply.header("cache-status").unwrap_or_default().to_owned()
}

/// GETs `path` and returns the status and the body read to its end, or the
/// error that cut it off.
async fn get_body(node: &TestNode, path: &str) -> (StatusCode, Result<Bytes, String>) {
    let request = http::Request::get(node.url(path))
        .body(http_body_util::Full::new(Bytes::new()))
        .unwrap();
    let response = node.client.request(request).await.expect("response head");
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .map_err(|e| format!("{e:?}"));
    (status, body)
}

#[tokio::test]
async fn an_origin_dying_mid_body_aborts_the_response_and_stores_nothing() {
    let origin = TestOrigin::start().await;
    let body = pattern(300_000, 6);
    let gate = Arc::new(Notify::new());
    let (full, held) = (body.clone(), gate.clone());
    origin.route("/dies", move |seen| {
        if seen.n == 0 {
            // Promise the whole length, send a third, wait, then die.
            return Scripted::ok(Bytes::new())
                .header("cache-control", "max-age=300")
                .header("content-length", &full.len().to_string())
                .body(ScriptBody::DieAfter {
                    first: Bytes::copy_from_slice(&full[..100_000]),
                    gate: held.clone(),
                });
        }
        Scripted::ok(full.clone()).header("cache-control", "max-age=300")
    });
    let held = gate.clone();
    origin.route("/dies-chunked", move |seen| {
        if seen.n == 0 {
            return Scripted::ok(Bytes::new())
                .header("cache-control", "max-age=300")
                .body(ScriptBody::DieAfter {
                    first: Bytes::from(pattern(100_000, 7)),
                    gate: held.clone(),
                });
        }
        Scripted::ok(pattern(200_000, 7)).header("cache-control", "max-age=300")
    });
    let node = node_for(&origin, &[]).await;
    for path in ["/dies", "/dies-chunked"] {
        let request = http::Request::get(node.url(path))
            .body(http_body_util::Full::new(Bytes::new()))
            .unwrap();
        let response = node.client.request(request).await.expect("response head");
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let mut body = response.into_body();
        let first = body
            .frame()
            .await
            .expect("a first frame")
            .expect("first bytes");
        assert!(!first.into_data().unwrap_or_default().is_empty());
        gate.notify_one();
        let rest = body.collect().await;
        assert!(rest.is_err(), "{path}: a cut body must not end cleanly");
        // Nothing was stored: the next request goes to the origin and gets it all.
        let (status, again) = get_body(&node, path).await;
        assert_eq!(status, StatusCode::OK);
        assert!(again.is_ok(), "{path}");
        assert_eq!(origin.hits(path), 2, "{path}");
    }
    assert_eq!(node.stats().await["store"]["url_entries"], 2);

    // A death before the client has seen anything is a 502 or a cut body,
    // never a clean answer.
    origin.route("/dies-at-once", |_| {
        Scripted::ok(Bytes::new())
            .header("cache-control", "max-age=300")
            .header("content-length", "100000")
            .body(ScriptBody::Die(Bytes::from_static(b"just this")))
    });
    let (status, body) = get_body(&node, "/dies-at-once").await;
    assert!(
        status == StatusCode::BAD_GATEWAY || body.is_err(),
        "{status} with a clean body"
    );
}

#[tokio::test]
async fn a_body_shorter_than_its_content_length_is_an_error_not_an_entry() {
    let short = RawOrigin::start(
        "HTTP/1.1 200 OK\r\ncontent-length: 100\r\ncache-control: max-age=300\r\n\r\nonly fifty bytes of the hundred that were promised.",
        None,
        false,
    )
    .await;
    let node = TestNode::start_with(&[("FLEETCACHE_ORIGIN", &short.url())]).await;
    let (status, body) = get_body(&node, "/short").await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.is_err(), "a short body must be cut off, not completed");
    assert_eq!(node.stats().await["store"]["url_entries"], 0);
    let (_, again) = get_body(&node, "/short").await;
    assert!(again.is_err());
    assert_eq!(short.connections(), 2, "nothing was served from the store");
}

#[tokio::test]
async fn broken_origins_get_clean_502s_and_504s() {
    let garbage = RawOrigin::start("this is not HTTP at all\r\n\r\n", None, false).await;
    let huge_head = {
        let mut reply = b"HTTP/1.1 200 OK\r\n".to_vec();
        for i in 0..4000 {
            reply.extend_from_slice(format!("x-filler-{i}: {}\r\n", "a".repeat(40)).as_bytes());
        }
        reply.extend_from_slice(b"content-length: 2\r\n\r\nok");
        RawOrigin::start(reply, None, false).await
    };
    let bad_length = RawOrigin::start(
        "HTTP/1.1 200 OK\r\ncontent-length: nope\r\n\r\nok",
        None,
        false,
    )
    .await;
    let bad_status = RawOrigin::start(
        "HTTP/1.1 999 Whatever\r\ncontent-length: 2\r\ncache-control: max-age=60\r\n\r\nok",
        None,
        false,
    )
    .await;
    let slowloris = RawOrigin::start(
        "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok",
        Some(Duration::from_millis(400)),
        true,
    )
    .await;
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        format!("http://{addr}")
    };
    let cases = [
        (garbage.url(), StatusCode::BAD_GATEWAY, "protocol"),
        (huge_head.url(), StatusCode::BAD_GATEWAY, "protocol"),
        (bad_length.url(), StatusCode::BAD_GATEWAY, "protocol"),
        (bad_status.url(), StatusCode::BAD_GATEWAY, "protocol"),
        (slowloris.url(), StatusCode::GATEWAY_TIMEOUT, "timeout"),
        (closed, StatusCode::BAD_GATEWAY, "connect"),
    ];
    for (url, status, detail) in cases {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(
            file.path(),
            format!("[[origin]]\nurl = \"{url}\"\nfirst_byte_timeout = \"1s\"\n"),
        )
        .unwrap();
        let node = TestNode::start_with_file(file.path(), &[]).await;
        let reply = node.get("/x").await;
        assert_eq!(reply.status, status, "{url}: {reply:?}");
        assert!(
            cache_status(&reply).contains(detail),
            "{url}: {}",
            cache_status(&reply)
        );
        assert_eq!(node.stats().await["store"]["url_entries"], 0);
        let text = node.metrics().await;
        assert!(
            text.contains("fleetcache_origin_requests_total{class=\"error\""),
            "{url}: origin errors are counted"
        );
    }
}

#[tokio::test]
async fn three_hundred_concurrent_misses_make_one_origin_fetch_and_stream_early() {
    let origin = TestOrigin::start().await;
    let first = Bytes::from(pattern(64 * 1024, 8));
    let rest = Bytes::from(pattern(1 << 20, 9));
    let gate = Arc::new(Notify::new());
    let (first_c, rest_c, gate_c) = (first.clone(), rest.clone(), gate.clone());
    origin.route("/popular", move |_| {
        Scripted::ok(Bytes::new())
            .header("cache-control", "max-age=300")
            .header(
                "content-length",
                &(first_c.len() + rest_c.len()).to_string(),
            )
            .body(ScriptBody::Gated {
                first: first_c.clone(),
                gate: gate_c.clone(),
                rest: rest_c.clone(),
            })
    });
    let node = node_for(&origin, &[]).await;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<()>(300);
    let mut clients = Vec::new();
    for _ in 0..300 {
        let client = node.client.clone();
        let url = node.url("/popular");
        let tx = tx.clone();
        clients.push(tokio::spawn(async move {
            let request = http::Request::get(url)
                .body(http_body_util::Full::new(Bytes::new()))
                .unwrap();
            let response = client.request(request).await.expect("head");
            assert_eq!(response.status(), StatusCode::OK);
            let mut body = response.into_body();
            let mut received = Vec::new();
            let mut told = false;
            while let Some(frame) = body.frame().await {
                let data = frame.expect("body frame").into_data().unwrap_or_default();
                received.extend_from_slice(&data);
                if !told && !received.is_empty() {
                    told = true;
                    tx.send(()).await.unwrap();
                }
            }
            received
        }));
    }
    drop(tx);
    // Every client gets bytes while the origin is still holding back the rest.
    for _ in 0..300 {
        tokio::time::timeout(Duration::from_secs(30), rx.recv())
            .await
            .expect("every client gets its first bytes before the origin finishes")
            .expect("a client ended without bytes");
    }
    gate.notify_one();
    let mut expected = first.to_vec();
    expected.extend_from_slice(&rest);
    for client in clients {
        assert!(client.await.unwrap() == expected);
    }
    assert_eq!(origin.hits("/popular"), 1);
    assert!(node.metric("fleetcache_fill_waiters_total").await >= 299.0);
}

#[tokio::test]
async fn ranges_on_cold_and_stored_urls() {
    let origin = TestOrigin::start().await;
    let body = pattern(2 << 20, 10);
    let served = body.clone();
    origin.route("/big", move |_| {
        Scripted::ok(served.clone()).header("cache-control", "max-age=300")
    });
    let node = node_for(&origin, &[]).await;
    let cold = node.get_with("/big", &[("range", "bytes=1000-1999")]).await;
    assert_eq!(cold.status, StatusCode::PARTIAL_CONTENT);
    assert!(cold.body[..] == body[1000..2000]);
    assert_eq!(
        cold.header("content-range"),
        Some(format!("bytes 1000-1999/{}", body.len()).as_str())
    );
    eventually(
        "the whole object stored",
        Duration::from_secs(10),
        async || node.stats().await["store"]["url_entries"] == 1,
    )
    .await;
    let stored = node.get_with("/big", &[("range", "bytes=-10")]).await;
    assert_eq!(stored.status, StatusCode::PARTIAL_CONTENT);
    assert!(stored.body[..] == body[body.len() - 10..]);
    assert!(cache_status(&stored).contains("hit"));
    let unsatisfiable = node.get_with("/big", &[("range", "bytes=99999999-")]).await;
    assert_eq!(unsatisfiable.status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(
        origin.hits("/big"),
        1,
        "the range miss filled the object once"
    );
    // The origin never saw a Range: the cache fills whole objects.
    assert!(origin.last("/big").unwrap().header("range").is_none());
}

#[tokio::test]
async fn head_misses_never_download_a_body_and_head_hits_come_from_the_store() {
    let origin = TestOrigin::start().await;
    origin.route("/h", |seen| {
        let reply = Scripted::ok(pattern(500_000, 11)).header("cache-control", "max-age=300");
        if seen.method == Method::HEAD {
            return reply.header("x-method", "head");
        }
        reply
    });
    let node = node_for(&origin, &[]).await;
    let head = node
        .request(Method::HEAD, &node.url("/h"), &[], Bytes::new())
        .await;
    assert_eq!(head.status, StatusCode::OK);
    assert!(head.body.is_empty());
    assert_eq!(origin.last("/h").unwrap().method, Method::HEAD);
    node.get("/h").await;
    node.settle().await;
    let hit = node
        .request(Method::HEAD, &node.url("/h"), &[], Bytes::new())
        .await;
    assert!(cache_status(&hit).contains("hit"), "{hit:?}");
    assert_eq!(hit.header("content-length"), Some("500000"));
    let methods: Vec<Method> = origin.seen().into_iter().map(|s| s.method).collect();
    assert_eq!(methods, [Method::HEAD, Method::GET]);
}

#[tokio::test]
async fn ambiguous_requests_are_refused_and_never_forwarded() {
    let origin = TestOrigin::start().await;
    origin.route("/x", |_| {
        Scripted::ok("x").header("cache-control", "max-age=300")
    });
    let node = node_for(&origin, &[]).await;
    let cases: [&[u8]; 6] = [
        b"POST /x HTTP/1.1\r\nHost: a.example\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\nzz\r\n\r\n",
        b"POST /x HTTP/1.1\r\nHost: a.example\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"GET /x HTTP/1.1\r\nHost: a.example\r\n\r\nPOST /x HTTP/1.1\r\nHost: a.example\r\nTransfer-Encoding: chunked\r\nContent-Length: 9\r\n\r\n0\r\n\r\n",
        b"GET /x HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\n\r\n",
        b"GET /x HTTP/1.1\r\n\r\n",
        b"GET /x HTTP/1.1\r\nHost: bad host\r\n\r\n",
    ];
    let addr = node.public;
    for request in cases {
        let reply = tokio::task::spawn_blocking(move || {
            raw_exchange(addr, request, Duration::from_secs(5))
        })
        .await
        .unwrap();
        let text = String::from_utf8_lossy(&reply);
        // The last answer on the connection is the 400 that closes it.
        let last = text.rsplit("HTTP/1.1 ").next().unwrap_or_default();
        assert!(last.starts_with("400"), "{text}");
        assert!(
            last.to_ascii_lowercase().contains("connection: close"),
            "{text}"
        );
    }
    // Only the clean GET before the smuggling attempt reached the origin; the
    // broken chunked upload was cut off there, never delivered whole.
    let seen = origin.seen();
    assert_eq!(seen.iter().filter(|s| s.method == Method::GET).count(), 1);
    assert!(seen.iter().all(|s| s.method == Method::GET || !s.complete));
}

#[tokio::test]
async fn absolute_form_targets_never_make_the_node_connect_elsewhere() {
    let origin = TestOrigin::start().await;
    origin.route("/x", |_| Scripted::ok("from the origin"));
    let elsewhere = RawOrigin::start(
        "HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nevil!",
        None,
        false,
    )
    .await;
    let node = node_for(&origin, &[]).await;
    let request = format!(
        "GET http://{}/x HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        elsewhere.addr, elsewhere.addr
    );
    let addr = node.public;
    let reply = tokio::task::spawn_blocking(move || {
        raw_exchange(addr, request.as_bytes(), Duration::from_secs(5))
    })
    .await
    .unwrap();
    let text = String::from_utf8_lossy(&reply);
    assert!(text.contains("from the origin"), "{text}");
    assert_eq!(elsewhere.connections(), 0);
    assert_eq!(origin.hits("/x"), 1);
}

#[tokio::test]
async fn requests_wait_for_a_fetch_slot_then_get_503() {
    let origin = TestOrigin::start().await;
    let gate = Arc::new(Notify::new());
    let held = gate.clone();
    origin.route("/slow", move |_| {
        Scripted::ok(Bytes::new()).body(ScriptBody::Gated {
            first: Bytes::from_static(b"a"),
            gate: held.clone(),
            rest: Bytes::from_static(b"b"),
        })
    });
    origin.route("/other", |_| Scripted::ok("other"));
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        file.path(),
        format!(
            "[[origin]]\nurl = \"{}\"\nmax_fetches = 1\nqueue_timeout = \"200ms\"\n",
            origin.url()
        ),
    )
    .unwrap();
    let node = TestNode::start_with_file(file.path(), &[]).await;
    let slow_node = node.url("/slow");
    let client = node.client.clone();
    let slow = tokio::spawn(async move {
        crate::support::request(&client, Method::GET, &slow_node, &[], Bytes::new()).await
    });
    eventually(
        "the slow fetch holds the slot",
        Duration::from_secs(5),
        async || origin.hits("/slow") == 1,
    )
    .await;
    let busy = node.get("/other").await;
    assert_eq!(busy.status, StatusCode::SERVICE_UNAVAILABLE, "{busy:?}");
    assert_eq!(origin.hits("/other"), 0);
    gate.notify_one();
    assert_eq!(&slow.await.unwrap().body[..], b"ab");
    assert_eq!(&node.get("/other").await.body[..], b"other");
}

#[tokio::test]
async fn answers_over_max_object_size_stream_through_unstored() {
    let origin = TestOrigin::start().await;
    let big = Bytes::from(pattern(300_000, 12));
    let (sized, chunked) = (big.clone(), big.clone());
    origin.route("/sized", move |_| {
        Scripted::ok(sized.clone()).header("cache-control", "max-age=300")
    });
    origin.route("/chunked", move |_| {
        Scripted::ok(Bytes::new())
            .header("cache-control", "max-age=300")
            .body(ScriptBody::Chunks(vec![
                chunked.slice(..150_000),
                chunked.slice(150_000..),
            ]))
    });
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        file.path(),
        format!(
            "[[origin]]\nurl = \"{}\"\nmax_object_size = \"100KiB\"\n",
            origin.url()
        ),
    )
    .unwrap();
    let node = TestNode::start_with_file(file.path(), &[]).await;
    for path in ["/sized", "/chunked"] {
        for _ in 0..2 {
            let reply = node.get(path).await;
            assert!(reply.body == big, "{path}");
        }
        assert_eq!(origin.hits(path), 2, "{path} was not stored");
    }
    assert_eq!(node.stats().await["store"]["url_entries"], 0);
}

#[tokio::test]
async fn url_entries_survive_a_restart_and_eviction_takes_them_with_their_bodies() {
    let origin = TestOrigin::start().await;
    for i in 0..12 {
        origin.route(&format!("/e/{i}"), move |_| {
            Scripted::ok(pattern(100_000, i as u8)).header("cache-control", "max-age=3600")
        });
    }
    let url = origin.url();
    let env = [
        ("FLEETCACHE_ORIGIN", url.as_str()),
        ("FLEETCACHE_STORE_CAPACITY", "1MiB"),
    ];
    // The cache key holds the host: name it, since the node's port changes.
    let host = [("host", "cache.example")];
    let node = TestNode::start_with(&env).await;
    node.get_with("/e/0", &host).await;
    node.settle().await;
    let data = node.stop().await;
    let node = TestNode::start_in(data, &env).await;
    let after = node.get_with("/e/0", &host).await;
    assert!(cache_status(&after).contains("hit"), "{after:?}");
    for i in 1..12 {
        node.get_with(&format!("/e/{i}"), &host).await;
    }
    let stats = node.stats().await;
    let objects = stats["store"]["objects"].as_u64().unwrap();
    assert!(objects < 12, "{stats}");
    assert_eq!(stats["store"]["url_entries"].as_u64().unwrap(), objects);
    // The evicted ones go back to the origin; none is served without its body.
    assert_eq!(node.get_with("/e/0", &host).await.body, pattern(100_000, 0));
    assert_eq!(origin.hits("/e/0"), 2);
}

#[tokio::test]
async fn https_origins_are_trusted_through_ca_file_and_refused_otherwise() {
    let origin = crate::origin_server::TlsOrigin::start("over tls").await;
    let dir = tempfile::TempDir::new().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &origin.ca_pem).unwrap();
    let trusting = dir.path().join("trusting.toml");
    std::fs::write(
        &trusting,
        format!(
            "[[origin]]\nurl = \"{}\"\nca_file = \"{}\"\n",
            origin.url(),
            ca.display()
        ),
    )
    .unwrap();
    let node = TestNode::start_with_file(&trusting, &[]).await;
    assert_eq!(&node.get("/t").await.body[..], b"over tls");
    node.settle().await;
    assert!(cache_status(&node.get("/t").await).contains("hit"));

    // Without the CA the certificate is refused: a clean 502, nothing stored.
    let stranger = TestNode::start_with(&[("FLEETCACHE_ORIGIN", &origin.url())]).await;
    let refused = stranger.get("/t").await;
    assert_eq!(refused.status, StatusCode::BAD_GATEWAY, "{refused:?}");
    assert_eq!(stranger.stats().await["store"]["url_entries"], 0);
    assert!(origin.connections() >= 2);

    // An unreadable CA file stops the node at start with the key named.
    let missing = dir.path().join("missing.toml");
    std::fs::write(
        &missing,
        format!(
            "[[origin]]\nurl = \"{}\"\nca_file = \"{}\"\n",
            origin.url(),
            dir.path().join("nope.pem").display()
        ),
    )
    .unwrap();
    let data = tempfile::TempDir::new().unwrap();
    let config = crate::support::config_with(data.path(), Some(&missing), &[]).unwrap();
    let err = fleetcache_gateway::Node::start(&config)
        .await
        .expect_err("an unreadable ca_file is a config error");
    assert!(err.is_config());
    assert!(err.to_string().contains("origin[0].ca_file"), "{err}");
}

/// A blocking GET with a fixed Host: (status, head, body).
fn blocking_get(addr: std::net::SocketAddr, path: &str) -> (u16, String, Vec<u8>) {
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: cache.example\r\nConnection: close\r\n\r\n");
    let reply = raw_exchange(addr, request.as_bytes(), Duration::from_secs(30));
    let split = reply
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(reply.len(), |i| i + 4);
    let head = String::from_utf8_lossy(&reply[..split]).to_ascii_lowercase();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let mut body = reply[split..].to_vec();
    if head.contains("transfer-encoding: chunked") {
        body = dechunk(&body);
    }
    (status, head, body)
}

fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(end) = raw.windows(2).position(|w| w == b"\r\n") {
        let size =
            usize::from_str_radix(std::str::from_utf8(&raw[..end]).unwrap_or("0"), 16).unwrap_or(0);
        if size == 0 || raw.len() < end + 2 + size {
            break;
        }
        out.extend_from_slice(&raw[end + 2..end + 2 + size]);
        raw = &raw[end + 4 + size..];
    }
    out
}

#[test]
fn url_entries_survive_kill_9_and_a_fill_cut_by_it_leaves_nothing() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let origin = runtime.block_on(TestOrigin::start());
    let small = pattern(50_000, 13);
    let big = Bytes::from(pattern(8 << 20, 14));
    let (small_c, big_c) = (small.clone(), big.clone());
    origin.route("/small", move |_| {
        Scripted::ok(small_c.clone()).header("cache-control", "max-age=3600")
    });
    origin.route("/big", move |_| {
        Scripted::ok(Bytes::new())
            .header("cache-control", "max-age=3600")
            .header("content-length", &big_c.len().to_string())
            .body(ScriptBody::Paced {
                bytes: big_c.clone(),
                per_second: 4 << 20,
            })
    });
    let data = tempfile::TempDir::new().unwrap();
    let url = origin.url();
    let env = [("FLEETCACHE_ORIGIN", url.as_str())];
    let node = crate::support::Proc::serve(data.path(), &env);
    let (status, _, body) = blocking_get(node.public, "/small");
    assert_eq!((status, body == small), (200, true));
    // The fill commits a moment after the client has the last byte.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_, head, _) = blocking_get(node.public, "/small");
        if head.contains("cache-status: fleetcache; hit") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never stored: {head}");
        std::thread::sleep(Duration::from_millis(20));
    }
    let public = node.public;
    let cut = std::thread::spawn(move || blocking_get(public, "/big"));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while origin.hits("/big") == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the big fill never started"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(300));
    node.kill9();
    let (_, _, partial) = cut.join().unwrap();
    assert!(partial.len() < big.len(), "the client saw a cut body");

    let fsck = std::process::Command::new(crate::support::bin())
        .args(["fsck", "--dry-run", "--data-dir"])
        .arg(data.path())
        .output()
        .unwrap();
    assert!(
        fsck.status.success(),
        "{}",
        String::from_utf8_lossy(&fsck.stdout)
    );
    let node = crate::support::Proc::serve(data.path(), &env);
    let (_, head, body) = blocking_get(node.public, "/small");
    assert!(head.contains("cache-status: fleetcache; hit"), "{head}");
    assert!(body == small);
    let (status, head, body) = blocking_get(node.public, "/big");
    assert_eq!(status, 200);
    assert!(
        !head.contains("; hit"),
        "a cut fill was served as stored: {head}"
    );
    assert!(body == big[..]);
    assert_eq!(origin.hits("/big"), 2);
    drop(runtime);
}

#[tokio::test]
async fn concurrent_misses_for_different_variants_each_get_their_own() {
    let origin = TestOrigin::start().await;
    origin.route("/negotiated", |seen| {
        let encoding = seen
            .header("accept-encoding")
            .unwrap_or("identity")
            .to_owned();
        Scripted::ok(format!("encoded as {encoding}"))
            .header("vary", "accept-encoding")
            .header("cache-control", "max-age=300")
            .delay(Duration::from_millis(300))
    });
    let node = node_for(&origin, &[]).await;
    let mut clients = Vec::new();
    for i in 0..20 {
        let encoding = if i % 2 == 0 { "gzip" } else { "br" };
        let client = node.client.clone();
        let url = node.url("/negotiated");
        clients.push(tokio::spawn(async move {
            let reply = crate::support::request(
                &client,
                Method::GET,
                &url,
                &[("accept-encoding", encoding)],
                Bytes::new(),
            )
            .await;
            (encoding, reply)
        }));
    }
    for client in clients {
        let (encoding, reply) = client.await.unwrap();
        assert_eq!(reply.body, format!("encoded as {encoding}"), "{reply:?}");
    }
    // One fetch per variant, or a few more if a waiter had to find its own
    // variant after the first answer said what varies; never one per client.
    let hits = origin.hits("/negotiated");
    assert!(
        (2..=4).contains(&hits),
        "{hits} origin fetches for 20 clients"
    );
    node.settle().await;
    for encoding in ["gzip", "br"] {
        let reply = node
            .get_with("/negotiated", &[("accept-encoding", encoding)])
            .await;
        assert!(cache_status(&reply).contains("hit"), "{reply:?}");
    }
}

/// A blocking GET that hashes the body as it streams: (status, length, BLAKE3).
fn streamed_get(addr: std::net::SocketAddr, path: &str) -> (u16, u64, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: cache.example\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    let status = String::from_utf8_lossy(&head)
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut total = 0u64;
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                hasher.update(&buf[..n]);
                total += n as u64;
            }
        }
    }
    (status, total, hasher.finalize().to_hex().to_string())
}

#[test]
fn large_objects_stream_through_origin_mode_with_flat_memory() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let origin = runtime.block_on(TestOrigin::start());
    let big = Bytes::from(pattern(512 << 20, 15));
    let expected = blake3::hash(&big).to_hex().to_string();
    let served = big.clone();
    origin.route("/huge", move |_| {
        Scripted::ok(served.clone()).header("cache-control", "max-age=3600")
    });
    let posted = big.clone();
    origin.route("/upload", move |seen| {
        let ok = seen.complete && seen.body == posted;
        Scripted::status(if ok { 204 } else { 400 }, "")
    });
    let data = tempfile::TempDir::new().unwrap();
    let url = origin.url();
    let node = crate::support::Proc::serve(
        data.path(),
        &[
            ("FLEETCACHE_ORIGIN", url.as_str()),
            ("FLEETCACHE_STORE_CAPACITY", "2GiB"),
        ],
    );
    // Four clients at once on the cold object (one fill), then one from the store.
    let public = node.public;
    let clients: Vec<_> = (0..4)
        .map(|_| std::thread::spawn(move || streamed_get(public, "/huge")))
        .collect();
    for client in clients {
        assert_eq!(
            client.join().unwrap(),
            (200, big.len() as u64, expected.clone())
        );
    }
    assert_eq!(
        streamed_get(public, "/huge"),
        (200, big.len() as u64, expected.clone())
    );
    assert_eq!(origin.hits("/huge"), 1);
    // A 512 MiB upload passed through to the origin, streamed.
    let upload = {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(public).unwrap();
        write!(
            stream,
            "POST /upload HTTP/1.1\r\nHost: cache.example\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            big.len()
        )
        .unwrap();
        for chunk in big.chunks(1 << 20) {
            stream.write_all(chunk).unwrap();
        }
        let mut reply = String::new();
        let _ = stream.read_to_string(&mut reply);
        reply
    };
    assert!(upload.starts_with("HTTP/1.1 204"), "{upload}");
    let peak = node.peak_rss();
    eprintln!(
        "peak RSS after 2.5 GiB out and 512 MiB through: {} MiB",
        peak >> 20
    );
    assert!(
        peak < 160 << 20,
        "peak RSS {} MiB: memory is not flat",
        peak >> 20
    );
    drop(runtime);
}

#[tokio::test]
async fn bytes_after_the_declared_length_never_reach_a_client() {
    // An origin that sends more than its Content-Length, the rest shaped like a
    // second response (the response-splitting shape).
    let long = RawOrigin::start(
        "HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncache-control: max-age=60\r\n\r\nhello\
         HTTP/1.1 200 OK\r\ncontent-length: 4\r\ncache-control: max-age=60\r\n\r\nevil",
        None,
        // Keep the connection open, so reusing it would answer with "evil".
        true,
    )
    .await;
    let node = TestNode::start_with(&[("FLEETCACHE_ORIGIN", &long.url())]).await;
    let first = node.get("/one").await;
    assert_eq!(
        &first.body[..],
        b"hello",
        "the declared length is the message"
    );
    // The next request is never answered with the leftover bytes.
    let second = node.get("/two").await;
    assert_eq!(&second.body[..], b"hello", "{second:?}");
    assert_eq!(
        long.connections(),
        2,
        "the connection with leftovers is not reused"
    );
}

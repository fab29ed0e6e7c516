//! HTTP/3 at the edge: the public routes over QUIC on the HTTPS port (UDP),
//! through a real h3 client; its limits, address validation, separation from
//! the swarm, graceful shutdown, and the Alt-Svc advertisement on HTTPS.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::FutureExt;
use http::{Method, StatusCode};
use http_body_util::{BodyExt, Empty};

use crate::h3_client::{self, H3Client, quic_config, quic_connect, read_at_least, read_to_end};
use crate::origin_server::{ScriptBody, Scripted, TestOrigin};
use crate::support::{Fleet, TestNode, blake3_hex, eventually, metric_value, pattern};
use crate::tls_support::{TestCa, h2_client, h2_get, tls_connect};

/// A node with a certificate for `localhost` from `ca`, and extra settings.
async fn h3_node(ca: &mut TestCa, extra: &[(&str, &str)]) -> TestNode {
    let (cert, key) = cert_env(ca);
    let mut env = vec![
        ("FLEETCACHE_HTTP_TLS_CERT_FILE", cert.as_str()),
        ("FLEETCACHE_HTTP_TLS_KEY_FILE", key.as_str()),
    ];
    env.extend_from_slice(extra);
    TestNode::start_with(&env).await
}

fn cert_env(ca: &mut TestCa) -> (String, String) {
    let issued = ca.issue(&[h3_client::NAME]);
    (
        issued.cert.display().to_string(),
        issued.key.display().to_string(),
    )
}

async fn connect(ca: &TestCa, node: &TestNode) -> H3Client {
    let addr = node.https.expect("https listener");
    H3Client::connect(ca, addr)
        .await
        .unwrap_or_else(|err| panic!("h3 connect: {err:#}"))
}

const H3_ACTIVE: &str = r#"fleetcache_http_connections_active{listener="http3"}"#;

/// Hash route over HTTP/3: the same bytes, statuses and fields as over
/// plaintext HTTP/1.1, counted under protocol "h3".
#[tokio::test(flavor = "multi_thread")]
async fn h3_serves_objects_like_http1_1() {
    let mut ca = TestCa::new();
    let node = h3_node(&mut ca, &[]).await;
    let data = pattern(300_000, 3);
    let hash = node.put(data.clone()).await;
    let path = format!("/blake3/{hash}");
    let client = connect(&ca, &node).await;

    let whole = client.get(&path, &[]).await;
    let plain = node.get(&path).await;
    assert_eq!(whole.status, StatusCode::OK);
    assert_eq!(whole.body, data);
    for field in ["cache-status", "etag", "content-length", "content-type"] {
        assert_eq!(whole.header(field), plain.header(field), "{field}");
    }
    assert_eq!(whole.header("cache-status"), Some("fleetcache; hit"));
    assert_eq!(whole.header("connection"), None);

    let range = client.get(&path, &[("range", "bytes=1000-1999")]).await;
    assert_eq!(range.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(range.body, &data[1000..2000]);
    assert_eq!(
        range.header("content-range"),
        Some("bytes 1000-1999/300000")
    );

    let multi = client
        .get(&path, &[("range", "bytes=0-9,200000-200009")])
        .await;
    assert_eq!(multi.status, StatusCode::PARTIAL_CONTENT);
    let content_type = multi.header("content-type").unwrap_or_default();
    assert!(
        content_type.starts_with("multipart/byteranges"),
        "{content_type}"
    );
    let plain_multi = node
        .get_with(&path, &[("range", "bytes=0-9,200000-200009")])
        .await;
    assert_eq!(
        multi.body.len(),
        plain_multi.body.len(),
        "same multipart framing as HTTP/1.1"
    );
    let body = &multi.body[..];
    for part in [&data[0..10], &data[200_000..200_010]] {
        assert!(body.windows(10).any(|w| w == part), "a part is missing");
    }

    let etag = whole.header("etag").expect("etag").to_owned();
    let not_modified = client.get(&path, &[("if-none-match", &etag)]).await;
    assert_eq!(not_modified.status, StatusCode::NOT_MODIFIED);
    assert!(not_modified.body.is_empty());

    let head = client
        .request(Method::HEAD, &path, &[], Bytes::new())
        .await
        .expect("HEAD");
    assert_eq!(head.status, StatusCode::OK);
    assert_eq!(head.header("content-length"), Some("300000"));
    assert!(head.body.is_empty());

    let missing = client
        .get(&format!("/blake3/{}", "ab".repeat(32)), &[])
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(
        missing.header("cache-status"),
        node.get(&format!("/blake3/{}", "ab".repeat(32)))
            .await
            .header("cache-status")
    );
    let bad = client.get("/blake3/nothex", &[]).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    // A 400 carries `Connection: close` on HTTP/1.1; HTTP/3 forbids the field.
    assert_eq!(bad.header("connection"), None);

    let metrics = node.metrics().await;
    let sample = r#"fleetcache_http_requests_total{cache="hit",protocol="h3",route="blob",source="local",status="200"}"#;
    assert_eq!(
        metric_value(&metrics, sample),
        Some(2.0),
        "GET and HEAD: {metrics}"
    );
    let partial = r#"fleetcache_http_requests_total{cache="hit",protocol="h3",route="blob",source="local",status="206"}"#;
    assert_eq!(metric_value(&metrics, partial), Some(2.0));
    assert_eq!(metric_value(&metrics, H3_ACTIVE), Some(1.0));
    assert_eq!(
        metric_value(&metrics, "fleetcache_http3_retries_total"),
        Some(0.0),
        "no Retry below the unvalidated-handshake threshold"
    );
}

/// Origin mode over HTTP/3: a miss goes to the origin, the repeat is a hit,
/// the origin is asked once; a request body is streamed through to it.
#[tokio::test(flavor = "multi_thread")]
async fn h3_fills_from_the_origin_once_and_passes_bodies_through() {
    let origin = TestOrigin::start().await;
    let body = pattern(200_000, 4);
    let served = body.clone();
    origin.route("/a/b?c=d", move |_| {
        Scripted::ok(served.clone())
            .header("cache-control", "max-age=300")
            .header("content-type", "image/png")
    });
    origin.route("/upload", |seen| {
        Scripted::ok(format!("got {}", seen.body.len()))
    });
    let url = origin.url();
    let mut ca = TestCa::new();
    let node = h3_node(&mut ca, &[("FLEETCACHE_ORIGIN", &url)]).await;
    let client = connect(&ca, &node).await;

    let first = client.get("/a/b?c=d", &[]).await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(first.body, body);
    let status = first.header("cache-status").unwrap_or_default().to_owned();
    assert!(status.contains("fwd=uri-miss"), "{first:?}");
    node.settle().await;
    let second = client.get("/a/b?c=d", &[]).await;
    assert_eq!(second.body, body);
    assert!(
        second
            .header("cache-status")
            .unwrap_or_default()
            .starts_with("fleetcache; hit"),
        "{second:?}"
    );
    assert_eq!(second.header("content-type"), Some("image/png"));
    assert_eq!(origin.hits("/a/b?c=d"), 1);

    let upload = Bytes::from(pattern(300_000, 5));
    let length = upload.len().to_string();
    let reply = client
        .request(
            Method::POST,
            "/upload",
            &[("content-length", &length)],
            upload.clone(),
        )
        .await
        .expect("POST");
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body, format!("got {}", upload.len()));
    let seen = origin.last("/upload").expect("the origin saw the upload");
    assert!(seen.complete);
    assert_eq!(blake3_hex(&seen.body), blake3_hex(&upload));

    // A body that disagrees with its Content-Length never reaches the origin
    // whole.
    let lying = client
        .request(
            Method::POST,
            "/upload",
            &[("content-length", "10")],
            Bytes::from_static(b"more than ten bytes"),
        )
        .await;
    if let Ok(reply) = &lying {
        assert_ne!(reply.status, StatusCode::OK, "{reply:?}");
    }
    let whole = origin
        .seen()
        .into_iter()
        .filter(|seen| seen.target == "/upload" && seen.n > 0 && seen.complete)
        .count();
    assert_eq!(whole, 0, "the origin received a lying body whole");
}

/// A body that fails mid-way (the origin dies) resets the HTTP/3 stream: the
/// client sees an error, never a clean short body.
#[tokio::test(flavor = "multi_thread")]
async fn h3_cut_bodies_reset_the_stream() {
    let origin = TestOrigin::start().await;
    let gate = Arc::new(tokio::sync::Notify::new());
    let held = gate.clone();
    origin.route("/dies", move |_| {
        Scripted::ok(Bytes::new())
            .header("cache-control", "max-age=300")
            .header("content-length", "100000")
            .body(ScriptBody::DieAfter {
                first: Bytes::from(vec![1u8; 20_000]),
                gate: held.clone(),
            })
    });
    let url = origin.url();
    let mut ca = TestCa::new();
    let node = h3_node(&mut ca, &[("FLEETCACHE_ORIGIN", &url)]).await;
    let client = connect(&ca, &node).await;
    let (response, mut stream) = client
        .open(Method::GET, "/dies", &[], Bytes::new())
        .await
        .expect("response head");
    assert_eq!(response.status(), StatusCode::OK);
    let first = read_at_least(&mut stream, 20_000)
        .await
        .expect("first bytes");
    assert_eq!(first.len(), 20_000);
    gate.notify_one();
    let rest = read_to_end(&mut stream).await;
    assert!(rest.is_err(), "a cut body must not end cleanly: {rest:?}");
    // The connection survives a reset stream.
    let again = client.get("/blake3/nothex", &[]).await;
    assert_eq!(again.status, StatusCode::BAD_REQUEST);
}

/// Request heads are bounded like on TCP: more fields than
/// http.max_headers get a 431, and a head that does not arrive within
/// http.header_read_timeout has its stream reset (slowloris).
#[tokio::test(flavor = "multi_thread")]
async fn h3_request_heads_are_bounded() {
    let mut ca = TestCa::new();
    let node = h3_node(
        &mut ca,
        &[
            ("FLEETCACHE_HTTP_MAX_HEADERS", "10"),
            ("FLEETCACHE_HTTP_HEADER_READ_TIMEOUT", "1s"),
        ],
    )
    .await;
    let https = node.https.expect("https");
    let client = connect(&ca, &node).await;
    let names: Vec<String> = (0..20).map(|i| format!("x-field-{i}")).collect();
    let many: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "v")).collect();
    let refused = client.get("/blake3/nothex", &many).await;
    assert_eq!(refused.status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    let fine = client.get("/blake3/nothex", &many[..5]).await;
    assert_eq!(fine.status, StatusCode::BAD_REQUEST);

    // A HEADERS frame that promises 100 bytes and delivers 3.
    let (_endpoint, conn) = quic_connect(
        quic_config(ca.client_config(&[b"h3"])),
        https,
        h3_client::NAME,
    )
    .await
    .expect("QUIC connect");
    let (mut send, mut recv) = conn.open_bi().await.expect("stream");
    send.write_all(&[0x01, 0x40, 0x64, 0x00, 0x00, 0xd1])
        .await
        .expect("write");
    let answer = tokio::time::timeout(Duration::from_secs(20), recv.read_to_end(1 << 20))
        .await
        .expect("the server gave up on the head");
    assert!(
        matches!(
            answer,
            Err(quinn::ReadToEndError::Read(quinn::ReadError::Reset(_)))
        ),
        "{answer:?}"
    );
}

/// With max_concurrent_streams = 4 the server grants four request streams at
/// once: a fifth waits for credit until one ends, and many concurrent
/// requests on one connection all complete.
#[tokio::test(flavor = "multi_thread")]
async fn h3_streams_per_connection_are_bounded() {
    let mut ca = TestCa::new();
    let node = h3_node(&mut ca, &[("FLEETCACHE_HTTP_MAX_CONCURRENT_STREAMS", "4")]).await;
    let https = node.https.expect("https");
    let data = pattern(100_000, 6);
    let hash = node.put(data.clone()).await;

    let client = Arc::new(connect(&ca, &node).await);
    let mut tasks = Vec::new();
    for i in 0..12u64 {
        let client = Arc::clone(&client);
        let path = format!("/blake3/{hash}");
        tasks.push(tokio::spawn(async move {
            let range = format!("bytes={}-{}", i * 1000, i * 1000 + 999);
            client.get(&path, &[("range", &range)]).await
        }));
    }
    for (i, task) in tasks.into_iter().enumerate() {
        let reply = task.await.expect("task");
        assert_eq!(reply.status, StatusCode::PARTIAL_CONTENT, "request {i}");
        assert_eq!(reply.body, &data[i * 1000..i * 1000 + 1000], "request {i}");
    }

    // The credit itself, seen from a bare QUIC client: four streams open,
    // the fifth not (only the server can grant more).
    let (_endpoint, conn) =
        quic_connect(quic_config(ca.client_config(&[b"h3"])), https, "localhost")
            .await
            .expect("QUIC connect");
    let mut open = Vec::new();
    for _ in 0..4 {
        open.push(conn.open_bi().await.expect("within the limit"));
    }
    assert!(
        conn.open_bi().now_or_never().is_none(),
        "a fifth request stream was granted"
    );
    // One stream ends (the client resets it): its credit comes back.
    let (mut send, _recv) = open.remove(0);
    send.reset(0x10c_u32.into()).expect("reset");
    tokio::time::timeout(Duration::from_secs(20), conn.open_bi())
        .await
        .expect("credit returned when a stream ended")
        .expect("open");
}

/// Clients that go silent are closed by the idle timeout: one that connects
/// and sends nothing, one that asks for an object and stops reading.
#[tokio::test(flavor = "multi_thread")]
async fn h3_silent_clients_are_closed_after_the_idle_timeout() {
    let mut ca = TestCa::new();
    let node = h3_node(&mut ca, &[("FLEETCACHE_HTTP_IDLE_TIMEOUT", "1s")]).await;
    let hash = node.put(pattern(8 << 20, 7)).await;
    let idle = connect(&ca, &node).await;
    let reader = connect(&ca, &node).await;
    // Sends the request and reads only the head: the body stays unread.
    let (response, stream) = reader
        .open(Method::GET, &format!("/blake3/{hash}"), &[], Bytes::new())
        .await
        .expect("response head");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(node.metric(H3_ACTIVE).await, 2.0);
    eventually(
        "silent connections closed",
        Duration::from_secs(30),
        async || node.metric(H3_ACTIVE).await == 0.0,
    )
    .await;
    drop((stream, idle, reader));
}

/// With http3_unvalidated_handshakes = 0 every new client answers a Retry
/// first, and still gets its answer.
#[tokio::test(flavor = "multi_thread")]
async fn h3_retry_validates_every_address_when_the_threshold_is_zero() {
    let mut ca = TestCa::new();
    let node = h3_node(
        &mut ca,
        &[("FLEETCACHE_HTTP_TLS_HTTP3_UNVALIDATED_HANDSHAKES", "0")],
    )
    .await;
    let hash = node.put(vec![9u8; 1000]).await;
    for _ in 0..2 {
        let client = connect(&ca, &node).await;
        let reply = client.get(&format!("/blake3/{hash}"), &[]).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.body, vec![9u8; 1000]);
    }
    assert_eq!(node.metric("fleetcache_http3_retries_total").await, 2.0);
}

/// A client that trusts both CAs: only the protocol keeps it out.
fn trusting_both(ca: &TestCa, fleet: &Fleet, alpn: &[u8]) -> Arc<rustls::ClientConfig> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for pem in [
        std::fs::read(ca.ca_file()).expect("test CA"),
        std::fs::read(fleet.dir.path().join("ca").join("ca.pem")).expect("fleet CA"),
    ] {
        roots
            .add(CertificateDer::from_pem_slice(&pem).expect("pem"))
            .expect("root");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![alpn.to_vec()];
    Arc::new(config)
}

/// A fleet node with HTTPS (and so HTTP/3) and a swarm endpoint.
async fn https_node_in_fleet(ca: &mut TestCa, fleet: &mut Fleet) -> TestNode {
    let (cert, key) = cert_env(ca);
    TestNode::start_in_fleet_with(
        fleet,
        &[],
        &[
            ("FLEETCACHE_HTTP_TLS_CERT_FILE", cert.as_str()),
            ("FLEETCACHE_HTTP_TLS_KEY_FILE", key.as_str()),
        ],
    )
    .await
}

/// The public HTTP/3 endpoint and the swarm's are apart: an h3 client cannot
/// reach the swarm, a fleet peer's handshake (ALPN fleetcache/2, even with a
/// fleet certificate) fails at the HTTP/3 port, and both keep serving their own.
#[tokio::test(flavor = "multi_thread")]
async fn h3_and_the_swarm_do_not_reach_each_other() {
    let mut ca = TestCa::new();
    let mut fleet = Fleet::new();
    let node = https_node_in_fleet(&mut ca, &mut fleet).await;
    let https = node.https.expect("https");
    let swarm = node.swarm.expect("swarm");
    assert_ne!(https.port(), swarm.port());

    // An h3 client at the swarm's port, under the name its certificate has.
    let name = crate::support::name_at(node.admin).await;
    let h3_at_swarm =
        H3Client::connect_with(quic_config(trusting_both(&ca, &fleet, b"h3")), swarm, &name).await;
    assert!(h3_at_swarm.is_err(), "an h3 client reached the swarm");

    // ALPN fleetcache/2 at the HTTP/3 port: refused, with or without a
    // fleet member's certificate.
    let peer_alpn = quic_config(trusting_both(&ca, &fleet, b"fleetcache/2"));
    assert!(
        quic_connect(peer_alpn, https, h3_client::NAME)
            .await
            .is_err(),
        "ALPN fleetcache/2 was accepted by the HTTP/3 endpoint"
    );
    let member = fleet
        .identity()
        .quic_client_config()
        .expect("member config");
    assert!(
        quic_connect(member, https, h3_client::NAME).await.is_err(),
        "a fleet member reached the HTTP/3 endpoint"
    );
    eventually(
        "refused handshakes counted",
        Duration::from_secs(10),
        async || {
            node.metric(r#"fleetcache_tls_handshake_failures_total{listener="http3"}"#)
                .await
                >= 2.0
        },
    )
    .await;

    // Both still serve their own.
    let hash = node.put(vec![3u8; 100]).await;
    let client = connect(&ca, &node).await;
    assert_eq!(
        client.get(&format!("/blake3/{hash}"), &[]).await.status,
        StatusCode::OK
    );
    let peer = TestNode::start_in_fleet(&mut fleet, &[swarm]).await;
    node.wait_peers_up(1).await;
    drop(peer);
}

/// The HTTP/3 and swarm UDP sockets get receive and send buffers of
/// `UDP_BUFFER_BYTES` (as far as `net.core.rmem_max` / `wmem_max` allow),
/// not the kernel's default of about 208 KiB, which drops bursts under load.
#[tokio::test(flavor = "multi_thread")]
async fn quic_sockets_get_large_buffers() {
    let mut ca = TestCa::new();
    let mut fleet = Fleet::new();
    let node = https_node_in_fleet(&mut ca, &mut fleet).await;
    let asked = fleetcache_swarm::UDP_BUFFER_BYTES;
    for (what, addr) in [
        ("http3", node.https.expect("https")),
        ("swarm", node.swarm.expect("swarm")),
    ] {
        let (recv, send) = udp_buffers(addr);
        // Linux reports twice what it grants, and grants at most *mem_max.
        assert!(
            recv >= 2 * asked.min(core_sysctl("rmem_max")),
            "{what}: SO_RCVBUF {recv}"
        );
        assert!(
            send >= 2 * asked.min(core_sysctl("wmem_max")),
            "{what}: SO_SNDBUF {send}"
        );
    }
}

fn core_sysctl(name: &str) -> usize {
    let path = format!("/proc/sys/net/core/{name}");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("{path}: {err}"));
    text.trim()
        .parse()
        .unwrap_or_else(|err| panic!("{path}: {err}"))
}

/// The receive and send buffers (`rb`, `tb` of `ss -m`'s skmem, which is
/// what `getsockopt` reports) of the UDP socket bound to `addr`.
fn udp_buffers(addr: SocketAddr) -> (usize, usize) {
    let filter = format!("sport = :{}", addr.port());
    let out = std::process::Command::new("ss")
        .args(["-u", "-a", "-n", "-m", "-H", &filter])
        .output()
        .expect("running ss (iproute2)");
    assert!(out.status.success(), "ss failed: {out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |name: &str| -> usize {
        let start = text
            .find(name)
            .unwrap_or_else(|| panic!("no {name} for {addr} in ss output: {text}"))
            + name.len();
        let digits: String = text[start..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse().expect("a number after rb/tb")
    };
    (field(",rb"), field(",tb"))
}

/// With http.max_connections = 2 a third HTTP/3 connection is refused and
/// counted; the two keep working.
#[tokio::test(flavor = "multi_thread")]
async fn h3_connections_over_the_limit_are_refused() {
    let mut ca = TestCa::new();
    let node = h3_node(&mut ca, &[("FLEETCACHE_HTTP_MAX_CONNECTIONS", "2")]).await;
    let first = connect(&ca, &node).await;
    let second = connect(&ca, &node).await;
    let third = H3Client::connect(&ca, node.https.expect("https")).await;
    assert!(third.is_err(), "a third connection was accepted");
    for client in [&first, &second] {
        assert_eq!(
            client.get("/blake3/nothex", &[]).await.status,
            StatusCode::BAD_REQUEST
        );
    }
    assert_eq!(
        node.metric(r#"fleetcache_http_connections_refused_total{listener="http3"}"#)
            .await,
        1.0
    );
    drop(first);
    eventually(
        "a slot frees",
        Duration::from_secs(10),
        async || match H3Client::connect(&ca, node.https.expect("https")).await {
            Ok(client) => client.get("/blake3/nothex", &[]).await.status == StatusCode::BAD_REQUEST,
            Err(_) => false,
        },
    )
    .await;
}

/// Shutdown: a download in flight finishes (its origin is held until the
/// shutdown has begun), new connections are refused, the node drains.
#[tokio::test(flavor = "multi_thread")]
async fn h3_graceful_shutdown_finishes_in_flight_downloads() {
    let origin = TestOrigin::start().await;
    let body = Bytes::from(pattern(2 << 20, 8));
    let gate = origin.route_gated("/slow", body.clone(), 100_000);
    let url = origin.url();
    let mut ca = TestCa::new();
    let node = h3_node(&mut ca, &[("FLEETCACHE_ORIGIN", &url)]).await;
    let https = node.https.expect("https");
    let client = connect(&ca, &node).await;
    let (response, mut stream) = client
        .open(Method::GET, "/slow", &[], Bytes::new())
        .await
        .expect("head");
    assert_eq!(response.status(), StatusCode::OK);
    let mut received = read_at_least(&mut stream, 100_000)
        .await
        .expect("first bytes");

    let stopping = tokio::spawn(node.stop());
    eventually(
        "new connections refused",
        Duration::from_secs(20),
        async || H3Client::connect(&ca, https).await.is_err(),
    )
    .await;
    assert!(
        !stopping.is_finished(),
        "the node stopped with a download in flight"
    );
    gate.notify_one();
    received.extend_from_slice(&read_to_end(&mut stream).await.expect("the rest"));
    assert_eq!(received.len(), body.len());
    assert!(received[..] == body[..], "the download completed intact");
    drop(stream);
    drop(client);
    // TestNode::stop asserts that the node drained within its grace period.
    stopping.await.expect("stop");
}

/// Every HTTPS response advertises HTTP/3 on the same port, over HTTP/2 and
/// HTTP/1.1; plaintext responses do not.
#[tokio::test(flavor = "multi_thread")]
async fn alt_svc_advertises_h3_on_https_only() {
    let mut ca = TestCa::new();
    let node = h3_node(&mut ca, &[]).await;
    let https = node.https.expect("https");
    let expected = format!("h3=\":{}\"; ma=86400", https.port());
    let base = format!("https://localhost:{}", https.port());

    let mut h2 = h2_client(&ca, https, "localhost").await;
    for path in ["/blake3/nothex", &format!("/blake3/{}", "cd".repeat(32))] {
        let reply = h2_get(&mut h2, &format!("{base}{path}"), &[]).await;
        assert_eq!(reply.header("alt-svc"), Some(expected.as_str()), "{path}");
    }
    let h1 = http1_over_tls(&ca, https, "/blake3/nothex").await;
    assert_eq!(
        h1.headers.get("alt-svc").and_then(|v| v.to_str().ok()),
        Some(expected.as_str())
    );
    let plain = node.get("/blake3/nothex").await;
    assert_eq!(plain.header("alt-svc"), None);

    // Behind a port map, the advertised port is the one clients reach.
    let mapped = h3_node(
        &mut ca,
        &[("FLEETCACHE_HTTP_TLS_HTTP3_ADVERTISED_PORT", "443")],
    )
    .await;
    let https = mapped.https.expect("https");
    let h1 = http1_over_tls(&ca, https, "/blake3/nothex").await;
    assert_eq!(
        h1.headers.get("alt-svc").and_then(|v| v.to_str().ok()),
        Some("h3=\":443\"; ma=86400")
    );
}

/// With http.tls.http3 = false there is no UDP socket and no Alt-Svc.
#[tokio::test(flavor = "multi_thread")]
async fn h3_off_binds_no_udp_and_advertises_nothing() {
    let mut ca = TestCa::new();
    let node = h3_node(&mut ca, &[("FLEETCACHE_HTTP_TLS_HTTP3", "false")]).await;
    let https = node.https.expect("https");
    let mut h2 = h2_client(&ca, https, "localhost").await;
    let reply = h2_get(
        &mut h2,
        &format!("https://localhost:{}/blake3/nothex", https.port()),
        &[],
    )
    .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.header("alt-svc"), None);
    // Nobody holds the UDP port.
    let udp = std::net::UdpSocket::bind(https).expect("the HTTPS port is free on UDP");
    drop(udp);
}

/// One HTTP/1.1 request over TLS (ALPN http/1.1); the head is enough.
async fn http1_over_tls(ca: &TestCa, addr: SocketAddr, path: &str) -> http::response::Parts {
    let tls = tls_connect(ca, addr, "localhost", &[b"http/1.1"])
        .await
        .expect("handshake");
    let (mut send, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
        .await
        .expect("http1 handshake");
    tokio::spawn(conn);
    let request = http::Request::get(path)
        .header("host", "localhost")
        .body(Empty::<Bytes>::new())
        .expect("request");
    let response = send.send_request(request).await.expect("response");
    let (parts, body) = response.into_parts();
    let _ = body.collect().await;
    parts
}

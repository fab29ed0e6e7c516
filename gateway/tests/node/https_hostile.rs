//! Hostile clients on the HTTPS listener, written frame by frame (`h2_raw`):
//! rapid reset, streams beyond the concurrency limit, header lists over the
//! limit, endless header blocks and CONTINUATION floods, a client that never
//! reads, TLS handshakes never finished and plaintext sent to the TLS port.
//! Every bound is shown by counting (frames, bytes, metrics), never by time;
//! the deadlines only stop a test that would otherwise hang.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use crate::h2_raw::{
    self, ACK, CANCEL, COMPRESSION_ERROR, CONTINUATION, DATA, END_STREAM, ENHANCE_YOUR_CALM, Frame,
    GOAWAY, HEADERS, PING, REFUSED_STREAM, RST_STREAM, Reader, SETTINGS,
    SETTINGS_MAX_CONCURRENT_STREAMS, continuation, frame, headers, ping_ack, request_block,
    rst_stream, settings_ack,
};
use crate::https::tls_node;
use crate::origin_server::{Scripted, TestOrigin};
use crate::support::{TestNode, eventually, pattern};
use crate::tls_support::{TestCa, h2_client, h2_get};

/// How long anything the server must do may take before the test gives up.
const LIMIT: Duration = Duration::from_secs(20);

const SETTINGS_MAX_HEADER_LIST_SIZE: u16 = 0x6;

/// The sum of `fleetcache_http_requests_total` over every label set with
/// `protocol`: every request a handler started, answered or not.
fn requests(metrics: &str, protocol: &str) -> f64 {
    let label = format!("protocol=\"{protocol}\"");
    metrics
        .lines()
        .filter(|l| l.starts_with("fleetcache_http_requests_total{") && l.contains(&label))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

async fn https_connections_closed(node: &TestNode) {
    eventually("no HTTPS connection open", LIMIT, async || {
        node.metric("fleetcache_http_connections_active{listener=\"https\"}")
            .await
            == 0.0
    })
    .await;
}

/// One ordinary HTTP/2 request on a connection of its own.
async fn served_normally(ca: &TestCa, node: &TestNode, hash: &str, expected: &[u8]) {
    let https = node.https.expect("https");
    let mut send = h2_client(ca, https, "edge.test").await;
    let uri = format!("https://edge.test:{}/blake3/{hash}", https.port());
    let reply = h2_get(&mut send, &uri, &[]).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body, expected);
}

/// Reads every frame until the server closes, in a task; `closed` fires then.
fn collect_frames(mut reader: Reader) -> (Arc<Mutex<Vec<Frame>>>, CancellationToken) {
    let frames = Arc::new(Mutex::new(Vec::new()));
    let closed = CancellationToken::new();
    let (into, done) = (Arc::clone(&frames), closed.clone());
    tokio::spawn(async move {
        while let Some(frame) = reader.next().await {
            into.lock().unwrap().push(frame);
        }
        done.cancel();
    });
    (frames, closed)
}

fn goaway(frames: &[Frame]) -> Option<Frame> {
    frames.iter().find(|f| f.kind == GOAWAY).cloned()
}

/// CVE-2023-44487: HEADERS and RST_STREAM(CANCEL) for thousands of streams as
/// fast as the client can write them. The server sends GOAWAY and closes
/// after a bounded number of requests, and serves other clients meanwhile.
#[tokio::test(flavor = "multi_thread")]
async fn rapid_reset_flood_gets_goaway_and_other_clients_are_served() {
    let mut ca = TestCa::new();
    let node = tls_node(&mut ca, &[]).await;
    let https = node.https.expect("https");
    let data = pattern(1000, 1);
    let hash = node.put(data.clone()).await;
    let block = request_block("GET", &format!("/blake3/{hash}"), "edge.test", &[]);

    let (reader, mut writer) = h2_raw::connect(&ca, https, "edge.test", &[]).await;
    let (frames, closed) = collect_frames(reader);
    const STREAMS: u32 = 20_000;
    let flood = tokio::spawn(async move {
        let mut written = 0u32;
        while written < STREAMS {
            let mut bytes = Vec::new();
            for id in (written..written + 100).map(|n| 2 * n + 1) {
                bytes.extend(headers(id, &block, true));
                bytes.extend(rst_stream(id, CANCEL));
            }
            if writer.send(&bytes).await.is_err() {
                break;
            }
            written += 100;
        }
        written
    });
    // Another client is served while the flood runs.
    let mut normal = 0;
    loop {
        served_normally(&ca, &node, &hash, &data).await;
        normal += 1;
        if flood.is_finished() {
            break;
        }
    }
    let written = flood.await.expect("flood");
    tokio::time::timeout(LIMIT, closed.cancelled())
        .await
        .expect("the server closed the flooding connection");
    https_connections_closed(&node).await;

    let frames = frames.lock().unwrap().clone();
    let goaway = goaway(&frames).expect("a GOAWAY before the close");
    let code = goaway.error_code().expect("error code");
    let metrics = node.metrics().await;
    let floods = crate::support::metric_value(
        &metrics,
        "fleetcache_http2_reset_floods_total{listener=\"https\"}",
    )
    .unwrap_or(0.0);
    let handled = requests(&metrics, "h2") - f64::from(normal);
    eprintln!(
        "rapid reset: GOAWAY code {code:#x} (last stream {:?}) after {written} of {STREAMS} streams written; \
         handlers started: {handled}; reset floods counted: {floods}; normal requests served meanwhile: {normal}",
        goaway.last_stream()
    );
    assert!(
        code == ENHANCE_YOUR_CALM || floods == 1.0,
        "either h2's pending-accept reset limit (ENHANCE_YOUR_CALM) or the node's reset budget closed it: code {code:#x}, floods {floods}"
    );
    // Bounded by counts, not by time: a few windows of streams at most.
    assert!(
        handled <= 4.0 * 100.0,
        "{handled} requests handled for a flood of {written}"
    );
    served_normally(&ca, &node, &hash, &data).await;
}

/// Rapid reset that slips past the pending-accept limit: each round's requests
/// are taken by the node's handlers (they wait on a slow origin) before the
/// client cancels them, and the client ignores the graceful GOAWAY and its
/// PING. The node's reset budget still closes the connection after a bounded
/// number of cancelled requests.
#[tokio::test(flavor = "multi_thread")]
async fn resets_of_accepted_requests_close_the_connection_even_if_goaway_is_ignored() {
    let origin = TestOrigin::start().await;
    // The origin holds the head back for the whole test: every request waits
    // in its handler, joined to the one fill.
    origin.route("/slow", |_| {
        Scripted::ok("late").delay(Duration::from_secs(600))
    });
    let url = origin.url();
    let mut ca = TestCa::new();
    const MAX_STREAMS: u32 = 16;
    let node = tls_node(
        &mut ca,
        &[
            ("FLEETCACHE_ORIGIN", url.as_str()),
            ("FLEETCACHE_HTTP_MAX_CONCURRENT_STREAMS", "16"),
        ],
    )
    .await;
    let https = node.https.expect("https");
    let block = request_block("GET", "/slow", "edge.test", &[]);
    let (reader, mut writer) = h2_raw::connect(&ca, https, "edge.test", &[]).await;
    let (frames, closed) = collect_frames(reader);

    const ROUND: u32 = 8;
    const ROUNDS: u32 = 60;
    let mut started = 0u32;
    let mut rounds = 0;
    while rounds < ROUNDS && !closed.is_cancelled() {
        let ids: Vec<u32> = (0..ROUND).map(|i| 2 * (started + i) + 1).collect();
        let opened: Vec<u8> = ids
            .iter()
            .flat_map(|id| headers(*id, &block, true))
            .collect();
        if writer.send(&opened).await.is_err() {
            break;
        }
        started += ROUND;
        // Every request of the round has reached its handler (the first
        // starts the fill, the others join it) or the server closed.
        let expected = f64::from(started - 1);
        eventually("handlers took the round", LIMIT, async || {
            closed.is_cancelled() || node.metric("fleetcache_fill_waiters_total").await >= expected
        })
        .await;
        let cancels: Vec<u8> = ids.iter().flat_map(|id| rst_stream(*id, CANCEL)).collect();
        if writer.send(&cancels).await.is_err() {
            break;
        }
        rounds += 1;
    }
    tokio::time::timeout(LIMIT, closed.cancelled())
        .await
        .unwrap_or_else(|_| {
            panic!(
                "the connection is still open after {rounds} rounds of {ROUND} cancelled requests"
            )
        });
    https_connections_closed(&node).await;
    let frames = frames.lock().unwrap().clone();
    let goaway = goaway(&frames).expect("a GOAWAY");
    let metrics = node.metrics().await;
    let handled = requests(&metrics, "h2");
    eprintln!(
        "paced reset: closed after {rounds} rounds; GOAWAY code {:#x}; handlers started: {handled}",
        goaway.error_code().unwrap_or(u32::MAX)
    );
    assert!(rounds < ROUNDS, "the server kept taking requests");
    assert_eq!(
        crate::support::metric_value(
            &metrics,
            "fleetcache_http2_reset_floods_total{listener=\"https\"}"
        ),
        Some(1.0)
    );
    // The budget: a window of cancellations (max_concurrent_streams) before
    // GOAWAY, another before the cut, plus the rounds in flight meanwhile.
    assert!(
        handled <= f64::from(4 * MAX_STREAMS),
        "{handled} requests handled"
    );
}

/// RFC 9113 §5.1.2: HEADERS beyond SETTINGS_MAX_CONCURRENT_STREAMS are a
/// stream error (the node refuses them with REFUSED_STREAM, so the client
/// may retry them); the open streams and the node carry on.
#[tokio::test(flavor = "multi_thread")]
async fn streams_beyond_the_concurrency_limit_are_refused() {
    let mut ca = TestCa::new();
    let node = tls_node(&mut ca, &[("FLEETCACHE_HTTP_MAX_CONCURRENT_STREAMS", "8")]).await;
    let https = node.https.expect("https");
    let data = pattern(4 << 20, 2);
    let hash = node.put(data.clone()).await;
    let block = request_block("GET", &format!("/blake3/{hash}"), "edge.test", &[]);

    let (mut reader, mut writer) = h2_raw::connect(&ca, https, "edge.test", &[]).await;
    let mut seen = Vec::new();
    let settings = reader
        .until(LIMIT, &mut seen, |f| {
            f.kind == SETTINGS && f.flags & ACK == 0
        })
        .await
        .expect("server SETTINGS");
    assert_eq!(settings.setting(SETTINGS_MAX_CONCURRENT_STREAMS), Some(8));
    writer.send(&settings_ack()).await.unwrap();

    // Eight streams, answered and then held open by flow control: the client
    // never sends WINDOW_UPDATE.
    let first: Vec<u32> = (0..8).map(|i| 2 * i + 1).collect();
    let opened: Vec<u8> = first
        .iter()
        .flat_map(|id| headers(*id, &block, true))
        .collect();
    writer.send(&opened).await.unwrap();
    let mut answered = Vec::new();
    while answered.len() < first.len() {
        let response = reader
            .until(LIMIT, &mut seen, |f| f.kind == HEADERS)
            .await
            .expect("responses to the first eight");
        assert_eq!(response.status(), Some(200), "{response:?}");
        answered.push(response.stream);
    }
    // Four more, ignoring the limit.
    let extra: Vec<u32> = (8..12).map(|i| 2 * i + 1).collect();
    let opened: Vec<u8> = extra
        .iter()
        .flat_map(|id| headers(*id, &block, true))
        .collect();
    writer.send(&opened).await.unwrap();
    let mut refused = Vec::new();
    while refused.len() < extra.len() {
        let frame = reader
            .until(LIMIT, &mut seen, |f| {
                matches!(f.kind, RST_STREAM | GOAWAY) || (f.kind == HEADERS && f.stream > 15)
            })
            .await
            .expect("an answer to the extra streams");
        assert_eq!(frame.kind, RST_STREAM, "{frame:?}");
        assert_eq!(frame.error_code(), Some(REFUSED_STREAM), "{frame:?}");
        refused.push(frame.stream);
    }
    refused.sort_unstable();
    assert_eq!(refused, extra);
    // The open streams got no more than the connection window's bytes.
    let data_bytes: usize = seen
        .iter()
        .filter(|f| f.kind == DATA)
        .map(|f| f.payload.len())
        .sum();
    assert!(data_bytes <= 65_535, "{data_bytes} bytes past the window");

    // The node serves others, and took only the eight requests from this one.
    let mut send = h2_client(&ca, https, "edge.test").await;
    let uri = format!("https://edge.test:{}/blake3/{hash}", https.port());
    let range = h2_get(&mut send, &uri, &[("range", "bytes=100-199")]).await;
    assert_eq!(range.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(range.body, data[100..200]);
    drop((reader, writer, send));
    https_connections_closed(&node).await;
    assert_eq!(requests(&node.metrics().await, "h2"), 9.0);
}

/// A header list (24 fields of 1000 bytes) well past `http.max_header_bytes`
/// (advertised as SETTINGS_MAX_HEADER_LIST_SIZE), split over HEADERS and
/// CONTINUATION: that request gets 431 and the connection carries on. A list
/// that goes on for frames after it is over the limit closes the connection
/// (GOAWAY).
#[tokio::test(flavor = "multi_thread")]
async fn a_header_list_over_the_limit_gets_431_and_the_connection_carries_on() {
    let mut ca = TestCa::new();
    let node = tls_node(&mut ca, &[]).await;
    let https = node.https.expect("https");
    let data = pattern(100, 3);
    let hash = node.put(data.clone()).await;
    let path = format!("/blake3/{hash}");

    let (mut reader, mut writer) = h2_raw::connect(&ca, https, "edge.test", &[]).await;
    let mut seen = Vec::new();
    let settings = reader
        .until(LIMIT, &mut seen, |f| {
            f.kind == SETTINGS && f.flags & ACK == 0
        })
        .await
        .expect("server SETTINGS");
    assert_eq!(
        settings.setting(SETTINGS_MAX_HEADER_LIST_SIZE),
        Some(16 * 1024),
        "max_header_bytes"
    );
    writer.send(&settings_ack()).await.unwrap();

    // 24 fields of 1000 bytes: 24 KiB against 16 KiB.
    let value = "a".repeat(1000);
    let names: Vec<String> = (0..24).map(|i| format!("x-pad-{i:02}")).collect();
    let fields: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), value.as_str())).collect();
    let block = request_block("GET", &path, "edge.test", &fields);
    let (head, tail) = block.split_at(16_000);
    let mut bytes = frame(HEADERS, END_STREAM, 1, head);
    bytes.extend(continuation(1, tail, true));
    writer.send(&bytes).await.unwrap();
    let response = reader
        .until(LIMIT, &mut seen, |f| {
            (f.kind == HEADERS && f.stream == 1) || matches!(f.kind, RST_STREAM | GOAWAY)
        })
        .await
        .expect("an answer to the oversized request");
    assert_eq!(response.kind, HEADERS, "{response:?}");
    assert_eq!(response.status(), Some(431), "{response:?}");
    assert_ne!(response.flags & END_STREAM, 0, "the 431 has no body");

    // The same connection serves the next request.
    let block = request_block("GET", &path, "edge.test", &[]);
    writer.send(&headers(3, &block, true)).await.unwrap();
    let ok = reader
        .until(LIMIT, &mut seen, |f| f.stream == 3 && f.kind != DATA)
        .await
        .expect("an answer on stream 3");
    assert_eq!(ok.status(), Some(200), "{ok:?}");
    let body = reader
        .until(LIMIT, &mut seen, |f| f.stream == 3 && f.kind == DATA)
        .await
        .expect("the body");
    assert_eq!(body.payload, data);

    // Further past the limit (80 KiB in six frames) h2 stops decoding once a
    // frame arrives for a list already over it, and closes the connection
    // instead of answering (COMPRESSION_ERROR; ENHANCE_YOUR_CALM past four
    // times the limit in one frame).
    let names: Vec<String> = (0..80).map(|i| format!("x-pad-{i:02}")).collect();
    let fields: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), value.as_str())).collect();
    let block = request_block("GET", &path, "edge.test", &fields);
    let pieces: Vec<&[u8]> = block.chunks(16_000).collect();
    let mut bytes = frame(HEADERS, END_STREAM, 5, pieces[0]);
    for (i, piece) in pieces.iter().enumerate().skip(1) {
        bytes.extend(continuation(5, piece, i == pieces.len() - 1));
    }
    assert_eq!(pieces.len(), 6, "five CONTINUATION frames");
    let _ = writer.send(&bytes).await;
    let end = reader
        .until(LIMIT, &mut seen, |f| f.kind == GOAWAY || f.stream == 5)
        .await
        .expect("an answer to the 80 KiB block");
    assert_eq!(end.kind, GOAWAY, "{end:?}");
    let code = end.error_code();
    assert!(
        code == Some(COMPRESSION_ERROR) || code == Some(ENHANCE_YOUR_CALM),
        "{end:?}"
    );
    eprintln!("80 KiB header block: GOAWAY {code:x?}");
    assert!(
        tokio::time::timeout(LIMIT, reader.next())
            .await
            .expect("closed")
            .is_none(),
        "the connection is closed after the GOAWAY"
    );
}

/// A header block that never ends (16 KiB CONTINUATION frames of fields,
/// meant to go on for 256 MiB) and a CONTINUATION flood (CVE-2024-27316:
/// empty frames, never END_HEADERS) are both cut off with GOAWAY after a
/// bounded number of frames, long before the client is done.
#[tokio::test(flavor = "multi_thread")]
async fn endless_header_blocks_and_continuation_floods_close_the_connection() {
    let mut ca = TestCa::new();
    let node = tls_node(&mut ca, &[]).await;
    let https = node.https.expect("https");
    let data = pattern(100, 4);
    let hash = node.put(data.clone()).await;
    let start = request_block("GET", &format!("/blake3/{hash}"), "edge.test", &[]);
    // 16 whole fields (1020 bytes each) per frame.
    let value = "b".repeat(1010);
    let fields: Vec<(&str, &str)> = vec![("x-pad", value.as_str()); 16];
    let full = request_block("GET", "/", "edge.test", &fields);
    let fields_only = full[full.len() - 16 * 1020..].to_vec();

    const ATTEMPT: u64 = 256 << 20;
    for (what, payload) in [
        ("endless block", fields_only),
        ("empty CONTINUATION flood", Vec::new()),
    ] {
        let (reader, mut writer) = h2_raw::connect(&ca, https, "edge.test", &[]).await;
        let (frames, closed) = collect_frames(reader);
        writer
            .send(&frame(HEADERS, END_STREAM, 1, &start))
            .await
            .unwrap();
        let batch: Vec<u8> = (0..64)
            .flat_map(|_| frame(CONTINUATION, 0, 1, &payload))
            .collect();
        let mut frames_sent = 0u64;
        while writer.sent < ATTEMPT && frames_sent < 20_000_000 {
            if writer.send(&batch).await.is_err() {
                break;
            }
            frames_sent += 64;
        }
        tokio::time::timeout(LIMIT, closed.cancelled())
            .await
            .unwrap_or_else(|_| panic!("{what}: the connection is still open"));
        let frames = frames.lock().unwrap().clone();
        let goaway = goaway(&frames).unwrap_or_else(|| panic!("{what}: no GOAWAY in {frames:?}"));
        let code = goaway.error_code().expect("code");
        eprintln!(
            "{what}: GOAWAY {code:#x} ({}); the client wrote {} bytes in {frames_sent} frames before the close",
            String::from_utf8_lossy(goaway.payload.get(8..).unwrap_or_default()),
            writer.sent
        );
        assert!(
            code == ENHANCE_YOUR_CALM || code == COMPRESSION_ERROR,
            "{what}: {code:#x}"
        );
        // The server stopped reading long before the client was done: what
        // the client got written is what fits in the sockets' buffers.
        assert!(
            writer.sent < 64 << 20 && frames_sent < 20_000_000,
            "{what}: {} bytes, {frames_sent} frames written",
            writer.sent
        );
        assert!(
            !frames.iter().any(|f| f.kind == HEADERS),
            "{what}: no response"
        );
    }
    https_connections_closed(&node).await;
    assert_eq!(requests(&node.metrics().await, "h2"), 0.0);
    served_normally(&ca, &node, &hash, &data).await;
}

/// A client that asks for big objects and never opens its flow-control
/// window (but answers PINGs, as any live client does) holds no more than a
/// few chunks per stream and is closed after `http.idle_timeout`.
#[tokio::test(flavor = "multi_thread")]
async fn a_client_that_never_reads_is_closed_after_the_idle_timeout() {
    let mut ca = TestCa::new();
    let node = tls_node(&mut ca, &[("FLEETCACHE_HTTP_IDLE_TIMEOUT", "1s")]).await;
    let https = node.https.expect("https");
    let data = pattern(16 << 20, 5);
    let hash = node.put(data).await;
    let block = request_block("GET", &format!("/blake3/{hash}"), "edge.test", &[]);

    let (mut reader, mut writer) = h2_raw::connect(&ca, https, "edge.test", &[]).await;
    let streams = [1u32, 3, 5, 7];
    let opened: Vec<u8> = streams
        .iter()
        .flat_map(|id| headers(*id, &block, true))
        .collect();
    writer.send(&opened).await.unwrap();
    let mut data_bytes = 0;
    let mut pings = 0;
    let mut kinds = Vec::new();
    let end = tokio::time::timeout(LIMIT, async {
        while let Some(frame) = reader.next().await {
            kinds.push(frame.kind);
            match frame.kind {
                DATA => data_bytes += frame.payload.len(),
                PING if frame.flags & ACK == 0 => {
                    pings += 1;
                    let _ = writer.send(&ping_ack(&frame.payload)).await;
                }
                SETTINGS if frame.flags & ACK == 0 => {
                    let _ = writer.send(&settings_ack()).await;
                }
                _ => {}
            }
        }
    })
    .await;
    assert!(
        end.is_ok(),
        "still open after {pings} PINGs answered and {data_bytes} bytes of DATA; frames {kinds:?}"
    );
    eprintln!("never-reading client: closed after {pings} PINGs answered");
    assert!(data_bytes <= 65_535, "{data_bytes} bytes past the window");
    https_connections_closed(&node).await;
    // What the node read out of the store for these responses: a few chunks
    // per stream, not the 64 MiB asked for.
    let pulled = node
        .metric("fleetcache_http_response_bytes_total{source=\"local\"}")
        .await;
    eprintln!("never-reading client: {pulled} bytes read out of the store for it");
    assert!(
        pulled <= 4.0 * 1024.0 * 1024.0,
        "{pulled} bytes read for the client"
    );
    assert_eq!(requests(&node.metrics().await, "h2"), 4.0);
}

/// A TLS client that connects and never finishes its handshake (silent, or
/// stalled after the first bytes of a ClientHello) is closed after
/// `http.header_read_timeout` and counted.
#[tokio::test(flavor = "multi_thread")]
async fn an_unfinished_tls_handshake_is_closed_and_counted() {
    let mut ca = TestCa::new();
    let node = tls_node(&mut ca, &[("FLEETCACHE_HTTP_HEADER_READ_TIMEOUT", "1s")]).await;
    let https = node.https.expect("https");
    let hash = node.put(b"still here".to_vec()).await;

    let mut silent = TcpStream::connect(https).await.unwrap();
    let mut stalled = TcpStream::connect(https).await.unwrap();
    stalled
        .write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
        .await
        .unwrap();
    for (what, conn) in [("silent", &mut silent), ("stalled", &mut stalled)] {
        let mut rest = Vec::new();
        let read = tokio::time::timeout(LIMIT, conn.read_to_end(&mut rest))
            .await
            .unwrap_or_else(|_| panic!("{what}: the server never closed"));
        // A close (0) or a reset: either way the connection is gone.
        eprintln!(
            "{what} handshake: {read:?}, {} bytes from the server",
            rest.len()
        );
    }
    eventually("two handshake failures counted", LIMIT, async || {
        node.metric("fleetcache_tls_handshake_failures_total{listener=\"https\"}")
            .await
            == 2.0
    })
    .await;
    https_connections_closed(&node).await;
    served_normally(&ca, &node, &hash, b"still here").await;
}

/// Plain HTTP/1.1 sent to the TLS port is a handshake failure: counted, no
/// HTTP answer in clear, and the node carries on.
#[tokio::test(flavor = "multi_thread")]
async fn plaintext_http_to_the_tls_port_gets_a_400_and_is_counted() {
    let mut ca = TestCa::new();
    let node = tls_node(&mut ca, &[]).await;
    let https = node.https.expect("https");
    let hash = node.put(b"tls only".to_vec()).await;
    let mut conn = TcpStream::connect(https).await.unwrap();
    let request = format!("GET /blake3/{hash} HTTP/1.1\r\nHost: edge.test\r\n\r\n");
    conn.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(LIMIT, conn.read_to_end(&mut answer))
        .await
        .expect("the server closed the connection");
    read.expect("read the answer");
    // Like nginx: a 400 the client can show, never the object.
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{text}");
    assert!(text.contains("connection: close"), "{text}");
    assert!(
        text.ends_with("a plain HTTP request was sent to it\n"),
        "{text}"
    );
    let head_end = text.find("\r\n\r\n").expect("a head") + 4;
    let length: usize = text
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
        .and_then(|n| n.trim().parse().ok())
        .expect("content-length");
    assert_eq!(
        answer.len() - head_end,
        length,
        "the body is as long as it says"
    );
    assert!(!answer.windows(8).any(|w| w == b"tls only"));
    eventually("the handshake failure counted", LIMIT, async || {
        node.metric("fleetcache_tls_handshake_failures_total{listener=\"https\"}")
            .await
            == 1.0
    })
    .await;
    served_normally(&ca, &node, &hash, b"tls only").await;
    assert_eq!(
        node.get(&format!("/blake3/{hash}")).await.status,
        StatusCode::OK
    );
}

//! Hostile and broken clients: oversized heads, too many headers, slowloris,
//! stalled connections, garbage. The node answers or closes, and keeps
//! serving everyone else.

use std::io::Write;
use std::time::{Duration, Instant};

use http::StatusCode;

use crate::support::*;

fn status_of(raw: &[u8]) -> Option<u16> {
    let text = std::str::from_utf8(raw.get(..12)?).ok()?;
    text.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}

#[tokio::test]
async fn oversized_heads_get_431() {
    let node = TestNode::start_with(&[("FLEETCACHE_HTTP_MAX_HEADER_BYTES", "16KiB")]).await;
    let addr = node.public;
    let huge = tokio::task::spawn_blocking(move || {
        let request = format!(
            "GET /blake3/{} HTTP/1.1\r\nhost: x\r\nx-big: {}\r\n\r\n",
            "0".repeat(64),
            "a".repeat(64 * 1024)
        );
        raw_exchange(addr, request.as_bytes(), Duration::from_secs(5))
    })
    .await
    .unwrap();
    assert_eq!(
        status_of(&huge),
        Some(431),
        "{}",
        String::from_utf8_lossy(&huge)
    );

    let many = tokio::task::spawn_blocking(move || {
        let mut request = format!("GET /blake3/{} HTTP/1.1\r\nhost: x\r\n", "0".repeat(64));
        for i in 0..200 {
            request.push_str(&format!("x-h{i}: v\r\n"));
        }
        request.push_str("\r\n");
        raw_exchange(addr, request.as_bytes(), Duration::from_secs(5))
    })
    .await
    .unwrap();
    assert_eq!(
        status_of(&many),
        Some(431),
        "{}",
        String::from_utf8_lossy(&many)
    );

    // Still serving.
    assert_eq!(
        node.get(&format!("/blake3/{}", "0".repeat(64)))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn garbage_requests_get_400_and_the_node_carries_on() {
    let node = TestNode::start().await;
    let addr = node.public;
    for garbage in [
        &b"\x00\x01\x02\x03\r\n\r\n"[..],
        b"GET\r\n\r\n",
        b"GET /blake3/x HTTP/9.9\r\n\r\n",
        b"GET /blake3/x HTTP/1.1\r\nbad header line\r\n\r\n",
        b"GET /blake3/x HTTP/1.1\r\ncontent-length: -1\r\n\r\n",
        b"GET /blake3/x HTTP/1.1\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\n",
    ] {
        let reply = tokio::task::spawn_blocking(move || {
            raw_exchange(addr, garbage, Duration::from_secs(5))
        })
        .await
        .unwrap();
        let status = status_of(&reply);
        assert!(
            matches!(status, Some(400..=499)) || reply.is_empty(),
            "{:?} -> {:?}",
            String::from_utf8_lossy(garbage),
            String::from_utf8_lossy(&reply)
        );
    }
    assert_eq!(
        node.get("/blake3/bad").await.status,
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn slow_and_stalled_clients_are_cut_off() {
    let node = TestNode::start_with(&[
        ("FLEETCACHE_HTTP_HEADER_READ_TIMEOUT", "1s"),
        ("FLEETCACHE_HTTP_IDLE_TIMEOUT", "2s"),
    ])
    .await;
    let addr = node.public;
    let (slowloris, idle) = tokio::task::spawn_blocking(move || {
        // Half a request head, then nothing.
        let start = Instant::now();
        let reply = raw_exchange(
            addr,
            b"GET /blake3/ HTTP/1.1\r\nhost: x\r\n",
            Duration::from_secs(20),
        );
        let slowloris = (start.elapsed(), reply);
        // A connection that never sends anything.
        let start = Instant::now();
        let reply = raw_exchange(addr, b"", Duration::from_secs(20));
        (slowloris, (start.elapsed(), reply))
    })
    .await
    .unwrap();
    assert!(
        slowloris.0 < Duration::from_secs(15),
        "slowloris held for {:?}",
        slowloris.0
    );
    assert!(
        slowloris.1.is_empty() || status_of(&slowloris.1) == Some(408),
        "{}",
        String::from_utf8_lossy(&slowloris.1)
    );
    assert!(
        idle.0 < Duration::from_secs(15),
        "idle connection held for {:?}",
        idle.0
    );
}

#[tokio::test]
async fn a_client_that_stops_reading_is_dropped() {
    let node = TestNode::start_with(&[("FLEETCACHE_HTTP_IDLE_TIMEOUT", "1s")]).await;
    // Far more than loopback socket buffers hold, so the server's writes stall.
    let hash = node.put(pattern(48 << 20, 1)).await;
    let addr = node.public;
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(stream, "GET /blake3/{hash} HTTP/1.1\r\nhost: x\r\n\r\n").unwrap();
    // Never read. The server must give up on us and release the connection.
    eventually(
        "connection closed by server",
        Duration::from_secs(20),
        async || {
            let text = node.metrics().await;
            metric_value(
                &text,
                r#"fleetcache_http_connections_active{listener="public"}"#,
            ) == Some(0.0)
        },
    )
    .await;
    drop(stream);
}

#[tokio::test]
async fn connections_over_the_limit_are_refused() {
    let node = TestNode::start_with(&[("FLEETCACHE_HTTP_MAX_CONNECTIONS", "2")]).await;
    let held: Vec<_> = (0..2)
        .map(|_| std::net::TcpStream::connect(node.public).unwrap())
        .collect();
    eventually("two active", Duration::from_secs(5), async || {
        let text = node.metrics().await;
        metric_value(
            &text,
            r#"fleetcache_http_connections_active{listener="public"}"#,
        ) == Some(2.0)
    })
    .await;
    let addr = node.public;
    let third = tokio::task::spawn_blocking(move || {
        raw_exchange(
            addr,
            b"GET /blake3/bad HTTP/1.1\r\nhost: x\r\n\r\n",
            Duration::from_secs(5),
        )
    })
    .await
    .unwrap();
    assert!(
        third.is_empty(),
        "third connection got {:?}",
        String::from_utf8_lossy(&third)
    );
    let text = node.metrics().await;
    assert_eq!(
        metric_value(
            &text,
            r#"fleetcache_http_connections_refused_total{listener="public"}"#
        ),
        Some(1.0)
    );
    drop(held);
    eventually("slots freed", Duration::from_secs(5), async || {
        node.get("/blake3/bad").await.status == StatusCode::BAD_REQUEST
    })
    .await;
}

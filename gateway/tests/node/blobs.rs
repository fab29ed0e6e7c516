//! Serving objects by hash: headers, HEAD, errors, persistence, eviction.

use bytes::Bytes;
use http::{Method, StatusCode};

use crate::support::*;

#[tokio::test]
async fn get_returns_the_object_with_cache_headers() {
    let node = TestNode::start().await;
    for (len, seed) in [
        (0usize, 0u8),
        (1, 1),
        (4096, 2),
        (16 * 1024, 3),
        (16 * 1024 + 1, 4),
        (3 << 20, 5),
    ] {
        let data = pattern(len, seed);
        let hash = node.put(data.clone()).await;
        assert_eq!(hash, blake3_hex(&data), "hash of {len} bytes");

        let reply = node.get(&format!("/blake3/{hash}")).await;
        assert_eq!(reply.status, StatusCode::OK, "{len} bytes");
        assert_eq!(reply.body, Bytes::from(data), "{len} bytes");
        assert_eq!(
            reply.header("content-length"),
            Some(len.to_string().as_str())
        );
        assert_eq!(reply.header("etag"), Some(format!("\"{hash}\"").as_str()));
        assert_eq!(
            reply.header("cache-control"),
            Some("public, max-age=31536000, immutable")
        );
        assert_eq!(reply.header("accept-ranges"), Some("bytes"));
        assert_eq!(
            reply.header("content-type"),
            Some("application/octet-stream")
        );
        assert_eq!(reply.header("cache-status"), Some("fleetcache; hit"));
    }
}

#[tokio::test]
async fn head_matches_get_without_a_body() {
    let node = TestNode::start().await;
    for len in [0usize, 100, 100_000] {
        let hash = node.put(pattern(len, 9)).await;
        let url = node.url(&format!("/blake3/{hash}"));
        let get = node.request(Method::GET, &url, &[], Bytes::new()).await;
        let head = node.request(Method::HEAD, &url, &[], Bytes::new()).await;
        assert_eq!(head.status, StatusCode::OK);
        assert!(head.body.is_empty());
        for name in [
            "content-length",
            "content-type",
            "etag",
            "cache-control",
            "accept-ranges",
            "cache-status",
        ] {
            assert_eq!(
                head.header(name),
                get.header(name),
                "{name} for {len} bytes"
            );
        }
    }
}

#[tokio::test]
async fn content_type_given_at_ingest_is_served() {
    let node = TestNode::start().await;
    let reply = node
        .request(
            Method::POST,
            &node.admin_url("/blobs"),
            &[("content-type", "image/png")],
            Bytes::from_static(b"not really a png"),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED);
    let hash = reply.json()["hash"].as_str().unwrap().to_owned();
    let reply = node.get(&format!("/blake3/{hash}")).await;
    assert_eq!(reply.header("content-type"), Some("image/png"));
}

#[tokio::test]
async fn unknown_and_malformed_hashes() {
    let node = TestNode::start().await;
    let missing = "0".repeat(64);
    let reply = node.get(&format!("/blake3/{missing}")).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(
        reply.header("cache-status"),
        Some("fleetcache; fwd=miss; detail=not-found")
    );

    for bad in [
        "/blake3/",
        "/blake3",
        "/blake3/abc",
        &format!("/blake3/{}", "g".repeat(64)),
        &format!("/blake3/{}", "a".repeat(65)),
        &format!("/blake3/{}/extra", "a".repeat(64)),
        "/blake3/%00%01",
    ] {
        let reply = node.get(bad).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{bad}");
        let text = String::from_utf8_lossy(&reply.body);
        assert!(text.contains("malformed hash"), "{bad}: {text}");
        assert!(
            reply
                .header("cache-status")
                .unwrap()
                .starts_with("fleetcache; fwd=miss")
        );
    }

    // Upper-case hex names the same object.
    let data = pattern(1000, 1);
    let hash = node.put(data.clone()).await;
    let reply = node.get(&format!("/blake3/{}", hash.to_uppercase())).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body, Bytes::from(data));
}

#[tokio::test]
async fn other_paths_and_methods() {
    let node = TestNode::start().await;
    let reply = node.get("/some/origin/path").await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert!(reply.header("cache-status").is_some());

    let hash = node.put(pattern(10, 1)).await;
    let url = node.url(&format!("/blake3/{hash}"));
    for method in [Method::POST, Method::PUT, Method::DELETE] {
        let reply = node.request(method.clone(), &url, &[], Bytes::new()).await;
        assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED, "{method}");
        assert_eq!(reply.header("allow"), Some("GET, HEAD"));
        assert!(reply.header("cache-status").is_some());
    }
}

#[tokio::test]
async fn objects_survive_a_restart() {
    let node = TestNode::start().await;
    let small = pattern(500, 1);
    let large = pattern(1 << 20, 2);
    let h_small = node.put(small.clone()).await;
    let h_large = node.put(large.clone()).await;
    let data = node.stop().await;

    let node = TestNode::start_in(data, &[]).await;
    assert_eq!(
        node.get(&format!("/blake3/{h_small}")).await.body,
        Bytes::from(small)
    );
    assert_eq!(
        node.get(&format!("/blake3/{h_large}")).await.body,
        Bytes::from(large)
    );
    let stats = node.stats().await;
    assert_eq!(stats["store"]["objects"], 2);
    assert_eq!(stats["store"]["bytes"], 500 + (1 << 20));
    node.stop().await;
}

#[tokio::test]
async fn eviction_follows_recent_use_and_spares_pinned_objects() {
    // 1 MiB capacity, high 0.95, low 0.6: objects of 200 KiB.
    let node = TestNode::start_with(&[
        ("FLEETCACHE_STORE_CAPACITY", "1MiB"),
        ("FLEETCACHE_STORE_HIGH_WATERMARK", "0.95"),
        ("FLEETCACHE_STORE_LOW_WATERMARK", "0.6"),
    ])
    .await;
    let objects: Vec<Vec<u8>> = (0..4).map(|i| pattern(200 * 1024, i)).collect();
    let mut hashes = Vec::new();
    for data in &objects {
        hashes.push(node.put(data.clone()).await);
    }
    // Oldest first: 0,1,2,3. Pin 0, touch 1 so 2 becomes the least recent unpinned.
    let pin = node
        .admin(Method::POST, &format!("/blobs/{}/pin", hashes[0]))
        .await;
    assert_eq!(pin.status, StatusCode::NO_CONTENT);
    assert_eq!(
        node.get(&format!("/blake3/{}", hashes[1])).await.status,
        StatusCode::OK
    );
    // 5 × 200 KiB = 1000 KiB > 0.95 MiB: evict down to 0.6 MiB, which takes
    // two objects. Recorded reads are flushed before eviction picks victims.
    let h4 = node.put(pattern(200 * 1024, 4)).await;
    let status = |h: &str| {
        let h = h.to_owned();
        let node = &node;
        async move { node.get(&format!("/blake3/{h}")).await.status }
    };
    assert_eq!(
        status(&hashes[0]).await,
        StatusCode::OK,
        "pinned object kept"
    );
    assert_eq!(status(&h4).await, StatusCode::OK, "newest object kept");
    assert_eq!(
        status(&hashes[2]).await,
        StatusCode::NOT_FOUND,
        "least recently used evicted"
    );
    assert_eq!(
        status(&hashes[3]).await,
        StatusCode::NOT_FOUND,
        "next least recently used evicted"
    );
    assert_eq!(
        status(&hashes[1]).await,
        StatusCode::OK,
        "recently read object kept"
    );

    let metrics = node.metrics().await;
    assert_eq!(
        metric_value(&metrics, "fleetcache_store_evictions_total"),
        Some(2.0)
    );
    assert_eq!(
        metric_value(&metrics, "fleetcache_store_objects"),
        Some(3.0)
    );
    assert!(metric_value(&metrics, "fleetcache_store_bytes").unwrap() <= 0.6 * 1024.0 * 1024.0);
    node.stop().await;
}

#[tokio::test]
async fn hot_objects_are_served_from_the_memory_tier() {
    let node = TestNode::start_with(&[("FLEETCACHE_STORE_MEMORY_CACHE", "8MiB")]).await;
    let data = pattern((3 << 20) + 5, 9);
    let hash = node.put(data.clone()).await;
    let path = format!("/blake3/{hash}");
    assert_eq!(
        node.metric("fleetcache_memory_cache_capacity_bytes").await,
        8.0 * 1048576.0
    );
    // The first read verifies the chunks from disk into memory; the next are hits.
    for _ in 0..3 {
        let reply = node.get(&path).await;
        assert_eq!(reply.body, Bytes::from(data.clone()));
    }
    let ranged = node
        .get_with(&path, &[("range", "bytes=262140-262150")])
        .await;
    assert_eq!(ranged.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(&ranged.body[..], &data[262_140..=262_150]);
    let chunks = ((3 << 20) + 5u64).div_ceil(256 * 1024) as f64;
    assert_eq!(
        node.metric("fleetcache_memory_cache_misses_total").await,
        chunks
    );
    assert!(node.metric("fleetcache_memory_cache_hits_total").await >= 2.0 * chunks + 2.0);
    assert_eq!(
        node.metric("fleetcache_memory_cache_bytes").await,
        data.len() as f64
    );

    // Deleting the object gives the memory back at once.
    let deleted = node.admin(Method::DELETE, &format!("/blobs/{hash}")).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert_eq!(node.metric("fleetcache_memory_cache_bytes").await, 0.0);
    assert_eq!(node.get(&path).await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn with_the_memory_tier_off_nothing_is_kept() {
    let node = TestNode::start_with(&[("FLEETCACHE_STORE_MEMORY_CACHE", "0")]).await;
    let data = pattern(1 << 20, 10);
    let hash = node.put(data.clone()).await;
    for _ in 0..2 {
        assert_eq!(
            node.get(&format!("/blake3/{hash}")).await.body,
            Bytes::from(data.clone())
        );
    }
    assert_eq!(node.metric("fleetcache_memory_cache_bytes").await, 0.0);
    assert_eq!(node.metric("fleetcache_memory_cache_hits_total").await, 0.0);
    assert_eq!(
        node.metric("fleetcache_memory_cache_misses_total").await,
        0.0
    );
}

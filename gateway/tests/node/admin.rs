//! The admin API: ingest, delete, pin, stats, health, metrics, auth, limits.

use bytes::Bytes;
use http::{Method, StatusCode};

use crate::support::*;

#[tokio::test]
async fn ingest_returns_hash_size_and_location() {
    let node = TestNode::start().await;
    let data = pattern(70_000, 3);
    let reply = node
        .request(
            Method::POST,
            &node.admin_url("/blobs"),
            &[],
            Bytes::from(data.clone()),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED);
    let json = reply.json();
    let hash = blake3_hex(&data);
    assert_eq!(json["hash"], hash.as_str());
    assert_eq!(json["size"], 70_000);
    assert_eq!(
        reply.header("location"),
        Some(format!("/blake3/{hash}").as_str())
    );
    assert_eq!(reply.header("content-type"), Some("application/json"));

    // The same bytes again: already there, nothing counted twice.
    let again = node
        .request(
            Method::POST,
            &node.admin_url("/blobs"),
            &[],
            Bytes::from(data),
        )
        .await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.json()["hash"], hash.as_str());
    let stats = node.stats().await;
    assert_eq!(stats["store"]["objects"], 1);
    assert_eq!(stats["store"]["bytes"], 70_000);
}

#[tokio::test]
async fn delete_and_pin() {
    let node = TestNode::start().await;
    let hash = node.put(pattern(30_000, 1)).await;

    for action in ["pin", "unpin"] {
        let reply = node
            .admin(Method::POST, &format!("/blobs/{hash}/{action}"))
            .await;
        assert_eq!(reply.status, StatusCode::NO_CONTENT, "{action}");
    }
    let reply = node
        .admin(Method::POST, &format!("/blobs/{hash}/pin"))
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    let stats = node.stats().await;
    assert_eq!(stats["store"]["pinned_objects"], 1);

    let reply = node.admin(Method::DELETE, &format!("/blobs/{hash}")).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    assert_eq!(
        node.get(&format!("/blake3/{hash}")).await.status,
        StatusCode::NOT_FOUND
    );
    let reply = node.admin(Method::DELETE, &format!("/blobs/{hash}")).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    let reply = node
        .admin(Method::POST, &format!("/blobs/{hash}/pin"))
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);

    let reply = node.admin(Method::DELETE, "/blobs/nothex").await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    let reply = node.admin(Method::GET, &format!("/blobs/{hash}/pin")).await;
    assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED);
    let reply = node.admin(Method::GET, "/blobs").await;
    assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED);
    let stats = node.stats().await;
    assert_eq!(stats["store"]["objects"], 0);
    assert_eq!(stats["store"]["bytes"], 0);
}

#[tokio::test]
async fn health_and_metrics() {
    let node = TestNode::start().await;
    for path in ["/healthz", "/readyz"] {
        let reply = node.admin(Method::GET, path).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}");
    }
    let data = pattern(50_000, 7);
    let hash = node.put(data).await;
    node.get(&format!("/blake3/{hash}")).await;
    node.get(&format!("/blake3/{hash}")).await;
    node.get(&format!("/blake3/{}", "1".repeat(64))).await;
    node.get("/blake3/bad").await;

    let text = node.metrics().await;
    let v = |s: &str| metric_value(&text, s).unwrap_or_else(|| panic!("no sample {s} in\n{text}"));
    assert_eq!(
        v(
            r#"fleetcache_http_requests_total{cache="hit",protocol="http/1.1",route="blob",source="local",status="200"}"#
        ),
        2.0
    );
    assert_eq!(
        v(
            r#"fleetcache_http_requests_total{cache="miss",protocol="http/1.1",route="blob",source="local",status="404"}"#
        ),
        1.0
    );
    assert_eq!(
        v(
            r#"fleetcache_http_requests_total{cache="miss",protocol="http/1.1",route="blob",source="local",status="400"}"#
        ),
        1.0
    );
    assert!(v(r#"fleetcache_http_response_bytes_total{source="local"}"#) >= 100_000.0);
    assert_eq!(v("fleetcache_store_objects"), 1.0);
    assert_eq!(v("fleetcache_store_bytes"), 50_000.0);
    assert_eq!(v("fleetcache_ingest_bytes_total"), 50_000.0);
    assert_eq!(v("fleetcache_store_ingests_total"), 1.0);
    assert!(v(r#"fleetcache_http_request_duration_seconds_count{route="blob"}"#) >= 4.0);
    assert!(text.contains("fleetcache_store_capacity_bytes"));
    assert!(text.contains("fleetcache_store_evictions_total"));
}

#[tokio::test]
async fn token_is_required_when_configured() {
    let node = TestNode::start_with(&[("FLEETCACHE_ADMIN_TOKEN", "s3cret-token")]).await;
    let url = node.admin_url("/blobs");
    let reply = node
        .request(Method::POST, &url, &[], Bytes::from_static(b"x"))
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.header("www-authenticate"), Some("Bearer"));
    let reply = node
        .request(
            Method::POST,
            &url,
            &[("authorization", "Bearer wrong-token!")],
            Bytes::from_static(b"x"),
        )
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    let reply = node.admin(Method::GET, "/metrics").await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    let reply = node
        .request(
            Method::POST,
            &url,
            &[("authorization", "Bearer s3cret-token")],
            Bytes::from_static(b"x"),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED);
    // Probes need no token.
    let reply = node.admin(Method::GET, "/healthz").await;
    assert_eq!(reply.status, StatusCode::OK);
}

#[tokio::test]
async fn non_loopback_admin_without_token_refuses_to_start() {
    let data = tempfile::TempDir::new().unwrap();
    let err = fleetcache_config::load(fleetcache_config::Sources {
        file: None,
        env: vec![],
        flags: vec![
            ("admin.listen", "0.0.0.0:0".to_owned()),
            ("store.data_dir", data.path().display().to_string()),
        ],
    })
    .expect_err("must refuse");
    assert!(err.to_string().contains("admin."), "{err}");
}

#[tokio::test]
async fn uploads_over_the_limit_are_refused_and_leave_nothing() {
    let node = TestNode::start_with(&[("FLEETCACHE_ADMIN_MAX_UPLOAD_SIZE", "100KiB")]).await;
    // Declared too large.
    let reply = node
        .request(
            Method::POST,
            &node.admin_url("/blobs"),
            &[],
            Bytes::from(pattern(200 * 1024, 1)),
        )
        .await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    let stats = node.stats().await;
    assert_eq!(stats["store"]["objects"], 0);
    let tmp = node.data.path().join("tmp");
    let leftovers = std::fs::read_dir(&tmp).map(|d| d.count()).unwrap_or(0);
    assert_eq!(leftovers, 0, "temp files left in {}", tmp.display());
}

#[tokio::test]
async fn an_upload_cut_off_mid_body_stores_nothing() {
    let node = TestNode::start().await;
    // Promise 1 MiB, send 100 KiB, hang up.
    let mut request = format!(
        "POST /blobs HTTP/1.1\r\nhost: x\r\ncontent-length: {}\r\n\r\n",
        1 << 20
    )
    .into_bytes();
    request.extend(pattern(100 * 1024, 5));
    {
        use std::io::Write;
        let mut stream = std::net::TcpStream::connect(node.admin).unwrap();
        stream.write_all(&request).unwrap();
    }
    let tmp = node.data.path().join("tmp");
    eventually(
        "temp file removed",
        std::time::Duration::from_secs(10),
        async || std::fs::read_dir(&tmp).map(|d| d.count()).unwrap_or(0) == 0,
    )
    .await;
    let stats = node.stats().await;
    assert_eq!(stats["store"]["objects"], 0);
    assert_eq!(stats["store"]["bytes"], 0);
}

/// Mounts a small tmpfs for the duration of a test (needs root, as in CI).
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> SmallDisk {
        let dir = tempfile::TempDir::new().unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .expect("run mount");
        assert!(
            status.success(),
            "mounting a tmpfs needs root (CI runs as root)"
        );
        SmallDisk { dir }
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(self.dir.path())
            .status();
    }
}

#[tokio::test]
async fn a_full_disk_refuses_the_upload_and_loses_nothing() {
    let disk = SmallDisk::mount("24m");
    let data = tempfile::Builder::new()
        .tempdir_in(disk.dir.path())
        .unwrap();
    let node = TestNode::start_in(data, &[]).await;
    let kept = pattern(2 << 20, 1);
    let kept_hash = node.put(kept.clone()).await;

    let reply = node
        .request(
            Method::POST,
            &node.admin_url("/blobs"),
            &[],
            Bytes::from(pattern(40 << 20, 2)),
        )
        .await;
    assert_eq!(reply.status, StatusCode::INSUFFICIENT_STORAGE, "{reply:?}");
    let text = String::from_utf8_lossy(&reply.body).to_string();
    assert!(text.contains("space") || text.contains("full"), "{text}");
    let tmp = node.data.path().join("tmp");
    assert_eq!(
        std::fs::read_dir(&tmp).map(|d| d.count()).unwrap_or(0),
        0,
        "temp files left"
    );

    // What was stored is intact, and the node still takes what fits.
    assert_eq!(
        node.get(&format!("/blake3/{kept_hash}")).await.body,
        Bytes::from(kept.clone())
    );
    let small = node.put(pattern(1000, 3)).await;
    let data = node.stop().await;
    let node = TestNode::start_in(data, &[]).await;
    assert_eq!(
        node.get(&format!("/blake3/{kept_hash}")).await.body,
        Bytes::from(kept)
    );
    assert_eq!(
        node.get(&format!("/blake3/{small}")).await.status,
        StatusCode::OK
    );
    node.stop().await;
    drop(disk);
}

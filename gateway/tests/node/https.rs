//! HTTPS at the edge: TLS through rustls with certificates made here, HTTP/2
//! and HTTP/1.1 by ALPN, the same routes and behaviour as plaintext HTTP.

use bytes::Bytes;
use http::StatusCode;

use crate::support::{TestNode, metric_value};
use crate::tls_support::{TestCa, curl, h2_client, h2_get};

/// A node with a certificate for `localhost` and `edge.test`, plus `extra`
/// FLEETCACHE_* settings.
pub async fn tls_node(ca: &mut TestCa, extra: &[(&str, &str)]) -> TestNode {
    let issued = ca.issue(&["localhost", "edge.test"]);
    let cert = issued.cert.display().to_string();
    let key = issued.key.display().to_string();
    let mut env = vec![
        ("FLEETCACHE_HTTP_TLS_CERT_FILE", cert.as_str()),
        ("FLEETCACHE_HTTP_TLS_KEY_FILE", key.as_str()),
    ];
    env.extend_from_slice(extra);
    TestNode::start_with(&env).await
}

/// curl negotiates HTTP/2 and HTTP/1.1 over TLS and gets the same bytes,
/// ranges and validators as over plaintext.
#[tokio::test(flavor = "multi_thread")]
async fn curl_gets_objects_over_http2_and_http1_1() {
    let mut ca = TestCa::new();
    let node = tls_node(&mut ca, &[]).await;
    let https = node.https.expect("https listener");
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let hash = node.put(data.clone()).await;
    let path = format!("/blake3/{hash}");

    let ca_file = ca.ca_file();
    tokio::task::spawn_blocking(move || {
        let h2 = curl(&ca_file, https, "edge.test", &path, &["--http2"]);
        assert_eq!(h2.status, StatusCode::OK, "{}", h2.stderr);
        assert_eq!(h2.version, "2");
        assert_eq!(h2.body, data);

        let h1 = curl(&ca_file, https, "edge.test", &path, &["--http1.1"]);
        assert_eq!(h1.status, StatusCode::OK, "{}", h1.stderr);
        assert_eq!(h1.version, "1.1");
        assert_eq!(h1.body, data);

        let range = curl(
            &ca_file,
            https,
            "edge.test",
            &path,
            &["--http2", "--range", "1000-1999"],
        );
        assert_eq!(range.status, StatusCode::PARTIAL_CONTENT);
        assert_eq!(range.body, &data[1000..2000]);

        let etag = format!("If-None-Match: \"{}\"", path.trim_start_matches("/blake3/"));
        let not_modified = curl(
            &ca_file,
            https,
            "edge.test",
            &path,
            &["--http2", "--header", &etag],
        );
        assert_eq!(not_modified.status, StatusCode::NOT_MODIFIED);
        assert!(not_modified.body.is_empty());

        // A client that does not trust the CA gets no bytes.
        let untrusted = std::process::Command::new("curl")
            .args(["--silent", "--output", "/dev/null", "--resolve"])
            .arg(format!("edge.test:{}:{}", https.port(), https.ip()))
            .arg(format!("https://edge.test:{}{path}", https.port()))
            .status()
            .expect("curl");
        assert_eq!(untrusted.code(), Some(60), "curl: certificate problem");
    })
    .await
    .expect("curl checks");

    let metrics = node.metrics().await;
    for protocol in ["h2", "http/1.1"] {
        let sample = format!(
            "fleetcache_http_requests_total{{cache=\"hit\",protocol=\"{protocol}\",route=\"blob\",source=\"local\",status=\"200\"}}"
        );
        assert!(
            metric_value(&metrics, &sample).unwrap_or(0.0) >= 1.0,
            "{sample} in\n{metrics}"
        );
    }
}

/// hyper's HTTP/2 client: several requests multiplexed on one connection,
/// HEAD, a miss, and Cache-Status like HTTP/1.1.
#[tokio::test(flavor = "multi_thread")]
async fn http2_multiplexes_requests_with_the_same_answers() {
    let mut ca = TestCa::new();
    let node = tls_node(&mut ca, &[]).await;
    let https = node.https.expect("https listener");
    let data = Bytes::from(vec![7u8; 70_000]);
    let hash = node.put(data.clone()).await;
    let base = format!("https://edge.test:{}", https.port());

    let send = h2_client(&ca, https, "edge.test").await;
    let mut tasks = Vec::new();
    for i in 0..20u64 {
        let mut send = send.clone();
        let uri = format!("{base}/blake3/{hash}");
        tasks.push(tokio::spawn(async move {
            let range = format!("bytes={}-{}", i * 100, i * 100 + 99);
            h2_get(&mut send, &uri, &[("range", &range)]).await
        }));
    }
    for (i, task) in tasks.into_iter().enumerate() {
        let reply = task.await.expect("task");
        assert_eq!(reply.status, StatusCode::PARTIAL_CONTENT);
        assert_eq!(reply.body.len(), 100, "request {i}");
        assert_eq!(reply.header("cache-status"), Some("fleetcache; hit"));
    }
    let mut send = send;
    let missing = h2_get(
        &mut send,
        &format!("{base}/blake3/{}", "ab".repeat(32)),
        &[],
    )
    .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    let bad = h2_get(&mut send, &format!("{base}/blake3/nothex"), &[]).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);

    let plain = node.get(&format!("/blake3/{hash}")).await;
    assert_eq!(plain.status, StatusCode::OK);
    assert_eq!(plain.body, data);
    assert_eq!(
        node.metric("fleetcache_http_connections_total{listener=\"https\"}")
            .await,
        1.0
    );
}

/// With plaintext off, only HTTPS answers; the node still starts and serves.
#[tokio::test(flavor = "multi_thread")]
async fn plaintext_can_be_turned_off() {
    let mut ca = TestCa::new();
    let node = tls_node(&mut ca, &[("FLEETCACHE_HTTP_PLAINTEXT", "false")]).await;
    let https = node.https.expect("https listener");
    assert_eq!(node.public, https, "the public address is the HTTPS one");
    let hash = node.put(vec![1u8; 10]).await;
    let mut send = h2_client(&ca, https, "localhost").await;
    let reply = h2_get(
        &mut send,
        &format!("https://localhost:{}/blake3/{hash}", https.port()),
        &[],
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body, vec![1u8; 10]);
}

/// `fleetcache get` over HTTPS: it trusts `--cacert`, negotiates HTTP/2 and
/// verifies the bao stream; without the CA it refuses the node.
#[tokio::test(flavor = "multi_thread")]
async fn fleetcache_get_downloads_over_https() {
    let mut ca = TestCa::new();
    let node = tls_node(&mut ca, &[]).await;
    let https = node.https.expect("https listener");
    let data: Vec<u8> = (0..1_000_000u32).map(|i| (i * 7 % 253) as u8).collect();
    let hash = node.put(data.clone()).await;
    let dir = tempfile::TempDir::new().expect("tempdir");
    let output = dir.path().join("object.bin");
    let url = format!("https://localhost:{}", https.port());
    let ca_file = ca.ca_file();
    let run = {
        let (hash, output, url) = (hash.clone(), output.clone(), url.clone());
        move |trust: bool| {
            let mut cmd = std::process::Command::new(crate::support::bin());
            cmd.args(["get", &hash, "--attempts", "1", "-o"])
                .arg(&output)
                .args(["--url", &url]);
            if trust {
                cmd.arg("--cacert").arg(&ca_file);
            }
            cmd.output().expect("run fleetcache get")
        }
    };
    let untrusted = tokio::task::spawn_blocking({
        let run = run.clone();
        move || run(false)
    })
    .await
    .expect("get");
    assert!(!untrusted.status.success());
    assert!(!output.exists(), "nothing kept from an untrusted node");
    let stderr = String::from_utf8_lossy(&untrusted.stderr);
    assert!(stderr.to_lowercase().contains("certificate"), "{stderr}");

    let trusted = tokio::task::spawn_blocking(move || run(true))
        .await
        .expect("get");
    let stderr = String::from_utf8_lossy(&trusted.stderr);
    assert!(trusted.status.success(), "{stderr}");
    assert_eq!(std::fs::read(&output).expect("output"), data);
    let sample = "fleetcache_http_requests_total{cache=\"hit\",protocol=\"h2\",route=\"blob\",source=\"local\",status=\"200\"}";
    assert_eq!(
        node.metric(sample).await,
        1.0,
        "one verified download over HTTP/2"
    );
}

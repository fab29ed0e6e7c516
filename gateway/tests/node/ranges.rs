//! Range and conditional requests (RFC 9110 §13, §14) on inline and file
//! backed objects.

use bytes::Bytes;
use http::{Method, StatusCode};

use crate::support::*;

/// A 5 KiB inline object and a 100 KiB one stored as a file, so group
/// boundaries (16 KiB) are crossed.
async fn node_with_objects() -> (TestNode, Vec<(String, Vec<u8>)>) {
    let node = TestNode::start().await;
    let mut objects = Vec::new();
    for (len, seed) in [(5 * 1024, 1u8), (100 * 1024 + 7, 2)] {
        let data = pattern(len, seed);
        let hash = node.put(data.clone()).await;
        objects.push((hash, data));
    }
    (node, objects)
}

#[tokio::test]
async fn single_ranges() {
    let (node, objects) = node_with_objects().await;
    for (hash, data) in &objects {
        let len = data.len();
        let path = format!("/blake3/{hash}");
        let mut cases: Vec<(String, usize, usize)> = vec![
            ("bytes=0-0".into(), 0, 1),
            ("bytes=0-99".into(), 0, 100),
            (format!("bytes=100-{}", len - 1), 100, len),
            ("bytes=1000-".into(), 1000, len),
            ("bytes=-500".into(), len - 500, len),
            (format!("bytes=-{}", len * 2), 0, len),
            (format!("bytes=10-{}", len * 10), 10, len),
        ];
        if len > 40_000 {
            // Across the first chunk-group boundary, and a middle slice.
            cases.push(("bytes=16380-16390".into(), 16380, 16391));
            cases.push(("bytes=20000-39999".into(), 20000, 40000));
        }
        for (header, start, end) in cases {
            let reply = node.get_with(&path, &[("range", &header)]).await;
            assert_eq!(
                reply.status,
                StatusCode::PARTIAL_CONTENT,
                "{header} on {len}"
            );
            assert_eq!(
                reply.body,
                Bytes::copy_from_slice(&data[start..end]),
                "{header} on {len}"
            );
            assert_eq!(
                reply.header("content-range"),
                Some(format!("bytes {start}-{}/{len}", end - 1).as_str()),
                "{header}"
            );
            assert_eq!(
                reply.header("content-length"),
                Some((end - start).to_string().as_str())
            );
            assert_eq!(reply.header("cache-status"), Some("fleetcache; hit"));
        }
    }
}

#[tokio::test]
async fn multiple_ranges_are_multipart() {
    let (node, objects) = node_with_objects().await;
    for (hash, data) in &objects {
        let len = data.len();
        let reply = node
            .get_with(
                &format!("/blake3/{hash}"),
                &[("range", "bytes=-10,0-9,4000-4100")],
            )
            .await;
        assert_eq!(reply.status, StatusCode::PARTIAL_CONTENT);
        let content_type = reply.header("content-type").unwrap().to_owned();
        let boundary = content_type
            .strip_prefix("multipart/byteranges; boundary=")
            .expect("multipart content type");
        assert_eq!(
            reply.header("content-length"),
            Some(reply.body.len().to_string().as_str())
        );
        let parts = parse_multipart(&reply.body, boundary);
        let expected = [(0, 10), (4000, 4101), (len - 10, len)];
        assert_eq!(parts.len(), expected.len());
        for ((range_header, body), (start, end)) in parts.iter().zip(expected) {
            assert_eq!(range_header, &format!("bytes {start}-{}/{len}", end - 1));
            assert_eq!(body.as_slice(), &data[start..end]);
        }
    }
}

/// Splits a multipart/byteranges body into (Content-Range, bytes) parts.
fn parse_multipart(body: &[u8], boundary: &str) -> Vec<(String, Vec<u8>)> {
    let delimiter = format!("--{boundary}");
    let mut parts = Vec::new();
    let mut rest = body;
    // Skip to the first delimiter.
    let start = find(rest, delimiter.as_bytes()).expect("first boundary");
    rest = &rest[start + delimiter.len()..];
    loop {
        if rest.starts_with(b"--") {
            break;
        }
        rest = rest.strip_prefix(b"\r\n").expect("crlf after boundary");
        let head_end = find(rest, b"\r\n\r\n").expect("part head");
        let head = std::str::from_utf8(&rest[..head_end]).unwrap();
        let range = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Range: "))
            .expect("content-range in part")
            .to_owned();
        assert!(head.contains("Content-Type: application/octet-stream"));
        rest = &rest[head_end + 4..];
        let next = find(rest, format!("\r\n{delimiter}").as_bytes()).expect("next boundary");
        parts.push((range, rest[..next].to_vec()));
        rest = &rest[next + 2 + delimiter.len()..];
    }
    parts
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[tokio::test]
async fn unsatisfiable_ranges_are_416() {
    let (node, objects) = node_with_objects().await;
    for (hash, data) in &objects {
        let len = data.len();
        for header in [
            format!("bytes={len}-"),
            format!("bytes={}-{}", len + 5, len + 10),
            "bytes=-0".into(),
        ] {
            let reply = node
                .get_with(&format!("/blake3/{hash}"), &[("range", &header)])
                .await;
            assert_eq!(reply.status, StatusCode::RANGE_NOT_SATISFIABLE, "{header}");
            assert_eq!(
                reply.header("content-range"),
                Some(format!("bytes */{len}").as_str())
            );
            assert!(reply.header("cache-status").is_some());
        }
    }
    // A zero-length object satisfies no first-last range.
    let empty = node.put(Vec::new()).await;
    let reply = node
        .get_with(&format!("/blake3/{empty}"), &[("range", "bytes=0-0")])
        .await;
    assert_eq!(reply.status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(reply.header("content-range"), Some("bytes */0"));
}

#[tokio::test]
async fn malformed_range_headers_are_ignored() {
    let (node, objects) = node_with_objects().await;
    let (hash, data) = &objects[1];
    for header in [
        "bytes=5-1",
        "bytes=abc",
        "items=0-5",
        "bytes=",
        "bytes=1-2-3",
        "bytes=0-1,x",
    ] {
        let reply = node
            .get_with(&format!("/blake3/{hash}"), &[("range", header)])
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{header}");
        assert_eq!(reply.body.len(), data.len(), "{header}");
    }
}

#[tokio::test]
async fn head_ignores_range() {
    let (node, objects) = node_with_objects().await;
    let (hash, data) = &objects[1];
    let reply = node
        .request(
            Method::HEAD,
            &node.url(&format!("/blake3/{hash}")),
            &[("range", "bytes=0-9")],
            Bytes::new(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        reply.header("content-length"),
        Some(data.len().to_string().as_str())
    );
}

#[tokio::test]
async fn conditional_requests() {
    let (node, objects) = node_with_objects().await;
    let (hash, data) = &objects[1];
    let path = format!("/blake3/{hash}");
    let etag = format!("\"{hash}\"");

    for inm in [etag.as_str(), "*", &format!("\"other\", W/{etag}")] {
        let reply = node.get_with(&path, &[("if-none-match", inm)]).await;
        assert_eq!(reply.status, StatusCode::NOT_MODIFIED, "{inm}");
        assert!(reply.body.is_empty());
        assert_eq!(reply.header("etag"), Some(etag.as_str()));
        assert_eq!(reply.header("cache-status"), Some("fleetcache; hit"));
    }
    let reply = node
        .get_with(&path, &[("if-none-match", "\"other\"")])
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body.len(), data.len());

    let reply = node.get_with(&path, &[("if-match", "\"other\"")]).await;
    assert_eq!(reply.status, StatusCode::PRECONDITION_FAILED);
    let reply = node.get_with(&path, &[("if-match", &etag)]).await;
    assert_eq!(reply.status, StatusCode::OK);

    // If-Range with our tag honours the range; anything else gets it all.
    let reply = node
        .get_with(&path, &[("range", "bytes=0-9"), ("if-range", &etag)])
        .await;
    assert_eq!(reply.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(reply.body.len(), 10);
    for if_range in [
        "\"other\"",
        "Tue, 24 Nov 2026 10:00:00 GMT",
        &format!("W/{etag}"),
    ] {
        let reply = node
            .get_with(&path, &[("range", "bytes=0-9"), ("if-range", if_range)])
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{if_range}");
        assert_eq!(reply.body.len(), data.len());
    }
    // HEAD honours preconditions too.
    let reply = node
        .request(
            Method::HEAD,
            &node.url(&path),
            &[("if-none-match", &etag)],
            Bytes::new(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::NOT_MODIFIED);
}

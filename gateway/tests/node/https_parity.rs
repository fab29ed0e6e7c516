//! One request set over plaintext HTTP/1.1, HTTPS HTTP/1.1 and HTTPS HTTP/2:
//! the same statuses, bodies and headers, and requests counted per protocol.

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Empty};

use crate::origin_server::{Scripted, TestOrigin};
use crate::support::{Reply, TestNode, pattern, request};
use crate::tls_support::{TestCa, h1_client, h2_client};

#[derive(Debug, Clone, Copy, PartialEq)]
enum Via {
    Plain,
    Https1,
    Https2,
}

const ALL: [Via; 3] = [Via::Plain, Via::Https1, Via::Https2];

impl Via {
    fn label(self) -> &'static str {
        match self {
            Via::Plain => "plain",
            Via::Https1 => "https1",
            Via::Https2 => "https2",
        }
    }
}

/// The headers whose values must agree across protocols.
const COMPARED: &[&str] = &[
    "etag",
    "content-range",
    "content-type",
    "content-length",
    "accept-ranges",
    "cache-status",
    "cache-control",
    "last-modified",
    "via",
    "link",
    "vary",
];

struct Clients<'a> {
    node: &'a TestNode,
    ca: &'a TestCa,
    h2: hyper::client::conn::http2::SendRequest<Empty<Bytes>>,
}

impl Clients<'_> {
    async fn send(
        &mut self,
        via: Via,
        method: &Method,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Reply {
        let https = self.node.https.expect("https");
        let authority = format!("edge.test:{}", https.port());
        let build = |uri: String, host: bool| {
            let mut builder = Request::builder().method(method.clone()).uri(uri);
            if host {
                builder = builder.header("host", authority.as_str());
            }
            for (name, value) in headers {
                builder = builder.header(*name, *value);
            }
            builder.body(Empty::<Bytes>::new()).expect("request")
        };
        let response = match via {
            Via::Plain => {
                return request(
                    &self.node.client,
                    method.clone(),
                    &self.node.url(path),
                    headers,
                    Bytes::new(),
                )
                .await;
            }
            // A connection per request: an error answer may close it.
            Via::Https1 => {
                let (mut send, _) = h1_client(self.ca, https, "edge.test").await;
                send.send_request(build(path.to_owned(), true))
                    .await
                    .expect("response")
            }
            Via::Https2 => {
                self.h2.ready().await.expect("ready");
                self.h2
                    .send_request(build(format!("https://{authority}{path}"), false))
                    .await
                    .expect("response")
            }
        };
        let (parts, body) = response.into_parts();
        Reply {
            status: parts.status,
            headers: parts.headers,
            body: body.collect().await.expect("body").to_bytes(),
        }
    }
}

/// Multipart boundaries are random per response: replace them.
fn unbound(text: &[u8]) -> Vec<u8> {
    const MARK: &[u8] = b"fleetcache-";
    let mut out = Vec::with_capacity(text.len());
    let mut at = 0;
    while at < text.len() {
        if text[at..].starts_with(MARK) {
            let hex = &text[at + MARK.len()..];
            let len = hex
                .iter()
                .take(16)
                .take_while(|b| b.is_ascii_hexdigit())
                .count();
            if len == 16 {
                out.extend_from_slice(b"fleetcache-BOUNDARY");
                at += MARK.len() + 16;
                continue;
            }
        }
        out.push(text[at]);
        at += 1;
    }
    out
}

/// `Cache-Status`'s `ttl` counts down with the clock: not compared.
fn untimed(name: &str, value: String) -> String {
    if name != "cache-status" {
        return value;
    }
    value
        .split("; ")
        .map(|part| {
            if part.starts_with("ttl=") {
                "ttl=N"
            } else {
                part
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// What must agree: status, body and the compared headers.
fn comparable(reply: &Reply) -> (StatusCode, Vec<u8>, Vec<(String, String)>) {
    let headers = COMPARED
        .iter()
        .filter_map(|name| {
            let value = reply.header(name)?;
            let value = String::from_utf8(unbound(value.as_bytes())).expect("text");
            Some(((*name).to_owned(), untimed(name, value)))
        })
        .collect();
    (reply.status, unbound(&reply.body), headers)
}

/// Public requests (not the admin API's) counted with `protocol`.
fn requests(metrics: &str, protocol: &str) -> f64 {
    let label = format!("protocol=\"{protocol}\"");
    metrics
        .lines()
        .filter(|l| l.starts_with("fleetcache_http_requests_total{") && l.contains(&label))
        .filter(|l| !l.contains("route=\"admin_"))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_feature_answers_the_same_over_http1_https1_and_http2() {
    let origin = TestOrigin::start().await;
    let page = pattern(30_000, 7);
    for via in ALL {
        let served = page.clone();
        origin.route(&format!("/page?via={}", via.label()), move |_| {
            Scripted::ok(served.clone())
                .header("cache-control", "max-age=300")
                .header("content-type", "text/html")
                .header("etag", "\"v1\"")
        });
    }
    let url = origin.url();
    let mut ca = TestCa::new();
    let node = crate::https::tls_node(&mut ca, &[("FLEETCACHE_ORIGIN", url.as_str())]).await;
    let https = node.https.expect("https");
    let data = pattern(1000, 8);
    let hash = node.put(data.clone()).await;
    let etag = format!("\"{hash}\"");
    let blob = format!("/blake3/{hash}");
    let unknown = format!("/blake3/{}", "ab".repeat(32));

    type Case<'a> = (&'a str, Method, String, Vec<(&'a str, &'a str)>, StatusCode);
    let cases: Vec<Case<'_>> = vec![
        ("full", Method::GET, blob.clone(), vec![], StatusCode::OK),
        (
            "range",
            Method::GET,
            blob.clone(),
            vec![("range", "bytes=10-19")],
            StatusCode::PARTIAL_CONTENT,
        ),
        (
            "multipart range",
            Method::GET,
            blob.clone(),
            vec![("range", "bytes=0-9,20-29")],
            StatusCode::PARTIAL_CONTENT,
        ),
        (
            "suffix range",
            Method::GET,
            blob.clone(),
            vec![("range", "bytes=-10")],
            StatusCode::PARTIAL_CONTENT,
        ),
        (
            "unsatisfiable range",
            Method::GET,
            blob.clone(),
            vec![("range", "bytes=5000-")],
            StatusCode::RANGE_NOT_SATISFIABLE,
        ),
        (
            "if-none-match",
            Method::GET,
            blob.clone(),
            vec![("if-none-match", &etag)],
            StatusCode::NOT_MODIFIED,
        ),
        (
            "if-range matching",
            Method::GET,
            blob.clone(),
            vec![("if-range", &etag), ("range", "bytes=0-4")],
            StatusCode::PARTIAL_CONTENT,
        ),
        (
            "if-range stale",
            Method::GET,
            blob.clone(),
            vec![("if-range", "\"other\""), ("range", "bytes=0-4")],
            StatusCode::OK,
        ),
        ("head", Method::HEAD, blob.clone(), vec![], StatusCode::OK),
        (
            "unknown hash",
            Method::GET,
            unknown,
            vec![],
            StatusCode::NOT_FOUND,
        ),
        (
            "bad hash",
            Method::GET,
            "/blake3/nothex".to_owned(),
            vec![],
            StatusCode::BAD_REQUEST,
        ),
    ];

    let mut clients = Clients {
        node: &node,
        ca: &ca,
        h2: h2_client(&ca, https, "edge.test").await,
    };
    let mut sent = 0.0;
    for (what, method, path, headers, status) in &cases {
        let mut answers = Vec::new();
        for via in ALL {
            let reply = clients.send(via, method, path, headers).await;
            assert_eq!(reply.status, *status, "{what} over {via:?}: {reply:?}");
            answers.push((via, comparable(&reply)));
        }
        let (_, reference) = &answers[0];
        for (via, answer) in &answers[1..] {
            assert_eq!(
                (answer.0, &answer.2),
                (reference.0, &reference.2),
                "{what}: {via:?} differs from plaintext HTTP/1.1"
            );
            assert!(answer.1 == reference.1, "{what}: {via:?}: another body");
        }
        sent += 1.0;
    }
    // The bodies are what they should be (the comparison alone would pass
    // if all three were equally wrong).
    let full = clients.send(Via::Https2, &Method::GET, &blob, &[]).await;
    assert_eq!(full.body, data);
    let suffix = clients
        .send(Via::Https2, &Method::GET, &blob, &[("range", "bytes=-10")])
        .await;
    assert_eq!(suffix.body, data[990..]);
    assert_eq!(suffix.header("content-range"), Some("bytes 990-999/1000"));
    let head = clients.send(Via::Https2, &Method::HEAD, &blob, &[]).await;
    assert!(head.body.is_empty());
    assert_eq!(head.header("content-length"), Some("1000"));

    // Origin mode: each protocol's own URL, a miss and then a hit.
    let mut per_via = Vec::new();
    for via in ALL {
        let path = format!("/page?via={}", via.label());
        let miss = clients.send(via, &Method::GET, &path, &[]).await;
        node.settle().await;
        let hit = clients.send(via, &Method::GET, &path, &[]).await;
        assert_eq!(miss.status, StatusCode::OK, "{via:?}: {miss:?}");
        assert_eq!(miss.body, page, "{via:?}");
        assert!(
            miss.header("cache-status")
                .unwrap_or_default()
                .contains("fwd=uri-miss"),
            "{via:?}: {miss:?}"
        );
        assert!(
            hit.header("cache-status")
                .unwrap_or_default()
                .starts_with("fleetcache; hit"),
            "{via:?}: {hit:?}"
        );
        assert_eq!(origin.hits(&path), 1, "{via:?}: one origin fetch");
        per_via.push((via, comparable(&miss), comparable(&hit)));
    }
    let (_, miss0, hit0) = &per_via[0];
    for (via, miss, hit) in &per_via[1..] {
        assert_eq!(
            (miss.0, &miss.2),
            (miss0.0, &miss0.2),
            "origin miss: {via:?} differs"
        );
        assert_eq!(
            (hit.0, &hit.2),
            (hit0.0, &hit0.2),
            "origin hit: {via:?} differs"
        );
        assert!(
            miss.1 == miss0.1 && hit.1 == hit0.1,
            "origin: {via:?}: another body"
        );
    }
    sent += 2.0;

    // Counted per protocol: plaintext and HTTPS HTTP/1.1 are both http/1.1.
    let extra_h2 = 3.0;
    drop(clients);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let metrics = node.metrics().await;
        let (h2, h1) = (requests(&metrics, "h2"), requests(&metrics, "http/1.1"));
        if h2 == sent + extra_h2 && h1 == 2.0 * sent {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "requests recorded: h2 {h2}, http/1.1 {h1}; expected {} and {}:\n{}",
            sent + extra_h2,
            2.0 * sent,
            metrics
                .lines()
                .filter(|l| l.starts_with("fleetcache_http_requests_total"))
                .collect::<Vec<_>>()
                .join("\n")
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

//! `?format=bao`: bodies a client verifies against the hash with bao-tree's
//! decoder (whole and ranged), their tags, conditionals and errors, a
//! corrupted data file that must never yield a verified wrong byte, and a
//! miss answered once the fill has stored the object. `cli.rs` runs
//! `fleetcache get` against real node processes.

mod cli;
mod snippet;

use bao_tree::io::BaoContentItem;
use bao_tree::io::sync::DecodeResponseIter;
use bao_tree::{BaoTree, BlockSize, ChunkRanges};
use bytes::Bytes;
use http::{Method, StatusCode};
use http_body_util::{BodyExt, Full};

use crate::support::*;
use snippet::{groups, verify};

const GROUP: u64 = 16 * 1024;
const MEDIA_TYPE: &str = "application/vnd.fleetcache.bao";

pub fn bao_path(hash: &str) -> String {
    format!("/blake3/{hash}?format=bao")
}

pub fn root(hash: &str) -> bao_tree::blake3::Hash {
    bao_tree::blake3::Hash::from_hex(hash).expect("hex hash")
}

/// Verified groups must be the object's bytes, in order and without gaps.
fn assert_groups_are_the_object(data: &[u8], verified: &[(u64, Vec<u8>)], what: &str) {
    let mut next = verified.first().map_or(0, |g| g.0);
    for (offset, bytes) in verified {
        assert_eq!(*offset, next, "{what}: groups out of order");
        let end = *offset as usize + bytes.len();
        assert!(
            end <= data.len() && bytes[..] == data[*offset as usize..end],
            "{what}: the group at {offset} verified but differs from the object"
        );
        next = end as u64;
    }
}

/// The length of a whole body: size prefix, data, 64 bytes per hash pair.
fn whole_len(size: u64) -> u64 {
    8 + size + 64 * (size.div_ceil(GROUP).max(1) - 1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whole_bao_bodies_verify_and_decode_to_the_object() {
    let node = TestNode::start().await;
    for size in [0usize, 1, 16 * 1024, 16 * 1024 + 1, (3 << 20) + 7] {
        let data = pattern(size, size as u8);
        let hash = node.put(data.clone()).await;
        let reply = node.get(&bao_path(&hash)).await;
        assert_eq!(reply.status, StatusCode::OK, "{size}: {reply:?}");
        assert_eq!(reply.header("content-type"), Some(MEDIA_TYPE));
        let len = reply.body.len() as u64;
        assert_eq!(len, whole_len(size as u64), "{size}");
        assert_eq!(
            reply.header("content-length"),
            Some(len.to_string().as_str())
        );
        assert_eq!(
            reply.header("fleetcache-object-size"),
            Some(size.to_string().as_str())
        );
        assert_eq!(
            reply.header("etag"),
            Some(format!("\"{hash}.bao\"").as_str())
        );
        assert_eq!(
            reply.header("cache-control"),
            Some("public, max-age=31536000, immutable")
        );
        assert_eq!(reply.header("vary"), Some("range"));
        assert_eq!(reply.header("cache-status"), Some("fleetcache; hit"));
        assert_eq!(reply.header("fleetcache-bao-range"), None);
        assert_eq!(reply.body[..8], (size as u64).to_le_bytes());
        let verified = verify(root(&hash), &reply.body[..], &groups(0, None)).unwrap();
        assert_groups_are_the_object(&data, &verified, &format!("size {size}"));
        let total: usize = verified.iter().map(|g| g.1.len()).sum();
        assert_eq!(total, size, "every byte verified");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ranged_bao_bodies_carry_only_the_groups_asked_for() {
    let node = TestNode::start().await;
    for size in [1u64, 16 * 1024, 16 * 1024 + 1, (3 << 20) + 7] {
        let data = pattern(size as usize, 3);
        let hash = node.put(data.clone()).await;
        let last = size - 1;
        let mut asks: Vec<(u64, Option<u64>)> = vec![
            (0, Some(0)),
            (last, Some(last)),
            (size / 2, Some((size / 2 + 10).min(last))),
            (size / 2, None),
        ];
        if size > 2 * GROUP {
            asks.push((GROUP - 1, Some(GROUP)));
            asks.push((GROUP, Some(2 * GROUP - 1)));
        }
        for (first, end) in asks {
            let range = match end {
                Some(end) => format!("bytes={first}-{end}"),
                None => format!("bytes={first}-"),
            };
            let what = format!("size {size}, {range}");
            let reply = node.get_with(&bao_path(&hash), &[("range", &range)]).await;
            // Not a 206: the body is no byte range of anything.
            assert_eq!(reply.status, StatusCode::OK, "{what}: {reply:?}");
            assert_eq!(reply.header("vary"), Some("range"), "{what}");
            assert_eq!(reply.header("content-type"), Some(MEDIA_TYPE));
            assert_eq!(
                reply.header("content-length"),
                Some(reply.body.len().to_string().as_str())
            );
            let verified = verify(root(&hash), &reply.body[..], &groups(first, end)).unwrap();
            assert_groups_are_the_object(&data, &verified, &what);
            let span_start = first / GROUP * GROUP;
            let span_end = end.map_or(size, |e| ((e / GROUP + 1) * GROUP).min(size));
            assert_eq!(verified.first().map(|g| g.0), Some(span_start), "{what}");
            let got_end = verified.last().map(|g| g.0 + g.1.len() as u64);
            assert_eq!(got_end, Some(span_end), "{what}");
            let tag = if span_start == 0 && span_end == size {
                assert_eq!(reply.header("fleetcache-bao-range"), None, "{what}");
                format!("\"{hash}.bao\"")
            } else {
                assert_eq!(
                    reply.header("fleetcache-bao-range"),
                    Some(format!("bytes {span_start}-{}/{size}", span_end - 1).as_str()),
                    "{what}"
                );
                assert!(reply.body.len() < whole_len(size) as usize, "{what}");
                format!("\"{hash}.bao.{span_start}-{}\"", span_end - 1)
            };
            assert_eq!(reply.header("etag"), Some(tag.as_str()), "{what}");
        }
        // A suffix range is its bytes from the end.
        let suffix = node
            .get_with(&bao_path(&hash), &[("range", "bytes=-1")])
            .await;
        let verified = verify(root(&hash), &suffix.body[..], &groups(last, Some(last))).unwrap();
        assert_groups_are_the_object(&data, &verified, "suffix");
        assert_eq!(verified.last().map(|g| g.0 + g.1.len() as u64), Some(size));
    }
    // Several ranges are merged into the groups covering them all.
    let data = pattern(100_000, 8);
    let hash = node.put(data.clone()).await;
    let reply = node
        .get_with(&bao_path(&hash), &[("range", "bytes=0-0, 99999-99999")])
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        reply.header("etag"),
        Some(format!("\"{hash}.bao.0-16383_98304-99999\"").as_str())
    );
    let mut both = groups(0, Some(0));
    both |= groups(99_999, Some(99_999));
    let verified = verify(root(&hash), &reply.body[..], &both).unwrap();
    let offsets: Vec<u64> = verified.iter().map(|g| g.0).collect();
    assert_eq!(offsets, [0, 98_304]);
    for (offset, bytes) in &verified {
        let start = *offset as usize;
        assert!(bytes[..] == data[start..start + bytes.len()]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tags_conditionals_head_and_errors() {
    let node = TestNode::start().await;
    let data = pattern(100_000, 5);
    let hash = node.put(data.clone()).await;
    let path = bao_path(&hash);
    let whole = node.get(&path).await;
    let whole_tag = format!("\"{hash}.bao\"");
    assert_eq!(whole.header("etag"), Some(whole_tag.as_str()));

    // HEAD: the same fields, no body, whole or ranged.
    let head = node
        .request(Method::HEAD, &node.url(&path), &[], Bytes::new())
        .await;
    assert_eq!(head.status, StatusCode::OK);
    assert!(head.body.is_empty());
    for name in [
        "content-length",
        "etag",
        "content-type",
        "vary",
        "cache-control",
    ] {
        assert_eq!(head.header(name), whole.header(name), "{name}");
    }
    let ranged = node
        .get_with(&path, &[("range", "bytes=20000-20001")])
        .await;
    let ranged_tag = format!("\"{hash}.bao.16384-32767\"");
    assert_eq!(ranged.header("etag"), Some(ranged_tag.as_str()));
    let ranged_head = node
        .request(
            Method::HEAD,
            &node.url(&path),
            &[("range", "bytes=20000-20001")],
            Bytes::new(),
        )
        .await;
    assert!(ranged_head.body.is_empty());
    for name in ["content-length", "etag", "fleetcache-bao-range"] {
        assert_eq!(ranged_head.header(name), ranged.header(name), "{name}");
    }

    // If-None-Match with the body's own tag: 304, per format and per range.
    let not_modified = node.get_with(&path, &[("if-none-match", &whole_tag)]).await;
    assert_eq!(not_modified.status, StatusCode::NOT_MODIFIED);
    assert!(not_modified.body.is_empty());
    assert_eq!(not_modified.header("etag"), Some(whole_tag.as_str()));
    assert_eq!(not_modified.header("vary"), Some("range"));
    let ranged_304 = node
        .get_with(
            &path,
            &[("range", "bytes=30000-"), ("if-none-match", &ranged_tag)],
        )
        .await;
    assert_eq!(
        ranged_304.status,
        StatusCode::OK,
        "bytes=30000- is another body"
    );
    let ranged_304 = node
        .get_with(
            &path,
            &[
                ("range", "bytes=17000-17001"),
                ("if-none-match", &ranged_tag),
            ],
        )
        .await;
    assert_eq!(
        ranged_304.status,
        StatusCode::NOT_MODIFIED,
        "same groups, same body"
    );
    let other = node
        .get_with(
            &path,
            &[("range", "bytes=0-0"), ("if-none-match", &whole_tag)],
        )
        .await;
    assert_eq!(other.status, StatusCode::OK);
    // The raw bytes and the encoding are different representations.
    let raw_tag = format!("\"{hash}\"");
    let bao_vs_raw = node.get_with(&path, &[("if-none-match", &raw_tag)]).await;
    assert_eq!(bao_vs_raw.status, StatusCode::OK);
    let raw_vs_bao = node
        .get_with(&format!("/blake3/{hash}"), &[("if-none-match", &whole_tag)])
        .await;
    assert_eq!(raw_vs_bao.status, StatusCode::OK);
    assert!(raw_vs_bao.body == data);
    let failed = node
        .get_with(&path, &[("if-match", "\"something-else\"")])
        .await;
    assert_eq!(failed.status, StatusCode::PRECONDITION_FAILED);
    // If-Range naming another representation: the whole body.
    let if_range = node
        .get_with(
            &path,
            &[("range", "bytes=0-0"), ("if-range", "\"something-else\"")],
        )
        .await;
    assert_eq!(if_range.header("etag"), Some(whole_tag.as_str()));
    assert!(if_range.body == whole.body);

    // Unsatisfiable ranges: 416 with the size.
    let beyond = node.get_with(&path, &[("range", "bytes=100000-")]).await;
    assert_eq!(beyond.status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(beyond.header("content-range"), Some("bytes */100000"));
    let empty = node.put(Vec::new()).await;
    let empty_range = node
        .get_with(&bao_path(&empty), &[("range", "bytes=0-")])
        .await;
    assert_eq!(empty_range.status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(empty_range.header("content-range"), Some("bytes */0"));

    // Formats: raw is the default; anything else is a 400 naming the choices.
    let raw = node.get(&format!("/blake3/{hash}?format=raw")).await;
    assert_eq!(raw.header("etag"), Some(raw_tag.as_str()));
    assert!(raw.body == data);
    let unknown = node.get(&format!("/blake3/{hash}?format=car")).await;
    assert_eq!(unknown.status, StatusCode::BAD_REQUEST);
    let text = String::from_utf8_lossy(&unknown.body);
    assert!(text.contains("allowed: raw, bao"), "{text}");
    let missing = node.get(&bao_path(&"ab".repeat(32))).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);

    let requests = node
        .metric(
            r#"fleetcache_http_requests_total{cache="hit",protocol="http/1.1",route="blob",source="local",status="200"}"#,
        )
        .await;
    assert!(requests >= 5.0, "bao requests are counted: {requests}");
}

/// Streams a GET, returning the bytes received, the promised length and
/// whether the body ended with an error (a cut transfer) instead of cleanly.
async fn fetch_streaming(
    node: &TestNode,
    path: &str,
    range: Option<&str>,
) -> (StatusCode, Vec<u8>, u64, bool) {
    let mut request = http::Request::get(node.url(path));
    if let Some(range) = range {
        request = request.header("range", range);
    }
    let response = node
        .client
        .request(request.body(Full::new(Bytes::new())).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let promised = response
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok()?.parse().ok())
        .unwrap_or(0);
    let mut body = response.into_body();
    let mut received = Vec::new();
    let mut cut = false;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => received.extend_from_slice(&frame.into_data().unwrap_or_default()),
            Err(_) => {
                cut = true;
                break;
            }
        }
    }
    (status, received, promised, cut)
}

/// Decodes `received` (a body, possibly cut) with bao-tree until it fails:
/// the groups that verified, or `None` if the body decoded completely.
fn decode_until_failure(
    hash: &str,
    size: u64,
    received: &[u8],
    asked: &ChunkRanges,
) -> Option<Vec<(u64, Vec<u8>)>> {
    // The connection may close before even the size prefix is out.
    let Some((prefix, encoded)) = received.split_first_chunk::<8>() else {
        return Some(Vec::new());
    };
    assert_eq!(u64::from_le_bytes(*prefix), size);
    let tree = BaoTree::new(size, BlockSize::from_chunk_log(4));
    let mut verified = Vec::new();
    for item in DecodeResponseIter::new(root(hash), tree, encoded, asked) {
        match item {
            Ok(BaoContentItem::Leaf(leaf)) => verified.push((leaf.offset, leaf.data.to_vec())),
            Ok(BaoContentItem::Parent(_)) => {}
            Err(_) => return Some(verified),
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupted_data_file_never_yields_a_verified_wrong_byte() {
    let node = TestNode::start().await;
    let size = (1 << 20) + 5;
    // (where the damage is, the range asked for)
    let cases: [(u64, Option<&str>); 3] = [
        (100, None),
        (600_000, None),
        (600_000, Some("bytes=590000-700000")),
    ];
    for (i, (damage, range)) in cases.into_iter().enumerate() {
        let data = pattern(size, 20 + i as u8);
        let hash = node.put(data.clone()).await;
        flip_byte(&node.data.path().join(format!("blobs/{hash}.data")), damage);
        let what = format!("damage at {damage}, range {range:?}");
        let (status, received, promised, cut) =
            fetch_streaming(&node, &bao_path(&hash), range).await;
        // The head goes out before the damage is found; the body is then cut.
        assert_eq!(status, StatusCode::OK, "{what}");
        assert!(cut, "{what}: the body ended cleanly");
        assert!((received.len() as u64) < promised, "{what}");

        // Decoding what arrived: every group that verifies is the object's,
        // the damaged group never verifies, and decoding never completes.
        let asked = match range {
            None => ChunkRanges::all(),
            Some(_) => groups(590_000, Some(700_000)),
        };
        let verified = decode_until_failure(&hash, size as u64, &received, &asked)
            .unwrap_or_else(|| panic!("{what}: a cut stream decoded completely"));
        assert_groups_are_the_object(&data, &verified, &what);
        let damaged_group = damage / GROUP * GROUP;
        assert!(
            verified.iter().all(|(offset, _)| *offset != damaged_group),
            "{what}: the damaged group verified"
        );
        // The store quarantined it: the next request does not find it.
        let after = node.get(&bao_path(&hash)).await;
        assert_eq!(after.status, StatusCode::NOT_FOUND, "{what}");
    }
    assert!(node.metric("fleetcache_store_corrupt_detected_total").await >= 3.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_miss_is_filled_from_peers_then_encoded() {
    let mut fleet = Fleet::new();
    let a = TestNode::start_in_fleet(&mut fleet, &[]).await;
    let b = TestNode::start_in_fleet(&mut fleet, &[a.swarm.unwrap()]).await;
    b.wait_peers_up(1).await;
    // HEAD needs only the size, which the fill proves first.
    let headed = pattern(300_000, 7);
    let headed_hash = a.put(headed.clone()).await;
    let head = b
        .request(
            Method::HEAD,
            &b.url(&bao_path(&headed_hash)),
            &[],
            Bytes::new(),
        )
        .await;
    assert_eq!(head.status, StatusCode::OK, "{head:?}");
    assert!(head.body.is_empty());
    assert_eq!(
        head.header("content-length"),
        Some(whole_len(headed.len() as u64).to_string().as_str())
    );

    // A GET waits for the fill to store the object, then encodes it.
    let data = pattern((2 << 20) + 3, 4);
    let hash = a.put(data.clone()).await;
    let ranged = b
        .get_with(&bao_path(&hash), &[("range", "bytes=1000000-1000100")])
        .await;
    assert_eq!(ranged.status, StatusCode::OK, "{ranged:?}");
    assert_eq!(
        ranged.header("cache-status"),
        Some("fleetcache; fwd=miss; stored; detail=peer")
    );
    let verified = verify(
        root(&hash),
        &ranged.body[..],
        &groups(1_000_000, Some(1_000_100)),
    )
    .unwrap();
    assert_groups_are_the_object(&data, &verified, "ranged miss");
    assert!(!verified.is_empty());
    b.settle().await;
    let whole = b.get(&bao_path(&hash)).await;
    assert_eq!(whole.header("cache-status"), Some("fleetcache; hit"));
    let verified = verify(root(&hash), &whole.body[..], &groups(0, None)).unwrap();
    assert_groups_are_the_object(&data, &verified, "after the fill");
    assert_eq!(
        verified.iter().map(|g| g.1.len()).sum::<usize>(),
        data.len()
    );

    // Nobody holds it: 404, as on the raw route.
    let nobody = b.get(&bao_path(&"cd".repeat(32))).await;
    assert_eq!(nobody.status, StatusCode::NOT_FOUND);
}

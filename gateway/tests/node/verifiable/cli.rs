//! `fleetcache get` (the real binary) against real nodes: resuming from a
//! second node after the first is killed mid-download, dropping nodes whose
//! bytes fail verification; and a node process's memory while it streams a
//! large object as `?format=bao`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use bao_tree::io::BaoContentItem;
use bao_tree::io::sync::DecodeResponseIter;
use bao_tree::{BaoTree, BlockSize, ChunkRanges};
use bytes::Bytes;
use http::{Method, StatusCode};

use super::{MEDIA_TYPE, bao_path, root};
use crate::origin_server::{Scripted, TestOrigin};
use crate::support::*;

const RESPONSE_BYTES: &str = r#"fleetcache_http_response_bytes_total{source="local"}"#;

/// Ingests `data` through a node's admin API; returns the hash.
async fn ingest(admin: SocketAddr, data: Bytes) -> String {
    let reply = request(
        &client(),
        Method::POST,
        &format!("http://{admin}/blobs"),
        &[],
        data,
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{reply:?}");
    reply.json()["hash"].as_str().unwrap().to_owned()
}

/// A metric of the node whose admin API is at `admin`.
async fn metric_at(admin: SocketAddr, sample: &str) -> f64 {
    let reply = request(
        &client(),
        Method::GET,
        &format!("http://{admin}/metrics"),
        &[],
        Bytes::new(),
    )
    .await;
    metric_value(&String::from_utf8_lossy(&reply.body), sample).unwrap_or(0.0)
}

/// The files `get` writes before renaming into place.
fn temp_files(dir: &Path) -> Vec<(String, u64)> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            let len = entry.metadata().ok()?.len();
            name.starts_with(".fleetcache-get-").then_some((name, len))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_resumes_from_the_next_node_when_the_first_is_killed() {
    let dir = tempfile::TempDir::new().unwrap();
    let a = Proc::serve(&dir.path().join("a"), &[]);
    let b = Proc::serve(&dir.path().join("b"), &[]);
    let size = 64u64 << 20;
    let data = Bytes::from(pattern(size as usize, 31));
    let hash = ingest(a.admin, data.clone()).await;
    assert_eq!(ingest(b.admin, data.clone()).await, hash);
    let out_dir = dir.path().join("out");
    std::fs::create_dir(&out_dir).unwrap();
    let output = out_dir.join("object.bin");
    let (url_a, url_b) = (
        format!("http://{}", a.public),
        format!("http://{}", b.public),
    );

    // Paced at 16 MiB/s the download takes about four seconds, so A is
    // mid-way through it when it is killed below.
    let get = Command::new(bin())
        .args(["get", &hash, "-o"])
        .arg(&output)
        .args(["--url", &url_a, "--url", &url_b, "--limit-rate", "16M"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    eventually(
        "4 MiB verified from A",
        Duration::from_secs(30),
        async || temp_files(&out_dir).iter().any(|(_, len)| *len >= 4 << 20),
    )
    .await;
    a.kill9();
    let out = tokio::task::spawn_blocking(move || get.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("fleetcache get said:\n{stderr}");
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains(&format!("{url_a} failed")), "{stderr}");
    assert!(
        stderr.contains("resuming from byte") && stderr.contains(&url_b),
        "{stderr}"
    );
    let written = std::fs::read(&output).unwrap();
    assert!(written == data[..], "the output differs from the object");
    assert!(temp_files(&out_dir).is_empty(), "temp file left behind");

    // B was asked for the rest only: it sent less than the object.
    eventually(
        "B's answer is counted",
        Duration::from_secs(5),
        async || metric_at(b.admin, RESPONSE_BYTES).await > 0.0,
    )
    .await;
    let sent_by_b = metric_at(b.admin, RESPONSE_BYTES).await as u64;
    assert!(
        sent_by_b < size - (4 << 20),
        "B sent {sent_by_b} bytes of a {size}-byte object"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_drops_nodes_whose_bytes_fail_verification() {
    let good = TestNode::start().await;
    let data = pattern((1 << 20) + 77, 12);
    let hash = good.put(data.clone()).await;
    let path = bao_path(&hash);
    let honest = good.get(&path).await.body;
    eventually(
        "the first answer is counted",
        Duration::from_secs(5),
        async || good.metric(RESPONSE_BYTES).await >= honest.len() as f64,
    )
    .await;
    let before = good.metric(RESPONSE_BYTES).await as u64;

    // One node sends the real encoding with a byte flipped halfway (its first
    // half verifies), another sends noise of the right length.
    let mut flipped = honest.to_vec();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0x01;
    let flipped = Bytes::from(flipped);
    let liar = TestOrigin::start().await;
    let answer = flipped.clone();
    liar.route(&path, move |_| {
        Scripted::ok(answer.clone()).header("content-type", MEDIA_TYPE)
    });
    let noise = TestOrigin::start().await;
    let junk = Bytes::from(pattern(honest.len(), 99));
    noise.route(&path, move |_| {
        Scripted::ok(junk.clone()).header("content-type", MEDIA_TYPE)
    });

    let dir = tempfile::TempDir::new().unwrap();
    let output = dir.path().join("object.bin");
    let args: Vec<String> = [
        "get",
        &hash,
        "-o",
        &output.display().to_string(),
        "--url",
        &noise.url(),
        "--url",
        &liar.url(),
        "--url",
        &good.url(""),
    ]
    .map(str::to_owned)
    .to_vec();
    let (code, _, err) = run_get(args).await;
    eprintln!("fleetcache get said:\n{err}");
    assert_eq!(code, 0, "{err}");
    assert!(std::fs::read(&output).unwrap() == data, "wrong output");
    assert!(err.contains("fail verification"), "{err}");
    assert_eq!(noise.hits(&path), 1, "a node caught lying is asked once");
    assert_eq!(liar.hits(&path), 1, "a node caught lying is asked once");
    // The good node sent only what the liar's first half did not prove.
    eventually(
        "the good answer is counted",
        Duration::from_secs(5),
        async || good.metric(RESPONSE_BYTES).await > before as f64,
    )
    .await;
    let sent = good.metric(RESPONSE_BYTES).await as u64 - before;
    assert!(
        sent < honest.len() as u64 * 3 / 4,
        "the good node sent {sent} of {} bytes",
        honest.len()
    );

    // With only a liar: a failure naming why, no output, and no second
    // request to it (its bytes failed once; --attempts would allow three).
    let liar_hits = liar.hits(&path);
    let lonely = dir.path().join("never.bin");
    let args: Vec<String> = [
        "get",
        &hash,
        "-o",
        &lonely.display().to_string(),
        "--url",
        &liar.url(),
    ]
    .map(str::to_owned)
    .to_vec();
    let (code, _, err) = run_get(args).await;
    eprintln!("fleetcache get said:\n{err}");
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("no node delivered"), "{err}");
    assert!(err.contains("fail verification"), "{err}");
    assert_eq!(liar.hits(&path), liar_hits + 1, "a liar was asked again");
    assert!(!lonely.exists(), "output written from a liar");
    assert!(temp_files(dir.path()).is_empty(), "temp file left behind");
    // To stdout, only verified bytes: the liar's first half at most.
    let out = tokio::task::spawn_blocking({
        let (hash, url) = (hash.clone(), liar.url());
        move || {
            Command::new(bin())
                .args(["get", &hash, "--url", &url])
                .stdin(Stdio::null())
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.len() < data.len() && out.stdout.len() % (16 << 10) == 0);
    assert!(
        out.stdout[..] == data[..out.stdout.len()],
        "unverified bytes on stdout"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_writes_empty_tiny_and_one_group_objects() {
    let node = TestNode::start().await;
    let dir = tempfile::TempDir::new().unwrap();
    for size in [0usize, 1, 16 * 1024, 16 * 1024 + 1] {
        let data = pattern(size, 40);
        let hash = node.put(data.clone()).await;
        let output = dir.path().join(format!("{size}.bin"));
        let args: Vec<String> = [
            "get",
            &hash,
            "-o",
            &output.display().to_string(),
            "--url",
            &node.url(""),
        ]
        .map(str::to_owned)
        .to_vec();
        let (code, _, err) = run_get(args).await;
        assert_eq!(code, 0, "{size}: {err}");
        assert!(std::fs::read(&output).unwrap() == data, "{size}");
    }
    // Usage errors are 64, before any request.
    let hash = blake3_hex(b"");
    for bad in [
        ["--limit-rate", "fast"],
        ["--attempts", "0"],
        ["--timeout", "0"],
    ] {
        let mut args = vec!["get".to_owned(), hash.clone()];
        args.extend(bad.map(str::to_owned));
        let (code, _, err) = run_get(args).await;
        assert_eq!(code, 64, "{bad:?}: {err}");
    }
}

async fn run_get(args: Vec<String>) -> (i32, String, String) {
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run_bin(&args, &[])
    })
    .await
    .unwrap()
}

/// Streams `len` bytes (a 1 MiB pattern repeated) to `POST /blobs`; returns
/// the hash.
fn upload_repeated(admin: SocketAddr, len: u64, seed: u8) -> String {
    let chunk = pattern(1 << 20, seed);
    let mut stream = TcpStream::connect(admin).unwrap();
    write!(
        stream,
        "POST /blobs HTTP/1.1\r\nhost: x\r\ncontent-length: {len}\r\nconnection: close\r\n\r\n"
    )
    .unwrap();
    let mut hasher = blake3::Hasher::new();
    let mut sent = 0u64;
    while sent < len {
        let n = (len - sent).min(chunk.len() as u64) as usize;
        stream.write_all(&chunk[..n]).unwrap();
        hasher.update(&chunk[..n]);
        sent += n as u64;
    }
    let mut response = String::new();
    BufReader::new(stream).read_line(&mut response).unwrap();
    assert!(response.contains(" 201 "), "{response}");
    hasher.finalize().to_hex().to_string()
}

/// GETs `target` over a raw socket; returns the status and the reader at the
/// start of the body.
fn raw_get(addr: SocketAddr, target: &str) -> (u16, BufReader<TcpStream>) {
    let mut stream = TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "GET {target} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
    )
    .unwrap();
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    let status = line.split(' ').nth(1).unwrap().parse().unwrap();
    loop {
        line.clear();
        reader.read_line(&mut line).unwrap();
        if line.trim_end().is_empty() {
            break;
        }
    }
    (status, reader)
}

#[test]
fn a_node_streams_a_large_bao_body_in_flat_memory() {
    let dir = tempfile::TempDir::new().unwrap();
    let node = Proc::serve(dir.path(), &[]);
    let size = 256u64 << 20;
    let hash = upload_repeated(node.admin, size, 5);
    let public = node.public;
    let downloads: Vec<_> = (0..2)
        .map(|_| {
            let hash = hash.clone();
            std::thread::spawn(move || {
                let (status, mut body) = raw_get(public, &bao_path(&hash));
                assert_eq!(status, 200);
                let mut prefix = [0u8; 8];
                body.read_exact(&mut prefix).unwrap();
                let tree = BaoTree::new(u64::from_le_bytes(prefix), BlockSize::from_chunk_log(4));
                // Decoded as it arrives, each group checked, nothing kept.
                let mut hasher = blake3::Hasher::new();
                let all = ChunkRanges::all();
                for item in DecodeResponseIter::new(root(&hash), tree, body, &all) {
                    if let BaoContentItem::Leaf(leaf) = item.unwrap() {
                        hasher.update(&leaf.data);
                    }
                }
                hasher.finalize().to_hex().to_string()
            })
        })
        .collect();
    for download in downloads {
        assert_eq!(download.join().unwrap(), hash);
    }
    let peak = node.peak_rss();
    eprintln!(
        "peak RSS after 256 MiB in and 2 × 256 MiB out as bao: {} MiB",
        peak >> 20
    );
    assert!(
        peak < 160 << 20,
        "peak RSS {} MiB: memory is not flat",
        peak >> 20
    );
}

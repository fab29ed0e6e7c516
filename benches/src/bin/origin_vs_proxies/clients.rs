//! N clients asking a cache for one cold URL at the same moment: every
//! client connects first, then all send their request together; each reads
//! its whole body and checks its length (one of them also its BLAKE3 hash).
//! Times are measured per client from just before its request is sent.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use bytes::Bytes;
use fleetcache_benches::interrupt;
use http_body_util::{BodyExt as _, Empty};
use hyper::Request;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use std::sync::Arc;
use tokio::net::TcpStream;
use tokio::sync::Barrier;

/// When one client's response arrived.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timing {
    /// The response head.
    pub(crate) head: Duration,
    /// The first byte of the body: the time to first byte.
    pub(crate) first_byte: Duration,
    /// The last byte of the body.
    pub(crate) last_byte: Duration,
}

/// What every client must receive.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Expected {
    pub(crate) len: u64,
    pub(crate) hash: blake3::Hash,
}

/// Runs `clients` concurrent GETs of `path` against `addr` on a
/// single-threaded runtime (the caller pins this process to the client
/// core). Fails if any client fails, or after `limit`, or on Ctrl-C.
pub(crate) fn run(
    addr: SocketAddr,
    path: &str,
    clients: usize,
    expected: Expected,
    limit: Duration,
) -> Result<Vec<Timing>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("building the client runtime")?;
    runtime.block_on(async {
        tokio::select! {
            result = tokio::time::timeout(limit, all(addr, path, clients, expected)) => {
                match result {
                    Ok(result) => result,
                    Err(_) => bail!("the {clients} clients did not finish within {limit:?}"),
                }
            }
            () = interrupted() => bail!("interrupted"),
        }
    })
}

/// Resolves once the benchmark is interrupted.
async fn interrupted() {
    while !interrupt::interrupted() {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn all(
    addr: SocketAddr,
    path: &str,
    clients: usize,
    expected: Expected,
) -> Result<Vec<Timing>> {
    // Every connection is up before any request goes out, so the requests
    // race only each other.
    let mut senders = Vec::with_capacity(clients);
    for i in 0..clients {
        let sender = connect(addr)
            .await
            .with_context(|| format!("client {i}: connecting to {addr}"))?;
        senders.push(sender);
    }
    let start = Arc::new(Barrier::new(clients + 1));
    let mut tasks = tokio::task::JoinSet::new();
    for (i, sender) in senders.into_iter().enumerate() {
        let request = Request::get(path)
            .header(hyper::header::HOST, addr.to_string())
            .header(hyper::header::USER_AGENT, "origin-vs-proxies")
            .body(Empty::<Bytes>::new())
            .context("building the request")?;
        let start = Arc::clone(&start);
        // One client checks the content, the rest only the length: hashing
        // every body would make the clients, not the servers, the limit.
        let hash = (i == 0).then_some(expected.hash);
        tasks.spawn(async move {
            start.wait().await;
            let result = one(sender, request, expected.len, hash).await;
            (i, result)
        });
    }
    start.wait().await;
    let mut timings = vec![None; clients];
    while let Some(joined) = tasks.join_next().await {
        let (i, result) = joined.context("a client task panicked")?;
        let timing = result.with_context(|| format!("client {i} of {clients}"))?;
        timings[i] = Some(timing);
    }
    timings
        .into_iter()
        .enumerate()
        .map(|(i, t)| t.with_context(|| format!("client {i} reported nothing")))
        .collect()
}

async fn connect(addr: SocketAddr) -> Result<SendRequest<Empty<Bytes>>> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        // Its errors surface as the request's error.
        let _ = connection.await;
    });
    Ok(sender)
}

async fn one(
    mut sender: SendRequest<Empty<Bytes>>,
    request: Request<Empty<Bytes>>,
    len: u64,
    hash: Option<blake3::Hash>,
) -> Result<Timing> {
    let begin = Instant::now();
    let response = sender.send_request(request).await?;
    let head = begin.elapsed();
    ensure!(
        response.status() == hyper::StatusCode::OK,
        "status {}",
        response.status()
    );
    let mut body = response.into_body();
    let mut first_byte = None;
    let mut got = 0u64;
    let mut hasher = hash.map(|_| blake3::Hasher::new());
    while let Some(frame) = body.frame().await {
        let frame = frame.with_context(|| format!("reading the body after {got} bytes"))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if data.is_empty() {
            continue;
        }
        first_byte.get_or_insert_with(|| begin.elapsed());
        got += data.len() as u64;
        if let Some(hasher) = &mut hasher {
            hasher.update(&data);
        }
    }
    let last_byte = begin.elapsed();
    ensure!(got == len, "body was {got} bytes, expected {len}");
    if let (Some(hasher), Some(hash)) = (hasher, hash) {
        let got = hasher.finalize();
        ensure!(got == hash, "body hashes to {got}, expected {hash}");
    }
    Ok(Timing {
        head,
        first_byte: first_byte.unwrap_or(last_byte),
        last_byte,
    })
}

//! A stampede: N clients asking for one cold URL at the same moment, each
//! from the server its target names (one server, or spread over several).
//! Every client connects first, then all send their request together; each
//! reads its whole body and checks it (see [`Check`]). Times are measured
//! per client from just before its request is sent.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty};
use hyper::Request;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::Barrier;

use crate::interrupt;

/// When one client's response arrived.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// The response head.
    pub head: Duration,
    /// The first byte of the body: the time to first byte.
    pub first_byte: Duration,
    /// The last byte of the body.
    pub last_byte: Duration,
}

/// What every client must receive, and how much of it each checks.
#[derive(Debug, Clone)]
pub enum Check {
    /// Every client checks the length; the first also the BLAKE3 hash
    /// (hashing every body would make the clients, not the servers, the
    /// limit).
    LengthAndOneHash { len: u64, hash: blake3::Hash },
    /// Every client compares every byte it receives with these, in place
    /// (a memory compare, far cheaper than hashing), and the length.
    Content(Bytes),
}

/// One GET per target, all at once: `targets[i]` is client `i`'s server.
/// Runs on a single-threaded runtime (the caller pins this process to the
/// client core); `user_agent` names the benchmark. Fails if any client
/// fails, or after `limit`, or on Ctrl-C.
pub fn run(
    targets: &[SocketAddr],
    path: &str,
    check: &Check,
    limit: Duration,
    user_agent: &'static str,
) -> Result<Vec<Timing>> {
    let clients = targets.len();
    ensure!(clients > 0, "a stampede needs at least one client");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("building the client runtime")?;
    runtime.block_on(async {
        tokio::select! {
            result = tokio::time::timeout(limit, all(targets, path, check, user_agent)) => {
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
    targets: &[SocketAddr],
    path: &str,
    check: &Check,
    user_agent: &'static str,
) -> Result<Vec<Timing>> {
    let clients = targets.len();
    // Every connection is up before any request goes out, so the requests
    // race only each other.
    let mut senders = Vec::with_capacity(clients);
    for (i, &addr) in targets.iter().enumerate() {
        let sender = connect(addr)
            .await
            .with_context(|| format!("client {i}: connecting to {addr}"))?;
        senders.push(sender);
    }
    let start = Arc::new(Barrier::new(clients + 1));
    let mut tasks = tokio::task::JoinSet::new();
    for (i, (sender, &addr)) in senders.into_iter().zip(targets).enumerate() {
        let request = Request::get(path)
            .header(hyper::header::HOST, crate::http1::SITE)
            .header(hyper::header::USER_AGENT, user_agent)
            .body(Empty::<Bytes>::new())
            .context("building the request")?;
        let start = Arc::clone(&start);
        let verify = match check {
            Check::LengthAndOneHash { len, hash } => Verify::Length {
                len: *len,
                hash: (i == 0).then_some(*hash),
            },
            Check::Content(content) => Verify::Content(content.clone()),
        };
        tasks.spawn(async move {
            start.wait().await;
            let result = one(sender, request, verify).await;
            (i, addr, result)
        });
    }
    start.wait().await;
    let mut timings = vec![None; clients];
    while let Some(joined) = tasks.join_next().await {
        let (i, addr, result) = joined.context("a client task panicked")?;
        let timing = result.with_context(|| format!("client {i} of {clients} (to {addr})"))?;
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

/// One client's check.
enum Verify {
    Length {
        len: u64,
        hash: Option<blake3::Hash>,
    },
    Content(Bytes),
}

/// Checks a body as it arrives.
struct Verifier {
    verify: Verify,
    got: u64,
    hasher: Option<blake3::Hasher>,
}

impl Verifier {
    fn new(verify: Verify) -> Self {
        let hasher = match &verify {
            Verify::Length { hash: Some(_), .. } => Some(blake3::Hasher::new()),
            _ => None,
        };
        Self {
            verify,
            got: 0,
            hasher,
        }
    }

    fn expected_len(&self) -> u64 {
        match &self.verify {
            Verify::Length { len, .. } => *len,
            Verify::Content(content) => content.len() as u64,
        }
    }

    /// The next piece of the body.
    fn update(&mut self, data: &[u8]) -> Result<()> {
        let offset = self.got;
        self.got += data.len() as u64;
        ensure!(
            self.got <= self.expected_len(),
            "body longer than the expected {} bytes",
            self.expected_len()
        );
        if let Some(hasher) = &mut self.hasher {
            hasher.update(data);
        }
        if let Verify::Content(content) = &self.verify {
            let start = usize::try_from(offset)?;
            let expected = &content[start..start + data.len()];
            if expected != data {
                let at = expected
                    .iter()
                    .zip(data)
                    .position(|(a, b)| a != b)
                    .unwrap_or(0);
                bail!(
                    "body differs from the origin's bytes at offset {}",
                    offset + at as u64
                );
            }
        }
        Ok(())
    }

    /// The body ended.
    fn finish(self) -> Result<()> {
        let len = self.expected_len();
        ensure!(
            self.got == len,
            "body was {} bytes, expected {len}",
            self.got
        );
        if let (
            Some(hasher),
            Verify::Length {
                hash: Some(hash), ..
            },
        ) = (self.hasher, &self.verify)
        {
            let got = hasher.finalize();
            ensure!(got == *hash, "body hashes to {got}, expected {hash}");
        }
        Ok(())
    }
}

async fn one(
    mut sender: SendRequest<Empty<Bytes>>,
    request: Request<Empty<Bytes>>,
    verify: Verify,
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
    let mut verifier = Verifier::new(verify);
    while let Some(frame) = body.frame().await {
        let frame =
            frame.with_context(|| format!("reading the body after {} bytes", verifier.got))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if data.is_empty() {
            continue;
        }
        first_byte.get_or_insert_with(|| begin.elapsed());
        verifier.update(&data)?;
    }
    let last_byte = begin.elapsed();
    verifier.finish()?;
    Ok(Timing {
        head,
        first_byte: first_byte.unwrap_or(last_byte),
        last_byte,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(verify: Verify, pieces: &[&[u8]]) -> Result<()> {
        let mut verifier = Verifier::new(verify);
        for piece in pieces {
            verifier.update(piece)?;
        }
        verifier.finish()
    }

    #[test]
    fn content_checks_every_byte_and_the_length() {
        let content = Bytes::from_static(b"hello world");
        let ok = feed(
            Verify::Content(content.clone()),
            &[b"hello", b" ", b"world"],
        );
        assert!(ok.is_ok(), "{ok:?}");
        let err = feed(Verify::Content(content.clone()), &[b"hello", b" wOrld"])
            .map_err(|e| e.to_string());
        assert_eq!(
            err,
            Err("body differs from the origin's bytes at offset 7".to_owned())
        );
        assert!(feed(Verify::Content(content.clone()), &[b"hello"]).is_err());
        assert!(feed(Verify::Content(content), &[b"hello world!"]).is_err());
    }

    #[test]
    fn length_and_hash() {
        let hash = blake3::hash(b"abc");
        let with_hash = |hash| Verify::Length { len: 3, hash };
        assert!(feed(with_hash(Some(hash)), &[b"a", b"bc"]).is_ok());
        assert!(feed(with_hash(Some(hash)), &[b"abd"]).is_err());
        assert!(feed(with_hash(None), &[b"abd"]).is_ok());
        assert!(feed(with_hash(None), &[b"ab"]).is_err());
    }
}

//! The accept loop shared by the public, HTTPS and admin listeners:
//! plaintext HTTP/1.1, or TLS with ALPN choosing HTTP/2 or HTTP/1.1.
//!
//! Bounds every way a client can hold resources: request head size and header
//! count (431), time to send the head (slowloris), connections with no
//! progress in either direction (slow or stalled readers and writers), and
//! the number of open connections. Shutdown stops accepting, asks each
//! connection to finish its in-flight response, and lets the node wait for
//! them with a grace period.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::Sleep;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use super::body::ResponseBody;
use super::framing::{Inspector, Verdict, Verdicts};
use crate::error::RequestError;
use crate::metrics::{Listener, Metrics};

/// Connection limits for one listener.
#[derive(Debug, Clone)]
pub(crate) struct Limits {
    pub(crate) max_header_bytes: usize,
    pub(crate) max_headers: usize,
    pub(crate) header_read_timeout: Duration,
    pub(crate) idle_timeout: Duration,
    pub(crate) max_connections: usize,
    /// Requests in flight at once on one HTTP/2 (or HTTP/3) connection.
    pub(crate) max_concurrent_streams: u32,
}

/// How a listener's connections speak.
#[derive(Clone)]
pub(crate) enum Transport {
    /// Plaintext HTTP/1.1.
    Plain,
    /// TLS; ALPN picks HTTP/2 (`h2`) or HTTP/1.1.
    Tls(tokio_rustls::TlsAcceptor),
}

/// How a listener is told to stop.
#[derive(Debug, Clone)]
pub(crate) struct Shutdown {
    /// Stop accepting; let each connection finish its in-flight response.
    pub(crate) graceful: CancellationToken,
    /// The grace period is over: drop whatever is still open.
    pub(crate) abort: CancellationToken,
    /// Connection tasks, so the node can wait for them to drain.
    pub(crate) tracker: TaskTracker,
}

/// Per-listener settings every connection task reads.
struct Server<H> {
    kind: Listener,
    limits: Limits,
    metrics: Arc<Metrics>,
    shutdown: Shutdown,
    h1: http1::Builder,
    h2: http2::Builder<TokioExecutor>,
    handler: H,
}

/// Accepts connections on `listener` until shutdown, serving each request
/// with `handler`.
pub(crate) async fn serve<H, F>(
    listener: TcpListener,
    kind: Listener,
    transport: Transport,
    limits: Limits,
    metrics: Arc<Metrics>,
    shutdown: Shutdown,
    handler: H,
) where
    H: Fn(Request<Incoming>, SocketAddr) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<ResponseBody>> + Send + 'static,
{
    let mut h1 = http1::Builder::new();
    h1.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_header_size(limits.max_header_bytes)
        .max_buf_size(limits.max_header_bytes.max(64 * 1024))
        .max_headers(limits.max_headers);
    let mut h2 = http2::Builder::new(TokioExecutor::new());
    h2.timer(TokioTimer::new())
        .max_concurrent_streams(limits.max_concurrent_streams)
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
        // Uploads only reach the admin API; a modest receive window bounds
        // what one client can make the node buffer.
        .initial_stream_window_size(256 * 1024)
        .initial_connection_window_size(1024 * 1024)
        // Bounds what is queued per stream for a client that stops reading.
        .max_send_buf_size(128 * 1024)
        // Streams a client resets before the server picked them up: beyond
        // this the connection is closed with ENHANCE_YOUR_CALM.
        .max_pending_accept_reset_streams(Some(20));
    // No HTTP/2 keep-alive pings: a client answers them by itself, so they
    // would count as progress and keep an idle connection open past
    // `idle_timeout` forever.
    let server = Arc::new(Server {
        kind,
        limits,
        metrics,
        shutdown,
        h1,
        h2,
        handler,
    });
    let slots = Arc::new(Semaphore::new(server.limits.max_connections));
    loop {
        let (stream, peer) = tokio::select! {
            () = server.shutdown.graceful.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(err) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(listener = kind.as_str(), "accept failed: {err}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            server.metrics.connection_refused(kind);
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let guard = server.metrics.connection_opened(kind);
        let span = tracing::debug_span!("conn", listener = kind.as_str(), %peer);
        let server = Arc::clone(&server);
        let transport = transport.clone();
        server.shutdown.tracker.clone().spawn(
            async move {
                match transport {
                    Transport::Plain => server.serve_http1(stream, peer).await,
                    Transport::Tls(acceptor) => server.serve_tls(&acceptor, stream, peer).await,
                }
                drop((slot, guard));
            }
            .instrument(span),
        );
    }
}

impl<H, F> Server<H>
where
    H: Fn(Request<Incoming>, SocketAddr) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<ResponseBody>> + Send + 'static,
{
    async fn serve_tls(
        &self,
        acceptor: &tokio_rustls::TlsAcceptor,
        stream: TcpStream,
        peer: SocketAddr,
    ) {
        // The handshake gets the head's time bound: a client that opens a
        // connection and never finishes it is a slowloris too.
        let deadline = tokio::time::Instant::now() + self.limits.header_read_timeout;
        let mut stream = stream;
        if let Ok(Ok(true)) = tokio::time::timeout_at(deadline, plaintext_request(&stream)).await {
            // `curl http://` against the HTTPS port: say so in words it can
            // show, as nginx does, instead of a TLS alert it cannot.
            self.metrics.tls_handshake_failed(self.kind);
            tracing::debug!("plain HTTP sent to the HTTPS listener");
            let _ = tokio::time::timeout_at(deadline, answer_plaintext(&mut stream)).await;
            return;
        }
        let handshake = tokio::time::timeout_at(deadline, acceptor.accept(stream));
        let tls = tokio::select! {
            result = handshake => result,
            () = self.shutdown.graceful.cancelled() => return,
        };
        let tls = match tls {
            Ok(Ok(tls)) => tls,
            Ok(Err(err)) => {
                self.metrics.tls_handshake_failed(self.kind);
                tracing::debug!("TLS handshake failed: {err}");
                return;
            }
            Err(_) => {
                self.metrics.tls_handshake_failed(self.kind);
                tracing::debug!("TLS handshake timed out");
                return;
            }
        };
        if tls.get_ref().1.alpn_protocol() == Some(b"h2") {
            self.serve_http2(tls, peer).await;
        } else {
            self.serve_http1(tls, peer).await;
        }
    }

    async fn serve_http1<T>(&self, stream: T, peer: SocketAddr)
    where
        T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let verdicts = Verdicts::default();
        let inspector = Inspector::new(verdicts.clone(), self.limits.max_header_bytes);
        let io = TokioIo::new(ClientIo::new(
            stream,
            self.limits.idle_timeout,
            inspector,
            Progress::Bytes,
        ));
        let handler = self.handler.clone();
        let service = service_fn(move |req| {
            let ambiguous = verdicts.next() == Verdict::Ambiguous;
            let response = (!ambiguous).then(|| handler(req, peer));
            async move {
                Ok::<_, Infallible>(match response {
                    Some(response) => response.await,
                    None => {
                        tracing::debug!(
                            "refused a request with both Content-Length and Transfer-Encoding"
                        );
                        super::error_response(&RequestError::BadRequest(
                            "a request may not carry both Content-Length and Transfer-Encoding"
                                .into(),
                        ))
                    }
                })
            }
        });
        let conn = self.h1.serve_connection(io, service);
        tokio::pin!(conn);
        self.drive(conn, |conn| conn.graceful_shutdown(), &Abuse::default())
            .await;
    }

    async fn serve_http2<T>(&self, stream: T, peer: SocketAddr)
    where
        T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let resets = ResetBudget::new(self.limits.max_concurrent_streams);
        let inspector = Inspector::off(Verdicts::default());
        let progress = Progress::Http2 {
            read: FrameScan::from_client(),
            write: FrameScan::from_server(),
            handlers: Arc::clone(&resets.running),
        };
        let io = TokioIo::new(ClientIo::new(
            stream,
            self.limits.idle_timeout,
            inspector,
            progress,
        ));
        let handler = self.handler.clone();
        let budget = Arc::clone(&resets);
        let service = service_fn(move |req| {
            let started = budget.started();
            let response = handler(req, peer);
            async move {
                let response = response.await;
                started.answered();
                Ok::<_, Infallible>(response)
            }
        });
        let conn = self.h2.serve_connection(io, service);
        tokio::pin!(conn);
        self.drive(conn, |conn| conn.graceful_shutdown(), &resets.abuse)
            .await;
        if resets.abuse.goaway.is_cancelled() {
            self.metrics.http2_reset_flood(self.kind);
        }
    }

    /// Runs a connection to its end: on shutdown (or abuse) it is asked to
    /// finish its in-flight responses, and cut when the grace period ends
    /// (or the abuse goes on regardless).
    async fn drive<C, E>(
        &self,
        mut conn: Pin<&mut C>,
        graceful: impl FnOnce(Pin<&mut C>),
        abuse: &Abuse,
    ) where
        C: Future<Output = Result<(), E>>,
        E: std::fmt::Display,
    {
        let stop = &self.shutdown;
        let result = tokio::select! {
            result = conn.as_mut() => result,
            () = stop.graceful.cancelled() => {
                graceful(conn.as_mut());
                abuse.drain(conn, &stop.abort).await
            }
            () = abuse.goaway.cancelled() => {
                tracing::warn!("closing an HTTP/2 connection that cancels requests faster than it completes them (rapid reset)");
                graceful(conn.as_mut());
                abuse.drain(conn, &stop.abort).await
            }
        };
        if let Err(err) = result {
            tracing::debug!("connection ended: {err}");
        }
    }
}

/// A connection abusing the server: first it is asked to go (GOAWAY), then,
/// if the abuse carries on, dropped.
#[derive(Debug, Default)]
struct Abuse {
    goaway: CancellationToken,
    /// The client ignored the GOAWAY: a graceful HTTP/2 shutdown keeps
    /// accepting streams until the client acknowledges its PING, which a
    /// hostile client never does.
    cut: CancellationToken,
}

impl Abuse {
    /// Lets a connection asked to stop finish, unless the grace period ends
    /// or it keeps abusing the server meanwhile.
    async fn drain<C, E>(&self, conn: Pin<&mut C>, abort: &CancellationToken) -> Result<(), E>
    where
        C: Future<Output = Result<(), E>>,
    {
        tokio::select! {
            result = conn => result,
            () = abort.cancelled() => Ok(()),
            () = self.cut.cancelled() => {
                tracing::warn!("dropping an HTTP/2 connection that kept cancelling requests after GOAWAY");
                Ok(())
            }
        }
    }
}

/// What a plaintext HTTP request to the HTTPS listener gets.
const PLAIN_HTTP_TO_HTTPS: &[u8] = b"HTTP/1.1 400 Bad Request\r\n\
content-type: text/plain; charset=utf-8\r\n\
content-length: 60\r\n\
connection: close\r\n\r\n\
this is the HTTPS port: a plain HTTP request was sent to it\n";

/// Sends the 400, then reads (and drops) what the client sent until it
/// closes: closing a socket with unread bytes resets it, and the reset can
/// destroy the answer before the client reads it.
async fn answer_plaintext(stream: &mut TcpStream) -> std::io::Result<()> {
    stream.write_all(PLAIN_HTTP_TO_HTTPS).await?;
    stream.shutdown().await?;
    let mut sink = [0u8; 4096];
    let mut left: usize = 64 * 1024;
    while left > 0 {
        let n = stream.read(&mut sink).await?;
        if n == 0 {
            break;
        }
        left = left.saturating_sub(n);
    }
    Ok(())
}

/// Whether the client opened with what looks like a plaintext HTTP request
/// (a method's capital letters) rather than a TLS record (0x16). Peeks, so
/// the TLS handshake still reads every byte.
async fn plaintext_request(stream: &TcpStream) -> std::io::Result<bool> {
    let mut first = [0u8; 1];
    let n = stream.peek(&mut first).await?;
    Ok(n == 1 && first[0].is_ascii_uppercase())
}

/// Rapid reset (CVE-2023-44487): a client that opens streams and resets them
/// at once makes the server start work for each while never holding more
/// than a few streams open, so the concurrency limit does not bound it. An
/// honest client cancels now and then; this one cancels far more requests
/// than it lets finish. The connection is sent GOAWAY once cancellations
/// exceed the completed requests by more than a full window of streams, and
/// dropped if they go on to exceed them by two: counted, not timed.
#[derive(Debug)]
struct ResetBudget {
    answered: AtomicU64,
    cancelled: AtomicU64,
    slack: u64,
    /// Handlers working on a request now (started, neither answered nor
    /// cancelled): the connection is busy, not idle.
    running: Arc<AtomicU64>,
    abuse: Abuse,
}

impl ResetBudget {
    fn new(max_concurrent_streams: u32) -> Arc<Self> {
        Arc::new(ResetBudget {
            answered: AtomicU64::new(0),
            cancelled: AtomicU64::new(0),
            slack: u64::from(max_concurrent_streams).max(16),
            running: Arc::new(AtomicU64::new(0)),
            abuse: Abuse::default(),
        })
    }

    fn started(self: &Arc<Self>) -> Started {
        self.running.fetch_add(1, Ordering::Relaxed);
        Started {
            budget: Arc::clone(self),
            answered: false,
        }
    }
}

/// One request's handler; dropped unanswered means the client reset it.
struct Started {
    budget: Arc<ResetBudget>,
    answered: bool,
}

impl Started {
    fn answered(mut self) {
        self.answered = true;
        self.budget.answered.fetch_add(1, Ordering::Relaxed);
    }
}

impl Drop for Started {
    fn drop(&mut self) {
        let budget = &self.budget;
        budget.running.fetch_sub(1, Ordering::Relaxed);
        if self.answered {
            return;
        }
        let cancelled = budget.cancelled.fetch_add(1, Ordering::Relaxed) + 1;
        let excess = cancelled.saturating_sub(budget.answered.load(Ordering::Relaxed));
        if excess > budget.slack {
            budget.abuse.goaway.cancel();
        }
        if excess > 2 * budget.slack {
            budget.abuse.cut.cancel();
        }
    }
}

/// What counts as progress on a connection, for the idle timeout.
#[derive(Debug)]
enum Progress {
    /// Any byte in either direction (HTTP/1.1 has no traffic of its own).
    Bytes,
    /// HTTP/2 keeps a connection busy by itself (PING, SETTINGS,
    /// WINDOW_UPDATE): a client that never opens its window but answers the
    /// keep-alive PINGs would never be idle. Only frames that move a request
    /// or a response count, and a handler still working on one.
    Http2 {
        read: FrameScan,
        write: FrameScan,
        handlers: Arc<AtomicU64>,
    },
}

/// Follows the frame boundaries of one direction of an HTTP/2 connection
/// (sans-IO, fed the bytes as they pass) and tells whether they held a frame
/// that moves a request or a response: HEADERS, CONTINUATION, or DATA with
/// a payload.
#[derive(Debug)]
struct FrameScan {
    /// Bytes to pass over: the client preface, or a frame's payload.
    skip: usize,
    head: [u8; 9],
    have: usize,
}

impl FrameScan {
    /// What the client sends: the 24-byte preface, then frames.
    fn from_client() -> Self {
        FrameScan {
            skip: 24,
            head: [0; 9],
            have: 0,
        }
    }

    fn from_server() -> Self {
        FrameScan {
            skip: 0,
            head: [0; 9],
            have: 0,
        }
    }

    fn observe(&mut self, mut bytes: &[u8]) -> bool {
        let mut moved = false;
        while !bytes.is_empty() {
            if self.skip > 0 {
                let n = self.skip.min(bytes.len());
                self.skip -= n;
                bytes = &bytes[n..];
                continue;
            }
            let n = (self.head.len() - self.have).min(bytes.len());
            self.head[self.have..self.have + n].copy_from_slice(&bytes[..n]);
            self.have += n;
            bytes = &bytes[n..];
            if self.have == self.head.len() {
                self.have = 0;
                let [a, b, c, kind, ..] = self.head;
                let len = usize::from(a) << 16 | usize::from(b) << 8 | usize::from(c);
                // DATA, HEADERS, CONTINUATION (RFC 9113 §6).
                moved |= matches!((kind, len), (0x0, 1..) | (0x1 | 0x9, _));
                self.skip = len;
            }
        }
        moved
    }
}

/// A client connection's IO. Fails IO on a connection that has made no
/// progress (see [`Progress`]), in either direction, for `timeout`: a client
/// that stops reading our response or stops sending its request cannot pin a
/// connection (and the object it reads) forever. And shows every byte read to
/// the framing inspector.
#[derive(Debug)]
struct ClientIo<T> {
    inner: T,
    timeout: Duration,
    last_progress: Instant,
    timer: Pin<Box<Sleep>>,
    inspector: Inspector,
    progress: Progress,
}

/// Which way bytes went.
#[derive(Debug, Clone, Copy)]
enum Direction {
    Read,
    Write,
}

impl<T> ClientIo<T> {
    fn new(inner: T, timeout: Duration, inspector: Inspector, progress: Progress) -> Self {
        Self {
            inner,
            timeout,
            last_progress: Instant::now(),
            timer: Box::pin(tokio::time::sleep(timeout)),
            inspector,
            progress,
        }
    }

    /// Notes the bytes that went one way; records the time if they were
    /// progress.
    fn passed(&mut self, direction: Direction, bytes: &[u8]) -> bool {
        let moved = match (&mut self.progress, direction) {
            (Progress::Bytes, _) => true,
            (Progress::Http2 { read, .. }, Direction::Read) => read.observe(bytes),
            (Progress::Http2 { write, .. }, Direction::Write) => write.observe(bytes),
        };
        if moved {
            // Only record the time; the timer is re-armed lazily when it fires.
            self.last_progress = Instant::now();
        }
        moved
    }

    /// A handler is still working on a request: the server is busy, not
    /// waiting on the client.
    fn busy(&self) -> bool {
        match &self.progress {
            Progress::Bytes => false,
            Progress::Http2 { handlers, .. } => handlers.load(Ordering::Relaxed) > 0,
        }
    }

    /// Whether the idle time is up: no progress for `timeout`, and no
    /// handler at work (one at work counts as progress now). Checked when
    /// the IO is pending, and on traffic that is not progress (which might
    /// never leave it pending).
    fn expired(&mut self) -> bool {
        if self.busy() {
            self.last_progress = Instant::now();
        }
        Instant::now() >= self.last_progress + self.timeout
    }

    /// Passes a ready result through; turns a pending one into the idle
    /// check, which errors once the idle time is up.
    fn track<R>(
        &mut self,
        cx: &mut Context<'_>,
        poll: Poll<io::Result<R>>,
        moved: bool,
    ) -> Poll<io::Result<R>> {
        match poll {
            Poll::Ready(Ok(_)) if !moved && self.expired() => Poll::Ready(Err(idle_error())),
            Poll::Ready(result) => Poll::Ready(result),
            Poll::Pending => self.poll_idle(cx).map(Err),
        }
    }

    /// Called when the inner IO is pending: errors once the idle time is up.
    fn poll_idle(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        loop {
            if self.timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            if self.expired() {
                return Poll::Ready(idle_error());
            }
            let deadline = self.last_progress + self.timeout;
            self.timer
                .as_mut()
                .reset(tokio::time::Instant::from_std(deadline));
        }
    }
}

fn idle_error() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "connection idle timeout")
}

impl<T: AsyncRead + Unpin> AsyncRead for ClientIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let poll = Pin::new(&mut this.inner).poll_read(cx, buf);
        let mut moved = false;
        if let Poll::Ready(result) = &poll {
            let read = &buf.filled()[before..];
            this.inspector.observe(read);
            // An error or the end of the stream ends the connection anyway.
            moved = result.is_err() || read.is_empty() || this.passed(Direction::Read, read);
        }
        this.track(cx, poll, moved)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for ClientIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_write(cx, buf);
        let moved = match &poll {
            Poll::Ready(Ok(n)) => this.passed(Direction::Write, &buf[..*n]),
            _ => true,
        };
        this.track(cx, poll, moved)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        let moved = match &poll {
            Poll::Ready(Ok(n)) => {
                let mut left = *n;
                let mut moved = false;
                for buf in bufs {
                    let take = left.min(buf.len());
                    moved |= this.passed(Direction::Write, &buf[..take]);
                    left -= take;
                }
                moved
            }
            _ => true,
        };
        this.track(cx, poll, moved)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_flush(cx) {
            Poll::Ready(result) => Poll::Ready(result),
            Poll::Pending => this.poll_idle(cx).map(Err),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: u8, len: usize) -> Vec<u8> {
        let mut out = vec![
            (len >> 16) as u8,
            (len >> 8) as u8,
            len as u8,
            kind,
            0,
            0,
            0,
            0,
            1,
        ];
        // A payload that looks like a HEADERS frame head: it must be skipped.
        out.extend((0..len).map(|i| if i % 9 == 3 { 0x1 } else { 0 }));
        out
    }

    #[test]
    fn frame_scan_counts_only_frames_that_move_requests_or_responses() {
        let mut scan = FrameScan::from_client();
        let mut bytes = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        bytes.extend(frame(0x4, 12)); // SETTINGS
        assert!(!scan.observe(&bytes));
        assert!(!scan.observe(&frame(0x6, 8))); // PING
        assert!(!scan.observe(&frame(0x8, 4))); // WINDOW_UPDATE
        assert!(!scan.observe(&frame(0x0, 0))); // empty DATA
        assert!(!scan.observe(&frame(0x3, 4))); // RST_STREAM
        // A HEADERS frame fed byte by byte is seen once.
        let moved = frame(0x1, 30)
            .iter()
            .filter(|b| scan.observe(&[**b]))
            .count();
        assert_eq!(moved, 1);
        assert!(scan.observe(&frame(0x9, 5))); // CONTINUATION
        let mut data = frame(0x6, 8);
        data.extend(frame(0x0, 100));
        assert!(scan.observe(&data), "DATA after a PING in one read");
        assert!(!FrameScan::from_server().observe(&frame(0x7, 8))); // GOAWAY
    }

    #[test]
    fn reset_budget_sends_goaway_then_cuts() {
        let budget = ResetBudget::new(16);
        for _ in 0..10 {
            budget.started().answered();
        }
        let held = budget.started();
        for _ in 0..26 {
            drop(budget.started());
        }
        assert!(
            !budget.abuse.goaway.is_cancelled(),
            "16 more cancelled than answered"
        );
        drop(budget.started());
        assert!(budget.abuse.goaway.is_cancelled(), "17 more");
        assert!(!budget.abuse.cut.is_cancelled());
        for _ in 0..16 {
            drop(budget.started());
        }
        assert!(budget.abuse.cut.is_cancelled(), "33 more");
        assert_eq!(
            budget.running.load(Ordering::Relaxed),
            1,
            "one still running"
        );
        held.answered();
        assert_eq!(budget.running.load(Ordering::Relaxed), 0);
    }
}

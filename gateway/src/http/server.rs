//! The HTTP/1.1 accept loop shared by the public and admin listeners.
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
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
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

/// Accepts connections on `listener` until shutdown, serving each request
/// with `handler`.
pub(crate) async fn serve<H, F>(
    listener: TcpListener,
    kind: Listener,
    limits: Limits,
    metrics: Arc<Metrics>,
    shutdown: Shutdown,
    handler: H,
) where
    H: Fn(Request<Incoming>, SocketAddr) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<ResponseBody>> + Send + 'static,
{
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_header_size(limits.max_header_bytes)
        .max_buf_size(limits.max_header_bytes.max(64 * 1024))
        .max_headers(limits.max_headers);
    let builder = Arc::new(builder);
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    loop {
        let (stream, peer) = tokio::select! {
            () = shutdown.graceful.cancelled() => break,
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
            metrics.connection_refused(kind);
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let guard = metrics.connection_opened(kind);
        let verdicts = Verdicts::default();
        let inspector = Inspector::new(verdicts.clone(), limits.max_header_bytes);
        let io = TokioIo::new(ClientIo::new(stream, limits.idle_timeout, inspector));
        let builder = Arc::clone(&builder);
        let handler = handler.clone();
        let stop = shutdown.clone();
        let span = tracing::debug_span!("conn", listener = kind.as_str(), %peer);
        shutdown.tracker.spawn(
            async move {
                let service = service_fn(move |req| {
                    let ambiguous = verdicts.next() == Verdict::Ambiguous;
                    let response = (!ambiguous).then(|| handler(req, peer));
                    async move {
                        Ok::<_, Infallible>(match response {
                            Some(response) => response.await,
                            None => {
                                tracing::debug!("refused a request with both Content-Length and Transfer-Encoding");
                                super::error_response(&RequestError::BadRequest(
                                    "a request may not carry both Content-Length and Transfer-Encoding".into(),
                                ))
                            }
                        })
                    }
                });
                let conn = builder.serve_connection(io, service);
                tokio::pin!(conn);
                let result = tokio::select! {
                    result = conn.as_mut() => result,
                    () = stop.graceful.cancelled() => {
                        conn.as_mut().graceful_shutdown();
                        tokio::select! {
                            result = conn.as_mut() => result,
                            () = stop.abort.cancelled() => Ok(()),
                        }
                    }
                };
                if let Err(err) = result {
                    tracing::debug!("connection ended: {err}");
                }
                drop((slot, guard));
            }
            .instrument(span),
        );
    }
}

/// A client connection's IO. Fails IO on a connection that has made no
/// progress, in either direction, for `timeout`: a client that stops reading
/// our response or stops sending its request cannot pin a connection (and the
/// object it reads) forever. And shows every byte read to the framing
/// inspector.
#[derive(Debug)]
struct ClientIo<T> {
    inner: T,
    timeout: Duration,
    last_progress: Instant,
    timer: Pin<Box<Sleep>>,
    inspector: Inspector,
}

impl<T> ClientIo<T> {
    fn new(inner: T, timeout: Duration, inspector: Inspector) -> Self {
        Self {
            inner,
            timeout,
            last_progress: Instant::now(),
            timer: Box::pin(tokio::time::sleep(timeout)),
            inspector,
        }
    }

    fn progress(&mut self) {
        // Only record the time; the timer is re-armed lazily when it fires.
        self.last_progress = Instant::now();
    }

    /// Passes a ready result through as progress; turns a pending one into
    /// the idle check, which errors once the idle time is up.
    fn track<R>(&mut self, cx: &mut Context<'_>, poll: Poll<io::Result<R>>) -> Poll<io::Result<R>> {
        match poll {
            Poll::Ready(result) => {
                self.progress();
                Poll::Ready(result)
            }
            Poll::Pending => self.poll_idle(cx).map(Err),
        }
    }

    /// Called when the inner IO is pending: errors once the idle time is up.
    fn poll_idle(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        loop {
            if self.timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            let deadline = self.last_progress + self.timeout;
            if Instant::now() >= deadline {
                return Poll::Ready(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "connection idle timeout",
                ));
            }
            self.timer
                .as_mut()
                .reset(tokio::time::Instant::from_std(deadline));
        }
    }
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
        if let Poll::Ready(Ok(())) = &poll {
            this.inspector.observe(&buf.filled()[before..]);
        }
        this.track(cx, poll)
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
        this.track(cx, poll)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.track(cx, poll)
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

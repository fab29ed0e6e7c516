//! One HTTP/3 request: its head read within the head timeout, its body handed
//! to the handler as an `http_body::Body` read straight from the QUIC stream,
//! and the handler's response streamed back frame by frame.

use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::{Buf, Bytes};
use h3::error::{Code, StreamError};
use h3::server::{RequestResolver, RequestStream};
use http::header::{CONNECTION, CONTENT_LENGTH, HeaderName, TRANSFER_ENCODING, UPGRADE};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;

use super::quic::{QuicConnection, RecvIo, SendIo};
use crate::http::body::ResponseBody;

/// Fields that name a connection or its framing: meaningless in HTTP/3 and
/// forbidden in its messages (RFC 9114 §4.2); a client treats a response
/// carrying one as malformed. Responses built for HTTP/1.1 may have them
/// (`Connection: close` after a 400).
const CONNECTION_FIELDS: [HeaderName; 5] = [
    CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    TRANSFER_ENCODING,
    UPGRADE,
];

/// What a request may take.
#[derive(Debug, Clone, Copy)]
pub(super) struct RequestLimits {
    pub(super) header_read_timeout: Duration,
    pub(super) max_headers: usize,
    /// How long one write of the response may wait for the client to make
    /// room (a client that stops reading holds its stream no longer).
    pub(super) idle_timeout: Duration,
}

/// Reads one request's head and answers it with `handler`.
pub(super) async fn serve<H, F>(
    resolver: RequestResolver<QuicConnection, Bytes>,
    limits: RequestLimits,
    peer: SocketAddr,
    handler: H,
) where
    H: Fn(Request<RequestBody>, SocketAddr) -> F,
    F: Future<Output = Response<ResponseBody>>,
{
    // A client that opens a stream and never finishes its head is a
    // slowloris; dropping the resolver resets the stream.
    let resolved =
        match tokio::time::timeout(limits.header_read_timeout, resolver.resolve_request()).await {
            Ok(Ok(resolved)) => resolved,
            Ok(Err(err)) => {
                // A head over max_field_section_size was answered 431 by h3;
                // a malformed one reset with H3_MESSAGE_ERROR.
                tracing::debug!("request head refused: {err}");
                return;
            }
            Err(_) => {
                tracing::debug!("request head not received within the header read timeout");
                return;
            }
        };
    let (req, stream) = resolved;
    let head = req.method() == Method::HEAD;
    let (mut send, recv) = stream.split();
    if req.headers().len() > limits.max_headers {
        let response = crate::http::text_response(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "too many header fields",
        );
        respond(&mut send, response, head, limits.idle_timeout).await;
        return;
    }
    let expected = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let req = req.map(|()| RequestBody {
        stream: recv,
        expected,
        received: 0,
        done: false,
    });
    let response = handler(req, peer).await;
    respond(&mut send, response, head, limits.idle_timeout).await;
}

/// Sends the head, then the body's frames as they come; finishes the stream
/// on a complete body and resets it on a failed one, so the client sees an
/// error rather than a clean but short response.
async fn respond(
    send: &mut RequestStream<SendIo, Bytes>,
    response: Response<ResponseBody>,
    head: bool,
    idle_timeout: Duration,
) {
    let (mut parts, body) = response.into_parts();
    for name in &CONNECTION_FIELDS {
        parts.headers.remove(name);
    }
    let bodiless = head
        || parts.status.is_informational()
        || parts.status == StatusCode::NO_CONTENT
        || parts.status == StatusCode::NOT_MODIFIED;
    // hyper adds Content-Length from the body's size on HTTP/1.1 and HTTP/2;
    // do the same, so a client can tell a complete body from a cut one.
    if !bodiless
        && !parts.headers.contains_key(CONTENT_LENGTH)
        && let Some(size) = body.size_hint().exact()
    {
        parts
            .headers
            .insert(CONTENT_LENGTH, HeaderValue::from(size));
    }
    if let Err(err) = send.send_response(Response::from_parts(parts, ())).await {
        log_send_error("sending the response head", &err);
        return;
    }
    if !bodiless {
        let mut body = body;
        loop {
            let frame = match body.frame().await {
                None => break,
                Some(Ok(frame)) => frame,
                Some(Err(err)) => {
                    // The observer inside the body has logged and counted it.
                    tracing::debug!("response body failed, resetting the stream: {err}");
                    send.stop_stream(Code::H3_INTERNAL_ERROR);
                    return;
                }
            };
            let Ok(data) = frame.into_data() else {
                continue;
            };
            if data.is_empty() {
                continue;
            }
            match tokio::time::timeout(idle_timeout, send.send_data(data)).await {
                Ok(Ok(())) => {}
                Ok(Err(err)) => {
                    log_send_error("sending the response body", &err);
                    return;
                }
                Err(_) => {
                    tracing::debug!(
                        "client read nothing for the idle timeout; resetting the stream"
                    );
                    send.stop_stream(Code::H3_REQUEST_CANCELLED);
                    return;
                }
            }
        }
    }
    if let Err(err) = send.finish().await {
        log_send_error("finishing the response", &err);
    }
}

fn log_send_error(what: &str, err: &StreamError) {
    // Clients cancel requests and close connections: not the node's problem.
    tracing::debug!("{what}: {err}");
}

/// Why a request body could not be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RequestBodyError {
    /// The stream failed: the client reset it, or the connection went.
    #[error("reading the request body: {0}")]
    Stream(#[from] StreamError),
    /// The body did not match its `Content-Length` (RFC 9114 §4.1.2 makes
    /// such a request malformed).
    #[error("the request body does not match its Content-Length of {expected} bytes")]
    Length {
        /// The declared length.
        expected: u64,
    },
}

/// A request body arriving on its QUIC stream. It is read only as the handler
/// polls it, so QUIC flow control (the stream's receive window) bounds what a
/// client can make the node buffer.
pub(crate) struct RequestBody {
    stream: RequestStream<RecvIo, Bytes>,
    expected: Option<u64>,
    received: u64,
    done: bool,
}

impl std::fmt::Debug for RequestBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestBody")
            .field("expected", &self.expected)
            .field("received", &self.received)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = RequestBodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, RequestBodyError>>> {
        if self.done {
            return Poll::Ready(None);
        }
        let this = &mut *self;
        let polled = ready!(this.stream.poll_recv_data(cx));
        match polled {
            Ok(Some(mut buf)) => {
                let data = buf.copy_to_bytes(buf.remaining());
                this.received += data.len() as u64;
                if let Some(expected) = this.expected
                    && this.received > expected
                {
                    this.done = true;
                    return Poll::Ready(Some(Err(RequestBodyError::Length { expected })));
                }
                Poll::Ready(Some(Ok(Frame::data(data))))
            }
            Ok(None) => {
                this.done = true;
                match this.expected {
                    Some(expected) if this.received != expected => {
                        Poll::Ready(Some(Err(RequestBodyError::Length { expected })))
                    }
                    _ => Poll::Ready(None),
                }
            }
            Err(err) => {
                this.done = true;
                Poll::Ready(Some(Err(err.into())))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done || self.expected == Some(0)
    }

    fn size_hint(&self) -> SizeHint {
        match self.expected {
            Some(expected) => SizeHint::with_exact(expected.saturating_sub(self.received)),
            None => SizeHint::default(),
        }
    }
}

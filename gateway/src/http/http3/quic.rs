//! The QUIC side of HTTP/3, as the `h3` crate sees it (`h3::quic`).
//!
//! h3-quinn carries the connection and its unidirectional streams (the
//! control and QPACK streams). Request streams are our own thin wrappers over
//! quinn's, for one reason: a response is only delivered once the client has
//! acknowledged its last byte, and h3-quinn hides the quinn stream that can
//! tell (`SendStream::stopped`). Closing a connection discards stream data
//! not yet acknowledged, so a graceful shutdown that closed a connection as
//! soon as its handlers returned would cut the tails of their responses.
//! Each finished request stream here leaves a task in the connection's
//! `unacked` tracker until the client has acknowledged it (or the connection
//! is gone), and a draining connection waits for that tracker to empty.

use std::mem::MaybeUninit;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes};
use futures_util::stream::{self, Stream, StreamExt};
use h3::error::Code;
use h3::quic::{self, ConnectionErrorIncoming, StreamErrorIncoming, StreamId, WriteBuf};
use quinn::VarInt;
use tokio::io::ReadBuf;
use tokio_util::task::TaskTracker;

/// Bytes read from a request stream at a time. Requests are mostly a small
/// HEADERS frame; larger bodies come in several reads.
const READ_CHUNK: usize = 16 * 1024;

type Accepted = Result<(quinn::SendStream, quinn::RecvStream), quinn::ConnectionError>;

/// One HTTP/3 connection's QUIC side.
pub(super) struct QuicConnection {
    inner: h3_quinn::Connection,
    incoming_bidi: Pin<Box<dyn Stream<Item = Accepted> + Send + Sync>>,
    unacked: TaskTracker,
}

impl QuicConnection {
    /// `unacked` gets one task per finished response until the client has
    /// acknowledged all of it.
    pub(super) fn new(conn: quinn::Connection, unacked: TaskTracker) -> Self {
        let incoming_bidi = stream::unfold(conn.clone(), |conn| async move {
            let accepted = conn.accept_bi().await;
            Some((accepted, conn))
        });
        QuicConnection {
            inner: h3_quinn::Connection::new(conn),
            incoming_bidi: Box::pin(incoming_bidi),
            unacked,
        }
    }
}

impl quic::Connection<Bytes> for QuicConnection {
    type RecvStream = h3_quinn::RecvStream;
    type OpenStreams = Opener;

    fn poll_accept_recv(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Self::RecvStream, ConnectionErrorIncoming>> {
        quic::Connection::<Bytes>::poll_accept_recv(&mut self.inner, cx)
    }

    fn poll_accept_bidi(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Self::BidiStream, ConnectionErrorIncoming>> {
        let accepted = match ready!(self.incoming_bidi.poll_next_unpin(cx)) {
            Some(accepted) => accepted,
            // The unfold above never ends; treat an end as a closed connection.
            None => {
                return Poll::Ready(Err(ConnectionErrorIncoming::InternalError(
                    "the stream of incoming requests ended".to_owned(),
                )));
            }
        };
        let (send, recv) = accepted.map_err(connection_error)?;
        // quinn's stream IDs are QUIC variable-length integers, which is
        // exactly what h3 accepts; a failure here would be a quinn bug.
        let id = StreamId::try_from(u64::from(send.id())).map_err(|err| {
            ConnectionErrorIncoming::InternalError(format!("stream id out of range: {err}"))
        })?;
        Poll::Ready(Ok(RequestIo {
            send: SendIo {
                stream: send,
                id,
                writing: None,
                ended: false,
                unacked: self.unacked.clone(),
            },
            recv: RecvIo { stream: recv, id },
        }))
    }

    fn opener(&self) -> Self::OpenStreams {
        Opener {
            inner: quic::Connection::<Bytes>::opener(&self.inner),
        }
    }
}

impl quic::OpenStreams<Bytes> for QuicConnection {
    type BidiStream = RequestIo;
    type SendStream = h3_quinn::SendStream<Bytes>;

    fn poll_open_bidi(
        &mut self,
        _cx: &mut Context<'_>,
    ) -> Poll<Result<Self::BidiStream, StreamErrorIncoming>> {
        Poll::Ready(Err(no_server_bidi()))
    }

    fn poll_open_send(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Self::SendStream, StreamErrorIncoming>> {
        quic::OpenStreams::<Bytes>::poll_open_send(&mut self.inner, cx)
    }

    fn close(&mut self, code: Code, reason: &[u8]) {
        quic::OpenStreams::<Bytes>::close(&mut self.inner, code, reason);
    }
}

/// Opens the server's unidirectional streams (control, QPACK) through
/// h3-quinn. A server never opens bidirectional streams in HTTP/3.
pub(super) struct Opener {
    inner: h3_quinn::OpenStreams,
}

impl quic::OpenStreams<Bytes> for Opener {
    type BidiStream = RequestIo;
    type SendStream = h3_quinn::SendStream<Bytes>;

    fn poll_open_bidi(
        &mut self,
        _cx: &mut Context<'_>,
    ) -> Poll<Result<Self::BidiStream, StreamErrorIncoming>> {
        Poll::Ready(Err(no_server_bidi()))
    }

    fn poll_open_send(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Self::SendStream, StreamErrorIncoming>> {
        quic::OpenStreams::<Bytes>::poll_open_send(&mut self.inner, cx)
    }

    fn close(&mut self, code: Code, reason: &[u8]) {
        quic::OpenStreams::<Bytes>::close(&mut self.inner, code, reason);
    }
}

fn no_server_bidi() -> StreamErrorIncoming {
    StreamErrorIncoming::Unknown(Box::new(std::io::Error::other(
        "an HTTP/3 server does not open bidirectional streams",
    )))
}

/// A request stream: the client's request in, our response out.
pub(crate) struct RequestIo {
    send: SendIo,
    recv: RecvIo,
}

impl quic::BidiStream<Bytes> for RequestIo {
    type SendStream = SendIo;
    type RecvStream = RecvIo;

    fn split(self) -> (SendIo, RecvIo) {
        (self.send, self.recv)
    }
}

impl quic::SendStream<Bytes> for RequestIo {
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), StreamErrorIncoming>> {
        self.send.poll_ready(cx)
    }

    fn send_data<T: Into<WriteBuf<Bytes>>>(&mut self, data: T) -> Result<(), StreamErrorIncoming> {
        self.send.send_data(data)
    }

    fn poll_finish(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), StreamErrorIncoming>> {
        self.send.poll_finish(cx)
    }

    fn reset(&mut self, reset_code: u64) {
        self.send.reset(reset_code);
    }

    fn send_id(&self) -> StreamId {
        self.send.id
    }
}

impl quic::RecvStream for RequestIo {
    type Buf = Bytes;

    fn poll_data(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Option<Bytes>, StreamErrorIncoming>> {
        self.recv.poll_data(cx)
    }

    fn stop_sending(&mut self, error_code: u64) {
        self.recv.stop_sending(error_code);
    }

    fn recv_id(&self) -> StreamId {
        self.recv.id
    }
}

/// The response side of a request stream.
pub(crate) struct SendIo {
    stream: quinn::SendStream,
    id: StreamId,
    /// A frame h3 handed over, written as the stream has room.
    writing: Option<WriteBuf<Bytes>>,
    /// Finished or reset: anything else at drop is a response cut short.
    ended: bool,
    unacked: TaskTracker,
}

impl quic::SendStream<Bytes> for SendIo {
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), StreamErrorIncoming>> {
        if let Some(data) = &mut self.writing {
            while data.has_remaining() {
                let written = ready!(Pin::new(&mut self.stream).poll_write(cx, data.chunk()))
                    .map_err(write_error)?;
                data.advance(written);
            }
        }
        self.writing = None;
        Poll::Ready(Ok(()))
    }

    fn send_data<T: Into<WriteBuf<Bytes>>>(&mut self, data: T) -> Result<(), StreamErrorIncoming> {
        if self.writing.is_some() {
            // h3 always waits for poll_ready first; this would be its bug.
            return Err(StreamErrorIncoming::ConnectionErrorIncoming {
                connection_error: ConnectionErrorIncoming::InternalError(
                    "send_data called before the previous frame was written".to_owned(),
                ),
            });
        }
        self.writing = Some(data.into());
        Ok(())
    }

    fn poll_finish(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), StreamErrorIncoming>> {
        self.ended = true;
        Poll::Ready(
            self.stream
                .finish()
                .map_err(|err| StreamErrorIncoming::Unknown(Box::new(err))),
        )
    }

    fn reset(&mut self, reset_code: u64) {
        self.ended = true;
        let _ = self.stream.reset(varint(reset_code));
    }

    fn send_id(&self) -> StreamId {
        self.id
    }
}

impl Drop for SendIo {
    fn drop(&mut self) {
        if !self.ended {
            // quinn finishes a dropped stream, which would pass a response cut
            // short (a request abandoned, a task aborted) for a complete one.
            let _ = self
                .stream
                .reset(varint(Code::H3_REQUEST_CANCELLED.value()));
            return;
        }
        // `stopped` resolves once the client has acknowledged every byte (or
        // stopped the stream, or the connection is gone); it does not need
        // the stream handle, which may go.
        let acknowledged = self.stream.stopped();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            self.unacked.spawn_on(
                async move {
                    let _ = acknowledged.await;
                },
                &runtime,
            );
        }
    }
}

/// The request side of a request stream.
pub(crate) struct RecvIo {
    stream: quinn::RecvStream,
    id: StreamId,
}

impl quic::RecvStream for RecvIo {
    type Buf = Bytes;

    fn poll_data(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Option<Bytes>, StreamErrorIncoming>> {
        // Read into the stack and copy out exactly what came: a buffer kept
        // per stream would cost every open request its size, idle or not.
        let mut storage = [MaybeUninit::<u8>::uninit(); READ_CHUNK];
        let mut buf = ReadBuf::uninit(&mut storage);
        ready!(self.stream.poll_read_buf(cx, &mut buf)).map_err(read_error)?;
        if buf.filled().is_empty() {
            // quinn reads nothing into a non-empty buffer only at the end.
            return Poll::Ready(Ok(None));
        }
        Poll::Ready(Ok(Some(Bytes::copy_from_slice(buf.filled()))))
    }

    fn stop_sending(&mut self, error_code: u64) {
        let _ = self.stream.stop(varint(error_code));
    }

    fn recv_id(&self) -> StreamId {
        self.id
    }
}

impl Drop for RecvIo {
    fn drop(&mut self) {
        // A request not read to its end (a GET's handler never reads a body)
        // is stopped with H3_NO_ERROR, as RFC 9114 §4.1 asks of a server that
        // answers without the rest of the request; quinn would use code 0.
        // On a stream read to its end this does nothing.
        let _ = self.stream.stop(varint(Code::H3_NO_ERROR.value()));
    }
}

/// h3 passes error codes as u64; QUIC carries at most 2^62 - 1.
fn varint(code: u64) -> VarInt {
    VarInt::from_u64(code).unwrap_or(VarInt::MAX)
}

/// quinn's connection errors in h3's terms, as h3-quinn maps them.
fn connection_error(err: quinn::ConnectionError) -> ConnectionErrorIncoming {
    match err {
        quinn::ConnectionError::ApplicationClosed(close) => {
            ConnectionErrorIncoming::ApplicationClose {
                error_code: close.error_code.into_inner(),
            }
        }
        quinn::ConnectionError::TimedOut => ConnectionErrorIncoming::Timeout,
        other => ConnectionErrorIncoming::Undefined(Arc::new(other)),
    }
}

fn write_error(err: quinn::WriteError) -> StreamErrorIncoming {
    match err {
        quinn::WriteError::Stopped(code) => StreamErrorIncoming::StreamTerminated {
            error_code: code.into_inner(),
        },
        quinn::WriteError::ConnectionLost(err) => StreamErrorIncoming::ConnectionErrorIncoming {
            connection_error: connection_error(err),
        },
        other => StreamErrorIncoming::Unknown(Box::new(other)),
    }
}

fn read_error(err: quinn::ReadError) -> StreamErrorIncoming {
    match err {
        quinn::ReadError::Reset(code) => StreamErrorIncoming::StreamTerminated {
            error_code: code.into_inner(),
        },
        quinn::ReadError::ConnectionLost(err) => StreamErrorIncoming::ConnectionErrorIncoming {
            connection_error: connection_error(err),
        },
        other => StreamErrorIncoming::Unknown(Box::new(other)),
    }
}

//! An origin's response body: frames pass through as they arrive; a stall,
//! an early end or a length that disagrees with `Content-Length` is an error,
//! so nothing downstream can mistake a cut body for a complete one.

use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http::HeaderMap;
use http::header::{CONTENT_LENGTH, TRANSFER_ENCODING};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::{Instant, Sleep};

use super::{OriginError, error_chain};

/// The body of an origin response; holds the fetch slot until dropped.
#[derive(Debug)]
pub(crate) struct OriginBody {
    inner: Incoming,
    idle_timeout: Duration,
    timer: Pin<Box<Sleep>>,
    expected: Option<u64>,
    received: u64,
    done: bool,
    _slot: OwnedSemaphorePermit,
}

impl OriginBody {
    pub(crate) fn new(
        inner: Incoming,
        headers: &HeaderMap,
        idle_timeout: Duration,
        slot: OwnedSemaphorePermit,
    ) -> Self {
        // hyper frames by Transfer-Encoding when both are present; so do we.
        let expected = if headers.contains_key(TRANSFER_ENCODING) {
            None
        } else {
            headers
                .get(CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
        };
        OriginBody {
            inner,
            idle_timeout,
            timer: Box::pin(tokio::time::sleep(idle_timeout)),
            expected,
            received: 0,
            done: false,
            _slot: slot,
        }
    }

    /// The length the origin declared, if it declared one.
    pub(crate) fn declared_len(&self) -> Option<u64> {
        self.expected
    }

    /// The next bytes, `None` at a clean end; an error otherwise.
    pub(crate) async fn next_bytes(&mut self) -> Option<Result<Bytes, OriginError>> {
        std::future::poll_fn(|cx| Pin::new(&mut *self).poll_frame(cx))
            .await
            .map(|frame| frame.map(|f| f.into_data().unwrap_or_default()))
    }
}

impl Body for OriginBody {
    type Data = Bytes;
    type Error = OriginError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, OriginError>>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        loop {
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Pending => {
                    ready!(this.timer.as_mut().poll(cx));
                    this.done = true;
                    return Poll::Ready(Some(Err(OriginError::BodyStalled(this.idle_timeout))));
                }
                Poll::Ready(None) => {
                    this.done = true;
                    // hyper already frames by Content-Length (a short body is a
                    // Body error from it); this keeps the rule if that changes.
                    return match this.expected {
                        Some(expected) if expected != this.received => {
                            Poll::Ready(Some(Err(OriginError::Length {
                                received: this.received,
                                expected,
                            })))
                        }
                        _ => Poll::Ready(None),
                    };
                }
                Poll::Ready(Some(Err(err))) => {
                    this.done = true;
                    return Poll::Ready(Some(Err(OriginError::Body(error_chain(&err)))));
                }
                Poll::Ready(Some(Ok(frame))) => {
                    this.timer
                        .as_mut()
                        .reset(Instant::now() + this.idle_timeout);
                    // Trailers are not forwarded or stored.
                    let Ok(data) = frame.into_data() else {
                        continue;
                    };
                    this.received += data.len() as u64;
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

//! What a node offers its peers beyond stored hashes: answers to URL requests
//! it owns and purges, provided by the gateway (the swarm knows nothing of
//! HTTP) and installed once with [`crate::Swarm::set_service`].

use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::identity::NodeName;
use crate::peers::PeerHandle;

/// A boxed future, as the service's methods return them.
pub type ServiceFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// The gateway's side of the version 2 requests. Until one is installed, a
/// node declines every URL request and purge.
pub trait FleetService: Send + Sync + std::fmt::Debug + 'static {
    /// Answers a FETCH_URL from the peer named `from` (the gateway's encoded
    /// request). The swarm frames the body, hashes what it sends and ends the
    /// stream with that hash and size.
    fn fetch_url(&self, from: &NodeName, request: Bytes) -> ServiceFuture<UrlReply>;

    /// Applies a PURGE and answers with a message, or `None` to decline.
    fn purge(&self, from: &NodeName, request: Bytes) -> ServiceFuture<Option<Bytes>>;

    /// Answers a PURGE_LOG with the purges this node keeps, or `None` to decline.
    fn purge_log(&self, from: &NodeName, request: Bytes) -> ServiceFuture<Option<Bytes>>;

    /// A new connection to `peer` is up (after a start, a restart, a partition):
    /// time to exchange what either side may have missed.
    fn peer_connected(&self, peer: PeerHandle);
}

/// How the owner answers a URL request.
#[derive(Debug)]
pub enum UrlReply {
    /// Not shared (no origin for it, not storable, the origin failed): the
    /// asker fetches it itself.
    Declined,
    /// Too busy: the asker fetches it itself.
    Overloaded,
    /// The response head (the gateway's encoding), then the body as it arrives.
    Response {
        /// The encoded head, at most [`crate::MAX_MESSAGE_LEN`] bytes.
        head: Bytes,
        /// The body; must end with [`BodyChunk::End`], anything else resets the
        /// stream.
        body: mpsc::Receiver<BodyChunk>,
    },
}

/// One step of a URL response body handed to the swarm.
#[derive(Debug)]
pub enum BodyChunk {
    /// The next bytes.
    Data(Bytes),
    /// Every byte was sent.
    End,
    /// The body cannot be completed (the origin died mid-body, …).
    Failed(String),
}

//! fleetcache swarm: the peer-to-peer layer.
//!
//! - [`Swarm`]: one quinn endpoint per node, mutual TLS against the fleet CA (ALPN
//!   [`ALPN`]); it answers peers' PING, HAVE and GET from the local store (GET streams
//!   are bao-tree encodings checked against the hash as they are read from disk), and it
//!   keeps the configured peers (addresses or DNS names, re-resolved) alive with pings;
//! - every member has a stable identity, its [`NodeName`]: the node name in its fleet
//!   certificate, read from the certificate each peer presents on the authenticated
//!   connection (a peer whose certificate names no node is refused), so a node reached
//!   by several addresses is one member;
//! - [`Swarm::owner`] and [`Swarm::owners`] rank the live members, this node included, by
//!   rendezvous hashing of a key (any bytes: a hash, a URL cache key) over their names
//!   ([`rendezvous_rank`]), so every node with the same live view agrees on a key's
//!   [`Owner`], and a member leaving moves only the keys it owned;
//! - [`Swarm::locate`] asks the live peers who holds a hash, orders the holders by the
//!   same rank (key: the hash's 32 bytes) and proves the size from the last chunk group;
//!   [`Located::fetch`] streams a byte range from up to four holders at once, in pieces
//!   of whole 16 KiB groups each verified before it is returned, handed out in order and
//!   once each: finished holders take the next piece (slower ones do less), a piece
//!   whose holder lies, stalls or dies is resumed by another at its first unverified
//!   byte, and the piece blocking delivery is raced by another holder when its own is
//!   slower than its hedge delay (each peer's own, from its observed latency);
//! - [`Swarm::fetch_url`] asks a URL's owner for its response ([`OwnerFetch`]: the body
//!   hashed as it arrives and checked against the owner's closing hash and size);
//!   [`Swarm::purge`] and [`Swarm::purge_log`] carry purges; the gateway answers
//!   peers' URL requests and purges through the [`FleetService`] it installs;
//! - the fleet PKI ([`FleetCa`], [`NodeCert`], [`NodeIdentity`]);
//! - the version 2 wire protocol (`swarm/PROTOCOL.md`) as a sans-IO codec;
//! - [`quic_server_endpoint`]: a quinn server endpoint on a UDP socket with receive and
//!   send buffers of [`UDP_BUFFER_BYTES`] (the kernel's default drops bursts), used by
//!   the swarm and by the gateway's HTTP/3 endpoint.
//!
//! Single-flight, teeing into the store and HTTP live in the gateway.

#![forbid(unsafe_code)]

mod certs;
mod client;
mod fetch;
mod identity;
mod latency;
mod peers;
mod prove;
mod rendezvous;
mod schedule;
mod serve;
mod service;
mod swarm;
mod udp;
mod url;
mod wire;

pub use certs::{ALPN, CertError, FLEET_SERVER_NAME, FleetCa, NodeCert, NodeIdentity};
pub use client::PeerError;
pub use fetch::{Fetch, FetchError, FetchItem, Located};
pub use identity::{NameError, NodeName};
pub use peers::{PeerHandle, PeerInfo, PeerState};
pub use rendezvous::{Owner, rendezvous_rank};
pub use service::{BodyChunk, FleetService, ServiceFuture, UrlReply};
pub use swarm::{Swarm, SwarmError, SwarmOptions, SwarmStats};
pub use udp::{UDP_BUFFER_BYTES, quic_server_endpoint};
pub use url::OwnerFetch;
pub use wire::{
    BodyFrame, Decoded, ErrorCode, MAX_BODY_FRAME, MAX_LOG_LEN, MAX_MESSAGE_LEN, MAX_RANGES_LEN,
    MAX_REQUEST_LEN, RangeSpec, Request, RequestKind, Response, VERSION, WireError,
};

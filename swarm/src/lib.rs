//! fleetcache swarm: the peer-to-peer layer.
//!
//! **What exists now:**
//! - the fleet PKI ([`FleetCa`], [`NodeCert`], [`NodeIdentity`]): a fleet CA made with
//!   rcgen, node certificates it issues, PEM files on disk, and the mutual-TLS rustls and
//!   quinn configurations built from a node's identity (ALPN [`ALPN`], the fleet CA as
//!   the only root on both sides, ring as the crypto provider);
//! - the version 1 wire protocol, specified in `swarm/PROTOCOL.md`, as a sans-IO codec:
//!   [`Request`] and [`Response`] headers encoded to and decoded from byte slices, with
//!   [`Decoded::Incomplete`] for a valid prefix and a typed [`WireError`] (mapped to a
//!   stream [`ErrorCode`]) for input that can never become a frame.
//!
//! **Not built yet:** no endpoint or accept loop, no request handling, no membership or
//! liveness, no rendezvous routing, no verified fill pipeline. Until then a node serves
//! only what its own store holds.

#![forbid(unsafe_code)]

mod certs;
mod wire;

pub use certs::{ALPN, CertError, FleetCa, NodeCert, NodeIdentity};
pub use wire::{
    Decoded, ErrorCode, MAX_RANGES_LEN, MAX_REQUEST_LEN, RangeSpec, Request, RequestKind, Response,
    VERSION, WireError,
};

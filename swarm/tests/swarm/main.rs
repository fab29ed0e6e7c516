//! The swarm over real QUIC on loopback: mutual TLS, the protocol against hostile
//! requesters, membership (liveness, self-detection, node names), key ownership, and
//! fetching one object from several holders at once.

#![allow(clippy::unwrap_used, unreachable_pub)]

mod fake;
mod membership;
mod mtls;
mod multi_source;
mod ownership;
mod protocol;
mod support;

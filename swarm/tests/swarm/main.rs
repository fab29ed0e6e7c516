//! The swarm over real QUIC on loopback: mutual TLS, the protocol against hostile
//! requesters, membership (liveness, self-detection, node names) and key ownership.

#![allow(clippy::unwrap_used, unreachable_pub)]

mod membership;
mod mtls;
mod ownership;
mod protocol;
mod support;

//! The swarm over real QUIC on loopback: mutual TLS, the protocol against hostile
//! requesters, and membership (liveness, self-detection).

#![allow(clippy::unwrap_used, unreachable_pub)]

mod membership;
mod mtls;
mod protocol;
mod support;
